"""The DARTS primitives as Keras layers (NHWC), and the name -> layer table.

Padding follows DARTS (PyTorch) exactly: symmetric, `kernel_size // 2` (times
the dilation). TensorFlow's 'same' padding is symmetric only at stride 1, so
stride-2 ops are written so that their windows sit where DARTS puts them:
  * pools run at stride 1 and are subsampled (windows centred on even pixels);
  * strided depthwise convs pad explicitly and use 'valid';
  * a dilation-2, stride-2 conv reads only even pixels, so the input is
    subsampled first and an undilated conv runs on it: equal, and 4x cheaper.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from stacnas_tf import search_space

_SERIALIZE_PACKAGE = "stacnas_tf"

# Layers made of sublayers build them explicitly in `build`. Without it Keras
# finds their variables by tracing `call` symbolically, again at every level
# of nesting: building a supernet took as long as its first training step.


def _channels(shape, channels=None):
    """An input shape for building sublayers: their kernels depend on the
    channel count alone, and leaving out the spatial size keeps Keras from
    checking it against kernels that only see a padded or subsampled input."""
    return (None, None, None, shape[-1] if channels is None else channels)


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class BatchNorm(keras.layers.Layer):
    """Batch normalization over the channel axis, computed by TF's fused kernel.

    Matches PyTorch's `BatchNorm2d(momentum=0.1, eps=1e-5)`: moving statistics
    decay by `momentum` (Keras convention, 0.9) and the moving variance uses
    the unbiased batch variance. With `affine=False` there is no scale/offset,
    as in the DARTS search network. `training=None` means inference.

    `scale` (affine-free layers only) multiplies each output channel: the
    search network weights every edge's op output by its architecture weight
    this way, inside the fused kernel, whose gradient also yields the
    weight's gradient, instead of a multiplication and a reduction of its own
    over the whole activation.
    """

    def __init__(self, affine=True, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.affine = affine
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.affine:
            # Never autocast: the fused kernel takes float32 scale/offset under mixed precision.
            self.gamma = self.add_weight(shape=(channels,), initializer="ones", autocast=False,
                                         name="gamma")
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", autocast=False,
                                        name="beta")
        # "mean" aggregation lets every replica of a MirroredStrategy update them.
        self.moving_mean = self.add_weight(
            shape=(channels,), initializer="zeros", trainable=False, aggregation="mean",
            autocast=False, name="moving_mean",
        )
        self.moving_variance = self.add_weight(
            shape=(channels,), initializer="ones", trainable=False, aggregation="mean",
            autocast=False, name="moving_variance",
        )

    def call(self, inputs, training=None, scale=None):
        channels = inputs.shape[-1]
        if self.affine:
            if scale is not None:
                raise ValueError(f"BatchNorm {self.name}: `scale` needs affine=False.")
            scale, offset = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)
        else:
            # The fused kernel takes a float32 scale whatever the inputs' dtype.
            scale = (tf.ones([channels], tf.float32) if scale is None
                     else tf.cast(scale, tf.float32))
            offset = tf.zeros([channels], tf.float32)
        if training:
            # The kernel also updates the moving statistics (exponential_avg_factor):
            # one op instead of a dozen per layer keeps the supernet's graph, and
            # so its tracing time, small.
            outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset,
                mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance),
                epsilon=self.epsilon, exponential_avg_factor=1.0 - self.momentum,
                data_format="NHWC", is_training=True,
            )
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False,
        )
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"affine": self.affine, "momentum": self.momentum, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class ReLUConvBN(keras.layers.Layer):
    """ReLU -> k x k convolution (no bias, stride 1) -> BatchNorm."""

    def __init__(self, filters, kernel_size=1, affine=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.affine = affine
        self.conv = keras.layers.Conv2D(
            filters, kernel_size, padding="same", use_bias=False, name="conv"
        )
        self.bn = BatchNorm(affine=affine, name="bn")

    def build(self, input_shape):
        self.conv.build(_channels(input_shape))
        self.bn.build(_channels(input_shape, self.filters))

    def call(self, inputs, training=None):
        return self.bn(self.conv(tf.nn.relu(inputs)), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size, "affine": self.affine})
        return config


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class FactorizedReduce(keras.layers.Layer):
    """Halves the resolution: ReLU, two 1x1 stride-2 convs on pixel grids offset
    by one, concatenated (each gives half of `filters`), then BatchNorm."""

    def __init__(self, filters, affine=True, **kwargs):
        super().__init__(**kwargs)
        if filters % 2:
            raise ValueError(f"FactorizedReduce: filters must be even, got {filters}.")
        self.filters = filters
        self.affine = affine
        self.conv_even = keras.layers.Conv2D(filters // 2, 1, use_bias=False, name="conv_even")
        self.conv_odd = keras.layers.Conv2D(filters // 2, 1, use_bias=False, name="conv_odd")
        self.bn = BatchNorm(affine=affine, name="bn")

    def build(self, input_shape):
        self.conv_even.build(_channels(input_shape))
        self.conv_odd.build(_channels(input_shape))
        self.bn.build(_channels(input_shape, self.filters))

    def call(self, inputs, training=None):
        x = tf.nn.relu(inputs)
        # A strided 1x1 conv is a 1x1 conv on the subsampled grid.
        even = self.conv_even(x[:, ::2, ::2, :])
        odd = self.conv_odd(x[:, 1::2, 1::2, :])
        return self.bn(tf.concat([even, odd], axis=-1), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "affine": self.affine})
        return config


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class Pool(keras.layers.Layer):
    """3x3 max or average pooling (padding 1, padding not counted in averages),
    optionally followed by a BatchNorm without affine parameters (search only)."""

    def __init__(self, kind, stride=1, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("max", "avg"):
            raise ValueError(f"Pool: kind must be 'max' or 'avg', got {kind!r}.")
        self.kind = kind
        self.stride = stride
        self.batch_norm = batch_norm
        self.bn = BatchNorm(affine=False, name="bn") if batch_norm else None

    def build(self, input_shape):
        if self.bn is not None:
            self.bn.build(_channels(input_shape))

    def call(self, inputs, training=None):
        # TF's stride-1 'SAME' pools pad symmetrically and ignore the padding,
        # which is DARTS's (-inf / count_include_pad=False) behaviour.
        pool = tf.nn.max_pool2d if self.kind == "max" else tf.nn.avg_pool2d
        x = pool(inputs, ksize=3, strides=1, padding="SAME")
        if self.stride == 2:
            x = x[:, ::2, ::2, :]
        if self.bn is not None:
            x = self.bn(x, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "stride": self.stride, "batch_norm": self.batch_norm})
        return config


def depthwise_placement(kernel_size, stride, dilation):
    """Where DARTS puts a depthwise conv's windows, as TF ops can: returns
    (pre, strides, padding, dilation). `pre` is None (a stride-1 'SAME' conv),
    "subsample" (a dilation-2, stride-2 conv reads only even pixels: subsample,
    then an undilated stride-1 conv), or the width of an explicit symmetric
    zero padding before a strided 'VALID' conv."""
    if stride == 1:
        return None, 1, "same", dilation
    if dilation == stride:
        return "subsample", 1, "same", 1
    if dilation != 1:
        raise ValueError(f"stride {stride} with dilation {dilation} is not supported.")
    return kernel_size // 2, stride, "valid", 1


def _depthwise(kernel_size, stride, dilation, name):
    """A depthwise conv placed as in DARTS; returns (pre-transform, layer)."""
    pre, strides, padding, dilation = depthwise_placement(kernel_size, stride, dilation)
    if pre is not None and pre != "subsample":
        pre = keras.layers.ZeroPadding2D(pre, name=f"{name}_pad")
    return pre, keras.layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding=padding, dilation_rate=dilation, use_bias=False,
        name=name)


def _build_depthwise(pre, layer, input_shape):
    if isinstance(pre, keras.layers.Layer):
        pre.build(_channels(input_shape))
    layer.build(_channels(input_shape))


def _apply_depthwise(pre, layer, x, stride):
    if pre == "subsample":
        x = x[:, ::stride, ::stride, :]
    elif pre is not None:
        x = pre(x)
    return layer(x)


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class DilConv(keras.layers.Layer):
    """ReLU -> dilated depthwise k x k (stride s) -> pointwise 1x1 -> BatchNorm."""

    def __init__(self, filters, kernel_size, stride=1, dilation=2, affine=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.affine = affine
        self.pre, self.depthwise = _depthwise(kernel_size, stride, dilation, "depthwise")
        self.pointwise = keras.layers.Conv2D(filters, 1, use_bias=False, name="pointwise")
        self.bn = BatchNorm(affine=affine, name="bn")

    def build(self, input_shape):
        _build_depthwise(self.pre, self.depthwise, input_shape)
        self.pointwise.build(_channels(input_shape))
        self.bn.build(_channels(input_shape, self.filters))

    def call(self, inputs, training=None):
        x = _apply_depthwise(self.pre, self.depthwise, tf.nn.relu(inputs), self.stride)
        return self.bn(self.pointwise(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
            "dilation": self.dilation, "affine": self.affine,
        })
        return config


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class SepConv(keras.layers.Layer):
    """Two stacked DilConv blocks of dilation 1: the first has the stride and
    keeps the input width, the second maps to `filters` (DARTS's SepConv)."""

    def __init__(self, filters, kernel_size, stride=1, affine=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.affine = affine
        self.pre1, self.depthwise1 = _depthwise(kernel_size, stride, 1, "depthwise1")
        self.bn1 = BatchNorm(affine=affine, name="bn1")
        self.depthwise2 = keras.layers.DepthwiseConv2D(
            kernel_size, padding="same", use_bias=False, name="depthwise2"
        )
        self.pointwise2 = keras.layers.Conv2D(filters, 1, use_bias=False, name="pointwise2")
        self.bn2 = BatchNorm(affine=affine, name="bn2")

    def build(self, input_shape):
        # The first pointwise conv keeps the input width, known only here.
        self.pointwise1 = keras.layers.Conv2D(input_shape[-1], 1, use_bias=False, name="pointwise1")
        _build_depthwise(self.pre1, self.depthwise1, input_shape)
        for layer in (self.pointwise1, self.bn1, self.depthwise2, self.pointwise2):
            layer.build(_channels(input_shape))
        self.bn2.build(_channels(input_shape, self.filters))

    def call(self, inputs, training=None):
        x = _apply_depthwise(self.pre1, self.depthwise1, tf.nn.relu(inputs), self.stride)
        x = self.bn1(self.pointwise1(x), training=training)
        x = self.depthwise2(tf.nn.relu(x))
        return self.bn2(self.pointwise2(x), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
            "affine": self.affine,
        })
        return config


@keras.saving.register_keras_serializable(package=_SERIALIZE_PACKAGE)
class Conv7x1_1x7(keras.layers.Layer):
    """DARTS's `conv_7x1_1x7`: ReLU -> 1x7 conv (stride 1 x s) -> 7x1 conv
    (stride s x 1) -> BatchNorm; full convolutions, no bias, padding 3 on the
    long side of each kernel."""

    def __init__(self, filters, stride=1, affine=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.stride = stride
        self.affine = affine
        # 'valid' after an explicit symmetric padding: 'same' would pad a
        # stride-2 conv on one side only, off DARTS's windows.
        self.pad_1x7 = keras.layers.ZeroPadding2D(((0, 0), (3, 3)), name="pad_1x7")
        self.conv_1x7 = keras.layers.Conv2D(filters, (1, 7), strides=(1, stride), use_bias=False,
                                            name="conv_1x7")
        self.pad_7x1 = keras.layers.ZeroPadding2D(((3, 3), (0, 0)), name="pad_7x1")
        self.conv_7x1 = keras.layers.Conv2D(filters, (7, 1), strides=(stride, 1), use_bias=False,
                                            name="conv_7x1")
        self.bn = BatchNorm(affine=affine, name="bn")

    def build(self, input_shape):
        self.conv_1x7.build(_channels(input_shape))
        self.conv_7x1.build(_channels(input_shape, self.filters))
        self.bn.build(_channels(input_shape, self.filters))

    def call(self, inputs, training=None, scale=None):
        x = self.conv_1x7(self.pad_1x7(tf.nn.relu(inputs)))
        return self.bn(self.conv_7x1(self.pad_7x1(x)), training=training, scale=scale)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "stride": self.stride, "affine": self.affine})
        return config


def make_op(name: str, filters: int, stride: int, affine: bool, search: bool, layer_name: str):
    """Builds primitive `name` mapping `filters` channels to `filters` channels.

    `search=True` adds the BatchNorm after pools that the DARTS search network
    has. `none` has no layer (callers skip it: its output is zero).
    """
    spec = search_space.OP_TABLE.get(name)
    if spec is None:
        pass  # a registered op, or unknown: below
    elif spec.kind == "none":
        return None
    elif spec.kind == "skip":
        if stride == 1:
            return keras.layers.Identity(name=layer_name)
        return FactorizedReduce(filters, affine=affine, name=layer_name)
    elif spec.kind == "pool":
        return Pool(spec.pool, stride=stride, batch_norm=search, name=layer_name)
    elif spec.kind == "sep_conv":
        return SepConv(filters, spec.kernel_size, stride=stride, affine=affine, name=layer_name)
    elif spec.kind == "conv_7x1_1x7":
        return Conv7x1_1x7(filters, stride=stride, affine=affine, name=layer_name)
    elif spec.kind == "dil_conv":
        return DilConv(filters, spec.kernel_size, stride=stride, dilation=spec.dilation,
                       affine=affine, name=layer_name)
    custom = search_space.custom_op(name)
    if custom is not None:
        return custom.factory(filters, stride, layer_name)
    search_space.check_ops([name], "make_op")
    raise AssertionError(name)


def build_op(layer, input_shape) -> None:
    """Builds an op layer for inputs of `input_shape`. A layer without a `build`
    of its own (a user's op that makes its sublayers in `__init__`) runs once
    on a symbolic input instead, so its sublayers have their weights before
    the first training step."""
    if layer.built:
        return
    if type(layer).build is keras.layers.Layer.build:
        layer(keras.KerasTensor(tuple(input_shape)))
    else:
        layer.build(input_shape)


def register_op(name: str, factory) -> None:
    """Adds candidate op `name`, built by `factory(channels, stride, name)` (a
    Keras layer from [batch, H, W, channels] to [batch, H/stride, W/stride,
    channels]), to the ops that groups, genotypes and networks may name.

    The factory is tried at once at stride 1 and 2 on a small input, so a
    layer of the wrong shape is refused here, not mid-search. Register the op
    in every process that reads a config, genotype or `.keras` file naming it;
    registering a name again replaces its op.
    """
    if not callable(factory):
        raise ValueError(f"register_op: the factory of {name!r} is not callable.")
    previous = search_space.custom_op(name)
    search_space.add_custom_op(search_space.CustomOp(name, factory))
    try:
        for stride in (1, 2):
            layer = factory(4, stride, f"{name}_check")
            if not isinstance(layer, keras.layers.Layer):
                raise ValueError(f"its factory returned {type(layer).__name__}, not a Keras layer")
            shape = tuple(keras.ops.shape(layer(keras.ops.zeros((1, 8, 8, 4)), training=False)))
            if shape != (1, 8 // stride, 8 // stride, 4):
                raise ValueError(f"at stride {stride} it maps (1, 8, 8, 4) to {shape}; expected "
                                 f"(1, {8 // stride}, {8 // stride}, 4)")
    except Exception as e:  # the user's factory may raise anything; it is refused either way
        search_space.remove_custom_op(name)
        if previous is not None:
            search_space.add_custom_op(previous)
        raise ValueError(f"register_op: op {name!r} cannot be used: {e}") from e
