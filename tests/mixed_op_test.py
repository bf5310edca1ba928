import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from stacnas_tf import mixed_op  # noqa: E402

CANDIDATES = ("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3")


def test_output_is_softmax_weighted_sum_of_candidates():
    layer = mixed_op.MixedOp(CANDIDATES, 4, stride=1)
    x = tf.random.normal([2, 8, 8, 4], seed=0)
    alpha = tf.constant([0.3, -1.0, 0.5, 2.0, 0.1])
    weights = tf.nn.softmax(alpha)
    got = layer(x, weights, training=False).numpy()
    expected = sum(
        weights[k] * op(x, training=False) for k, op in enumerate(layer.candidate_ops) if op is not None
    ).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # skip_connect contributes weights[1] * x exactly.
    only_skip = tf.one_hot(1, 5)
    np.testing.assert_allclose(layer(x, only_skip, training=False).numpy(), x.numpy(), atol=1e-6)
    # all the weight on `none`: the edge outputs zero.
    np.testing.assert_allclose(layer(x, tf.one_hot(0, 5), training=False).numpy(), 0.0, atol=1e-7)


def test_gradient_reaches_the_logits():
    layer = mixed_op.MixedOp(CANDIDATES, 4, stride=2)
    x = tf.random.normal([2, 8, 8, 4], seed=1)
    alpha = tf.Variable(tf.zeros([5]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x, tf.nn.softmax(alpha), training=True)))
    grad = tape.gradient(loss, alpha).numpy()
    assert grad.shape == (5,) and np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_config_round_trip():
    layer = mixed_op.MixedOp(CANDIDATES, 4, stride=2, name="edge")
    assert mixed_op.MixedOp.from_config(layer.get_config()).get_config() == layer.get_config()
