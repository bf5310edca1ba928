"""Cells: DAGs of 4 intermediate nodes over the outputs of the two previous cells."""

from __future__ import annotations

import keras
import tensorflow as tf

from stacnas_tf import mixed_op
from stacnas_tf import ops as ops_lib
from stacnas_tf import search_space


def make_preprocessing(filters, reduction_prev, affine):
    """DARTS's input preprocessing: the older input is halved when the previous
    cell reduced (so both inputs share a resolution); both map to `filters`."""
    if reduction_prev:
        pre0 = ops_lib.FactorizedReduce(filters, affine=affine, name="preprocess0")
    else:
        pre0 = ops_lib.ReLUConvBN(filters, 1, affine=affine, name="preprocess0")
    pre1 = ops_lib.ReLUConvBN(filters, 1, affine=affine, name="preprocess1")
    return pre0, pre1


@keras.saving.register_keras_serializable(package="stacnas_tf")
class SearchCell(keras.layers.Layer):
    """A supernet cell: every edge is a MixedOp over its candidates.

    Node j is the sum of its incoming edges; the output is the channel-wise
    concatenation of the `num_nodes` intermediate nodes (4 x filters channels).
    In a reduction cell the edges leaving the two inputs have stride 2.
    """

    def __init__(self, candidates, filters, reduction, reduction_prev, num_nodes=4, **kwargs):
        super().__init__(**kwargs)
        candidates = tuple(tuple(edge) for edge in candidates)
        if len(candidates) != search_space.num_edges(num_nodes):
            raise ValueError(
                f"SearchCell: {num_nodes} nodes need {search_space.num_edges(num_nodes)} "
                f"edges of candidates, got {len(candidates)}."
            )
        self.candidates = candidates
        self.filters = filters
        self.reduction = reduction
        self.reduction_prev = reduction_prev
        self.num_nodes = num_nodes
        self.preprocess0, self.preprocess1 = make_preprocessing(filters, reduction_prev, affine=False)
        self.edges = [
            mixed_op.MixedOp(
                candidates[index], filters, stride=2 if reduction and source < 2 else 1,
                name=f"edge_{source}_{node}",
            )
            for index, (source, node) in enumerate(search_space.edge_endpoints(num_nodes))
        ]

    def call(self, inputs, weights, training=None):
        s0, s1 = inputs
        states = [self.preprocess0(s0, training=training), self.preprocess1(s1, training=training)]
        index = 0
        for node in range(self.num_nodes):
            terms = []
            for source in range(2 + node):
                terms.append(self.edges[index](states[source], weights[index], training=training))
                index += 1
            states.append(tf.add_n(terms))
        return tf.concat(states[2:], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "candidates": [list(e) for e in self.candidates], "filters": self.filters,
            "reduction": self.reduction, "reduction_prev": self.reduction_prev,
            "num_nodes": self.num_nodes,
        })
        return config
