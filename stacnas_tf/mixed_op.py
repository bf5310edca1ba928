"""The continuous relaxation of one edge: a weighted sum of candidate ops."""

from __future__ import annotations

import keras
import tensorflow as tf

from stacnas_tf import ops as ops_lib
from stacnas_tf import search_space


@keras.saving.register_keras_serializable(package="stacnas_tf")
class MixedOp(keras.layers.Layer):
    """Computes sum_k weights[k] * op_k(x) over an edge's candidate ops.

    `weights` is the softmax of the edge's architecture logits (computed by
    the network, once per forward pass, because cells of one type share
    them); index k of `weights` belongs to `candidates[k]`. `none` outputs
    zero, so it is skipped: it still takes its share of the softmax, which is
    how it scales the whole edge.
    """

    def __init__(self, candidates, filters, stride=1, **kwargs):
        super().__init__(**kwargs)
        candidates = tuple(candidates)
        search_space.check_ops(candidates, f"MixedOp {self.name}")
        self.candidates = candidates
        self.filters = filters
        self.stride = stride
        self.candidate_ops = [
            ops_lib.make_op(op, filters, stride, affine=False, search=True, layer_name=op)
            for op in candidates
        ]

    def build(self, input_shape):
        # Explicit, so Keras need not trace `call` to find the candidates' variables.
        for op in self.candidate_ops:
            if op is not None:
                op.build(input_shape)

    def call(self, inputs, weights, training=None):
        # One Unpack instead of a strided slice (and its constants) per candidate.
        # The weights come as float32 softmax; the sum runs in the ops' compute dtype.
        if tf.is_tensor(weights):
            weights = tf.unstack(tf.cast(weights, inputs.dtype))
        terms = [
            weights[k] * op(inputs, training=training)
            for k, op in enumerate(self.candidate_ops)
            if op is not None
        ]
        return tf.add_n(terms)

    def get_config(self):
        config = super().get_config()
        config.update({"candidates": list(self.candidates), "filters": self.filters, "stride": self.stride})
        return config

