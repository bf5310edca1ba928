import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import ops
from stacnas_tf import search_space

import helpers

OPS = [op for op in search_space.OPS if op != "none"]


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("stride", [1, 2])
def test_output_shapes(name, stride):
    layer = ops.make_op(name, 8, stride, affine=False, search=True, layer_name=name)
    x = tf.random.normal([2, 12, 12, 8])
    assert tuple(layer(x, training=True).shape) == (2, 12 // stride, 12 // stride, 8)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("stride", [1, 2])
def test_explicit_build_creates_exactly_the_variables_of_a_call(name, stride):
    built = ops.make_op(name, 8, stride, affine=False, search=True, layer_name=name)
    built.build((None, 12, 12, 8))
    called = ops.make_op(name, 8, stride, affine=False, search=True, layer_name=name)
    called(tf.zeros([1, 12, 12, 8]), training=False)
    assert helpers.variable_specs(built) == helpers.variable_specs(called)
    built(tf.zeros([1, 12, 12, 8]), training=False)
    assert helpers.variable_specs(built) == helpers.variable_specs(called)


def _torch_like_pool(x, kind):
    """Reference 3x3 stride-2 pool with padding 1 as PyTorch computes it."""
    n, h, w, c = x.shape
    fill = -np.inf if kind == "max" else 0.0
    padded = np.full((n, h + 2, w + 2, c), fill, np.float64)
    padded[:, 1:-1, 1:-1] = x
    ones = np.zeros((h + 2, w + 2))
    ones[1:-1, 1:-1] = 1
    out = np.zeros((n, (h - 1) // 2 + 1, (w - 1) // 2 + 1, c))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            window = padded[:, 2 * i: 2 * i + 3, 2 * j: 2 * j + 3]
            if kind == "max":
                out[:, i, j] = window.max(axis=(1, 2))
            else:
                out[:, i, j] = window.sum(axis=(1, 2)) / ones[2 * i: 2 * i + 3, 2 * j: 2 * j + 3].sum()
    return out


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_stride2_pools_match_darts_padding(kind):
    x = np.random.RandomState(0).randn(2, 8, 8, 3)
    got = ops.Pool(kind, stride=2)(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(got, _torch_like_pool(x, kind), atol=1e-5)


def test_avg_pool_does_not_count_padding():
    x = tf.ones([1, 4, 4, 1])
    np.testing.assert_allclose(ops.Pool("avg")(x).numpy(), 1.0)


def _copy_weights(source, target):
    for a, b in zip(source.weights, target.weights):
        b.assign(a)


def test_strided_dil_conv_equals_dilated_conv_then_subsample():
    x = tf.random.normal([2, 12, 12, 4], seed=1)
    for k in (3, 5):
        fast = ops.DilConv(4, k, stride=2, dilation=2, affine=True)
        slow = ops.DilConv(4, k, stride=1, dilation=2, affine=True)
        fast(x), slow(x)
        _copy_weights(fast, slow)
        np.testing.assert_allclose(fast(x).numpy(), slow(x)[:, ::2, ::2].numpy(), atol=1e-5)


def test_strided_depthwise_pads_symmetrically():
    x = tf.random.normal([1, 8, 8, 2], seed=2)
    layer = ops.SepConv(2, 3, stride=2)
    layer(x)
    reference = tf.nn.depthwise_conv2d(
        tf.nn.relu(x), layer.depthwise1.kernel, [1, 1, 1, 1], "SAME")[:, ::2, ::2]
    got = ops._apply_depthwise(layer.pre1, layer.depthwise1, tf.nn.relu(x), 2)
    np.testing.assert_allclose(got.numpy(), reference.numpy(), atol=1e-5)


def test_factorized_reduce_halves_and_splits_channels():
    layer = ops.FactorizedReduce(6, affine=False)
    assert tuple(layer(tf.random.normal([2, 8, 8, 4])).shape) == (2, 4, 4, 6)
    with pytest.raises(ValueError, match="even"):
        ops.FactorizedReduce(5)


def test_batch_norm_matches_pytorch_semantics():
    x = np.random.RandomState(3).randn(4, 5, 5, 3).astype(np.float32) * 2 + 1
    bn = ops.BatchNorm(affine=False)
    y = bn(tf.constant(x), training=True).numpy()
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-4)
    unbiased = x.var((0, 1, 2), ddof=1)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mean, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * unbiased, atol=1e-4)
    assert not bn.trainable_weights  # affine=False: nothing to learn
    inference = bn(tf.constant(x), training=None).numpy()
    np.testing.assert_allclose(
        inference, (x - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 1e-5), atol=1e-4)


@pytest.mark.parametrize("training", [True, None])
def test_batch_norm_scale_multiplies_each_channel_and_gets_its_gradient(training):
    x = tf.constant(np.random.RandomState(4).randn(4, 5, 5, 3).astype(np.float32))
    target = tf.constant(np.random.RandomState(5).randn(4, 5, 5, 3).astype(np.float32))
    scale = tf.constant([0.5, -2.0, 0.0])
    plain, scaled = ops.BatchNorm(affine=False), ops.BatchNorm(affine=False)
    unscaled = plain(x, training=training)
    with tf.GradientTape() as tape:
        tape.watch(scale)
        out = scaled(x, training=training, scale=scale)
        loss = tf.reduce_sum(out * target)
    np.testing.assert_allclose(out.numpy(), unscaled.numpy() * scale.numpy(), atol=1e-5)
    # d loss / d scale_c = sum over the batch and pixels of target * unscaled output.
    np.testing.assert_allclose(tape.gradient(loss, scale).numpy(),
                               tf.reduce_sum(target * unscaled, axis=(0, 1, 2)).numpy(), rtol=1e-4)
    # The moving statistics do not depend on the scale.
    np.testing.assert_allclose(scaled.moving_variance.numpy(), plain.moving_variance.numpy())
    with pytest.raises(ValueError, match="affine=False"):
        ops.BatchNorm(affine=True)(x, training=training, scale=scale)


# Every layer of ops.py: (class, arguments, output shape for inputs of 2 x 8 x 8 x 4).
LAYERS = [
    (ops.BatchNorm, {"affine": False}, (2, 8, 8, 4)),
    (ops.BatchNorm, {"affine": True}, (2, 8, 8, 4)),
    (ops.ReLUConvBN, {"filters": 6, "kernel_size": 1, "affine": False}, (2, 8, 8, 6)),
    (ops.FactorizedReduce, {"filters": 6}, (2, 4, 4, 6)),
    (ops.Pool, {"kind": "avg", "stride": 2, "batch_norm": True}, (2, 4, 4, 4)),
    (ops.Pool, {"kind": "max"}, (2, 8, 8, 4)),
    (ops.SepConv, {"filters": 6, "kernel_size": 5, "stride": 2}, (2, 4, 4, 6)),
    (ops.DilConv, {"filters": 6, "kernel_size": 3, "stride": 1, "dilation": 2}, (2, 8, 8, 6)),
    (ops.Conv7x1_1x7, {"filters": 6, "stride": 2}, (2, 4, 4, 6)),
]


@pytest.mark.parametrize("cls,kwargs,shape", LAYERS, ids=[cls.__name__ for cls, _, _ in LAYERS])
def test_layer_configs_saving_and_training(cls, kwargs, shape):
    x = np.random.RandomState(0).randn(2, 8, 8, 4).astype(np.float32)
    helpers.run_layer_test(cls, kwargs, x, shape)


def test_unknown_op_name_is_refused():
    with pytest.raises(ValueError, match="unknown op"):
        ops.make_op("conv_7x7", 8, 1, affine=True, search=False, layer_name="x")


def test_factorized_reduce_reads_the_even_and_the_one_pixel_shifted_grid():
    # DARTS: conv_1(relu(x)) and conv_2(relu(x)[:, :, 1:, 1:]), both 1x1 stride 2, concatenated.
    layer = ops.FactorizedReduce(4, affine=True, name="reduce")
    x = tf.random.normal([2, 6, 6, 3], seed=9)
    out = layer(x, training=False).numpy()
    relu = np.maximum(x.numpy(), 0)
    even = relu[:, ::2, ::2, :] @ layer.conv_even.kernel.numpy()[0, 0]
    odd = relu[:, 1::2, 1::2, :] @ layer.conv_odd.kernel.numpy()[0, 0]
    # A fresh BatchNorm at inference divides by sqrt(1 + eps).
    expected = np.concatenate([even, odd], axis=-1) / np.sqrt(1 + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
