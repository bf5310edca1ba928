import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from stacnas_tf import cells  # noqa: E402
from stacnas_tf import genotype  # noqa: E402
from stacnas_tf import search_space  # noqa: E402

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
    assert len(cell.edges) == 14
    strides = [edge.stride for edge in cell.edges]
    assert strides == [2 if reduction and src < 2 else 1 for src, _ in search_space.edge_endpoints(4)]


def _variable_specs(layer):
    return [(v.path, tuple(v.shape)) for v in layer.weights]


@pytest.mark.parametrize("reduction,reduction_prev", [(False, False), (True, False), (False, True)])
def test_explicit_build_creates_exactly_the_variables_of_a_call(reduction, reduction_prev):
    side0 = 16 if reduction_prev else 8
    inputs = (tf.zeros([1, side0, side0, 10]), tf.zeros([1, 8, 8, 12]))
    weights = tf.nn.softmax(tf.zeros([14, 5]))
    built = cells.SearchCell(CELL, 6, reduction, reduction_prev, name="cell")
    built.build(((None, side0, side0, 10), (None, 8, 8, 12)))
    called = cells.SearchCell(CELL, 6, reduction, reduction_prev, name="cell")
    called(inputs, weights, training=False)
    assert _variable_specs(built) == _variable_specs(called)
    built(inputs, weights, training=False)
    assert _variable_specs(built) == _variable_specs(called)

    edges = genotype.PUBLISHED["STACNAS_CIFAR10"].cell(0, reduction).edges
    derived = [cells.DerivedCell(edges, [2, 3, 4, 5], 6, reduction, reduction_prev, deformable=True,
                                 name="derived") for _ in range(2)]
    derived[0].build(((None, side0, side0, 10), (None, 8, 8, 12)))
    derived[1](inputs, training=False)
    assert _variable_specs(derived[0]) == _variable_specs(derived[1])


def test_wrong_edge_count_is_refused():
    with pytest.raises(ValueError, match="14"):
        cells.SearchCell(CELL[:10], 6, False, False)


def test_config_round_trip():
    cell = cells.SearchCell(CELL, 6, True, False, name="c")
    assert cells.SearchCell.from_config(cell.get_config()).get_config() == cell.get_config()
