"""Cells: DAGs of `num_nodes` intermediate nodes (4 in DARTS and StacNAS) over the
outputs of the two previous cells: `SearchCell` mixes every candidate op on
every edge (the supernet's), `DerivedCell` runs a genotype's chosen ops."""

from __future__ import annotations

import keras
import numpy as np
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


def build_cell_layers(cell, input_shape, edge_layers):
    """Builds a cell's preprocessing and edge layers for inputs of `input_shape`
    (the shapes of both inputs); every edge reads a state of `cell.filters`."""
    shape0, shape1 = input_shape
    state_shape = (None, None, None, cell.filters)  # kernels depend on channels alone
    shapes = [shape0, shape1] + [state_shape] * len(edge_layers)
    for layer, shape in zip([cell.preprocess0, cell.preprocess1] + list(edge_layers), shapes):
        # Skips layers already run on their own (`SearchCell.states` before a call).
        if layer is not None and not layer.built:
            ops_lib.build_op(layer, shape)


@keras.saving.register_keras_serializable(package="stacnas_tf")
class SearchCell(keras.layers.Layer):
    """A supernet cell: every edge is a weighted sum of its candidate ops.

    Node j is the sum of its incoming edges; the output is the channel-wise
    concatenation of the `num_nodes` intermediate nodes (4 x filters channels).
    In a reduction cell the edges leaving the two inputs have stride 2. The
    edges leaving one state are computed together (`mixed_op.MixedEdges`).
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
        endpoints = search_space.edge_endpoints(num_nodes)
        # Every state but the last node feeds edges; `fan_out[s]` lists the
        # indices (in edge order) of the edges that read state s.
        self.fan_out = tuple(
            tuple(e for e, (source, _) in enumerate(endpoints) if source == state)
            for state in range(num_nodes + 1)
        )
        self.edge_groups = [
            mixed_op.MixedEdges(
                [candidates[e] for e in edges], filters,
                stride=2 if reduction and state < 2 else 1, name=f"edges_from_{state}",
            )
            for state, edges in enumerate(self.fan_out)
        ]
        self._source_order = np.array([e for edges in self.fan_out for e in edges], dtype=np.int32)
        self._edge_nodes = tuple(node - 2 for _, node in endpoints)  # 0-based node fed by each edge

    def build(self, input_shape):
        # Explicit, so Keras need not trace `call` to find the edges' variables.
        build_cell_layers(self, input_shape, self.edge_groups)

    def call(self, inputs, weights, training=None):
        return tf.concat(self.states(inputs, weights, training=training)[2:], axis=-1)

    def states(self, inputs, weights, training=None):
        """The two preprocessed inputs and the `num_nodes` node outputs."""
        s0, s1 = inputs
        # One gather and one split hand every state its edges' weights.
        weights = tf.split(tf.gather(weights, self._source_order),
                           [len(edges) for edges in self.fan_out])
        states = [self.preprocess0(s0, training=training), self.preprocess1(s1, training=training)]
        incoming = [[] for _ in range(self.num_nodes)]

        def run_edges_from(state):
            outputs = self.edge_groups[state](states[state], weights[state], training=training)
            for e, output in zip(self.fan_out[state], outputs):
                incoming[self._edge_nodes[e]].append(output)

        run_edges_from(0)
        run_edges_from(1)
        for node in range(self.num_nodes):
            states.append(tf.add_n(incoming[node]))
            if len(states) - 1 < len(self.fan_out):
                run_edges_from(len(states) - 1)
        return states

    def edge_op_outputs(self, states, training=None):
        """Every edge's unweighted op outputs, in edge order: a list of {op: tensor}
        (`states` from `states`)."""
        outputs = [None] * len(self.candidates)
        for state, (group, edges) in enumerate(zip(self.edge_groups, self.fan_out)):
            for e, edge_outputs in zip(edges, group.op_outputs(states[state], training=training)):
                outputs[e] = edge_outputs
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({
            "candidates": [list(e) for e in self.candidates], "filters": self.filters,
            "reduction": self.reduction, "reduction_prev": self.reduction_prev,
            "num_nodes": self.num_nodes,
        })
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class DropPath(keras.layers.Layer):
    """Drops whole samples of a branch with probability `rate` during training
    and rescales the kept ones by 1 / (1 - rate) (DARTS's drop_path).

    `rate` is read from a variable owned by the network, so one schedule
    (ramped over training) drives every cell without retracing.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, rate, training=None):
        if not training:
            return inputs
        keep = 1.0 - tf.cast(rate, inputs.dtype)
        shape = tf.stack([tf.shape(inputs)[0], 1, 1, 1])
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = tf.cast(noise < keep, inputs.dtype)
        return inputs * mask / keep

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class DerivedCell(keras.layers.Layer):
    """A cell of a final network, built from a cell genotype.

    Node i sums its two chosen edges; drop path applies to every edge whose op
    is not the identity; the output concatenates the genotype's `concat`
    states. With `deformable=True` (StacNAS Algorithm 1, stage 3) each edge
    keeps the search's `none` as a learned scale: its output is
    softmax([a_none, a_op])[1] * op(x), with the logits trained jointly.
    """

    def __init__(self, edges, concat, filters, reduction, reduction_prev, deformable=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.edges = tuple((str(op), int(index)) for op, index in edges)
        self.concat = tuple(int(i) for i in concat)
        self.filters = filters
        self.reduction = reduction
        self.reduction_prev = reduction_prev
        self.deformable = deformable
        self.num_nodes = len(self.edges) // 2
        self.preprocess0, self.preprocess1 = make_preprocessing(filters, reduction_prev, affine=True)
        self.edge_ops = [
            ops_lib.make_op(op, filters, 2 if reduction and index < 2 else 1, affine=True,
                            search=False, layer_name=f"edge_{position}_{op}")
            for position, (op, index) in enumerate(self.edges)
        ]
        self.drop_paths = [
            None if isinstance(op, keras.layers.Identity) else DropPath(name=f"drop_path_{position}")
            for position, op in enumerate(self.edge_ops)
        ]
        if deformable:
            # Column 0 is `none`, column 1 the chosen op; equal logits start at 1/2.
            self.edge_logits = self.add_weight(
                shape=(len(self.edges), 2), initializer="zeros", autocast=False,
                name="edge_logits")

    def build(self, input_shape):
        # Explicit, so Keras need not trace `call` to find the edges' variables.
        build_cell_layers(self, input_shape, self.edge_ops)

    @property
    def output_filters(self):
        return len(self.concat) * self.filters

    def compute_output_shape(self, input_shape):
        # Nodes have the (preprocessed) newer input's size; a reduction halves
        # it as DARTS's stride-2 ops do (ceil(side / 2)).
        _, (batch, height, width, _) = input_shape
        if self.reduction:
            height = None if height is None else (height + 1) // 2
            width = None if width is None else (width + 1) // 2
        return (batch, height, width, self.output_filters)

    def edge_scales(self):
        """The learned scale of every edge (deformable cells only)."""
        return tf.nn.softmax(tf.convert_to_tensor(self.edge_logits), axis=-1)[:, 1]

    def call(self, inputs, drop_path_rate=0.0, training=None):
        s0, s1 = inputs
        states = [self.preprocess0(s0, training=training), self.preprocess1(s1, training=training)]
        scales = self.edge_scales() if self.deformable else None
        for node in range(self.num_nodes):
            total = None
            for position in (2 * node, 2 * node + 1):
                _, index = self.edges[position]
                h = self.edge_ops[position](states[index], training=training)
                if self.drop_paths[position] is not None:
                    h = self.drop_paths[position](h, rate=drop_path_rate, training=training)
                if scales is not None:
                    h = tf.cast(scales[position], h.dtype) * h
                total = h if total is None else total + h
            states.append(total)
        return tf.concat([states[i] for i in self.concat], axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "edges": [list(e) for e in self.edges], "concat": list(self.concat),
            "filters": self.filters, "reduction": self.reduction,
            "reduction_prev": self.reduction_prev, "deformable": self.deformable,
        })
        return config
