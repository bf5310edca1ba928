import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import mixed_op

import helpers

STAGE1 = ("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3")
# Stage 2: each edge holds `none` and the group its stage-1 winner belongs to.
STAGE2 = (
    ("none", "sep_conv_3x3", "sep_conv_5x5"),
    ("none", "max_pool_3x3", "avg_pool_3x3"),
    ("none", "skip_connect"),
    ("none", "sep_conv_3x3", "sep_conv_5x5"),
)


def _weights(candidates, seed):
    """Softmax weights per edge over its own candidates, zero past them (as the supernet pads)."""
    rng = np.random.RandomState(seed)
    width = max(len(edge) for edge in candidates)
    logits = np.full((len(candidates), width), -1e9, np.float32)
    for e, edge in enumerate(candidates):
        logits[e, : len(edge)] = rng.randn(len(edge))
    return tf.nn.softmax(tf.constant(logits), axis=-1)


@pytest.mark.parametrize("candidates", [(STAGE1,) * 3, STAGE2], ids=["stage1", "stage2"])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_edge_is_the_softmax_weighted_sum_of_its_own_candidates(candidates, stride):
    layer = mixed_op.MixedEdges(candidates, 4, stride=stride)
    x = tf.random.normal([2, 8, 8, 4], seed=0)
    weights = _weights(candidates, seed=1)
    got = [o.numpy() for o in layer(x, weights, training=False)]
    outputs = layer.op_outputs(x, training=False)
    assert len(got) == len(candidates)
    for e, edge in enumerate(candidates):
        assert sorted(outputs[e]) == sorted(op for op in edge if op != "none")
        expected = sum(weights[e, k].numpy() * outputs[e][op].numpy()
                       for k, op in enumerate(edge) if op != "none")
        np.testing.assert_allclose(got[e], expected, atol=1e-5)
        assert got[e].shape == (2, 8 // stride, 8 // stride, 4)


def test_one_hot_weights_pick_one_op_of_one_edge():
    layer = mixed_op.MixedEdges(STAGE2, 4, stride=1)
    x = tf.random.normal([2, 8, 8, 4], seed=2)
    outputs = layer.op_outputs(x, training=False)
    # Edge 2 fully on skip: exactly its input. Edge 0 fully on none: zero.
    weights = np.zeros((4, 3), np.float32)
    weights[0, 0] = weights[1, 2] = weights[2, 1] = weights[3, 1] = 1.0
    got = [o.numpy() for o in layer(x, tf.constant(weights), training=False)]
    np.testing.assert_allclose(got[0], 0.0, atol=1e-7)
    np.testing.assert_allclose(got[1], outputs[1]["avg_pool_3x3"].numpy(), atol=1e-6)
    np.testing.assert_allclose(got[2], x.numpy(), atol=1e-6)
    np.testing.assert_allclose(got[3], outputs[3]["sep_conv_3x3"].numpy(), atol=1e-6)
    # Edges 0 and 3 hold the same ops but their own weights.
    assert np.abs(outputs[0]["sep_conv_3x3"].numpy() - got[3]).max() > 1e-3


def test_gradient_reaches_every_candidate_logit():
    layer = mixed_op.MixedEdges(STAGE2, 4, stride=2)
    x = tf.random.normal([2, 8, 8, 4], seed=3)
    alpha = tf.Variable(tf.random.normal([4, 3], seed=4) * 0.1)
    mask = np.array([[len(edge) > k for k in range(3)] for edge in STAGE2])
    with tf.GradientTape() as tape:
        weights = tf.nn.softmax(tf.where(mask, alpha, -1e9), axis=-1)
        loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in layer(x, weights, training=True)])
    grad = tape.gradient(loss, alpha).numpy()
    assert np.all(np.isfinite(grad))
    assert np.all(np.abs(grad[mask]) > 0) and np.all(grad[~mask] == 0)


def test_ops_are_batched_once_per_op():
    layer = mixed_op.MixedEdges(STAGE2, 4)
    assert layer.op_names == ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                              "sep_conv_5x5")
    assert layer.op_edges == ((1,), (1,), (2,), (0, 3), (0, 3))
    assert [op.num_edges for op in layer.batched_ops] == [1, 1, 1, 2, 2]
    # Without a stride the edges are a normal cell's: they keep the input's size.
    outputs = layer(tf.zeros([1, 6, 6, 4]), _weights(STAGE2, seed=6), training=False)
    assert [o.shape for o in outputs] == [(1, 6, 6, 4)] * 4


def test_unknown_op_is_refused():
    with pytest.raises(ValueError, match="unknown op"):
        mixed_op.MixedEdges([("none", "conv_9x9")], 4)


def test_config_saving_and_training():
    weights = _weights(STAGE2, seed=5)
    helpers.run_layer_test(
        mixed_op.MixedEdges, {"candidates": STAGE2, "filters": 4, "stride": 2},
        np.random.RandomState(0).randn(2, 8, 8, 4).astype(np.float32), [(2, 4, 4, 4)] * 4,
        call=lambda layer, x, training: layer(x, weights, training=training))
