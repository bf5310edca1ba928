import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import cells
from stacnas_tf import genotype
from stacnas_tf import precision
from stacnas_tf import search_space

import helpers

CELL = search_space.SearchSpace().stage1_candidates()


@pytest.mark.parametrize("reduction,reduction_prev", [(False, False), (True, False), (False, True)])
def test_search_cell_shapes(reduction, reduction_prev):
    cell = cells.SearchCell(CELL, 6, reduction, reduction_prev)
    s0 = tf.random.normal([2, 16 if reduction_prev else 8, 16 if reduction_prev else 8, 10])
    s1 = tf.random.normal([2, 8, 8, 12])
    weights = tf.nn.softmax(tf.zeros([14, 5]))
    out = cell((s0, s1), weights, training=True)
    side = 4 if reduction else 8
    assert tuple(out.shape) == (2, side, side, 4 * 6)  # concat of the 4 nodes
    # One group of edges per state that feeds edges: inputs 0, 1 and nodes 0-2.
    endpoints = search_space.edge_endpoints(4)
    assert [len(edges) for edges in cell.fan_out] == [4, 4, 3, 2, 1]
    for state, (group, edges) in enumerate(zip(cell.edge_groups, cell.fan_out)):
        assert all(endpoints[e][0] == state for e in edges)
        assert group.stride == (2 if reduction and state < 2 else 1)


STAGE2 = (
    ("none", "sep_conv_3x3", "sep_conv_5x5"), ("none", "skip_connect"),
    ("none", "max_pool_3x3", "avg_pool_3x3"), ("none", "dil_conv_3x3", "dil_conv_5x5"),
) * 3 + (("none", "skip_connect"), ("none", "sep_conv_3x3", "sep_conv_5x5"))


@pytest.mark.parametrize("candidates", [CELL, STAGE2], ids=["stage1", "stage2"])
@pytest.mark.parametrize("reduction", [False, True])
def test_each_node_sums_its_incoming_edges(candidates, reduction):
    cell = cells.SearchCell(candidates, 6, reduction, False)
    inputs = (tf.random.normal([2, 8, 8, 10], seed=0), tf.random.normal([2, 8, 8, 12], seed=1))
    width = max(len(edge) for edge in candidates)
    logits = np.array([[np.random.RandomState(e).randn() if k < len(edge) else -1e9
                        for k in range(width)] for e, edge in enumerate(candidates)], np.float32)
    weights = tf.nn.softmax(logits, axis=-1)
    states = cell.states(inputs, weights, training=False)
    outputs = cell.edge_op_outputs(states, training=False)
    endpoints = search_space.edge_endpoints(4)
    for node in range(4):
        expected = sum(
            weights[e, k].numpy() * outputs[e][op].numpy()
            for e, (_, target) in enumerate(endpoints) if target == node + 2
            for k, op in enumerate(candidates[e]) if op != "none"
        )
        np.testing.assert_allclose(states[2 + node].numpy(), expected, atol=1e-4)
    # Each edge computes from the state it reads: the skip edges pass it on.
    for e, (source, _) in enumerate(endpoints):
        if not reduction or source >= 2:
            if "skip_connect" in candidates[e]:
                np.testing.assert_allclose(outputs[e]["skip_connect"].numpy(),
                                           states[source].numpy(), atol=1e-6)


@pytest.mark.parametrize("reduction,reduction_prev", [(False, False), (True, False), (False, True)])
def test_explicit_build_creates_exactly_the_variables_of_a_call(reduction, reduction_prev):
    side0 = 16 if reduction_prev else 8
    inputs = (tf.zeros([1, side0, side0, 10]), tf.zeros([1, 8, 8, 12]))
    weights = tf.nn.softmax(tf.zeros([14, 5]))
    built = cells.SearchCell(CELL, 6, reduction, reduction_prev, name="cell")
    built.build(((None, side0, side0, 10), (None, 8, 8, 12)))
    called = cells.SearchCell(CELL, 6, reduction, reduction_prev, name="cell")
    called(inputs, weights, training=False)
    assert helpers.variable_specs(built) == helpers.variable_specs(called)
    built(inputs, weights, training=False)
    assert helpers.variable_specs(built) == helpers.variable_specs(called)

    edges = genotype.PUBLISHED["STACNAS_CIFAR10"].cell(0, reduction).edges
    derived = [cells.DerivedCell(edges, [2, 3, 4, 5], 6, reduction, reduction_prev, deformable=True,
                                 name="derived") for _ in range(2)]
    derived[0].build(((None, side0, side0, 10), (None, 8, 8, 12)))
    derived[1](inputs, training=False)
    assert helpers.variable_specs(derived[0]) == helpers.variable_specs(derived[1])


@pytest.mark.parametrize("count", [10, 15])
def test_wrong_edge_count_is_refused(count):
    with pytest.raises(ValueError, match="14"):
        cells.SearchCell((CELL * 2)[:count], 6, False, False)


@pytest.mark.parametrize("reduction,side,expected_side", [
    (False, 8, 8), (True, 8, 4), (True, 7, 4), (True, 5, 3), (True, None, None)])
def test_derived_cell_output_shape_matches_its_call(reduction, side, expected_side):
    # DARTS's stride-2 ops give ceil(side / 2); the output concatenates the
    # genotype's `concat` states of `filters` channels each (3 x 5 here).
    edges = genotype.PUBLISHED["DARTS_V2"].cell(0, reduction).edges
    cell = cells.DerivedCell(edges, [2, 4, 5], 5, reduction, False)
    shape = cell.compute_output_shape(((2, side, side, 6), (2, side, side, 7)))
    assert shape == (2, expected_side, expected_side, 15)
    assert cell.output_filters == 15
    if side is not None:
        out = cell((tf.zeros([2, side, side, 6]), tf.zeros([2, side, side, 7])), training=False)
        assert tuple(out.shape) == shape


def test_a_derived_cell_is_plain_unless_asked_to_be_deformable():
    edges = genotype.PUBLISHED["DARTS_V2"].cell(0, False).edges
    plain = cells.DerivedCell(edges, [2, 3, 4, 5], 4, False, False)
    assert plain.get_config()["deformable"] is False
    assert not hasattr(plain, "edge_logits")
    deformable = cells.DerivedCell(edges, [2, 3, 4, 5], 4, False, False, deformable=True)
    # Equal logits give every edge half of its op (none takes the other half).
    np.testing.assert_allclose(deformable.edge_scales().numpy(), np.full(8, 0.5))
    logits = np.zeros((8, 2), np.float32)
    logits[:, 1] = np.log(np.arange(1, 9))  # softmax([0, log k])[1] = k / (k + 1)
    deformable.edge_logits.assign(logits)
    np.testing.assert_allclose(deformable.edge_scales().numpy(),
                               np.arange(1, 9) / np.arange(2, 10), rtol=1e-6)
    # With equal logits every edge carries half its op, so node 0 (the first
    # 4 channels) is half the plain cell's, with the same weights.
    inputs = _states(8, channels=4)
    deformable.build(((None, 8, 8, 4), (None, 8, 8, 4)))
    plain.build(((None, 8, 8, 4), (None, 8, 8, 4)))
    plain.set_weights([w for w, v in zip(deformable.get_weights(), deformable.weights)
                       if "edge_logits" not in v.path])
    deformable.edge_logits.assign(np.zeros((8, 2), np.float32))
    half = deformable(inputs, training=False).numpy()
    full = plain(inputs, training=False).numpy()
    np.testing.assert_allclose(half[..., :4], 0.5 * full[..., :4], rtol=1e-4, atol=1e-5)


def test_edge_scales_stay_float32_under_mixed_precision():
    # The deformable logits and their softmax stay float32 under mixed
    # precision, as the supernet's alpha does; only the product is cast.
    edges = genotype.PUBLISHED["DARTS_V2"].cell(0, False).edges
    with precision.policy_scope("mixed_float16"):
        cell = cells.DerivedCell(edges, [2, 3, 4, 5], 4, False, False, deformable=True)
    seen = []
    scales = cell.edge_scales

    def recording_scales():
        result = scales()
        seen.append(result.dtype)
        return result

    cell.edge_scales = recording_scales
    out = cell(_states(8, channels=4), training=False)
    assert out.dtype == tf.float16
    assert seen == [tf.float32]


def _states(side0, side1=8, channels=6):
    rng = np.random.RandomState(0)
    return (rng.randn(2, side0, side0, channels).astype(np.float32),
            rng.randn(2, side1, side1, channels).astype(np.float32))


def test_search_cell_config_saving_and_training():
    weights = tf.nn.softmax(np.random.RandomState(1).randn(14, 5).astype(np.float32))
    helpers.run_layer_test(
        cells.SearchCell, {"candidates": CELL, "filters": 4, "reduction": True,
                           "reduction_prev": False}, _states(8), (2, 4, 4, 16),
        call=lambda cell, states, training: cell(states, weights, training=training))


@pytest.mark.parametrize("reduction,reduction_prev", [(False, True), (True, False)])
def test_derived_cell_config_saving_and_training(reduction, reduction_prev):
    helpers.run_layer_test(
        cells.DerivedCell, {"edges": genotype.PUBLISHED["STACNAS_CIFAR10"].cell(0, reduction).edges,
                            "concat": [2, 3, 4, 5], "filters": 4, "reduction": reduction,
                            "reduction_prev": reduction_prev, "deformable": True},
        _states(16 if reduction_prev else 8), (2, 4 if reduction else 8, 4 if reduction else 8, 16))


def test_drop_path_config_saving_and_training():
    helpers.run_layer_test(cells.DropPath, {"seed": 1}, _states(8)[0], (2, 8, 8, 6),
                           call=lambda layer, x, training: layer(x, rate=0.5, training=training))


def test_drop_path_drops_whole_samples_and_rescales_the_kept():
    # DARTS's utils.drop_path: x / keep_prob * Bernoulli(keep_prob) per sample.
    layer = cells.DropPath(seed=3)
    x = np.random.RandomState(0).uniform(1.0, 2.0, (4000, 2, 2, 3)).astype(np.float32)
    out = layer(x, rate=0.25, training=True).numpy()
    ratio = out / x
    per_sample = ratio.reshape(len(x), -1)
    assert np.allclose(per_sample, per_sample[:, :1], atol=1e-6)  # whole samples
    dropped = per_sample[:, 0] == 0
    np.testing.assert_allclose(per_sample[~dropped, 0], 1 / 0.75, rtol=1e-5)
    kept = 1.0 - float(np.mean(dropped))
    assert abs(kept - 0.75) < 0.03  # 4000 draws: 3 sigma is 0.021
    np.testing.assert_array_equal(layer(x, rate=0.25, training=False).numpy(), x)
    np.testing.assert_array_equal(layer(x, rate=0.0, training=True).numpy(), x)


@pytest.mark.parametrize("reduction", [False, True])
def test_final_cells_drop_every_edge_but_the_identity_and_learn_their_batch_norm(reduction):
    # DARTS's model.py: drop_path on every op that is not Identity (a stride-2
    # skip is a FactorizedReduce, so it is dropped too); final cells' batch
    # norms are affine, the supernet's are not.
    edges = (("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 1), ("max_pool_3x3", 2),
             ("skip_connect", 2), ("avg_pool_3x3", 0), ("dil_conv_3x3", 3), ("skip_connect", 4))
    cell = cells.DerivedCell(edges, [2, 3, 4, 5], 4, reduction, False)
    cell.build(((None, 8, 8, 4), (None, 8, 8, 4)))
    identity = [op == "skip_connect" and not (reduction and index < 2) for op, index in edges]
    assert [path is None for path in cell.drop_paths] == identity
    norms = [layer for layer in cell._flatten_layers() if type(layer).__name__ == "BatchNorm"]
    assert norms and all(norm.affine for norm in norms)
    search = cells.SearchCell(CELL, 4, reduction, False)
    search.build(((None, 8, 8, 4), (None, 8, 8, 4)))
    search_norms = [layer for layer in search._flatten_layers() if type(layer).__name__ == "BatchNorm"]
    assert search_norms and not any(norm.affine for norm in search_norms)


def test_a_final_node_sums_its_two_edges_over_1x1_preprocessed_inputs():
    # DARTS's Cell: preprocess0/1 are ReLUConvBN(C_prev, C, 1, 1, 0); node i is
    # op_a(state_a) + op_b(state_b); pools in a final cell have no batch norm.
    edges = (("skip_connect", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("avg_pool_3x3", 0),
             ("skip_connect", 1), ("skip_connect", 3), ("max_pool_3x3", 4), ("skip_connect", 2))
    cell = cells.DerivedCell(edges, [2, 3, 4, 5], 4, False, False)
    inputs = _states(8, channels=3)
    out = cell(inputs, training=False).numpy()
    assert cell.preprocess0.conv.kernel.shape == (1, 1, 3, 4)
    assert cell.preprocess1.conv.kernel.shape == (1, 1, 3, 4)
    states = [cell.preprocess0(inputs[0], training=False).numpy(),
              cell.preprocess1(inputs[1], training=False).numpy()]

    def pool(kind, x):
        return (tf.nn.max_pool2d(x, 3, 1, "SAME") if kind == "max" else tf.nn.avg_pool2d(
            tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 1, "VALID") * 9 / tf.nn.avg_pool2d(
            tf.pad(tf.ones_like(x), [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 1, "VALID") / 9).numpy()

    states.append(states[0] + pool("max", states[1]))
    states.append(states[2] + pool("avg", states[0]))
    states.append(states[1] + states[3])
    states.append(pool("max", states[4]) + states[2])
    np.testing.assert_allclose(out, np.concatenate(states[2:], axis=-1), rtol=1e-5, atol=1e-5)
    # Training drops nothing unless given a rate (DARTS starts drop_path_prob at 0).
    np.testing.assert_allclose(cell(inputs, training=True).numpy(),
                               cell(inputs, drop_path_rate=0.0, training=True).numpy())


@pytest.mark.parametrize("num_nodes", [1, 2, 5])
def test_other_node_counts_route_every_edge_to_its_node(num_nodes):
    endpoints = search_space.edge_endpoints(num_nodes)
    candidates = [("none", "skip_connect", "sep_conv_3x3")] * len(endpoints)
    cell = cells.SearchCell(candidates, 4, False, False, num_nodes=num_nodes)
    inputs = (tf.random.normal([2, 8, 8, 6], seed=2), tf.random.normal([2, 8, 8, 6], seed=3))
    # All weight on skip: node j is the sum of the states its edges read.
    weights = tf.one_hot([1] * len(endpoints), 3)
    states = cell.states(inputs, weights, training=False)
    assert len(states) == 2 + num_nodes
    for node in range(num_nodes):
        expected = sum(states[source].numpy() for source, target in endpoints if target == node + 2)
        np.testing.assert_allclose(states[2 + node].numpy(), expected, atol=1e-5)
    out = cell(inputs, weights, training=False)
    assert tuple(out.shape) == (2, 8, 8, 4 * num_nodes)
