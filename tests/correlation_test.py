import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import search_space
from stacnas_tf import supernet
from stacnas_tf.analysis import correlate
from stacnas_tf.analysis import correlation

# The paper's table 5 (avg_pool's row restored from the matrix's symmetry).
TABLE5_OPS = ["avg_pool_3x3", "max_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
              "dil_conv_5x5"]
TABLE5 = [
    [1.00, 0.52, -0.03, -0.03, 0.00, -0.04],
    [0.52, 1.00, 0.00, 0.02, -0.13, -0.08],
    [-0.03, 0.00, 1.00, 0.38, 0.15, 0.08],
    [-0.03, 0.02, 0.38, 1.00, 0.11, 0.06],
    [0.00, -0.13, 0.15, 0.11, 1.00, 0.27],
    [-0.04, -0.08, 0.08, 0.06, 0.27, 1.00],
]


def test_streamed_correlation_equals_numpy_and_identical_signals_correlate_one():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 900)) + 5.0  # a large mean tests the centred update
    signals = np.stack([base[0], base[0], 2 * base[0] + 1, base[1], base[1] + 0.5 * base[2]])
    accumulator = correlation.CorrelationAccumulator()
    for chunk in np.array_split(signals, 7, axis=1):
        accumulator.add(chunk)
    result = accumulator.correlation()
    np.testing.assert_allclose(result, np.corrcoef(signals), atol=1e-12)
    np.testing.assert_allclose(np.diag(result), 1.0)
    assert result[0, 1] == pytest.approx(1.0) and result[0, 2] == pytest.approx(1.0)


def test_tf_batch_statistics_match_numpy():
    outputs = [tf.random.normal([2, 4, 4, 3], seed=k) for k in range(3)]
    count, mean, comoments = correlation.batch_statistics(outputs)
    flat = np.stack([o.numpy().ravel() for o in outputs]).astype(np.float64)
    centred = flat - flat.mean(1, keepdims=True)
    assert int(count) == 96
    np.testing.assert_allclose(mean.numpy(), flat.mean(1), atol=1e-6)
    np.testing.assert_allclose(comoments.numpy(), centred @ centred.T, rtol=1e-4)


def test_clustering_the_papers_matrix_gives_the_papers_groups():
    groups = correlation.cluster(TABLE5_OPS, TABLE5, min_correlation=0.2)
    assert groups == search_space.PAPER_GROUPS
    # A high threshold splits every pair; a low one merges the convolutions.
    assert len(correlation.cluster(TABLE5_OPS, TABLE5, min_correlation=0.6)) == 7
    merged = correlation.cluster(TABLE5_OPS, TABLE5, min_correlation=0.1)
    assert ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5") in merged


def test_bad_matrix_and_threshold_are_refused():
    with pytest.raises(ValueError, match="6x6"):
        correlation.cluster(TABLE5_OPS, np.eye(3), 0.2)
    with pytest.raises(ValueError, match="--min_correlation"):
        correlation.cluster(TABLE5_OPS, TABLE5, 1.5)


def test_measure_on_a_supernet_diagonal_is_one_and_grouped_supernets_are_refused():
    space = search_space.SearchSpace()
    flat = search_space.StageSpace.shared(space.full_candidates(), space.full_candidates())
    net = supernet.SearchNetwork(flat, 10, channels=4, num_cells=3, seed=0)
    net(tf.zeros([1, 8, 8, 1]))
    images = tf.data.Dataset.from_tensor_slices(
        (np.random.default_rng(0).normal(size=(24, 8, 8, 1)).astype(np.float32), np.zeros(24))).batch(8)
    result = correlation.measure(net, images, num_images=16)
    assert result["num_images"] == 16 and result["ops"] == TABLE5_OPS[1::-1] + TABLE5_OPS[2:]
    assert len(result["edges"]) == 3 * 14
    for matrix in [result["mean"], result["first_edge_last_cell"]] + [e["correlation"] for e in result["edges"]]:
        matrix = np.array(matrix)
        np.testing.assert_allclose(np.diag(matrix), 1.0)
        np.testing.assert_allclose(matrix, matrix.T, atol=1e-9)
        assert np.all(np.abs(matrix) <= 1.0)
    assert result["edges"][28]["edge"] == "cell_2_reduce/edge_0_2"  # reductions at 1 and 2
    with pytest.raises(ValueError, match="--num_images"):
        correlation.measure(net, images, num_images=1000)
    winners = [["sep_conv_3x3", "max_pool_3x3"] * 7] * 2  # a stage-2 supernet: edges differ
    grouped = supernet.SearchNetwork(search_space.stage2_space(space, winners, 3, 3, False), 10,
                                     channels=4, num_cells=3)
    grouped(tf.zeros([1, 8, 8, 1]))
    with pytest.raises(ValueError, match="same candidates"):
        correlation.measure(grouped, images, num_images=8)


def test_correlate_end_to_end_writes_groups_the_search_accepts(tmp_path):
    config = correlate.flat_config(
        config_lib.PRESETS["smoke"].replace(stage1_epochs=1, num_train_examples=64),
        ["skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3"])
    result = correlate.run(config, str(tmp_path), num_images=64, min_correlation=0.2, verbose=0)
    assert result["ops"] == ["max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3"]
    assert (tmp_path / "correlation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    groups = search_space.load_groups(str(tmp_path / "groups.json"))
    assert groups[0] == ("skip_connect",)
    assert sorted(op for g in groups for op in g) == sorted(["skip_connect"] + result["ops"])
    space = config_lib.PRESETS["smoke"].replace(groups=groups).space
    assert space.stage1_candidates()[0] == ("none",) + tuple(g[0] for g in groups)
    # Measuring the same folder again, as --search_dir, gives the same matrix.
    again = correlate.run(config, str(tmp_path / "again"), num_images=64, search_dir=str(tmp_path),
                          verbose=0)
    np.testing.assert_allclose(again["mean"], result["mean"], atol=1e-6)
