import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from stacnas_tf import cells  # noqa: E402
from stacnas_tf import genotype as genotype_lib  # noqa: E402
from stacnas_tf import network  # noqa: E402
from stacnas_tf import ops as ops_lib  # noqa: E402
from stacnas_tf import search_space  # noqa: E402

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


def test_darts_v1_parameter_counts_match_the_reference():
    cifar = _build(G["DARTS_V1"], 10, 36, 20, "cifar", 32)
    assert cifar.parameter_count() == 3_169_414
    imagenet = _build(G["DARTS_V1"], 1000, 48, 14, "imagenet", 64)
    assert imagenet.parameter_count() == 4_510_432


@pytest.mark.parametrize("name", ["DARTS_V2", "STACNAS_CIFAR10"])
def test_parameter_counts_for_other_genotypes(name):
    cifar = _build(G[name], 10, 36, 20, "cifar", 32)
    assert cifar.parameter_count() == _hand_count(G[name], 36, 20, 10, "cifar")
    if name == "DARTS_V2":
        assert cifar.parameter_count() == 3_349_342  # DARTS's published 3.3M model
    imagenet = _build(G[name], 1000, 48, 14, "imagenet", 64)
    assert imagenet.parameter_count() == _hand_count(G[name], 48, 14, 1000, "imagenet")


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
    imagenet = _build(G["DARTS_V2"], 7, 8, 14, "imagenet", 224, auxiliary=True)
    logits, aux = imagenet(tf.zeros([1, 224, 224, 3]), training=True)
    assert logits.shape == (1, 7) and aux.shape == (1, 7)
    with pytest.raises(ValueError, match="auxiliary head needs a map of at least 5x5"):
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
    rng = np.random.RandomState(0)
    x, y = rng.uniform(0, 255, (16, 8, 8, 3)).astype(np.float32), rng.randint(0, 10, 16)
    before = [v.numpy().copy() for v in net.architecture_variables]
    net.train_on_batch(x, y)
    moved = [np.abs(v.numpy() - b).max() for v, b in zip(net.architecture_variables, before)]
    assert min(moved) > 1e-3
    with pytest.raises(ValueError, match="architecture_optimizer"):
        net.compile(keras.optimizers.SGD(0.1))


def test_per_cell_genotypes():
    cells_list = []
    for index in range(3):
        reduction = index in search_space.reduction_positions(3)
        base = G["DARTS_V2"].reduce if reduction else G["DARTS_V2"].normal
        if index == 0:
            base = G["DARTS_V1"].normal
        cells_list.append(genotype_lib.CellGenotype(base.edges, base.concat, reduction=reduction))
    genotype = genotype_lib.Genotype(normal=cells_list[0], reduce=cells_list[1], cells=tuple(cells_list))
    net = _build(genotype, 10, 4, 3, "cifar", 8, auxiliary=False)
    assert net.derived_cells[0].edges == G["DARTS_V1"].normal.edges
    assert net.derived_cells[1].edges == G["DARTS_V2"].reduce.edges
    with pytest.raises(ValueError, match="3 per-cell genotypes; the network has 5"):
        network.FinalNetwork(genotype, 10, 4, 5)


def test_multiply_adds_match_a_hand_count():
    skip = [("skip_connect", 0), ("skip_connect", 1)] * 4
    genotype = genotype_lib.Genotype.from_edges(skip, [2, 3, 4, 5], skip, [2, 3, 4, 5])
    net = network.FinalNetwork(genotype, 10, 4, 3, stem="cifar", auxiliary=False)
    net(tf.zeros([1, 8, 8, 1]))
    stem = 8 * 8 * 9 * 1 * 12
    cell0 = 2 * (64 * 12 * 4)  # two 1x1 preprocessing convs; identity edges are free
    cell1 = 64 * 12 * 8 + 64 * 16 * 8 + 8 * (2 * 16 * 8 * 4)  # 8 FactorizedReduce edges at 4x4
    cell2 = 2 * 16 * 16 * 8 + 16 * 32 * 16 + 8 * (2 * 4 * 16 * 8)
    classifier = 64 * 10
    assert network.multiply_adds(net, (8, 8, 1)) == stem + cell0 + cell1 + cell2 + classifier


# Multiply-adds of one op at 8x8 input, 4 channels, counted by hand from DARTS's
# operations.py: every conv costs output pixels x kernel area x input channels
# per group x output channels; pools, identity and BatchNorm cost nothing.
def _op_hand_count(name, stride, side=8, c=4):
    out = (side // stride) ** 2
    if name == "skip_connect":
        return 0 if stride == 1 else 2 * out * c * (c // 2)  # two 1x1 convs to c/2 each
    if name.endswith("pool_3x3"):
        return 0
    if name == "conv_7x1_1x7":  # 1x7 (stride 1 x s) then 7x1 (stride s x 1), full convs
        return side * (side // stride) * 7 * c * c + out * 7 * c * c
    k = int(name[-1])
    depthwise_pointwise = out * k * k * c + out * c * c
    if name.startswith("sep_conv"):  # the second block runs at stride 1 on the output size
        return 2 * depthwise_pointwise
    return depthwise_pointwise  # dil_conv: one dilated depthwise + pointwise


@pytest.mark.parametrize("name", [op for op in search_space.OPS if op != "none"])
@pytest.mark.parametrize("stride", [1, 2])
def test_multiply_adds_of_every_op_match_a_hand_count(name, stride):
    layer = ops_lib.make_op(name, 4, stride, affine=True, search=False, layer_name=name)
    layer(tf.zeros([1, 8, 8, 4]), training=False)
    assert network.multiply_adds(layer, (8, 8, 4)) == _op_hand_count(name, stride)


def test_multiply_adds_of_darts_v2_on_imagenet_match_the_reference():
    # quark0/darts NetworkImageNet, convolutions and linear layers (docs/reference_numbers.md);
    # DARTS_V2 has stride-1 dilated convs, which TF runs on a space-to-batch input.
    net = _build(G["DARTS_V2"], 1000, 48, 14, "imagenet", 224, auxiliary=True)
    assert network.multiply_adds(net, (224, 224, 3)) == 529_911_552


def test_keras_file_round_trip_restores_every_weight_and_the_compile_config(tmp_path):
    keras.utils.set_random_seed(0)
    net = _build(G["DARTS_V2"], 10, 8, 5, "cifar", 32, auxiliary=True, deformable=True)
    net.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(1e-2),
                aux_weight=0.3, weight_decay=1e-3, grad_clip_norm=2.0,
                architecture_weight_decay=5e-3, label_smoothing=0.1)
    rng = np.random.RandomState(0)
    x, y = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32), rng.randint(0, 10, 8)
    net.fit(x, y, epochs=2, batch_size=4, verbose=0)
    path = str(tmp_path / "net.keras")
    net.save(path)
    loaded = keras.models.load_model(path)
    assert len(loaded.weights) == len(net.weights)
    for saved, restored in zip(net.weights, loaded.weights):
        assert saved.path == restored.path
        np.testing.assert_array_equal(saved.numpy(), restored.numpy(), err_msg=saved.path)
    np.testing.assert_array_equal(net(x, training=False).numpy(), loaded(x, training=False).numpy())
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


def test_config_round_trip():
    net = _build(G["DARTS_V2"], 10, 4, 3, "cifar", 8, deformable=True)
    assert network.FinalNetwork.from_config(net.get_config()).get_config() == net.get_config()
    cell = net.derived_cells[1]
    assert cells.DerivedCell.from_config(cell.get_config()).get_config() == cell.get_config()


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
