"""The one-level update's pieces on a few variables, against TensorFlow's own
clipping and DARTS's order of operations (PyTorch: clip_grad_norm_, then SGD
adds weight_decay x w to the clipped gradient; Adam on alpha is never clipped)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import one_level
from stacnas_tf import strategy as strategy_lib

STRATEGY = strategy_lib.make_strategy("mirrored", cpu_replicas=2)

WEIGHTS = [np.array([[1.0, -2.0], [0.5, 3.0]], "float32"), np.array([4.0, -1.0], "float32")]
ALPHA = [np.array([[0.3, -0.2, 0.1]], "float32")]


def _variables():
    return ([tf.Variable(w) for w in WEIGHTS], [tf.Variable(a) for a in ALPHA])


def _loss(weights, alpha):
    # Every variable reaches the loss, with gradients of different sizes.
    return (tf.reduce_sum(weights[0] ** 2) * 2.0 + tf.reduce_sum(weights[1] * 3.0)
            + tf.reduce_sum(alpha[0] * [1.0, 2.0, -1.0]))


def _raw_gradients():
    weight_grads = [4.0 * WEIGHTS[0], np.full(2, 3.0, "float32")]
    arch_grads = [np.array([[1.0, 2.0, -1.0]], "float32")]
    return weight_grads, arch_grads


def _numpy(tensors):
    return [np.asarray(t) for t in tensors]


def test_weight_gradients_are_clipped_by_global_norm_then_decayed():
    weights, _ = _variables()
    grads, _ = _raw_gradients()
    clipped, norm = one_level.weight_update([tf.constant(g) for g in grads], weights,
                                            grad_clip_norm=5.0, weight_decay=0.01)
    expected_clipped, expected_norm = tf.clip_by_global_norm(grads, 5.0)
    assert float(norm) == pytest.approx(float(expected_norm), rel=1e-6)  # before clipping
    assert float(norm) > 5.0
    for got, g, w in zip(_numpy(clipped), _numpy(expected_clipped), WEIGHTS):
        np.testing.assert_allclose(got, g + 0.01 * w, rtol=1e-5)
    # Below the threshold nothing is clipped; without one, nothing either.
    for clip in (100.0, None, 0.0):
        kept, _ = one_level.weight_update([tf.constant(g) for g in grads], weights, clip, 0.01)
        for got, g, w in zip(_numpy(kept), grads, WEIGHTS):
            np.testing.assert_allclose(got, g + 0.01 * w, rtol=1e-6)
    # A threshold given as a tensor (a float16 run's scaled one) clips the same.
    as_tensor, _ = one_level.weight_update([tf.constant(g) for g in grads], weights,
                                           tf.constant(5.0), 0.01)
    for got, want in zip(_numpy(as_tensor), _numpy(clipped)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_architecture_gradients_are_decayed_never_clipped():
    _, alpha = _variables()
    _, grads = _raw_gradients()
    [got] = one_level.architecture_update([tf.constant(10.0 * grads[0])], alpha, 0.001)
    np.testing.assert_allclose(got, 10.0 * grads[0] + 0.001 * ALPHA[0], rtol=1e-6)


def test_processed_gradients_split_weights_from_alpha():
    weights, alpha = _variables()
    with tf.GradientTape() as tape:
        loss = _loss(weights, alpha)
    weight_grads, arch_grads, norm = one_level.processed_gradients(
        tape, loss, weights, alpha, grad_clip_norm=5.0, weight_decay=0.01, arch_weight_decay=0.001)
    raw_weights, raw_alpha = _raw_gradients()
    clipped, raw_norm = tf.clip_by_global_norm(raw_weights, 5.0)
    assert float(norm) == pytest.approx(float(raw_norm), rel=1e-6)
    for got, g, w in zip(_numpy(weight_grads), _numpy(clipped), WEIGHTS):
        np.testing.assert_allclose(got, g + 0.01 * w, rtol=1e-5)
    np.testing.assert_allclose(arch_grads[0], raw_alpha[0] + 0.001 * ALPHA[0], rtol=1e-6)


def test_a_loss_scale_scales_every_term_alike():
    """float16: the gradients come from loss x S; clipping threshold and decays
    are scaled too, so dividing by S gives the unscaled update exactly."""
    results = []
    for scale in (None, 64.0):
        weights, alpha = _variables()
        with tf.GradientTape() as tape:
            loss = _loss(weights, alpha) * (scale or 1.0)
        results.append(one_level.processed_gradients(
            tape, loss, weights, alpha, grad_clip_norm=5.0, weight_decay=0.01,
            arch_weight_decay=0.001, loss_scale=None if scale is None else tf.constant(scale)))
    (w1, a1, n1), (w64, a64, n64) = results
    assert float(n64) == pytest.approx(float(n1), rel=1e-6)  # the norm is the unscaled one
    for got, want in zip(_numpy(w64) + _numpy(a64), _numpy(w1) + _numpy(a1)):
        np.testing.assert_allclose(got, 64.0 * want, rtol=1e-5)
    # Without clipping the same holds.
    weights, alpha = _variables()
    with tf.GradientTape() as tape:
        loss = _loss(weights, alpha) * 8.0
    w8, _, _ = one_level.processed_gradients(tape, loss, weights, alpha, grad_clip_norm=0.0,
                                             weight_decay=0.01, arch_weight_decay=0.0,
                                             loss_scale=tf.constant(8.0))
    raw, _ = _raw_gradients()
    for got, g, w in zip(_numpy(w8), raw, WEIGHTS):
        np.testing.assert_allclose(got, 8.0 * (g + 0.01 * w), rtol=1e-5)


def test_a_variable_the_loss_does_not_reach_gets_a_zero_gradient():
    weights, alpha = _variables()
    unused = tf.Variable(tf.ones([2, 3]))
    with tf.GradientTape() as tape:
        loss = _loss(weights, alpha)
    grads = one_level.reduced_gradients(tape, loss, weights + [unused])
    np.testing.assert_array_equal(grads[2], np.zeros([2, 3]))
    assert grads[2].dtype == tf.float32
    np.testing.assert_allclose(grads[1], [3.0, 3.0])


def test_outside_a_replica_the_gradients_are_the_tapes():
    # In a strategy's scope but outside `strategy.run` there is no replica context
    # (an analysis computing gradients eagerly under the search's strategy).
    weights, alpha = _variables()
    with STRATEGY.scope():
        assert tf.distribute.get_replica_context() is None
        with tf.GradientTape() as tape:
            loss = _loss(weights, alpha)
        grads = one_level.reduced_gradients(tape, loss, weights + alpha)
    for got, want in zip(_numpy(grads), sum(_raw_gradients(), [])):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def _per_replica(strategy, function):
    return [np.asarray(t) for t in strategy.experimental_local_results(strategy.run(function))]


def test_gradients_are_summed_over_replicas_and_applied_once():
    assert STRATEGY.num_replicas_in_sync == 2
    with STRATEGY.scope():
        weight, alpha = tf.Variable([1.0, 2.0]), tf.Variable([0.5])
        sgd, arch_sgd = keras.optimizers.SGD(1.0), keras.optimizers.SGD(0.1)

    def step():
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
        with tf.GradientTape() as tape:
            # gradients 1 and 5 on replica 0, 2 and 10 on replica 1: alpha's sum 15 is odd
            loss = tf.reduce_sum(weight * (replica + 1.0)) + tf.reduce_sum(alpha * 5 * (replica + 1))
        grad, arch_grad = one_level.reduced_gradients(tape, loss, [weight, alpha])
        one_level.apply(sgd, [grad], [weight], arch_sgd, [arch_grad], [alpha])
        return grad

    grads = _per_replica(STRATEGY, tf.function(step))
    for grad in grads:
        np.testing.assert_allclose(grad, [3.0, 3.0])  # 1 + 2 on every replica
    # Keras sums over replicas once more; apply divides first: one step of the summed gradient.
    np.testing.assert_allclose(weight.numpy(), [1.0 - 3.0, 2.0 - 3.0])
    np.testing.assert_allclose(alpha.numpy(), [0.5 - 0.1 * 15.0], rtol=1e-6)


def test_both_optimizers_step_only_what_they_are_given():
    weights, alpha = _variables()
    sgd, adam = keras.optimizers.SGD(0.5), keras.optimizers.Adam(0.1)
    weight_grads, arch_grads = _raw_gradients()
    one_level.apply(sgd, weight_grads, weights, adam, arch_grads, alpha)
    for got, w, g in zip(weights, WEIGHTS, weight_grads):
        np.testing.assert_allclose(got.numpy(), w - 0.5 * g, rtol=1e-6)
    # Adam's first step moves each logit by lr x sign(g).
    np.testing.assert_allclose(alpha[0].numpy(), ALPHA[0] - 0.1 * np.sign(arch_grads[0]),
                               rtol=1e-4)
    # No architecture optimizer or no logits (a final network): the weights alone.
    for arch_optimizer, arch_vars in ((None, alpha), (adam, ())):
        before = alpha[0].numpy().copy()
        one_level.apply(sgd, weight_grads, weights, arch_optimizer, arch_grads, arch_vars)
        np.testing.assert_array_equal(alpha[0].numpy(), before)
    assert int(adam.iterations) == 1


def test_loss_scaling_is_matched_for_the_architecture_optimizer():
    adam = keras.optimizers.Adam(0.1)
    scaled_sgd = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1),
                                                     initial_scale=128.0)
    scaled_sgd.build([tf.Variable(1.0)])  # its scale is a variable made on building
    assert one_level.loss_scale(adam) is None
    assert float(one_level.loss_scale(scaled_sgd)) == 128.0
    wrapped = one_level.matching_loss_scaling(scaled_sgd, adam)
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
    assert wrapped.inner_optimizer is adam and wrapped.name == "architecture_loss_scale_optimizer"
    assert one_level.matching_loss_scaling(keras.optimizers.SGD(0.1), adam) is adam
    assert one_level.matching_loss_scaling(scaled_sgd, wrapped) is wrapped
    assert one_level.matching_loss_scaling(scaled_sgd, None) is None


def test_architecture_gradients_move_to_their_optimizers_own_scale():
    grads = [tf.constant([2.0, -4.0])]
    arch = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.1), initial_scale=32.0)
    arch.build([tf.Variable(1.0)])
    [got] = one_level.rescaled(grads, tf.constant(128.0), arch)
    np.testing.assert_allclose(got, [2.0 * 32 / 128, -4.0 * 32 / 128])
    assert one_level.rescaled(grads, None, arch) is grads
    assert one_level.rescaled(grads, tf.constant(128.0), keras.optimizers.Adam(0.1)) is grads


class _MultiWorker(tf.distribute.MultiWorkerMirroredStrategy):
    """What `replica_logs` reads of a MultiWorkerMirroredStrategy (making a real
    one sets up collective ops for the whole test process)."""

    def __init__(self, task_type):
        self._resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": ["a:1", "b:1"]}), task_type=task_type, task_id=0)

    @property
    def cluster_resolver(self):
        return self._resolver


def test_logs_become_one_element_vectors_on_a_multi_worker_cluster(monkeypatch):
    logs = {"loss": tf.constant(1.5), "accuracy": tf.constant(0.25)}
    assert one_level.replica_logs(logs) is logs
    with STRATEGY.scope():  # several replicas on one machine: Keras reduces scalars
        assert one_level.replica_logs(logs) is logs
    monkeypatch.setattr(tf.distribute, "get_strategy", lambda: _MultiWorker("worker"))
    reshaped = one_level.replica_logs(logs)
    assert {k: (v.shape, float(v[0])) for k, v in reshaped.items()} == {
        "loss": ((1,), 1.5), "accuracy": ((1,), 0.25)}
    # The strategy without a cluster (one local process) keeps them.
    monkeypatch.setattr(tf.distribute, "get_strategy", lambda: _MultiWorker(None))
    assert one_level.replica_logs(logs) is logs


class _Hooked(one_level.TrainingHooks, keras.Model):
    """A linear classifier with one logit vector as its 'architecture': the
    smallest model `TrainingHooks` serves, trained as the supernet's step does."""

    num_classes, grad_clip_norm, weight_decay, architecture_weight_decay = 3, 5.0, 0.0, 0.0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3, name="dense")
        self.architecture_optimizer = None

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.alpha = self.add_weight(shape=(3,), initializer="ones", name="alpha")

    def call(self, images, training=None):
        return self.dense(images) * self.alpha

    @property
    def weight_variables(self):
        return self.dense.trainable_variables

    @property
    def architecture_variables(self):
        return [self.alpha]

    def compile(self, optimizer, architecture_optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.architecture_optimizer = one_level.matching_loss_scaling(self.optimizer,
                                                                      architecture_optimizer)
        # As the supernet's compile: what fit would otherwise build from a batch.
        self.optimizer.build(self.weight_variables)
        self.architecture_optimizer.build(self.architecture_variables)
        self._build_compiled_state()

    def one_level_gradients(self, images, labels):
        """As the supernet's: (loss, logits, weight grads, alpha grads, raw norm)."""
        def forward():
            logits = self(images, training=True)
            return self.compute_loss(x=images, y=labels, y_pred=logits, training=True), logits

        return self._one_level_gradients(forward)

    def train_step(self, data):
        images, labels = data
        loss, logits, weight_grads, arch_grads, _ = self.one_level_gradients(images, labels)
        one_level.apply(self.optimizer, weight_grads, self.weight_variables,
                        self.architecture_optimizer, arch_grads, self.architecture_variables)
        return self._step_logs(images, labels, logits, loss)


@pytest.mark.parametrize("strategy", [tf.distribute.get_strategy(), STRATEGY],
                         ids=["one_replica", "two_replicas"])
def test_the_logged_loss_is_the_mean_over_every_example(strategy):
    """Batches of 4 and 2 (6 examples), learning rates 0: the epoch's loss is the
    mean cross-entropy over the 6 examples, whatever the replicas."""
    x = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2])
    with strategy.scope():
        model = _Hooked(name="hooked")
        model.build((None, 4))
        model.compile(keras.optimizers.SGD(0.0), keras.optimizers.SGD(0.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    logits = model(x).numpy()
    per_example = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(float(np.mean(per_example)), rel=1e-5)
    accuracy = np.mean(logits.argmax(-1) == y)
    assert history.history["accuracy"][0] == pytest.approx(accuracy)


def test_under_loss_scaling_the_gradients_come_from_the_scaled_loss():
    """A LossScaleOptimizer at scale 256: the step's gradients are 256 x the
    unscaled ones (its optimizer divides them out), alpha's at its optimizer's 32."""
    x = np.random.default_rng(2).normal(size=(4, 4)).astype("float32")
    y = np.array([0, 1, 2, 0])
    grads = {}
    for scale in (None, 256.0):
        keras.utils.set_random_seed(0)
        model = _Hooked(name="hooked")
        model.build((None, 4))
        optimizer, arch_optimizer = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)
        if scale is not None:  # alpha's optimizer at a scale of its own: its gradients go to it
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=scale)
            arch_optimizer = keras.optimizers.LossScaleOptimizer(arch_optimizer, initial_scale=32.0)
        model.compile(optimizer, arch_optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss, _, weight_grads, arch_grads, norm = model.one_level_gradients(x, y)
        grads[scale] = (float(loss), _numpy(weight_grads), _numpy(arch_grads), float(norm))
    (loss, weights, alpha, norm), (scaled_loss, scaled_weights, scaled_alpha, scaled_norm) = (
        grads[None], grads[256.0])
    assert scaled_loss == pytest.approx(loss, rel=1e-6)  # the loss reported is unscaled
    assert scaled_norm == pytest.approx(norm, rel=1e-5)
    for got, want in zip(scaled_weights, weights):
        np.testing.assert_allclose(got, 256.0 * want, rtol=1e-4, atol=1e-6)
    for got, want in zip(scaled_alpha, alpha):
        np.testing.assert_allclose(got, 32.0 * want, rtol=1e-4, atol=1e-6)


def test_the_decays_and_the_threshold_are_taken_by_keyword_only():
    # Three floats in a row: by position, weight and architecture decay could be swapped unseen.
    weights, alpha = _variables()
    with tf.GradientTape() as tape:
        loss = _loss(weights, alpha)
    with pytest.raises(TypeError):
        one_level.processed_gradients(tape, loss, weights, alpha, 5.0, 0.01, 0.001)
