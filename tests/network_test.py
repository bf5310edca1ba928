import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import cells
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network
from stacnas_tf import search_space

import helpers

G = genotype_lib.PUBLISHED


def _build(genotype, classes, channels, num_cells, stem, side, **kwargs):
    kwargs.setdefault("auxiliary", False)
    net = network.FinalNetwork(genotype, classes, channels, num_cells, stem=stem, **kwargs)
    net(tf.zeros([1, side, side, 3]), training=False)
    return net


def _hand_count(genotype, channels, num_cells, classes, stem):
    """Parameters of DARTS's NetworkCIFAR / NetworkImageNet, counted by hand."""
    def op(name, c, stride):
        if name == "skip_connect":
            return 0 if stride == 1 else c * c + 2 * c  # FactorizedReduce: 2 x (c x c/2) + BN
        if name.endswith("pool_3x3"):
            return 0
        k = int(name[-1])
        block = c * k * k + c * c + 2 * c
        return 2 * block if name.startswith("sep") else block

    if stem == "cifar":
        total = 3 * 3 * 3 * 3 * channels + 2 * 3 * channels
        prev_prev = prev = 3 * channels
    else:
        half = channels // 2
        total = 27 * half + 2 * half + 9 * half * channels + 2 * channels + 9 * channels * channels + 2 * channels
        prev_prev = prev = channels
    c = channels
    for index in range(num_cells):
        reduction = index in search_space.reduction_positions(num_cells)
        c = c * 2 if reduction else c
        cell = genotype.reduce if reduction else genotype.normal
        # the two preprocessing convs + BN (a FactorizedReduce has as many parameters)
        total += prev_prev * c + 2 * c + prev * c + 2 * c
        total += sum(op(name, c, 2 if reduction and src < 2 else 1) for name, src in cell.edges)
        prev_prev, prev = prev, len(cell.concat) * c
    return total + prev * classes + classes


def _hand_count_auxiliary(genotype, channels, num_cells, classes, stem):
    """Parameters of DARTS's AuxiliaryHeadCIFAR / AuxiliaryHeadImageNet on the output of
    cell 2L/3 (a reduction cell): 1x1 conv to 128 + BN, 2x2 conv to 768 (+ BN on CIFAR
    only: DARTS's ImageNet head leaves that BN out), a linear classifier."""
    c = channels
    for index in range(2 * num_cells // 3 + 1):
        c = c * 2 if index in search_space.reduction_positions(num_cells) else c
    width = len(genotype.reduce.concat) * c
    return (width * 128 + 2 * 128 + 128 * 768 * 4 + (2 * 768 if stem == "cifar" else 0)
            + 768 * classes + classes)


# Parameters of quark0/darts's NetworkCIFAR(36, 10 classes, 20 cells) and
# NetworkImageNet(48, 1000 classes, 14 cells), without / with the auxiliary head
# (docs/reference_numbers.md; network_reference_test builds them at full size).
FULL_SIZE = {
    "DARTS_V1": ((3_169_414, 3_645_840), (4_510_432, 5_771_208)),
    "DARTS_V2": ((3_349_342, 3_825_768), (4_718_752, 5_979_528)),
    "PDARTS": ((3_433_798, 3_910_224), (4_944_352, 6_205_128)),
    "STACNAS_CIFAR10": ((3_714_382, 4_190_808), (5_243_008, 6_503_784)),
}


@pytest.mark.parametrize("stem,side", [("cifar", 32), ("imagenet", 224)])
@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_small_networks_match_the_hand_count(name, stem, side):
    # The hand count gives DARTS's numbers at full size; the network, built at a size that
    # builds in a second (5 cells of 4 channels, reductions at cells 1 and 3, the head after
    # cell 3), gives the hand count.
    classes, channels, num_cells = (10, 36, 20) if stem == "cifar" else (1000, 48, 14)
    without, with_head = FULL_SIZE[name][0 if stem == "cifar" else 1]
    assert _hand_count(G[name], channels, num_cells, classes, stem) == without
    assert _hand_count_auxiliary(G[name], channels, num_cells, classes, stem) == with_head - without
    net = _build(G[name], 7, 4, 5, stem, side, auxiliary=True)
    assert net.parameter_count() == _hand_count(G[name], 4, 5, 7, stem)
    assert (net.parameter_count(include_auxiliary=True) - net.parameter_count()
            == _hand_count_auxiliary(G[name], 4, 5, 7, stem))


def test_auxiliary_head_only_in_training():
    net = _build(G["DARTS_V2"], 10, 8, 8, "cifar", 32, auxiliary=True)
    x = tf.random.normal([2, 32, 32, 3])
    logits, aux = net(x, training=True)
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    assert net(x, training=False).shape == (2, 10)
    assert net.parameter_count(include_auxiliary=True) > net.parameter_count()
    # The head is built with the network, so a compiled optimizer trains it.
    fresh = _build(G["DARTS_V2"], 10, 8, 8, "cifar", 32, auxiliary=True)
    assert fresh.auxiliary_head.built
    fresh.compile(keras.optimizers.SGD(0.1), aux_weight=0.4)
    before = fresh.auxiliary_head.classifier.kernel.numpy().copy()
    fresh.train_on_batch(x.numpy(), np.array([1, 2]))
    assert np.abs(fresh.auxiliary_head.classifier.kernel.numpy() - before).max() > 0
    imagenet = _build(G["DARTS_V2"], 7, 4, 5, "imagenet", 224, auxiliary=True)
    logits, aux = imagenet(tf.zeros([1, 224, 224, 3]), training=True)
    assert logits.shape == (1, 7) and aux.shape == (1, 7)
    with pytest.raises(ValueError, match="auxiliary head needs a map of at least 8x8"):
        _build(G["DARTS_V2"], 10, 4, 3, "cifar", 8, auxiliary=True)


def test_drop_path_is_identity_at_inference_and_drops_whole_samples():
    layer = cells.DropPath(seed=0)
    x = tf.ones([64, 2, 2, 3])
    np.testing.assert_array_equal(layer(x, rate=0.5, training=False).numpy(), x.numpy())
    y = layer(x, rate=0.5, training=True).numpy()
    per_sample = y.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert all(len(set(row)) == 1 for row in per_sample)  # a sample is kept or dropped whole
    assert 10 < (per_sample[:, 0] == 0).sum() < 54
    net = _build(G["DARTS_V2"], 10, 4, 3, "cifar", 8, auxiliary=False)
    net.drop_path_rate.assign(0.9)
    images = tf.random.normal([4, 8, 8, 3])
    np.testing.assert_allclose(net(images, training=False).numpy(), net(images, training=False).numpy())


def test_deformable_edges_have_logits_that_train():
    net = _build(G["STACNAS_CIFAR10"], 10, 4, 3, "cifar", 8, auxiliary=False, deformable=True)
    assert len(net.architecture_variables) == 3
    assert [tuple(v.shape) for v in net.architecture_variables] == [(8, 2)] * 3
    assert not {id(v) for v in net.architecture_variables} & {id(v) for v in net.weight_variables}
    np.testing.assert_allclose(net.derived_cells[0].edge_scales().numpy(), 0.5)
    net.compile(keras.optimizers.SGD(0.05, momentum=0.9), keras.optimizers.Adam(1e-2), aux_weight=0.0)
    x, y = helpers.random_batch(16, channels=3)
    before = [v.numpy().copy() for v in net.architecture_variables]
    net.train_on_batch(x, y)
    moved = [np.abs(v.numpy() - b).max() for v, b in zip(net.architecture_variables, before)]
    assert min(moved) > 1e-3
    with pytest.raises(ValueError, match="architecture_optimizer"):
        net.compile(keras.optimizers.SGD(0.1))


def test_per_cell_genotypes():
    genotype = helpers.per_cell_genotype()
    net = _build(genotype, 10, 4, 3, "cifar", 8, auxiliary=False)
    assert net.derived_cells[0].edges == G["DARTS_V1"].normal.edges
    assert net.derived_cells[1].edges == G["DARTS_V2"].reduce.edges
    with pytest.raises(ValueError, match="3 per-cell genotypes; the network has 5"):
        network.FinalNetwork(genotype, 10, 4, 5)


def test_keras_file_round_trip_restores_every_weight_and_the_compile_config(tmp_path):
    keras.utils.set_random_seed(0)
    net = _build(G["DARTS_V2"], 10, 8, 5, "cifar", 32, auxiliary=True, deformable=True)
    net.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(1e-2),
                aux_weight=0.3, weight_decay=1e-3, grad_clip_norm=2.0,
                architecture_weight_decay=5e-3, label_smoothing=0.1)
    x, y = helpers.random_batch(8, side=32, channels=3)
    net.fit(x, y, epochs=2, batch_size=4, verbose=0)
    loaded = helpers.reloaded(net, tmp_path, x)
    assert (loaded.aux_weight, loaded.weight_decay, loaded.grad_clip_norm,
            loaded.architecture_weight_decay) == (0.3, 1e-3, 2.0, 5e-3)
    assert loaded.loss.label_smoothing == 0.1
    assert int(loaded.optimizer.iterations.numpy()) == 4
    assert isinstance(loaded.architecture_optimizer, keras.optimizers.Adam)
    for saved, restored in zip(net.architecture_optimizer.variables,
                               loaded.architecture_optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    # Training goes on from the restored state exactly as the original would.
    net.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    np.testing.assert_allclose(net(x, training=False).numpy(), loaded(x, training=False).numpy(),
                               atol=1e-5)


def test_a_network_never_compiled_saves_and_loads(tmp_path):
    # As a user holds a trained network's copy or a fresh one: predict, then save.
    net = _build(G["DARTS_V2"], 3, 4, 3, "cifar", 8)
    x = np.random.RandomState(1).rand(2, 8, 8, 3).astype(np.float32)
    expected = net.predict(x, verbose=0)
    path = str(tmp_path / "uncompiled.keras")
    net.save(path)
    loaded = keras.models.load_model(path)
    assert not loaded.compiled
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)


@pytest.mark.parametrize("genotype", ["DARTS_V2", "per_cell"])
def test_network_config_saving_and_training(genotype):
    genotype = helpers.per_cell_genotype() if genotype == "per_cell" else G[genotype]
    helpers.run_layer_test(
        network.FinalNetwork, {"genotype": genotype, "num_classes": 10, "channels": 4,
                               "num_cells": 3, "auxiliary": False, "deformable": True,
                               "mean": (0.2, 0.3, 0.4), "std": (0.5, 0.4, 0.3)},
        helpers.random_batch(2, channels=3)[0], (2, 10))


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_auxiliary_head_config_saving_and_training(stem):
    helpers.run_layer_test(network.AuxiliaryHead, {"num_classes": 10, "stem": stem},
                           np.random.RandomState(0).randn(2, 8, 8, 4).astype(np.float32), (2, 10))


def test_bad_network_arguments():
    with pytest.raises(ValueError, match="stem"):
        network.FinalNetwork(G["DARTS_V2"], 10, stem="resnet")
    with pytest.raises(ValueError, match="input index"):
        genotype_lib.resolve(G["DARTS_V2"].to_darts().replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 7)"))


def test_plot_model_shows_the_networks_input_and_output_shapes():
    from stacnas_tf import config as config_lib

    config = config_lib.TrainConfig(genotype="DARTS_V2", channels=4, num_cells=3, aux_weight=0.0)
    net = network.build(config, G["DARTS_V2"], 10, (8, 8, 1))
    dot = keras.utils.model_to_dot(net, show_shapes=True).to_string()
    assert "(None, 8, 8, 1)" in dot and "(None, 10)" in dot and "?" not in dot


def test_label_smoothing_spreads_its_fraction_over_every_class():
    # DARTS's ImageNet CrossEntropyLabelSmooth: targets (1 - e) * one_hot + e / classes.
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], np.float32)
    labels = np.array([0, 1])
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    plain = -log_p[[0, 1], labels]
    smoothed = 0.9 * plain - 0.1 / 3 * log_p.sum(axis=1)
    for smoothing, expected in ((0.0, plain), (0.1, smoothed)):
        loss = network.SparseCrossentropy(label_smoothing=smoothing, reduction=None)
        np.testing.assert_allclose(loss(labels, logits), expected, rtol=1e-5)


def test_a_network_without_its_auxiliary_head_trains_under_an_auxiliary_weight():
    # compile()'s aux_weight defaults to DARTS's 0.4: a network built without the
    # head (inference, fine-tuning) still trains, on its main loss.
    net = _build(G["DARTS_V2"], 10, 4, 3, "cifar", 8)
    net.compile(keras.optimizers.SGD(0.01), aux_weight=0.4)
    images, labels = helpers.random_batch(4, channels=3)
    loss = net.fit(images, labels, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)


def test_auxiliary_head_on_a_map_that_is_not_square():
    head = network.AuxiliaryHead(10, "cifar")
    assert head(np.zeros((2, 8, 11, 4), np.float32)).shape == (2, 10)
    # Pooled by 5 at stride 3 to 2x3, the 2x2 convolution leaves 1x2 x 768 features.
    assert tuple(head.classifier.kernel.shape) == (2 * 768, 10)


def test_a_per_cell_genotype_of_the_other_kind_than_its_position_is_refused():
    # A 3-cell network reduces at cells 1 and 2.
    good = helpers.per_cell_genotype()
    normal, reduce = good.cells[0], good.cells[1]
    for per_cell, index, kind in (((reduce, reduce, reduce), 0, "a reduction"),
                                  ((normal, normal, reduce), 1, "a normal")):
        bad = genotype_lib.Genotype(normal=good.normal, reduce=good.reduce, cells=per_cell)
        with pytest.raises(ValueError, match=f"per-cell genotype {index} is {kind} cell, but "
                                             f"cell {index} of a 3-cell network is not"):
            network.FinalNetwork(bad, 10, 4, 3, auxiliary=False)


def test_build_adds_the_auxiliary_head_by_the_configs_weight_unless_told():
    from stacnas_tf import config as config_lib

    config = config_lib.TrainConfig(genotype="DARTS_V2", channels=4, num_cells=3, aux_weight=0.4)
    for aux_weight, auxiliary, expected in ((0.4, None, True), (0.0, None, False),
                                            (0.4, False, False), (0.0, True, True)):
        net = network.build(config.replace(aux_weight=aux_weight), G["DARTS_V2"], 10,
                            (32, 32, 3), auxiliary=auxiliary)
        assert (net.auxiliary_head is not None) == expected, (aux_weight, auxiliary)


def test_compile_defaults_are_the_darts_recipe():
    # quark0/darts train.py: --auxiliary_weight 0.4, --grad_clip 5, --weight_decay 3e-4;
    # train_search.py: --arch_weight_decay 1e-3. No label smoothing on CIFAR.
    net = _build(G["DARTS_V2"], 10, 4, 3, "cifar", 8)
    net.compile(keras.optimizers.SGD(0.01))
    assert (net.aux_weight, net.grad_clip_norm, net.weight_decay,
            net.architecture_weight_decay, net.loss.label_smoothing) == (0.4, 5.0, 3e-4, 1e-3, 0.0)


def test_the_training_loss_adds_the_weighted_auxiliary_loss():
    # DARTS train.py: loss = criterion(logits) + auxiliary_weight * criterion(logits_aux).
    net = _build(G["DARTS_V2"], 10, 4, 3, "cifar", 32, auxiliary=True)
    net.compile(keras.optimizers.SGD(0.0), aux_weight=0.4, weight_decay=0.0)
    images, labels = helpers.random_batch(4, side=32, channels=3)
    logits, aux_logits = net(images, training=True)  # batch statistics: the step's own outputs
    main, aux = (float(tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        labels, out, from_logits=True))) for out in (logits, aux_logits))
    logged = net.train_on_batch(images, labels, return_dict=True)["loss"]
    assert logged == pytest.approx(main + 0.4 * aux, rel=1e-5)


@pytest.mark.parametrize("stem,smallest", [("cifar", 8), ("imagenet", 7)])
def test_auxiliary_head_refuses_a_map_below_its_smallest_on_either_side(stem, smallest):
    # Its 5x5 pool (stride 3 on CIFAR, 2 on ImageNet) must leave the 2x2 convolution a
    # 2x2 map: (side - 5) // stride + 1 >= 2.
    for shape in [(smallest - 1, 12), (12, smallest - 1), (None, 12), (12, None)]:
        head = network.AuxiliaryHead(10, stem)
        with pytest.raises(ValueError, match=rf"at least {smallest}x{smallest} \(the {stem} head\), "
                                             rf"got {shape[0]}x{shape[1]}: use larger images"):
            head.build((None, *shape, 16))


@pytest.mark.parametrize("stem,side,features", [
    # (side - 5) // stride + 1 pooled, then the 2x2 convolution takes one off:
    ("cifar", 14, 3 * 3 * 768),      # 14 -> 4 -> 3
    ("imagenet", 14, 4 * 4 * 768),   # 14 -> 5 -> 4
])
def test_auxiliary_head_width_follows_its_pooling(stem, side, features):
    head = network.AuxiliaryHead(10, stem)
    assert head(np.zeros((1, side, side, 4), np.float32)).shape == (1, 10)
    assert tuple(head.classifier.kernel.shape) == (features, 10)


def test_the_loss_smooths_nothing_unless_asked():
    logits, labels = np.array([[2.0, 0.5, -1.0]], np.float32), np.array([0])
    plain = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    np.testing.assert_allclose(network.SparseCrossentropy(reduction=None)(labels, logits), plain,
                               rtol=1e-6)


def _layer_plan(layers):
    """(kind, filters, kernel, stride, padding) of each layer, as DARTS's PyTorch modules
    would read: a ZeroPadding2D followed by a 'valid' conv is PyTorch's padding=k // 2."""
    plan = []
    for layer in layers:
        if isinstance(layer, keras.layers.Conv2D):
            plan.append(("conv", layer.filters, layer.kernel_size[0], layer.strides[0], layer.padding))
        elif isinstance(layer, keras.layers.ZeroPadding2D):
            plan.append(("pad", layer.padding[0][0]))
        else:
            plan.append((type(layer).__name__,))
    return plan


def test_the_stems_are_darts_layer_for_layer():
    # quark0/darts model.py: NetworkCIFAR's stem is Conv(3, 3C, 3, padding=1), BN;
    # NetworkImageNet's stem0 is Conv(3, C/2, 3, stride 2, padding 1), BN, ReLU,
    # Conv(C/2, C, 3, stride 2, padding 1), BN, and its stem1 ReLU, Conv(C, C, 3, stride 2,
    # padding 1), BN (no conv has a bias).
    cifar = _build(G["DARTS_V2"], 7, 8, 5, "cifar", 32)
    assert _layer_plan(cifar.stem_layers) == [("conv", 24, 3, 1, "same"), ("BatchNorm",)]
    assert cifar.stem1_layers == []
    imagenet = _build(G["DARTS_V2"], 7, 8, 5, "imagenet", 64)
    assert _layer_plan(imagenet.stem_layers) == [
        ("pad", 1), ("conv", 4, 3, 2, "valid"), ("BatchNorm",), ("ReLU",),
        ("pad", 1), ("conv", 8, 3, 2, "valid"), ("BatchNorm",)]
    assert _layer_plan(imagenet.stem1_layers) == [
        ("ReLU",), ("pad", 1), ("conv", 8, 3, 2, "valid"), ("BatchNorm",)]
    convs = [layer for layer in imagenet.stem_layers + imagenet.stem1_layers + cifar.stem_layers
             if isinstance(layer, keras.layers.Conv2D)]
    assert not any(layer.use_bias for layer in convs)


@pytest.mark.parametrize("stem,side,inputs", [
    # CIFAR: the stem keeps the side and widens to 3C; ImageNet: stem0 quarters the side
    # (224 -> 56), stem1 halves it again (-> 28), both C wide.
    ("cifar", 32, ((32, 32, 12), (32, 32, 12))),
    ("imagenet", 224, ((56, 56, 4), (28, 28, 4))),
])
def test_each_cell_sees_the_sides_and_widths_darts_gives_it(monkeypatch, stem, side, inputs):
    # 5 cells of C=4: reductions at cells 1 and 3 double C and halve the side; each cell's
    # output is its 4 nodes concatenated (4 x C wide); the older input of a cell after a
    # reduction (or, on ImageNet, of the first cell) is twice the newer one's side.
    seen = []
    call = cells.DerivedCell.call

    def spy(self, cell_inputs, *args, **kwargs):
        output = call(self, cell_inputs, *args, **kwargs)
        seen.append(tuple(tuple(x.shape[1:]) for x in (*cell_inputs, output)))
        return output

    monkeypatch.setattr(cells.DerivedCell, "call", spy)
    _build(G["DARTS_V2"], 7, 4, 5, stem, side)
    first = side if stem == "cifar" else side // 8
    s0, s1 = inputs
    expected = []
    for index, (filters, out_side) in enumerate(
            [(4, first), (8, first // 2), (8, first // 2), (16, first // 4), (16, first // 4)]):
        output = (out_side, out_side, 4 * filters)
        expected.append((s0, s1, output))
        s0, s1 = s1, output
    assert seen == expected


def test_defaults_are_darts_cifar_network():
    # quark0/darts train.py: --init_channels 36, --layers 20, --auxiliary on (weight 0.4).
    net = network.FinalNetwork(G["DARTS_V2"], 10)
    assert (net.channels, net.num_cells, net.stem, net.auxiliary, net.deformable) == (
        36, 20, "cifar", True, False)


@pytest.mark.parametrize("stem,shape", [
    ("cifar", (8, 8)), ("cifar", (8, 12)), ("cifar", (12, 8)),
    ("imagenet", (7, 7)), ("imagenet", (7, 9)), ("imagenet", (9, 7))])
def test_auxiliary_head_takes_its_smallest_map_on_either_side(stem, shape):
    head = network.AuxiliaryHead(10, stem)
    head.build((None, *shape, 16))
    assert head(tf.zeros((2, *shape, 16))).shape == (2, 10)


def test_a_network_of_one_cell_builds():
    net = _build(G["DARTS_V2"], 10, 4, 1, "cifar", 8)
    assert len(net.derived_cells) == 1
    assert net(tf.zeros((2, 8, 8, 3))).shape == (2, 10)


def test_building_a_network_leaves_its_batch_statistics_at_their_start():
    # The build call on a zero image is an inference call: BatchNorm's moving mean and
    # variance stay 0 and 1 (Keras's initial values), as a freshly made PyTorch network's.
    from stacnas_tf import config as config_lib

    config = config_lib.TrainConfig(dataset="digits", channels=4, num_cells=3, aux_weight=0.4)
    net = network.build(config, G["DARTS_V2"], 10, (32, 32, 1))
    assert net.auxiliary_head is not None
    moving = [v for v in net.variables if "moving_" in v.path]
    assert moving and all(
        np.all(v.numpy() == (1.0 if "variance" in v.path else 0.0)) for v in moving)


def test_top5_counts_a_label_among_the_five_largest_logits():
    # DARTS's utils.accuracy(topk=(1, 5)): a label ranked sixth is a top-5 miss.
    net = _build(G["DARTS_V2"], 10, 4, 3, "cifar", 8)
    net.compile(keras.optimizers.SGD(0.0))
    top5 = [m for m in net.metrics if m.name == "compile_metrics"][0]
    logits = np.arange(10, dtype=np.float32)[None].repeat(2, 0)  # class 9 largest, 4 sixth
    top5.update_state(np.array([5, 4]), logits)
    assert float(top5.result()["top5"]) == 0.5


def test_a_network_of_no_cells_is_refused():
    with pytest.raises(ValueError, match="num_cells: expected a positive number of cells, got 0"):
        network.FinalNetwork(G["DARTS_V2"], 10, num_cells=0)


def test_compile_leaves_xla_off_unless_asked():
    # Keras's "auto" would compile with XLA wherever there is a GPU; the programs ask for it
    # by a flag (--jit_compile).
    net = _build(G["DARTS_V2"], 10, 4, 3, "cifar", 8)
    net.compile(keras.optimizers.SGD(0.01))
    assert net.get_compile_config()["jit_compile"] is False


def test_more_per_cell_genotypes_than_cells_are_refused():
    with pytest.raises(ValueError, match="genotype has 3 per-cell genotypes; the network has 2 cells"):
        network.FinalNetwork(helpers.per_cell_genotype(), 10, 4, 2)


def test_drop_path_applies_in_training_only():
    # The network's rate reaches its cells in training (DARTS: drop_prob in training only);
    # at inference the rate changes nothing.
    net = _build(G["DARTS_V2"], 10, 4, 3, "cifar", 8)
    images = tf.constant(np.random.RandomState(0).uniform(0, 255, (4, 8, 8, 3)), tf.float32)
    inference, training = {}, {}
    for rate in (0.0, 0.5):  # before any training call, which moves BatchNorm's statistics
        net.drop_path_rate.assign(rate)
        inference[rate] = net(images, training=False).numpy()
    for rate in (0.0, 0.5):
        net.drop_path_rate.assign(rate)
        training[rate] = net(images, training=True).numpy()
    assert np.abs(training[0.0] - training[0.5]).max() > 1e-3
    np.testing.assert_array_equal(inference[0.0], inference[0.5])


def test_the_auxiliary_head_reads_the_cell_at_two_thirds_only(monkeypatch):
    # DARTS's NetworkCIFAR: `if i == 2 * self._layers // 3`, one cell's output, once.
    cell_outputs, head_inputs = [], []
    cell_call, head_call = cells.DerivedCell.call, network.AuxiliaryHead.call

    def cell_spy(self, *args, **kwargs):
        cell_outputs.append(cell_call(self, *args, **kwargs))
        return cell_outputs[-1]

    def head_spy(self, inputs, *args, **kwargs):
        head_inputs.append(inputs)
        return head_call(self, inputs, *args, **kwargs)

    net = _build(G["DARTS_V2"], 10, 4, 6, "cifar", 32, auxiliary=True)
    monkeypatch.setattr(cells.DerivedCell, "call", cell_spy)
    monkeypatch.setattr(network.AuxiliaryHead, "call", head_spy)
    net(tf.zeros((2, 32, 32, 3)), training=True)
    assert net.aux_position == 4 and len(head_inputs) == 1
    np.testing.assert_array_equal(head_inputs[0].numpy(), cell_outputs[4].numpy())


def test_cells_are_named_by_position_and_kind():
    # Reductions at L // 3 and 2L // 3 (DARTS's NetworkCIFAR); checkpoints key the cells by name.
    net = network.FinalNetwork(G["DARTS_V2"], 10, 4, 5)
    assert [cell.name for cell in net.derived_cells] == [
        "cell_0_normal", "cell_1_reduce", "cell_2_normal", "cell_3_reduce", "cell_4_normal"]
