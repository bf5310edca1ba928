import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import optimizers
from stacnas_tf import precision
from stacnas_tf import search_space
from stacnas_tf import supernet

import helpers

SPACE = search_space.SearchSpace()


def _network(num_cells=3, per_cell=False, **kwargs):
    stage = search_space.stage1_space(SPACE, num_cells, per_cell)
    net = supernet.SearchNetwork(stage, 10, channels=4, num_cells=num_cells, seed=0, **kwargs)
    net(tf.zeros([1, 8, 8, 1]))
    return net


def _compile(net, weight_lr=0.1):
    weight_opt = optimizers.FusedSGD(weight_lr, momentum=0.9)
    arch_opt = keras.optimizers.Adam(3e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
    net.compile(weight_opt, arch_opt)
    return weight_opt, arch_opt


def test_architecture_and_weight_variables_are_disjoint_by_construction():
    net = _network()
    arch = net.architecture_variables
    assert len(arch) == 2 and [tuple(v.shape) for v in arch] == [(14, 5), (14, 5)]
    weight_ids = {id(v) for v in net.weight_variables}
    assert not weight_ids & {id(v) for v in arch}
    assert len(net.weight_variables) + 2 == len(net.trainable_variables)
    per_cell = _network(num_cells=3, per_cell=True)
    assert len(per_cell.architecture_variables) == 3


def test_every_logit_set_starts_from_its_own_draw():
    # DARTS draws alpha_normal and alpha_reduce independently (1e-3 * N(0, 1)).
    for per_cell, sets in ((False, 2), (True, 3)):
        net = _network(num_cells=3, per_cell=per_cell)
        values = [v.numpy() for v in net.architecture_variables]
        assert len(values) == sets
        for a in range(sets):
            assert 0.3e-3 < values[a].std() < 3e-3
            for b in range(a):
                assert not np.allclose(values[a], values[b])
        # Seeded: the same network starts from the same logits.
        again = _network(num_cells=3, per_cell=per_cell)
        for a, b in zip(values, again.architecture_variables):
            np.testing.assert_array_equal(a, b.numpy())


def test_searches_with_other_seeds_start_from_other_logits():
    # Every logit set of every seed its own draw: no seed's set repeats another seed's.
    drawn = []
    for seed in (0, 1, 2, 5):
        stage = search_space.stage1_space(SPACE, 3, False)
        net = supernet.SearchNetwork(stage, 10, channels=4, num_cells=3, seed=seed)
        drawn += [v.numpy() for v in net.architecture_variables]
    for a in range(len(drawn)):
        for b in range(a):
            assert not np.allclose(drawn[a], drawn[b]), (a, b)


def test_output_shape_and_reduction_cells():
    net = _network(num_cells=5)
    assert tuple(net(tf.zeros([2, 8, 8, 1])).shape) == (2, 10)
    assert [c.reduction for c in net.search_cells] == [False, True, False, True, False]
    # Checkpoint keys follow these names (stacnas_tf/checkpoints.py).
    assert [c.name for c in net.search_cells] == [
        "cell_0_normal", "cell_1_reduce", "cell_2_normal", "cell_3_reduce", "cell_4_normal"]
    assert net.search_cells[-1].filters == 16  # doubled twice
    # DARTS model_search.py's stem: nn.Conv2d(3, 3C, 3, padding=1, bias=False)
    assert tuple(net.stem_conv.kernel.shape) == (3, 3, 1, 12) and net.stem_conv.bias is None
    # DARTS model_search.py's stem: Conv2d, then BatchNorm2d with its default affine=True
    # (the cells' batch norms are the ones without).
    assert [w.name for w in net.stem_bn.trainable_weights] == ["gamma", "beta"]


def test_build_creates_the_variables_of_a_call_and_one_trace_serves_the_steps():
    stage = search_space.stage1_space(SPACE, 5, False)
    built = supernet.SearchNetwork(stage, 10, channels=4, num_cells=5, seed=0, name="net")
    built.build((None, 8, 8, 1))
    called = _network(num_cells=5, name="net")
    assert [(v.path, tuple(v.shape)) for v in built.weights] == [
        (v.path, tuple(v.shape)) for v in called.weights]
    _compile(built)
    # Compiling created every variable, so tf.function traces the step once
    # (not a second time for variables made on the first call), and Keras
    # needs no symbolic pass of its own through the network.
    variables = len(built.variables)
    traced = {"train_step": 0, "call": 0}
    for name in traced:
        method = getattr(built, name)

        def counting(*args, _method=method, _name=name, **kwargs):
            traced[_name] += 1
            return _method(*args, **kwargs)

        setattr(built, name, counting)
    x, y = helpers.random_batch()
    built.train_on_batch(x, y)
    built.train_on_batch(x, y)
    assert traced == {"train_step": 1, "call": 1}
    assert len(built.variables) == variables


def test_train_step_updates_weights_with_sgd_and_logits_with_adam():
    net = _network()
    weight_opt, arch_opt = _compile(net)
    # Keras's default ("auto") would compile with XLA wherever there is a GPU.
    assert net.jit_compile is False
    x, y = helpers.random_batch()
    before_alpha = [v.numpy().copy() for v in net.architecture_variables]
    before_weights = [v.numpy().copy() for v in net.weight_variables]
    _, _, _, arch_grads, _ = net.one_level_gradients(x, y)
    net.train_on_batch(x, y)
    assert int(arch_opt.iterations.numpy()) == 1 and int(weight_opt.iterations.numpy()) == 1
    # Adam's first step, L2 decay already in the gradient: -lr * g / (|g| + eps').
    for before, after, grad in zip(before_alpha, [v.numpy() for v in net.architecture_variables], arch_grads):
        g = grad.numpy()
        m, v = 0.5 * 0 + (1 - 0.5) * g, (1 - 0.999) * g * g
        lr = 3e-4 * np.sqrt(1 - 0.999) / (1 - 0.5)
        np.testing.assert_allclose(after, before - lr * m / (np.sqrt(v) + 1e-8), rtol=1e-3, atol=1e-9)
        assert np.abs(after - before).max() > 1e-5
    changed = [np.abs(a - b).max() > 0 for a, b in zip(before_weights, [v.numpy() for v in net.weight_variables])]
    assert sum(changed) > 0.9 * len(changed)


def test_clipping_applies_to_weights_only():
    net = _network(grad_clip_norm=1e-3, weight_decay=0.0, architecture_weight_decay=0.0)
    _compile(net)
    x, y = helpers.random_batch()
    with tf.GradientTape() as tape:
        loss = net.compute_loss(x=x, y=y, y_pred=net(x, training=True), training=True)
    raw = tape.gradient(loss, net.weight_variables + net.architecture_variables)
    raw_weights, raw_arch = raw[: len(net.weight_variables)], raw[len(net.weight_variables):]
    _, _, weight_grads, arch_grads, norm = net.one_level_gradients(x, y)
    assert float(norm) > 1e-3
    np.testing.assert_allclose(float(tf.linalg.global_norm(weight_grads)), 1e-3, rtol=1e-3)
    np.testing.assert_allclose(float(tf.linalg.global_norm(raw_weights)), float(norm), rtol=1e-3)
    for got, expected in zip(arch_grads, raw_arch):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-3, atol=1e-9)


def test_architecture_gradients_flow_to_every_logit_set():
    net = _network()
    x, y = helpers.random_batch()
    _compile(net)
    _, _, _, arch_grads, _ = net.one_level_gradients(x, y)
    for g in arch_grads:
        assert np.abs(g.numpy()).max() > 0


def test_masked_candidates_get_zero_weight():
    normal = [("none", "skip_connect")] * 7 + [("none", "sep_conv_3x3", "sep_conv_5x5")] * 7
    stage = search_space.StageSpace.shared(normal, normal)
    net = supernet.SearchNetwork(stage, 10, channels=4, num_cells=3, seed=0)
    net(tf.zeros([1, 8, 8, 1]))
    probabilities = net.architecture.probabilities()[0].numpy()
    assert probabilities.shape == (14, 3)
    np.testing.assert_allclose(probabilities[:7, 2], 0.0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)
    values = net.logit_values()[0]
    assert values[0][0] == ("none", "skip_connect") and len(values[0][2]) == 2
    # The documented accessor: per logit set, each edge's endpoints, candidates and weights.
    weights = net.architecture_weights()
    assert list(weights) == ["normal", "reduce"]
    assert [e["edge"] for e in weights["normal"][:5]] == ["0->2", "1->2", "0->3", "1->3", "2->3"]
    assert weights["normal"][0]["candidates"] == ["none", "skip_connect"]
    np.testing.assert_allclose(weights["normal"][7]["weights"], probabilities[7], rtol=1e-6)
    assert sum(weights["reduce"][0]["weights"]) == pytest.approx(1.0)


@pytest.mark.parametrize("per_cell", [False, True])
def test_network_config_saving_and_training(per_cell):
    helpers.run_layer_test(
        supernet.SearchNetwork, {"stage_space": search_space.stage1_space(SPACE, 3, per_cell),
                                 "num_classes": 10, "channels": 4, "num_cells": 3, "seed": 0,
                                 "mean": (0.3,), "std": (0.2,)},
        helpers.random_batch()[0], (8, 10))


def test_architecture_logits_config_saving_and_training():
    # Edges of 5 and of 3 candidates, padded to 5.
    helpers.run_layer_test(
        supernet.ArchitectureLogits, {"candidate_counts": [[5, 3, 5], [3, 3, 5]], "seed": 1}, None,
        [(3, 5), (3, 5)], call=lambda layer, _, training: layer.probabilities(),
        expected_num_trainable_weights=2)


def test_defaults_are_darts_train_search_settings():
    # quark0/darts cnn/train_search.py: --init_channels 16, --layers 8, --weight_decay 3e-4,
    # --arch_weight_decay 1e-3, --grad_clip 5; model_search.py: stem_multiplier=3.
    config = supernet.SearchNetwork(search_space.stage1_space(SPACE, 8, False), 10).get_config()
    assert {k: config[k] for k in ("channels", "num_cells", "stem_multiplier", "weight_decay",
                                   "architecture_weight_decay", "grad_clip_norm", "optimization",
                                   "seed")} == {
        "channels": 16, "num_cells": 8, "stem_multiplier": 3, "weight_decay": 3e-4,
        "architecture_weight_decay": 1e-3, "grad_clip_norm": 5.0, "optimization": "one_level",
        "seed": None}


def test_a_one_cell_supernet_is_one_reduction_cell():
    net = _network(num_cells=1)
    assert [(c.name, c.reduction) for c in net.search_cells] == [("cell_0_reduce", True)]
    assert tuple(net(tf.zeros([2, 8, 8, 1])).shape) == (2, 10)


def test_bad_arguments_are_refused():
    stage = search_space.stage1_space(SPACE, 3, False)
    with pytest.raises(ValueError, match="num_cells: expected a positive number of cells, got 0"):
        supernet.SearchNetwork(stage, 10, num_cells=0)
    for channels in (5, 0, -2):
        with pytest.raises(ValueError, match=f"channels: expected an even number >= 2, got {channels}"):
            supernet.SearchNetwork(stage, 10, channels=channels)
    assert supernet.SearchNetwork(stage, 10, channels=2).channels == 2  # the smallest accepted
    for cells in (4, 2):
        with pytest.raises(ValueError, match=f"per-cell logits need 3 cells of candidates, got {cells}"):
            supernet.SearchNetwork(search_space.stage1_space(SPACE, cells, True), 10, num_cells=3)


def test_the_compiled_loss_is_cross_entropy_on_logits():
    net = _network()
    _compile(net)
    logits = tf.constant([[2.0, -1.0] + [0.0] * 8, [0.5] * 10])
    labels = tf.constant([0, 3])
    expected = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    assert float(net.compute_loss(y=labels, y_pred=logits)) == pytest.approx(
        float(tf.reduce_mean(expected)), rel=1e-6)


def _bi_level_step(weight_batch, arch_batch):
    keras.utils.set_random_seed(7)  # the same initial weights on every call
    # As a resumed search reads it from config.json: not an interned literal.
    net = _network(optimization=json.loads('"bi_level"'))
    _compile(net)
    net.train_step((weight_batch, arch_batch))
    return ([v.numpy() for v in net.architecture_variables],
            [v.numpy() for v in net.weight_variables])


def test_bi_level_step_takes_alpha_from_its_own_batch_and_weights_from_the_other():
    first, second, third = (helpers.random_batch(seed=seed) for seed in (1, 2, 3))
    alpha, weights = _bi_level_step(first, second)
    # Another weight batch: the same alpha (its step comes first, from the architecture batch).
    alpha_other_w, weights_other_w = _bi_level_step(third, second)
    for a, b in zip(alpha, alpha_other_w):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(a - b).max() > 1e-6 for a, b in zip(weights, weights_other_w))
    # Another architecture batch: alpha moves differently.
    alpha_other_a, _ = _bi_level_step(first, third)
    assert any(np.abs(a - b).max() > 1e-9 for a, b in zip(alpha, alpha_other_a))


def _seeded_network(**kwargs):
    keras.utils.set_random_seed(7)  # the same initial weights as _bi_level_step's
    return _network(**kwargs)


def _training_mode_gradients(net, batch, variables):
    """Gradients of `net`'s compiled loss on `batch`, the network in training mode."""
    x, y = batch
    with tf.GradientTape() as tape:
        loss = net.compute_loss(x=x, y=y, y_pred=net(x, training=True), training=True)
    return tape.gradient(loss, variables)


def test_bi_level_alpha_step_is_adams_first_step_on_the_architecture_batch():
    arch_batch = helpers.random_batch(seed=4)
    reference = _seeded_network()
    _compile(reference)
    grads = _training_mode_gradients(reference, arch_batch, reference.architecture_variables)
    alpha, _ = _bi_level_step(helpers.random_batch(seed=5), arch_batch)
    for before, grad, after in zip(reference.architecture_variables, grads, alpha):
        g = grad.numpy() + 1e-3 * before.numpy()
        # Adam's first step moves each entry by lr * g / (|g| + eps').
        expected = before.numpy() - 3e-4 * g / (np.abs(g) + 1e-8)
        np.testing.assert_allclose(after, expected, atol=2e-6)


def test_bi_level_weight_step_is_sgd_on_the_training_mode_loss_with_the_new_alpha():
    weight_batch, arch_batch = helpers.random_batch(seed=5), helpers.random_batch(seed=4)
    net = _seeded_network(optimization="bi_level")
    _compile(net)  # FusedSGD lr 0.1, momentum 0.9: its first step is lr x gradient
    before = [v.numpy().copy() for v in net.weight_variables]
    net.train_step((weight_batch, arch_batch))
    reference = _seeded_network()  # the same weights, given the stepped alpha
    for mine, stepped in zip(reference.architecture_variables, net.architecture_variables):
        mine.assign(stepped)
    _compile(reference)
    grads = _training_mode_gradients(reference, weight_batch, reference.weight_variables)
    clipped, _ = tf.clip_by_global_norm(grads, 5.0)  # DARTS's grad_clip, then weight decay
    for b, g, after in zip(before, clipped, net.weight_variables):
        np.testing.assert_allclose(after.numpy(), b - 0.1 * (g.numpy() + 3e-4 * b), rtol=1e-4,
                                   atol=1e-6, err_msg=after.path)


def test_bi_level_alpha_gradient_is_taken_in_training_mode():
    # SGD on alpha (Adam's first step sees only the gradient's signs): alpha moves
    # by lr x (the gradient of the training-mode loss on its batch + decay x alpha).
    arch_batch = helpers.random_batch(seed=4)
    reference = _seeded_network()
    _compile(reference)
    grads = _training_mode_gradients(reference, arch_batch, reference.architecture_variables)
    net = _seeded_network(optimization="bi_level")
    net.compile(optimizers.FusedSGD(0.1, momentum=0.9), keras.optimizers.SGD(1.0))
    net.train_step((helpers.random_batch(seed=5), arch_batch))
    for before, grad, after in zip(reference.architecture_variables, grads,
                                   net.architecture_variables):
        expected = before.numpy() - (grad.numpy() + 1e-3 * before.numpy())
        np.testing.assert_allclose(after.numpy(), expected, rtol=1e-4, atol=1e-7)


def test_alpha_and_its_softmax_stay_float32_inside_a_mixed_precision_call():
    with precision.policy_scope("mixed_float16"):
        net = _network()
    seen = []
    run_cells = net.run_cells

    def recording(images, training=None, on_cell=None):
        return run_cells(images, training,
                         on_cell=lambda cell, inputs, weights: seen.append(weights.dtype))

    net.run_cells = recording  # inside the call, where Keras casts autocast variables
    net(tf.zeros([1, 8, 8, 1]))
    assert seen == [tf.float32] * 3


def test_padding_entries_beyond_an_edges_candidates_get_no_weight():
    logits = supernet.ArchitectureLogits([[4, 2, 1]], seed=0)
    [probabilities] = [p.numpy() for p in logits.probabilities()]
    assert probabilities.shape == (3, 4)
    np.testing.assert_array_equal(probabilities[1, 2:], 0.0)
    np.testing.assert_array_equal(probabilities[2, 1:], 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert probabilities[2, 0] == 1.0


def test_unknown_optimization_is_refused():
    with pytest.raises(ValueError, match="optimization"):
        _network(optimization="two_level")


def _two_steps(jit_compile, stage):
    keras.utils.set_random_seed(0)
    net = supernet.SearchNetwork(stage, 10, channels=4, num_cells=3, seed=0)
    net.build((None, 8, 8, 1))
    net.compile(optimizers.FusedSGD(0.1, momentum=0.9), keras.optimizers.Adam(3e-3),
                jit_compile=jit_compile)
    x, y = helpers.random_batch()
    losses = [net.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(2)]
    return losses, [v.numpy() for v in net.architecture_variables]


def test_xla_compiled_step_matches_the_graph_step():
    # Stage-2 candidates: every op kind, batched over edges of different groups.
    winners = ["sep_conv_3x3", "max_pool_3x3", "skip_connect", "dil_conv_3x3"] * 3 + [
        "skip_connect", "sep_conv_3x3"]
    cell = SPACE.activate(winners)
    stage = search_space.StageSpace.shared(cell, cell)
    graph_losses, graph_alpha = _two_steps(False, stage)
    xla_losses, xla_alpha = _two_steps(True, stage)
    np.testing.assert_allclose(xla_losses, graph_losses, rtol=1e-5)
    assert graph_losses[1] < graph_losses[0]
    for xla, graph in zip(xla_alpha, graph_alpha):
        np.testing.assert_allclose(xla, graph, atol=2e-4)


def test_keras_file_round_trip_with_compile_config(tmp_path):
    net = _network()
    _compile(net)
    x, y = helpers.random_batch()
    net.train_on_batch(x, y)
    loaded = helpers.reloaded(net, tmp_path, x)
    assert isinstance(loaded.architecture_optimizer, keras.optimizers.Adam)
    assert loaded.architecture_optimizer.beta_1 == 0.5
    assert int(loaded.architecture_optimizer.iterations.numpy()) == 1
    for saved, restored in zip(net.architecture_optimizer.variables,
                               loaded.architecture_optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
