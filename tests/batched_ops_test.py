import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import batched_ops
from stacnas_tf import ops
from stacnas_tf import search_space

import helpers

OPS = [op for op in search_space.OPS if op != "none"]
EDGES = 3
CHANNELS = 4


def _edge_blocks(batched, edge):
    """(per-edge variable path suffix, that edge's block of the batched variable), by the
    layout batched_ops documents: edge e owns block e of the stacked axis."""
    def block(variable, axis, count=EDGES, index=edge):
        return np.split(variable.numpy(), count, axis=axis)[index]

    if isinstance(batched, batched_ops.BatchedSepConv):
        return {
            "depthwise1/kernel": block(batched.depthwise1, -2),
            "pointwise1/kernel": block(batched.pointwise1, -1),
            "bn1/moving_mean": block(batched.bn1.moving_mean, 0),
            "bn1/moving_variance": block(batched.bn1.moving_variance, 0),
            "depthwise2/kernel": block(batched.depthwise2, -2),
            "pointwise2/kernel": block(batched.pointwise2, -1),
            "bn2/moving_mean": block(batched.bn2.moving_mean, 0),
            "bn2/moving_variance": block(batched.bn2.moving_variance, 0),
        }
    if isinstance(batched, batched_ops.BatchedDilConv):
        return {
            "depthwise/kernel": block(batched.depthwise, -2),
            "pointwise/kernel": block(batched.pointwise, -1),
            "bn/moving_mean": block(batched.bn.moving_mean, 0),
            "bn/moving_variance": block(batched.bn.moving_variance, 0),
        }
    if isinstance(batched, batched_ops.BatchedFactorizedReduce):
        return {
            # Groups alternate even, odd per edge.
            "conv_even/kernel": block(batched.kernel, -1, 2 * EDGES, 2 * edge),
            "conv_odd/kernel": block(batched.kernel, -1, 2 * EDGES, 2 * edge + 1),
            "bn/moving_mean": block(batched.bn.moving_mean, 0),
            "bn/moving_variance": block(batched.bn.moving_variance, 0),
        }
    if isinstance(batched, batched_ops.BatchedPool):
        # One BatchNorm serves every edge.
        return {"bn/moving_mean": batched.pool.bn.moving_mean.numpy(),
                "bn/moving_variance": batched.pool.bn.moving_variance.numpy()}
    if isinstance(batched, batched_ops.EdgeStack):
        return {"/".join(v.path.split("/")[2:]): v.numpy() for v in batched.edge_ops[edge].weights}
    assert isinstance(batched, batched_ops.TiledIdentity)
    return {}


def _variables_by_suffix(layer):
    return {"/".join(v.path.split("/")[1:]): v for v in layer.weights}


def _per_edge_copies(name, stride, batched):
    copies = []
    for edge in range(EDGES):
        layer = ops.make_op(name, CHANNELS, stride, affine=False, search=True, layer_name=name)
        layer.build((None, None, None, CHANNELS))
        variables = _variables_by_suffix(layer)
        blocks = _edge_blocks(batched, edge)
        assert sorted(variables) == sorted(blocks)
        for suffix, value in blocks.items():
            variables[suffix].assign(value)
        copies.append(layer)
    return copies


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("stride", [1, 2])
def test_each_edge_computes_its_own_op_with_its_own_weights(name, stride):
    keras.utils.set_random_seed(1)
    batched = batched_ops.make_batched_op(name, CHANNELS, stride, EDGES, layer_name=name)
    batched.build((None, None, None, CHANNELS))
    edges = _per_edge_copies(name, stride, batched)
    x = tf.random.normal([2, 8, 8, CHANNELS], seed=3)
    for training in (True, False, True):
        got = np.split(batched(x, training=training).numpy(), EDGES, axis=-1)
        for edge, layer in zip(range(EDGES), edges):
            np.testing.assert_allclose(got[edge], layer(x, training=training).numpy(), atol=2e-5)
    # Training calls moved the moving statistics of every edge alike.
    for edge, layer in enumerate(edges):
        variables = _variables_by_suffix(layer)
        for suffix, value in _edge_blocks(batched, edge).items():
            np.testing.assert_allclose(value, variables[suffix].numpy(), atol=1e-6)
    if name not in (search_space.SKIP, "max_pool_3x3", "avg_pool_3x3") or (
            name == search_space.SKIP and stride == 2):
        # Independent weights: the edges' outputs differ.
        assert np.abs(got[0] - got[1]).max() > 1e-3


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("stride", [1, 2])
def test_scale_multiplies_each_output_channel(name, stride):
    # Ops with a final BatchNorm fold the scale into it, the others multiply:
    # either way the output is the unscaled output times the scale, and the
    # scale's gradient is the output's gradient summed over batch and pixels.
    keras.utils.set_random_seed(2)
    batched = batched_ops.make_batched_op(name, CHANNELS, stride, EDGES, layer_name=name)
    x = tf.random.normal([2, 8, 8, CHANNELS], seed=5)
    batched.build(x.shape)
    scale = tf.random.uniform([EDGES * CHANNELS], -1.0, 1.0, seed=6)
    for training in (True, False):
        unscaled = batched(x, training=training)
        with tf.GradientTape() as tape:
            tape.watch(scale)
            out = batched(x, training=training, scale=scale)
            loss = tf.reduce_sum(out * tf.cos(unscaled))
        np.testing.assert_allclose(out.numpy(), unscaled.numpy() * scale.numpy(), atol=2e-5)
        np.testing.assert_allclose(
            tape.gradient(loss, scale).numpy(),
            tf.reduce_sum(unscaled * tf.cos(unscaled), axis=(0, 1, 2)).numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["sep_conv_3x3", "dil_conv_5x5", search_space.SKIP])
def test_gradients_reach_every_edges_weights(name):
    batched = batched_ops.make_batched_op(name, CHANNELS, 2, EDGES, layer_name=name)
    x = tf.random.normal([2, 8, 8, CHANNELS], seed=4)
    batched.build(x.shape)
    with tf.GradientTape() as tape:
        out = batched(x, training=True)
        # Weighs each edge's output differently, so no gradient cancels by symmetry.
        loss = tf.reduce_sum(tf.square(out) * tf.repeat(tf.constant([1.0, 2.0, 3.0]), CHANNELS))
    grads = tape.gradient(loss, batched.trainable_variables)
    assert grads and all(g is not None for g in grads)
    for variable, grad in zip(batched.trainable_variables, grads):
        axis = -2 if "depthwise" in variable.path else -1
        for block in np.split(grad.numpy(), EDGES, axis=axis):
            assert np.abs(block).max() > 0, variable.path


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_grouped_pointwise_without_a_grouped_gradient_kernel(monkeypatch, dtype):
    # Where TF lacks the grouped convolution's gradient (its stock CPU kernels),
    # a batched matmul computes the same product; both forms, and their gradients.
    x = tf.cast(tf.random.normal([2, 5, 5, 3 * CHANNELS], seed=7), dtype)
    kernel = tf.random.normal([1, 1, CHANNELS, 3 * 6], seed=8)
    expected = tf.concat([
        tf.nn.conv2d(block, tf.cast(k, dtype), 1, "VALID")
        for block, k in zip(tf.split(x, 3, axis=-1), tf.split(kernel, 3, axis=-1))], axis=-1)
    for available in (False, True):  # the forward pass exists everywhere
        monkeypatch.setattr(batched_ops, "grouped_conv_gradient_available", lambda _, a=available: a)
        got = batched_ops._grouped_pointwise(x, tf.cast(kernel, dtype))
        np.testing.assert_allclose(np.float32(got), np.float32(expected),
                                   atol=1e-5 if dtype == "float32" else 1e-2)
    monkeypatch.setattr(batched_ops, "grouped_conv_gradient_available", lambda _: False)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.cast(batched_ops._grouped_pointwise(x, tf.cast(kernel, dtype)),
                                     tf.float32) ** 2)
    assert np.isfinite(np.float32(tape.gradient(loss, x))).all()


def test_stacked_initializer_draws_each_block_with_its_own_fans():
    keras.utils.set_random_seed(0)
    shape = (3, 3, 4 * 64, 1)
    kernel = batched_ops.EdgeStackedGlorotUniform(4, axis=-2)(shape).numpy()
    # One block is a (3, 3, 64, 1) depthwise kernel: fan_in 576, fan_out 9.
    limit = np.sqrt(6.0 / (576 + 9))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.95 * limit
    blocks = np.split(kernel, 4, axis=-2)
    assert not np.allclose(blocks[0], blocks[1])
    np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3), rtol=0.05)
    pointwise = batched_ops.EdgeStackedGlorotUniform(4)((1, 1, 16, 64)).numpy()
    assert np.abs(pointwise).max() <= np.sqrt(6.0 / 32)
    initializer = batched_ops.EdgeStackedGlorotUniform(3, axis=-2, seed=5)
    assert batched_ops.EdgeStackedGlorotUniform.from_config(
        initializer.get_config()).get_config() == initializer.get_config()


# Every layer of batched_ops.py: (class, arguments, output shape for 2 x 8 x 8 x CHANNELS inputs).
LAYERS = [
    (batched_ops.BatchedSepConv, {"filters": 4, "kernel_size": 5, "stride": 2, "num_edges": 3},
     (2, 4, 4, 12)),
    (batched_ops.BatchedDilConv,
     {"filters": 4, "kernel_size": 3, "stride": 1, "dilation": 2, "num_edges": 2}, (2, 8, 8, 8)),
    (batched_ops.BatchedFactorizedReduce, {"filters": 4, "num_edges": 3}, (2, 4, 4, 12)),
    (batched_ops.BatchedPool, {"kind": "avg", "stride": 2, "num_edges": 2}, (2, 4, 4, 8)),
    (batched_ops.TiledIdentity, {"num_edges": 2}, (2, 8, 8, 8)),
    (batched_ops.EdgeStack, {"op": "conv_7x1_1x7", "filters": 4, "stride": 2, "num_edges": 2},
     (2, 4, 4, 8)),
]


@pytest.mark.parametrize("cls,kwargs,shape", LAYERS, ids=[cls.__name__ for cls, _, _ in LAYERS])
def test_layer_configs_saving_and_training(cls, kwargs, shape):
    x = np.random.RandomState(0).randn(2, 8, 8, CHANNELS).astype(np.float32)
    helpers.run_layer_test(cls, kwargs, x, shape)


def test_none_and_unknown_ops_are_refused():
    with pytest.raises(ValueError, match="none"):
        batched_ops.make_batched_op("none", 4, 1, 2, layer_name="x")
    with pytest.raises(ValueError, match="unknown op"):
        batched_ops.make_batched_op("conv_7x7", 4, 1, 2, layer_name="x")
    with pytest.raises(ValueError, match="num_edges"):
        batched_ops.BatchedSepConv(4, 3, num_edges=0)
