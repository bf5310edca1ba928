"""The continuous relaxation of the edges leaving one state: on each edge, a
weighted sum of its candidate ops."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from stacnas_tf import batched_ops
from stacnas_tf import search_space


@keras.saving.register_keras_serializable(package="stacnas_tf")
class MixedEdges(keras.layers.Layer):
    """Computes, for every edge e leaving one state x,
    sum_k weights[e, k] * op_{e,k}(x) over the edge's candidate ops.

    `candidates[e]` lists edge e's ops; column k of `weights` (the softmax of
    the edges' architecture logits, computed by the network once per forward
    pass because cells of one type share them) belongs to `candidates[e][k]`.
    `none` outputs zero, so it is skipped: it still takes its share of the
    softmax, which is how it scales the whole edge.

    Each op is computed for all the edges that hold it in one batched layer
    (`batched_ops`), which keeps the supernet's graph, and so its start-up,
    several times smaller than one layer per edge and op. Every edge keeps its
    own weights.
    """

    def __init__(self, candidates, filters, stride=1, **kwargs):
        super().__init__(**kwargs)
        candidates = tuple(tuple(edge) for edge in candidates)
        if not candidates:
            raise ValueError(f"MixedEdges {self.name}: expected at least one edge.")
        for edge in candidates:
            search_space.check_ops(edge, f"MixedEdges {self.name}")
        self.candidates = candidates
        self.filters = filters
        self.stride = stride
        # In `search_space.op_names()` order, so layer names and creation order do not depend
        # on edge order.
        self.op_names = tuple(
            op for op in search_space.op_names()
            if op != search_space.NONE and any(op in edge for edge in candidates)
        )
        self.op_edges = tuple(
            tuple(e for e, edge in enumerate(candidates) if op in edge) for op in self.op_names
        )
        self.batched_ops = [
            batched_ops.make_batched_op(op, filters, stride, len(edges), layer_name=op)
            for op, edges in zip(self.op_names, self.op_edges)
        ]
        # (edge, column) of every (op, edge) pair, op by op: one gather picks all the weights.
        self._weight_indices = np.array(
            [[e, candidates[e].index(op)] for op, edges in zip(self.op_names, self.op_edges)
             for e in edges], dtype=np.int32)

    @property
    def num_edges(self):
        return len(self.candidates)

    def build(self, input_shape):
        # Explicit, so Keras need not trace `call` to find the ops' variables.
        for layer in self.batched_ops:
            if not layer.built:  # `op_outputs` may have run it already
                layer.build(input_shape)

    def call(self, inputs, weights, training=None):
        """Returns the mixed output of every edge, in `candidates` order."""
        # One weight per output channel, handed to the op as its output's
        # `scale`: most ops fold it into their last BatchNorm, which saves a
        # multiplication and, in the gradient, a reduction over the whole
        # activation. (The first version multiplied an [edges, 1] weight against
        # a 5-D view of the output, which made the whole search step ~30% slower.)
        channel_weights = tf.repeat(tf.gather_nd(weights, self._weight_indices), self.filters)
        op_weights = tf.split(channel_weights, [len(edges) * self.filters for edges in self.op_edges])
        terms = [
            layer(inputs, training=training, scale=w)
            for layer, w in zip(self.batched_ops, op_weights)
        ]
        everywhere = [t for t, edges in zip(terms, self.op_edges) if len(edges) == self.num_edges]
        edge_terms = [[] for _ in range(self.num_edges)]
        if everywhere:
            # Stage 1 and flat searches: every op on every edge, one sum for all.
            for e, term in enumerate(tf.split(tf.add_n(everywhere), self.num_edges, axis=-1)):
                edge_terms[e].append(term)
        for term, edges in zip(terms, self.op_edges):
            if len(edges) != self.num_edges:
                for e, edge_term in zip(edges, tf.split(term, len(edges), axis=-1)):
                    edge_terms[e].append(edge_term)
        return [tf.add_n(t) for t in edge_terms]

    def op_outputs(self, inputs, training=None):
        """Every edge's unweighted op outputs: a list over edges of {op: tensor}."""
        outputs = [{} for _ in range(self.num_edges)]
        for op, layer, edges in zip(self.op_names, self.batched_ops, self.op_edges):
            for e, output in zip(edges, tf.split(layer(inputs, training=training), len(edges), axis=-1)):
                outputs[e][op] = output
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({"candidates": [list(e) for e in self.candidates], "filters": self.filters,
                       "stride": self.stride})
        return config
