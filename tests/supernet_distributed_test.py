"""One-level training under MirroredStrategy on 2 logical CPU devices."""

import keras
import numpy as np
import tensorflow as tf

from stacnas_tf import optimizers
from stacnas_tf import search_space
from stacnas_tf import strategy as strategy_lib
from stacnas_tf import supernet

import helpers

STRATEGY = strategy_lib.make_strategy("mirrored", cpu_replicas=2)
LR, ARCH_LR, CLIP, WD, ARCH_WD = 0.1, 3e-3, 0.5, 3e-4, 1e-3


def _network(strategy):
    stage = search_space.stage1_space(search_space.SearchSpace(), 3, False)
    with strategy.scope():
        net = supernet.SearchNetwork(stage, 10, channels=4, num_cells=3, seed=0, grad_clip_norm=CLIP,
                                     weight_decay=WD, architecture_weight_decay=ARCH_WD)
        keras.utils.set_random_seed(0)
        net(tf.zeros([1, 8, 8, 1]))
        net.compile(optimizers.FusedSGD(LR, momentum=0.9),
                    keras.optimizers.Adam(ARCH_LR, beta_1=0.5, beta_2=0.999, epsilon=1e-8))
    return net


def test_replicas_agree_and_gradients_are_reduced_once():
    assert STRATEGY.num_replicas_in_sync == 2
    x, y = helpers.random_batch(16)

    # Expected step, on one device: each replica normalises its own half batch,
    # the gradient is the mean over replicas, clipped after the reduction.
    reference = _network(tf.distribute.get_strategy())
    variables = reference.weight_variables + reference.architecture_variables
    start = [v.numpy().copy() for v in variables]
    grads = []
    for half in (slice(0, 8), slice(8, 16)):
        with tf.GradientTape() as tape:
            logits = reference(x[half], training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y[half], logits, from_logits=True))
        grads.append([g.numpy() for g in tape.gradient(loss, variables)])
    mean = [(a + b) / 2 for a, b in zip(*grads)]
    n = len(reference.weight_variables)
    clipped, _ = tf.clip_by_global_norm(mean[:n], CLIP)
    expected_weights = [w - LR * (g.numpy() + WD * w) for w, g in zip(start[:n], clipped)]
    expected_alpha = []
    for a, g in zip(start[n:], mean[n:]):
        g = g + ARCH_WD * a
        expected_alpha.append(a - ARCH_LR * np.sqrt(1 - 0.999) / 0.5 * (0.5 * g) / (np.sqrt(0.001) * np.abs(g) + 1e-8))

    mirrored = _network(STRATEGY)
    for value, variable in zip(start, mirrored.weight_variables + mirrored.architecture_variables):
        variable.assign(value)  # same initial state as the reference
    mirrored.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0, shuffle=False)

    for variable in mirrored.architecture_variables + mirrored.weight_variables:
        replicas = [v.numpy() for v in STRATEGY.experimental_local_results(variable.value)]
        assert len(replicas) == 2
        np.testing.assert_array_equal(replicas[0], replicas[1])
    # float32 kernels under two replicas' threads sum in other orders: allow roundoff,
    # but the step itself must have the reference's size (a doubled or halved one would not).
    moved = sum(np.abs(got.numpy() - w).sum() for got, w in zip(mirrored.weight_variables, start[:n]))
    wanted = sum(np.abs(want - w).sum() for want, w in zip(expected_weights, start[:n]))
    assert abs(moved / wanted - 1) < 0.02
    for got, want in zip(mirrored.weight_variables, expected_weights):
        np.testing.assert_allclose(got.numpy(), want, atol=3e-4)
    for got, want, before in zip(mirrored.architecture_variables, expected_alpha, start[n:]):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4)
        assert np.abs(got.numpy() - before).max() > 1e-3  # the logits moved
