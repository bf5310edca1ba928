"""Search-network primitives applied to one input for several edges at once.

Every edge of a cell that reads the same state applies the same candidate
ops to the same tensor, each edge with its own weights. Computing them one
edge at a time puts 14 copies of every op (and of its gradient) into a
cell's graph, and the supernet's start-up (tracing, Grappler) grows with the
graph. Here one layer computes an op for all `num_edges` edges leaving a
state: the input is tiled once along channels, depthwise kernels are stacked
along channels, pointwise kernels become a grouped convolution (one group per
edge), and one BatchNorm normalizes all edges' channels (BatchNorm is
per-channel, so this is the edges' own BatchNorms side by side).

Outputs hold the edges' outputs side by side along channels, edge-major:
channels [e * filters, (e + 1) * filters) belong to edge e. Each edge
computes exactly what `ops.make_op(..., search=True)` computes for it; the
windows are placed as in `ops` (see its docstring).

Every layer's `call` takes an optional `scale`, one multiplier per output
channel (the mixed op's architecture weights). Ops that end in a BatchNorm
fold it into that BatchNorm's fused kernel; the others multiply.
"""

from __future__ import annotations

import functools
import math

import keras
import tensorflow as tf

from stacnas_tf import ops as ops_lib
from stacnas_tf import search_space


@keras.saving.register_keras_serializable(package="stacnas_tf")
class EdgeStackedGlorotUniform(keras.initializers.RandomUniform):
    """Glorot-uniform for a kernel that stacks `num_blocks` equal kernels along
    its last axis (or the one before it, `axis=-2`, for depthwise kernels).

    Each block is drawn with the fans of its own kernel, so every edge starts
    with the distribution Keras gives a layer of its own.
    """

    def __init__(self, num_blocks, axis=-1, seed=None):
        super().__init__(seed=seed)  # RandomUniform for Keras's seed handling
        self.num_blocks = num_blocks
        self.axis = axis

    def __call__(self, shape, dtype=None):
        block = list(shape)
        block[self.axis] //= self.num_blocks
        receptive_field = math.prod(block[:-2])
        fan_in, fan_out = block[-2] * receptive_field, block[-1] * receptive_field
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        config = super().get_config()
        config.pop("minval")
        config.pop("maxval")
        config.update({"num_blocks": self.num_blocks, "axis": self.axis})
        return config


def _tile(x, num_edges):
    return x if num_edges == 1 else tf.tile(x, [1, 1, 1, num_edges])


def _place(x, kernel_size, stride, dilation):
    """Prepares `x` for a depthwise conv placed as in DARTS (`ops.depthwise_placement`);
    returns (x, strides, padding, dilation) for `_depthwise`."""
    pre, strides, padding, dilation = ops_lib.depthwise_placement(kernel_size, stride, dilation)
    if pre == "subsample":
        x = x[:, ::stride, ::stride, :]
    elif pre is not None:
        x = tf.pad(x, [[0, 0], [pre, pre], [pre, pre], [0, 0]])
    return x, strides, padding.upper(), dilation


def _scaled(x, scale):
    return x if scale is None else x * tf.cast(scale, x.dtype)


def _grouped_pointwise(x, kernel):
    """A 1x1 convolution whose input channels are `groups` blocks of the kernel's
    input width, each block mapped by its own slice of the kernel's outputs."""
    groups = x.shape[-1] // kernel.shape[2]
    if groups == 1 or grouped_conv_gradient_available(x.dtype.name):
        return tf.nn.conv2d(x, kernel, 1, "VALID")
    # The same product as a batched matmul over the groups (1.5x slower where
    # both run): TF's stock CPU kernels have no gradient for grouped
    # convolutions; only its oneDNN kernels do, and TF turns those on only on
    # some CPUs (not on AVX2-only ones) and not for every dtype.
    shape = tf.shape(x)
    blocks = tf.reshape(x, tf.concat([shape[:3], [groups, kernel.shape[2]]], 0))
    weights = tf.reshape(kernel, [kernel.shape[2], groups, kernel.shape[3] // groups])
    out = tf.einsum("bhwgc,cgo->bhwgo", blocks, tf.cast(weights, x.dtype))
    return tf.reshape(out, tf.concat([shape[:3], [kernel.shape[3]]], 0))


@functools.cache
def grouped_conv_gradient_available(dtype: str) -> bool:
    """Whether this process's TensorFlow computes the input gradient of a grouped
    convolution in `dtype` (tried once per dtype on a tiny one, eagerly)."""
    with tf.init_scope():  # run now, also when called while tracing a tf.function
        try:
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=[1, 2, 2, 4], filter=tf.ones([1, 1, 2, 4], dtype),
                out_backprop=tf.ones([1, 2, 2, 4], dtype), strides=[1, 1, 1, 1],
                padding="VALID").numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                tf.errors.NotFoundError):
            return False
    return True


def _depthwise(x, kernel, strides, padding, dilation):
    return tf.nn.depthwise_conv2d(
        x, kernel, strides=[1, strides, strides, 1], padding=padding,
        dilations=[dilation, dilation])


class _BatchedOp(keras.layers.Layer):
    """Common arguments: `filters` output channels per edge, `stride`, and
    `num_edges`, the number of edges computed side by side."""

    def __init__(self, filters, stride=1, num_edges=1, **kwargs):
        super().__init__(**kwargs)
        if num_edges < 1:
            raise ValueError(f"{type(self).__name__}: num_edges must be positive, got {num_edges}.")
        self.filters = filters
        self.stride = stride
        self.num_edges = num_edges
        self._fan_ins = {}  # kernel attribute -> fan-in, filled by _kernel

    def _kernel(self, shape, num_blocks, axis, name):
        # One edge's kernel as PyTorch counts its fan-in (`initialization`):
        # a depthwise kernel (stacked along its input axis) reads one channel.
        self._fan_ins[name] = shape[0] * shape[1] * (1 if axis == -2 else shape[2])
        return self.add_weight(shape=shape, initializer=EdgeStackedGlorotUniform(num_blocks, axis),
                               name=name)

    def kernel_fan_ins(self) -> list:
        """(kernel, fan_in) of each stacked kernel, fan_in that of one edge's
        kernel as PyTorch counts it (input channels per group x kernel area)."""
        return [(getattr(self, name), fan_in) for name, fan_in in self._fan_ins.items()]

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "stride": self.stride, "num_edges": self.num_edges})
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class BatchedSepConv(_BatchedOp):
    """`num_edges` SepConvs (ReLU -> depthwise k x k -> pointwise -> BN, twice;
    the first has the stride) on one input, side by side."""

    def __init__(self, filters, kernel_size, stride=1, num_edges=1, **kwargs):
        super().__init__(filters, stride, num_edges, **kwargs)
        self.kernel_size = kernel_size
        self.bn1 = ops_lib.BatchNorm(affine=False, name="bn1")
        self.bn2 = ops_lib.BatchNorm(affine=False, name="bn2")

    def build(self, input_shape):
        channels, edges, k = input_shape[-1], self.num_edges, self.kernel_size
        self.depthwise1 = self._kernel((k, k, edges * channels, 1), edges, -2, "depthwise1")
        self.pointwise1 = self._kernel((1, 1, channels, edges * channels), edges, -1, "pointwise1")
        self.depthwise2 = self._kernel((k, k, edges * channels, 1), edges, -2, "depthwise2")
        self.pointwise2 = self._kernel((1, 1, channels, edges * self.filters), edges, -1,
                                       "pointwise2")
        self.bn1.build((None, None, None, edges * channels))
        self.bn2.build((None, None, None, edges * self.filters))

    def call(self, inputs, training=None, scale=None):
        x, strides, padding, dilation = _place(tf.nn.relu(inputs), self.kernel_size, self.stride, 1)
        x = _depthwise(_tile(x, self.num_edges), self.depthwise1, strides, padding, dilation)
        # Input channels = num_edges x the kernel's: a grouped conv, one group per edge.
        x = self.bn1(_grouped_pointwise(x, self.pointwise1), training=training)
        x = _depthwise(tf.nn.relu(x), self.depthwise2, 1, "SAME", 1)
        return self.bn2(_grouped_pointwise(x, self.pointwise2), training=training,
                        scale=scale)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class BatchedDilConv(_BatchedOp):
    """`num_edges` DilConvs (ReLU -> dilated depthwise k x k -> pointwise -> BN)
    on one input, side by side."""

    def __init__(self, filters, kernel_size, stride=1, dilation=2, num_edges=1, **kwargs):
        super().__init__(filters, stride, num_edges, **kwargs)
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.bn = ops_lib.BatchNorm(affine=False, name="bn")

    def build(self, input_shape):
        channels, edges, k = input_shape[-1], self.num_edges, self.kernel_size
        self.depthwise = self._kernel((k, k, edges * channels, 1), edges, -2, "depthwise")
        self.pointwise = self._kernel((1, 1, channels, edges * self.filters), edges, -1,
                                      "pointwise")
        self.bn.build((None, None, None, edges * self.filters))

    def call(self, inputs, training=None, scale=None):
        x, strides, padding, dilation = _place(
            tf.nn.relu(inputs), self.kernel_size, self.stride, self.dilation)
        x = _depthwise(_tile(x, self.num_edges), self.depthwise, strides, padding, dilation)
        return self.bn(_grouped_pointwise(x, self.pointwise), training=training,
                       scale=scale)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "dilation": self.dilation})
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class BatchedFactorizedReduce(_BatchedOp):
    """`num_edges` FactorizedReduces (the stride-2 skip_connect): ReLU, two 1x1
    convs on the even and the odd pixel grid, each giving half of an edge's
    `filters`, then BatchNorm."""

    def __init__(self, filters, num_edges=1, **kwargs):
        super().__init__(filters, 2, num_edges, **kwargs)
        if filters % 2:
            raise ValueError(f"BatchedFactorizedReduce: filters must be even, got {filters}.")
        self.bn = ops_lib.BatchNorm(affine=False, name="bn")

    def build(self, input_shape):
        channels, edges = input_shape[-1], self.num_edges
        # Groups alternate even grid, odd grid, edge by edge: each edge's output
        # is [even half, odd half], as FactorizedReduce concatenates them.
        self.kernel = self._kernel((1, 1, channels, edges * self.filters), 2 * edges, -1, "kernel")
        self.bn.build((None, None, None, edges * self.filters))

    def call(self, inputs, training=None, scale=None):
        x = tf.nn.relu(inputs)
        grids = tf.concat([x[:, ::2, ::2, :], x[:, 1::2, 1::2, :]], axis=-1)
        x = _grouped_pointwise(_tile(grids, self.num_edges), self.kernel)
        return self.bn(x, training=training, scale=scale)

    def get_config(self):
        config = super().get_config()
        config.pop("stride")
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class BatchedPool(_BatchedOp):
    """3x3 max or average pooling followed by a BatchNorm without affine
    parameters, for `num_edges` edges.

    The op has no weights, and the BatchNorms of all edges see the same input,
    so their outputs and moving statistics are equal: it is computed once and
    tiled.
    """

    def __init__(self, kind, stride=1, num_edges=1, **kwargs):
        super().__init__(None, stride, num_edges, **kwargs)
        self.kind = kind
        self.pool = ops_lib.Pool(kind, stride=stride, batch_norm=True, name="pool")

    def build(self, input_shape):
        self.pool.build(input_shape)

    def call(self, inputs, training=None, scale=None):
        # Scaled after the tile: the edges' scales differ.
        return _scaled(_tile(self.pool(inputs, training=training), self.num_edges), scale)

    def get_config(self):
        config = super().get_config()
        config.pop("filters")
        config.update({"kind": self.kind})
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class TiledIdentity(_BatchedOp):
    """The stride-1 skip_connect of `num_edges` edges: the input, tiled."""

    def __init__(self, num_edges=1, **kwargs):
        super().__init__(None, 1, num_edges, **kwargs)

    def call(self, inputs, training=None, scale=None):
        return _scaled(_tile(inputs, self.num_edges), scale)

    def get_config(self):
        config = super().get_config()
        config.pop("filters")
        config.pop("stride")
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class EdgeStack(_BatchedOp):
    """`num_edges` edges of an op that has no batched form (`conv_7x1_1x7`, and
    the user's registered ops), one layer per edge, their outputs side by side."""

    def __init__(self, op, filters, stride=1, num_edges=1, **kwargs):
        super().__init__(filters, stride, num_edges, **kwargs)
        self.op = op
        self.edge_ops = [
            ops_lib.make_op(op, filters, stride, affine=False, search=True, layer_name=f"edge_{e}")
            for e in range(num_edges)
        ]

    def build(self, input_shape):
        for layer in self.edge_ops:
            ops_lib.build_op(layer, input_shape)

    def call(self, inputs, training=None, scale=None):
        scales = [None] * self.num_edges if scale is None else tf.split(scale, self.num_edges)
        if search_space.custom_op(self.op) is None:
            outputs = [layer(inputs, training=training, scale=edge_scale)
                       for layer, edge_scale in zip(self.edge_ops, scales)]
        else:  # a user's layer takes no `scale`: it multiplies the output
            outputs = [layer(inputs, training=training) for layer in self.edge_ops]
            if scale is not None:
                outputs = [output * tf.cast(edge_scale, output.dtype)
                           for output, edge_scale in zip(outputs, scales)]
        return tf.concat(outputs, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"op": self.op})
        return config


def make_batched_op(name: str, filters: int, stride: int, num_edges: int, layer_name: str):
    """Search primitive `name` (not `none`) for `num_edges` edges reading one
    state of `filters` channels; outputs `num_edges * filters` channels."""
    spec = search_space.OP_TABLE.get(name)
    kind = spec.kind if spec is not None else "custom" if search_space.custom_op(name) else None
    if kind == "skip":
        if stride == 1:
            return TiledIdentity(num_edges, name=layer_name)
        return BatchedFactorizedReduce(filters, num_edges, name=layer_name)
    if kind == "pool":
        return BatchedPool(spec.pool, stride=stride, num_edges=num_edges, name=layer_name)
    if kind == "sep_conv":
        return BatchedSepConv(filters, spec.kernel_size, stride=stride, num_edges=num_edges,
                              name=layer_name)
    if kind in ("conv_7x1_1x7", "custom"):
        return EdgeStack(name, filters, stride=stride, num_edges=num_edges, name=layer_name)
    if kind == "dil_conv":
        return BatchedDilConv(filters, spec.kernel_size, stride=stride, dilation=spec.dilation,
                              num_edges=num_edges, name=layer_name)
    search_space.check_ops([name], "make_batched_op")
    raise ValueError(f"make_batched_op: `{name}` has no layer (its output is zero).")
