"""Mixed precision: what stays float32, gradients reaching alpha, and a search
step under mixed_float16 / mixed_bfloat16 close to the float32 one."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import precision
from stacnas_tf import search_space
from stacnas_tf import supernet

import helpers

STAGE = search_space.stage1_space(search_space.SearchSpace(), 3, False)
IMAGES, LABELS = map(tf.constant, helpers.random_batch(16, side=16, channels=3))


def _network(policy, like=None):
    keras.utils.set_random_seed(0)
    with precision.policy_scope(policy):
        net = supernet.SearchNetwork(STAGE, 10, channels=8, num_cells=3, seed=0)
        net(tf.zeros([1, 16, 16, 3]))
    net.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                keras.optimizers.Adam(3e-3, beta_1=0.5, beta_2=0.999, epsilon=1e-8))
    if like is not None:
        net.set_weights(like.get_weights())
    return net


def test_policy_scope_restores_the_global_policy_and_checks_names():
    before = keras.config.dtype_policy().name
    with precision.policy_scope("mixed_bfloat16"):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(ValueError, match="--precision: expected one of"):
        precision.check("float8")


def _flat(values):
    return np.concatenate([np.ravel(np.asarray(v, np.float32)) for v in values])


def _cosine(a, b):
    a, b = _flat(a), _flat(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def float32_step():
    """The float32 network before its step (as a copy), its gradients, and its step."""
    network = _network("float32")
    before = _network("float32", like=network)
    _, _, weight_grads, arch_grads, _ = network.one_level_gradients(IMAGES, LABELS)
    logs = network.train_step((IMAGES, LABELS))
    state = {"network": before, "alpha_after": _flat(network.architecture_variables),
             "weights_after": _flat(network.weight_variables)}
    return state, weight_grads, arch_grads, logs


# Measured on this model (raw-pixel inputs, 2026-12-04): gradient cosine 0.997
# (float16) / 0.976-0.979 (bfloat16), loss within 0.02% / 0.05%, weights after
# the step within 0.07% / 0.19%; clear alpha moves agreeing in sign 100% / 99%.
# bfloat16 keeps 8 bits of mantissa: a gradient component a tenth of the largest
# may come out with the other sign, so there most (not all) clear moves agree.
@pytest.mark.parametrize("policy,compute_dtype,min_cosine,tolerance,min_agreement", [
    ("mixed_float16", "float16", 0.99, 0.005, 1.0),
    ("mixed_bfloat16", "bfloat16", 0.95, 0.02, 0.9)])
def test_gradients_reach_alpha_and_a_step_matches_float32(float32_step, policy, compute_dtype,
                                                          min_cosine, tolerance, min_agreement):
    reference, weights32, arch32, logs32 = float32_step
    net = _network(policy, like=reference["network"])
    # Convolutions run in low precision; variables, alpha's softmax and the logits stay float32.
    assert net.search_cells[0].compute_dtype == compute_dtype
    assert all(v.dtype == "float32" for v in net.variables)
    assert all(p.dtype == tf.float32 for p in net.architecture.probabilities())
    assert net(IMAGES, training=False).dtype == tf.float32
    # Only float16 needs loss scaling, and alpha's optimizer follows the weights'.
    scaled = isinstance(net.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")
    assert isinstance(net.architecture_optimizer, keras.optimizers.LossScaleOptimizer) == scaled
    _, _, weights, arch, _ = net.one_level_gradients(IMAGES, LABELS)
    # Gradients come multiplied by the loss scale (float16); the direction is what counts.
    assert all(np.isfinite(g.numpy()).all() and np.abs(g.numpy()).max() > 0 for g in arch)
    assert _cosine(arch, arch32) > min_cosine
    assert _cosine(weights, weights32) > min_cosine

    initial = [a.numpy() for a in net.architecture_variables]
    weights_before = _flat(net.weight_variables)
    logs = net.train_step((IMAGES, LABELS))
    assert float(logs["loss"]) == pytest.approx(float(logs32["loss"]), rel=tolerance)
    if isinstance(net.optimizer, keras.optimizers.LossScaleOptimizer):
        assert int(net.optimizer.step_counter.numpy()) == 1  # the step was not skipped
    # Adam moves every alpha by about its learning rate; where the float32
    # gradient is clearly non-zero the mixed step moves it the same way.
    moved = _flat(net.architecture_variables) - _flat(initial)
    moved32 = reference["alpha_after"] - _flat(initial)
    clear = np.abs(_flat(arch32)) > 0.1 * np.abs(_flat(arch32)).max()
    assert clear.sum() > 10
    assert np.mean(np.sign(moved[clear]) == np.sign(moved32[clear])) >= min_agreement
    weights_after, weights_after32 = _flat(net.weight_variables), reference["weights_after"]
    assert not np.array_equal(weights_after, weights_before)
    assert (np.linalg.norm(weights_after - weights_after32)
            < tolerance * np.linalg.norm(weights_after32))
