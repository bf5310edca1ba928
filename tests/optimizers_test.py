"""FusedSGD: the same updates as Keras's SGD, in one op per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import optimizers


@pytest.mark.parametrize("momentum,nesterov", [(0.9, False), (0.0, False), (0.9, True)])
def test_fused_sgd_matches_keras_sgd_with_a_schedule(momentum, nesterov):
    rng = np.random.RandomState(0)
    initial = [rng.randn(3, 4).astype(np.float32), rng.randn(5).astype(np.float32)]
    keras_vars = [keras.Variable(v) for v in initial]
    fused_vars = [keras.Variable(v) for v in initial]

    def schedule():
        return keras.optimizers.schedules.CosineDecay(0.1, decay_steps=10, alpha=0.01)

    reference = keras.optimizers.SGD(schedule(), momentum=momentum, nesterov=nesterov)
    fused = optimizers.FusedSGD(schedule(), momentum=momentum, nesterov=nesterov)

    @tf.function
    def step(grads):
        reference.apply(grads, keras_vars)
        fused.apply(grads, fused_vars)

    for _ in range(6):
        step([tf.constant(rng.randn(*v.shape).astype(np.float32)) for v in initial])
    for a, b, start in zip(keras_vars, fused_vars, initial):
        assert not np.allclose(a.numpy(), start)
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)
    assert int(fused.iterations.numpy()) == 6
    np.testing.assert_allclose([m.numpy() for m in fused.momentums][0] if momentum else 0,
                               [m.numpy() for m in reference.momentums][0] if momentum else 0,
                               rtol=1e-6, atol=1e-7)


def test_fused_sgd_round_trips_its_config():
    fused = optimizers.FusedSGD(0.05, momentum=0.8)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(fused))
    assert isinstance(again, optimizers.FusedSGD) and again.momentum == pytest.approx(0.8)
