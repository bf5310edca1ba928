import json

import numpy as np
import pytest

from stacnas_tf import genotype as g
from stacnas_tf import search_space as ss

STAGE1 = ss.SearchSpace().stage1_candidates()  # none, skip, max_pool, sep3, dil3


def _weights(rows):
    return np.asarray(rows, dtype=np.float64)


def test_derivation_keeps_two_strongest_edges_and_ignores_none():
    w = np.full((14, 5), 0.1)
    w[:, 0] = 0.9  # `none` is the largest everywhere, and must be ignored
    # node 0 (edges 0, 1): both kept; edge 0 -> sep3, edge 1 -> skip
    w[0, 3], w[1, 1] = 0.5, 0.4
    # node 1 (edges 2, 3, 4): edges 4 (max_pool) and 2 (dil3) win
    w[4, 2], w[2, 4], w[3, 3] = 0.6, 0.5, 0.2
    cell = g.derive_cell(STAGE1, w)
    assert cell.edges[:4] == (("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 2), ("dil_conv_3x3", 0))
    assert cell.concat == (2, 3, 4, 5)


def test_derivation_ties_go_to_earlier_edge_and_op():
    w = np.full((14, 5), 0.2)  # every op and edge tied
    cell = g.derive_cell(STAGE1, w)
    for node in range(4):
        assert cell.edges[2 * node: 2 * node + 2] == (("skip_connect", 0), ("skip_connect", 1))


def test_derivation_with_stage2_candidates_of_varying_width():
    cell_candidates = tuple([("none", "sep_conv_3x3", "sep_conv_5x5")] * 7 + [("none", "skip_connect")] * 7)
    weights = [[0.2, 0.3, 0.5]] * 7 + [[0.1, 0.9]] * 7
    cell = g.derive_cell(cell_candidates, weights)
    assert cell.edges[0] == ("sep_conv_5x5", 0)
    assert g.strongest_ops(cell_candidates, weights) == ["sep_conv_5x5"] * 7 + ["skip_connect"] * 7


def _softmax(logits):
    e = np.exp(np.asarray(logits, np.float64) - np.max(logits))
    return e / e.sum()


def test_stage2_ranking_does_not_depend_on_group_size():
    # Stage 2: skip edges search `none` + skip (2 candidates), the others `none` + 2 ops.
    sep, skip = ("none", "sep_conv_3x3", "sep_conv_5x5"), ("none", "skip_connect")
    candidates = (sep, skip, sep, sep, skip, skip, sep, sep, sep, skip, sep, sep, sep, skip)
    # Equal logits: every edge scores the same, so each node keeps its first two inputs.
    uniform = [_softmax(np.zeros(len(edge))) for edge in candidates]
    scores = {round(g.edge_strength(edge, w, 3)[0], 12) for edge, w in zip(candidates, uniform)}
    assert scores == {round(1 / 3, 12)}
    cell = g.derive_cell(candidates, uniform)
    assert [index for _, index in cell.edges] == [0, 1, 0, 1, 0, 1, 0, 1]
    assert cell.edges[2:4] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))
    # A skip edge wins a rank only when its logits beat the others': at equal
    # op-vs-none margins both score the same (ties go to the earlier edge) ...
    margin = [_softmax([0.0, 1.0, 1.0]), _softmax([0.0, 1.0])]
    a, b = (g.edge_strength(edge, w, 3)[0] for edge, w in zip((sep, skip), margin))
    assert a == pytest.approx(b)
    # ... and with a larger margin the skip edge ranks first.
    assert g.edge_strength(skip, _softmax([0.0, 1.5]), 3)[0] > a
    # Edges of equal size are ranked by their op's softmax weight, as DARTS does.
    assert g.edge_strength(sep, [0.2, 0.3, 0.5], 3) == (0.5, "sep_conv_5x5")


def test_per_cell_derivation():
    stage = ss.stage1_space(ss.SearchSpace(), 3, per_cell=True)
    weights = []
    for k, op_index in enumerate((3, 2, 4)):
        w = np.full((14, 5), 0.1)
        w[:, op_index] = 0.5
        weights.append(w)
    genotype = g.derive_genotype(stage, weights, 3)
    assert len(genotype.cells) == 3
    assert [c.reduction for c in genotype.cells] == [False, True, True]  # 3 cells: reductions at 1, 2
    assert {op for op, _ in genotype.cells[0].edges} == {"sep_conv_3x3"}
    assert {op for op, _ in genotype.cells[1].edges} == {"max_pool_3x3"}
    assert {op for op, _ in genotype.cells[2].edges} == {"dil_conv_3x3"}
    assert genotype.cell(1, True) == genotype.cells[1]
    restored = g.Genotype.from_json(genotype.to_json())
    assert restored == genotype


def test_shared_derivation_uses_normal_and_reduce_sets():
    stage = ss.stage1_space(ss.SearchSpace(), 5, per_cell=False)
    normal, reduce = np.full((14, 5), 0.1), np.full((14, 5), 0.1)
    normal[:, 3], reduce[:, 2] = 0.6, 0.6
    genotype = g.derive_genotype(stage, [normal, reduce], 5)
    assert genotype.cells is None
    assert {op for op, _ in genotype.normal.edges} == {"sep_conv_3x3"}
    assert {op for op, _ in genotype.reduce.edges} == {"max_pool_3x3"}
    assert genotype.cell(0, False) == genotype.normal and genotype.cell(1, True) == genotype.reduce


@pytest.mark.parametrize("name", sorted(g.PUBLISHED))
def test_json_and_darts_text_round_trips(name):
    genotype = g.PUBLISHED[name]
    assert g.Genotype.from_json(genotype.to_json()) == genotype
    assert g.Genotype.from_darts(genotype.to_darts()) == genotype
    assert json.loads(genotype.to_json())["version"] == g.VERSION


def test_published_stacnas_cifar10_matches_the_paper_figures():
    genotype = g.resolve("STACNAS_CIFAR10")
    assert genotype.normal.edges[:2] == (("sep_conv_3x3", 1), ("skip_connect", 0))
    assert genotype.reduce.edges[-2:] == (("dil_conv_5x5", 3), ("sep_conv_5x5", 0))


def test_reads_darts_text_with_range_concat(tmp_path):
    text = g.PUBLISHED["DARTS_V2"].to_darts().replace("[2, 3, 4, 5]", "range(2, 6)")
    assert g.resolve(text) == g.PUBLISHED["DARTS_V2"]
    path = tmp_path / "cell.txt"
    path.write_text(text + "\n")
    assert g.resolve(str(path)) == g.PUBLISHED["DARTS_V2"]
    path = tmp_path / "cell.json"
    path.write_text(g.PUBLISHED["DARTS_V1"].to_json())
    assert g.resolve(str(path)) == g.PUBLISHED["DARTS_V1"]


def test_graph_is_picture_ready():
    graph = g.PUBLISHED["DARTS_V2"].to_graph()
    normal = graph["normal"]
    assert len(normal["nodes"]) == 7 and len(normal["edges"]) == 8 + 4
    assert normal["edges"][0] == {"source": "c_{k-2}", "target": "0", "op": "sep_conv_3x3"}
    assert "digraph" in g.PUBLISHED["DARTS_V2"].to_dot()


def test_bad_genotypes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="neither a published"):
        g.resolve("NO_SUCH_GENOTYPE")
    with pytest.raises(ValueError, match="input index 5"):
        g.Genotype.from_edges([("sep_conv_3x3", 5)] * 8, [2, 3, 4, 5], [("skip_connect", 0)] * 8, [2, 3, 4, 5])
    with pytest.raises(ValueError, match="unknown op"):
        g.resolve(g.PUBLISHED["DARTS_V1"].to_darts().replace("sep_conv_3x3", "conv_9x9"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        g.resolve(str(bad))
    bad.write_text(json.dumps({"format": g.FORMAT, "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        g.resolve(str(bad))
    bad.write_text(json.dumps({"format": g.FORMAT, "version": 1, "normal": []}))
    with pytest.raises(ValueError, match="malformed|expected 2 edges"):
        g.resolve(str(bad))
    with pytest.raises(ValueError, match="DARTS genotype text"):
        g.resolve("Genotype(normal=[('sep_conv_3x3', 0)")


def _json_with(**changes):
    value = json.loads(g.PUBLISHED["DARTS_V2"].to_json())
    value.update(changes)
    return json.dumps(value)


@pytest.mark.parametrize("text,message", [
    (_json_with(version=0), "version 0"),
    (_json_with(version=-5), "version -5"),
    (_json_with(version=True), "version True"),
    (_json_with(cells=[]), "cells"),
    (_json_with(cells="abc"), "cells"),
    (_json_with(normal_concat=[2, 2, 2, 2, 2]), "distinct intermediate nodes"),
    (_json_with(normal_concat=[0, 1]), "distinct intermediate nodes"),
    (_json_with(normal_concat=list(range(50))), "at most 16"),
    (_json_with(normal=[{"op": "sep_conv_3x3", "input": 1.7}] * 8), "integer input"),
    (_json_with(normal=[{"op": "sep_conv_3x3", "input": True}] * 8), "integer input"),
    (_json_with(normal=[{"op": "sep_conv_3x3", "input": "1"}] * 8), "integer input"),
    (_json_with(normal=[{"op": 3, "input": 0}] * 8), "op name"),
    (_json_with().replace('"input": 0', '"input": Infinity', 1), "not a finite number: Infinity"),
    (_json_with().replace('"input": 0', '"input": 1e400', 1), "integer input"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_untrusted_genotype_json_gives_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message) as error:
        g.Genotype.from_json(text, source="--genotype file x.json")
    assert str(error.value).startswith("--genotype file x.json: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("concat", ["range(0, 30000000)", "range(2, 10**12)", "range(2, 6, 1, 1)",
                                    "[" * 50000 + "]" * 50000])
def test_untrusted_darts_text_is_bounded_before_it_is_expanded(concat):
    text = g.PUBLISHED["DARTS_V2"].to_darts().replace("reduce_concat=[2, 3, 4, 5]",
                                                      f"reduce_concat={concat}")
    with pytest.raises(ValueError, match="DARTS genotype text|states") as error:
        g.Genotype.from_darts(text, source="--genotype")
    assert len(str(error.value)) < 300


def test_random_genotypes_are_valid_seeded_and_varied():
    space = ss.SearchSpace()
    first = g.random_genotype(space, 0)
    assert first == g.random_genotype(space, 0)
    assert first != g.random_genotype(space, 1)
    ops = {op for group in space.groups for op in group}
    for cell in (first.normal, first.reduce):
        assert len(cell.edges) == 8
        for node in range(4):
            (op_a, a), (op_b, b) = cell.edges[2 * node: 2 * node + 2]
            assert a != b and 0 <= a < 2 + node and 0 <= b < 2 + node
            assert op_a in ops and op_b in ops
    # Round trips like any genotype.
    assert g.Genotype.from_json(first.to_json()) == first


def test_cell_to_dot_names_every_edge():
    cell = g.PUBLISHED["DARTS_V2"].normal
    dot = g.cell_to_dot(cell, "normal")
    assert dot.startswith("digraph cell {") and 'label="normal"' in dot
    assert dot.count('[label="sep_conv_3x3"]') == 5 and dot.count("-> \"c_{k}\"") == 4
    # Inputs and output drawn with real subscripts, not the literal "c_{k-2}".
    assert '"c_{k-2}" [label=<c<SUB>k-2</SUB>>' in dot and '[label=<c<SUB>k</SUB>>' in dot
    assert '"0" [label="0"' in dot



def _mutations(text, rng, count):
    """Random byte-level edits of a valid file: deletions, duplications,
    substitutions with JSON / Python syntax characters and digits."""
    alphabet = list('[]{}(),:"\'0123456789-.eE ') + ["Infinity", "NaN", "true", "null", "range("]
    for _ in range(count):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            position = rng.randint(0, len(chars))
            kind = rng.randint(0, 3)
            if kind == 0 and chars:
                del chars[min(position, len(chars) - 1)]
            elif kind == 1:
                chars.insert(position, alphabet[rng.randint(0, len(alphabet))])
            else:
                start = rng.randint(0, len(chars))
                chars[position:position] = chars[start:start + rng.randint(1, 40)]
        yield "".join(chars)


@pytest.mark.parametrize("form", ["json", "darts"])
def test_fuzzed_genotype_files_parse_or_give_one_line_errors(form):
    rng = np.random.RandomState(0)
    valid = g.PUBLISHED["AMOEBANET"]
    text = valid.to_json() if form == "json" else valid.to_darts()
    parse = g.Genotype.from_json if form == "json" else g.Genotype.from_darts
    outcomes = {"parsed": 0, "refused": 0}
    for mutated in _mutations(text, rng, 400):
        try:
            genotype = parse(mutated, source="--genotype")
        except ValueError as e:
            message = str(e)
            assert message.startswith("--genotype") and "\n" not in message and len(message) < 600
            outcomes["refused"] += 1
        else:
            # What parses is a genotype every part of the project accepts.
            assert g.Genotype.from_json(genotype.to_json()) == genotype
            assert all(2 <= i < cell.num_nodes + 2 for cell in (genotype.normal, genotype.reduce)
                       for i in cell.concat)
            outcomes["parsed"] += 1
    assert outcomes["refused"] > 100 and outcomes["parsed"] > 0


def test_fuzzed_groups_files_load_or_give_one_line_errors(tmp_path):
    rng = np.random.RandomState(1)
    text = json.dumps({"groups": [list(group) for group in ss.PAPER_GROUPS]})
    path = tmp_path / "groups.json"
    refused = 0
    for mutated in _mutations(text, rng, 300):
        path.write_text(mutated)
        try:
            groups = ss.load_groups(str(path))
        except ValueError as e:
            assert str(e).startswith("--groups") and "\n" not in str(e)
            refused += 1
        else:
            assert ss.SearchSpace(groups=groups).groups == groups
    assert refused > 100


# The published genotypes as their authors' code holds them, verbatim (reference
# data): NASNet, AmoebaNet, DARTS_V1/V2 and PC-DARTS from yuhuixu1993/PC-DARTS
# genotypes.py (commit 283b086; NASNet, AmoebaNet and DARTS as in quark0/darts
# cnn/genotypes.py), P-DARTS from chenxin061/pdarts genotypes.py (commit b1575e1).
AUTHORS_TEXT = {
    "NASNET": """Genotype(
  normal = [
    ('sep_conv_5x5', 1),
    ('sep_conv_3x3', 0),
    ('sep_conv_5x5', 0),
    ('sep_conv_3x3', 0),
    ('avg_pool_3x3', 1),
    ('skip_connect', 0),
    ('avg_pool_3x3', 0),
    ('avg_pool_3x3', 0),
    ('sep_conv_3x3', 1),
    ('skip_connect', 1),
  ],
  normal_concat = [2, 3, 4, 5, 6],
  reduce = [
    ('sep_conv_5x5', 1),
    ('sep_conv_7x7', 0),
    ('max_pool_3x3', 1),
    ('sep_conv_7x7', 0),
    ('avg_pool_3x3', 1),
    ('sep_conv_5x5', 0),
    ('skip_connect', 3),
    ('avg_pool_3x3', 2),
    ('sep_conv_3x3', 2),
    ('max_pool_3x3', 1),
  ],
  reduce_concat = [4, 5, 6],
)""",
    "AMOEBANET": """Genotype(
  normal = [
    ('avg_pool_3x3', 0),
    ('max_pool_3x3', 1),
    ('sep_conv_3x3', 0),
    ('sep_conv_5x5', 2),
    ('sep_conv_3x3', 0),
    ('avg_pool_3x3', 3),
    ('sep_conv_3x3', 1),
    ('skip_connect', 1),
    ('skip_connect', 0),
    ('avg_pool_3x3', 1),
    ],
  normal_concat = [4, 5, 6],
  reduce = [
    ('avg_pool_3x3', 0),
    ('sep_conv_3x3', 1),
    ('max_pool_3x3', 0),
    ('sep_conv_7x7', 2),
    ('sep_conv_7x7', 0),
    ('avg_pool_3x3', 1),
    ('max_pool_3x3', 0),
    ('max_pool_3x3', 1),
    ('conv_7x1_1x7', 0),
    ('sep_conv_3x3', 5),
  ],
  reduce_concat = [3, 4, 6]
)""",
    "DARTS_V1": "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",  # noqa: E501
    "DARTS_V2": "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",  # noqa: E501
    "PC_DARTS_CIFAR10": "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))",  # noqa: E501
    "PC_DARTS_IMAGENET": "Genotype(normal=[('skip_connect', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_5x5', 2), ('max_pool_3x3', 1), ('sep_conv_3x3', 2), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 3)], reduce_concat=range(2, 6))",  # noqa: E501
    "PDARTS": "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))",  # noqa: E501
}


@pytest.mark.parametrize("name", sorted(AUTHORS_TEXT))
def test_published_genotypes_are_their_authors_text(name):
    assert g.PUBLISHED[name] == g.Genotype.from_darts(AUTHORS_TEXT[name])
    assert g.PUBLISHED[name].normal.reduction is False and g.PUBLISHED[name].reduce.reduction


def test_ties_go_to_the_earlier_edge_and_the_earlier_op_as_in_darts():
    # DARTS's _parse: edges sorted (stably) by their best non-none weight, ops
    # picked by a strict `>` over candidates in order.
    assert g.strongest_ops([("none", "max_pool_3x3", "avg_pool_3x3")], [[0.2, 0.4, 0.4]]) == [
        "max_pool_3x3"]
    # The order of the candidates decides, not the names' (a tie broken by name
    # would pick sep_conv_5x5 and max_pool_3x3 here).
    assert g.strongest_ops([("none", "sep_conv_3x3", "sep_conv_5x5"),
                            ("none", "avg_pool_3x3", "max_pool_3x3")],
                           [[0.2, 0.4, 0.4], [0.2, 0.4, 0.4]]) == ["sep_conv_3x3", "avg_pool_3x3"]
    candidates = (("none", "sep_conv_3x3", "sep_conv_5x5"),) * 14
    cell = g.derive_cell(candidates, [[1 / 3] * 3] * 14)
    assert cell.edges == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1)) * 4
    # A later edge wins only when strictly stronger.
    weights = [[1 / 3] * 3] * 14
    weights[4] = [0.3, 0.3, 0.4]  # node 1's third edge (input 2)
    assert g.derive_cell(candidates, weights).edges[2:4] == (("sep_conv_5x5", 2),
                                                             ("sep_conv_3x3", 0))


def test_an_edge_with_fewer_candidates_is_scored_as_if_padded_by_hand():
    # none + skip at equal logits: 1/2 each; padded to 3 candidates with the op's
    # geometric mean (0.5), the skip weight is 0.5 / (1 + 0.5) = 1/3, as a
    # 3-candidate edge at equal logits.
    assert g.edge_strength(("none", "skip_connect"), [0.5, 0.5], 3) == (
        pytest.approx(1 / 3), "skip_connect")
    assert g.edge_strength(("none", "sep_conv_3x3", "sep_conv_5x5"), [0.2, 0.3, 0.5], 3) == (
        0.5, "sep_conv_5x5")
    # Two ops on a 4-wide set: filler sqrt(0.3 * 0.5); 0.5 / (1 + filler).
    strength, op = g.edge_strength(("none", "sep_conv_3x3", "sep_conv_5x5"), [0.2, 0.3, 0.5], 4)
    assert op == "sep_conv_5x5" and strength == pytest.approx(0.5 / (1 + np.sqrt(0.15)))


def test_per_cell_derivation_names_the_first_normal_and_reduction_cells():
    space = ss.SearchSpace()
    stage = ss.stage1_space(space, 5, per_cell=True)
    weights = []
    for k in range(5):  # cell k prefers representative k % 4 on every edge
        w = np.full((14, 5), 0.1)
        w[:, 1 + k % 4] = 0.6
        weights.append(w.tolist())
    genotype = g.derive_genotype(stage, weights, 5)
    reps = space.representatives
    assert [c.edges[0][0] for c in genotype.cells] == [reps[k % 4] for k in range(5)]
    assert [c.reduction for c in genotype.cells] == [False, True, False, True, False]
    assert genotype.normal == genotype.cells[0] and genotype.reduce == genotype.cells[1]


def test_random_genotypes_are_seeded_and_inside_the_space():
    space = ss.SearchSpace(groups=(("skip_connect",), ("sep_conv_3x3", "dil_conv_3x3")))
    first = g.random_genotype(space, 3)
    assert first == g.random_genotype(space, 3) and first != g.random_genotype(space, 4)
    for cell in (first.normal, first.reduce):
        assert cell.concat == (2, 3, 4, 5)
        for node in range(4):
            (_, a), (_, b) = cell.edges[2 * node: 2 * node + 2]
            assert 0 <= a < b < node + 2  # two distinct earlier states, in order
        assert {op for op, _ in cell.edges} <= {"skip_connect", "sep_conv_3x3", "dil_conv_3x3"}
    seen = {op for seed in range(20) for op, _ in g.random_genotype(space, seed).normal.edges}
    assert seen == {"skip_connect", "sep_conv_3x3", "dil_conv_3x3"}
    assert not first.normal.reduction and first.reduce.reduction


def test_graph_and_dot_name_states_as_the_cell_diagrams_do():
    cell = g.PUBLISHED["DARTS_V2"].normal
    graph = g.PUBLISHED["DARTS_V2"].to_graph()["normal"]
    assert [n["id"] for n in graph["nodes"]] == ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"]
    assert [n["kind"] for n in graph["nodes"]] == ["input"] * 2 + ["intermediate"] * 4 + ["output"]
    assert graph["edges"][:8] == [
        {"source": {0: "c_{k-2}", 1: "c_{k-1}"}.get(i, str(i - 2)), "target": str(p // 2),
         "op": op} for p, (op, i) in enumerate(cell.edges)]
    assert graph["edges"][7] == {"source": "0", "target": "3", "op": "dil_conv_3x3"}
    assert graph["edges"][8:] == [{"source": s, "target": "c_{k}", "op": "concat"}
                                  for s in ("0", "1", "2", "3")]
    dot = g.cell_to_dot(cell, "t")
    assert '"0" -> "3" [label="dil_conv_3x3"];' in dot and '"3" -> "c_{k}";' in dot
    assert '"c_{k-2}" [label=' in dot and "shape=box" in dot and '"0" [label=' in dot
    assert dot.count("shape=ellipse") == 4 and dot.count("shape=box") == 3


@pytest.mark.parametrize("edges,concat,message", [
    ([("skip_connect", 0)] * 34, (2,), "^genotype: expected a list of at most 32 \\(op, input\\) edges"),
    ([("skip_connect", 0)] * 3, (2,), "^genotype: expected 2 edges per node, got 3 edges.$"),
    ([], (2,), "^genotype: expected 2 edges per node, got 0 edges.$"),
    ([("skip_connect", 0), ("skip_connect", 2)], (2,),
     "^genotype: edge 1 \\('skip_connect', 2\\) of node 0 has input index 2; expected 0..1.$"),
    ([("skip_connect", 0), ("skip_connect", -1)], (2,), "input index -1; expected 0..1.$"),
    ([("skip_connect", 0), ("skip_connect", 1)], (3,),
     "^genotype: concat \\[3\\] must name distinct intermediate nodes 2..2.$"),
    ([("skip_connect", 0), ("skip_connect", 1)], (2, 2), "concat \\[2, 2\\] must name distinct"),
    ([("skip_connect", 0), ("skip_connect", 1)], (), "concat \\[\\] must name distinct"),
    ([("skip_connect", 0), ("skip_connect", 1)], tuple(range(2, 20)),
     "^genotype: expected concat as a list of at most 16 integer states"),
    ([("none", 0), ("skip_connect", 1)], (2,), "^genotype: `none` cannot be a chosen op.$"),
])
def test_cell_genotype_refusals_name_the_problem(edges, concat, message):
    with pytest.raises(ValueError, match=message):
        g.CellGenotype(tuple(edges), concat)


def test_the_largest_cells_and_inputs_are_accepted():
    g.CellGenotype((("skip_connect", 0),) * 32, tuple(range(2, 18)))  # 16 nodes
    cell = g.CellGenotype((("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 2),
                           ("skip_connect", 1)), (2, 3))
    assert cell.num_nodes == 2 and cell.edges[2] == ("skip_connect", 2)
    assert g.PUBLISHED["DARTS_V2"].cell(7, True) == g.PUBLISHED["DARTS_V2"].reduce
    per_cell = g.Genotype(normal=cell, reduce=g.CellGenotype(cell.edges, cell.concat, True),
                          cells=(cell,) * 3)
    assert per_cell.cell(2, True) == cell
    with pytest.raises(ValueError, match="genotype has 3 per-cell genotypes; cell 3 requested"):
        per_cell.cell(3, False)


def test_a_genotype_file_of_exactly_the_size_bound_is_read_and_one_more_character_refused(
        tmp_path):
    text = g.PUBLISHED["DARTS_V2"].to_darts()
    path = tmp_path / "genotype.txt"
    path.write_text(text + " " * (g.MAX_TEXT - len(text)))
    assert g.resolve(str(path)) == g.PUBLISHED["DARTS_V2"]
    path.write_text(text + " " * (g.MAX_TEXT + 1 - len(text)))
    with pytest.raises(ValueError, match=f"a DARTS genotype text of {g.MAX_TEXT + 1} characters; "
                                         f"expected at most {g.MAX_TEXT}"):
        g.resolve(str(path))


def test_cell_genotype_bounds_on_inputs_and_concat():
    edges = g.PUBLISHED["DARTS_V2"].normal.edges  # 4 nodes: states 0..5
    with pytest.raises(ValueError, match="must name distinct intermediate nodes 2..5"):
        g.CellGenotype(edges, (2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="must name distinct intermediate nodes 2..5"):
        g.CellGenotype(edges, (2, 3, 4, 9))
    # Node 0 reads states 0 and 1 only: 2 (itself) and 3 (a later node) are refused.
    for index in (2, 3):
        with pytest.raises(ValueError, match=f"node 0 has input index {index}; expected 0..1"):
            g.CellGenotype((("sep_conv_3x3", index),) + edges[1:], (2, 3, 4, 5))


def test_published_stacnas_cifar10_is_the_authors_figures_edge_by_edge():
    # Read by eye from the StacNAS authors' repository (susan0199/StacNAS at a3c00dd,
    # images/cifar10_normal.png and images/cifar10_reduce.png): node k's two inputs, as
    # DARTS numbers states (0: c_{k-2}, 1: c_{k-1}, j + 2: node j).
    figures = g.Genotype.from_darts(
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 2), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 2), "
        "('sep_conv_3x3', 0)], normal_concat=[2, 3, 4, 5], "
        "reduce=[('skip_connect', 1), ('max_pool_3x3', 0), ('dil_conv_5x5', 2), "
        "('avg_pool_3x3', 0), ('dil_conv_5x5', 3), ('avg_pool_3x3', 0), ('dil_conv_5x5', 3), "
        "('sep_conv_5x5', 0)], reduce_concat=[2, 3, 4, 5])")
    assert g.PUBLISHED["STACNAS_CIFAR10"] == figures


def test_the_bounds_are_a_million_characters_and_a_thousand_cells():
    # The numbers themselves, not the constants: a test written with g.MAX_TEXT moves with it.
    text = g.PUBLISHED["DARTS_V2"].to_darts()
    assert g.Genotype.from_darts(text + " " * (1_000_000 - len(text))) == g.PUBLISHED["DARTS_V2"]
    with pytest.raises(ValueError, match="a DARTS genotype text of 1000001 characters; expected at "
                                         "most 1000000"):
        g.Genotype.from_darts(text + " " * (1_000_001 - len(text)))
    normal, reduce = g.PUBLISHED["DARTS_V2"].normal, g.PUBLISHED["DARTS_V2"].reduce
    value = g.Genotype(normal=normal, reduce=reduce, cells=(normal,) * 1000).to_dict()
    assert len(g.Genotype.from_dict(value).cells) == 1000
    value["cells"] = value["cells"][:1]
    assert len(g.Genotype.from_dict(value).cells) == 1
    for cells in ([], [value["cells"][0]] * 1001):
        with pytest.raises(ValueError, match="\"cells\" must be null or a list of 1 to 1000 cell "
                                             "genotypes"):
            g.Genotype.from_dict({**value, "cells": cells})


def test_cell_genotypes_are_frozen_and_read_as_normal_cells_by_default():
    import dataclasses

    cell = g.PUBLISHED["DARTS_V2"].normal
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.reduction = True
    entry = cell.to_dict()
    del entry["reduction"]
    assert g.CellGenotype.from_dict(entry).reduction is False


def test_an_input_index_message_names_the_nodes_own_range():
    edges = list(g.PUBLISHED["DARTS_V2"].normal.edges)
    edges[2] = ("sep_conv_3x3", 3)  # node 1 reads states 0..2
    with pytest.raises(ValueError, match="node 1 has input index 3; expected 0..2"):
        g.CellGenotype(tuple(edges), (2, 3, 4, 5))


def test_a_cell_past_the_per_cell_genotypes_is_refused_by_name():
    cell = g.PUBLISHED["DARTS_V2"].normal
    per_cell = g.Genotype(normal=cell, reduce=g.PUBLISHED["DARTS_V2"].reduce, cells=(cell,) * 3)
    for index in (3, 4, 10):
        with pytest.raises(ValueError, match=f"3 per-cell genotypes; cell {index} requested"):
            per_cell.cell(index, False)


def test_unknown_json_fields_are_named_five_at_most():
    value = {**g.PUBLISHED["DARTS_V2"].to_dict(), **{f"extra{k}": 1 for k in range(6)}}
    with pytest.raises(ValueError) as error:
        g.Genotype.from_dict(value)
    assert "['extra0', 'extra1', 'extra2', 'extra3', 'extra4']; expected" in str(error.value)


def test_from_json_points_a_dict_to_from_dict_and_nothing_else():
    with pytest.raises(ValueError, match=r"from_json takes JSON text, got dict \(use "
                                         r"Genotype.from_dict for a dict\)\.$"):
        g.Genotype.from_json({"format": g.FORMAT})
    with pytest.raises(ValueError, match=r"from_json takes JSON text, got int\.$"):
        g.Genotype.from_json(5)


@pytest.mark.parametrize("call", ["Foo", "Zeta", "genotype"])
def test_darts_text_must_call_genotype(call):
    text = g.PUBLISHED["DARTS_V2"].to_darts().replace("Genotype(", f"{call}(", 1)
    with pytest.raises(ValueError, match=r"expected Genotype\(\.\.\.\)"):
        g.Genotype.from_darts(text)


def test_darts_text_must_hold_the_four_fields_exactly():
    text = g.PUBLISHED["DARTS_V2"].to_darts()
    missing = text.replace(", reduce_concat=[2, 3, 4, 5])", ")")
    extra = text[:-1] + ", cells=None)"
    for bad in (missing, extra):
        with pytest.raises(ValueError, match=r"expected the fields \['normal', 'normal_concat', "
                                             r"'reduce', 'reduce_concat'\]"):
            g.Genotype.from_darts(bad)


def test_range_in_darts_text_takes_one_or_two_bounds_and_at_most_16_states():
    text = g.PUBLISHED["DARTS_V2"].to_darts()
    for concat in ("range()", "range(1, 2, 3)"):
        with pytest.raises(ValueError, match=r"range\(\) takes one or two integers here"):
            g.Genotype.from_darts(text.replace("normal_concat=[2, 3, 4, 5]", f"normal_concat={concat}"))
    # One bound is a range all the same (from 0, which no cell concatenates).
    with pytest.raises(ValueError, match="concat \\[0, 1, 2, 3, 4, 5\\] must name distinct"):
        g.Genotype.from_darts(text.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(6)"))
    with pytest.raises(ValueError, match=r"range\(\) of 17 states; a cell has at most 16"):
        g.Genotype.from_darts(text.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 19)"))


def test_short_reprs_are_cut_at_80_characters():
    assert g._short("x" * 78) == "'" + "x" * 78 + "'"  # a repr of 80 characters
    assert g._short("x" * 79) == "'" + "x" * 79 + "..."
    assert g._short("x" * 10, limit=5) == "'xxxx..."


def test_a_three_node_cell_concatenates_its_three_nodes():
    candidates = STAGE1[:9]  # 3 nodes: 2 + 3 + 4 edges
    weights = _weights([[0.1, 0.2, 0.3, 0.2, 0.2]] * 9)
    cell = g.derive_cell(candidates, weights, num_nodes=3)
    assert cell.concat == (2, 3, 4) and len(cell.edges) == 6


def test_an_edge_of_two_candidates_among_four_wide_is_padded_to_four():
    # Equal logits: one op of four candidates' worth scores 1/4, as the padded edge would.
    weight, op = g.edge_strength(("none", "skip_connect"), [0.5, 0.5], width=4)
    assert (weight, op) == (pytest.approx(0.25), "skip_connect")


def test_an_op_weight_that_underflowed_to_zero_is_scored_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weight, op = g.edge_strength(("none", "skip_connect", "max_pool_3x3"), [0.5, 0.5, 0.0],
                                     width=4)
    assert op == "skip_connect" and 0.49 < weight <= 0.5


def test_derive_genotype_reads_four_node_cells_by_default():
    space = ss.stage1_space(ss.SearchSpace(), 5, per_cell=False)
    weights = [_weights([[0.1, 0.3, 0.2, 0.2, 0.2]] * 14)] * 2
    genotype = g.derive_genotype(space, weights, 5)
    assert genotype.normal.concat == (2, 3, 4, 5) and len(genotype.reduce.edges) == 8


def test_published_name_finds_a_genotype_by_value():
    for name, genotype in g.PUBLISHED.items():
        assert g.published_name(g.Genotype.from_json(genotype.to_json())) == name
    assert g.published_name(g.random_genotype(ss.SearchSpace(), seed=0)) is None


def test_concat_names_intermediate_nodes_only_and_range_is_the_only_call():
    edges = g.PUBLISHED["DARTS_V2"].normal.edges
    for concat in ((1, 2, 3, 4, 5), (0, 2, 3, 4, 5)):
        with pytest.raises(ValueError, match="must name distinct intermediate nodes 2..5"):
            g.CellGenotype(edges, concat)
    # Python 2's xrange (old genotype files) is not read as range.
    text = g.PUBLISHED["DARTS_V2"].to_darts().replace("normal_concat=[2, 3, 4, 5]",
                                                      "normal_concat=xrange(2, 6)")
    with pytest.raises(ValueError, match="not a DARTS genotype text"):
        g.Genotype.from_darts(text)


def test_none_is_told_by_value_in_files_and_in_candidates_built_at_run_time():
    # JSON strings are not interned: "none" read from a file is refused like the literal.
    value = g.PUBLISHED["DARTS_V2"].to_dict()
    value["normal"][0]["op"] = "none"
    with pytest.raises(ValueError, match="`none` cannot be a chosen op"):
        g.Genotype.from_json(json.dumps(value))
    none = "".join(["no", "ne"])  # equal to "none", another object
    edge = (none, "skip_connect", "max_pool_3x3")
    assert g.strongest_ops((edge,), _weights([[0.9, 0.04, 0.06]])) == ["max_pool_3x3"]
    assert g.edge_strength(edge, [0.9, 0.04, 0.06], width=3)[1] == "max_pool_3x3"


def test_derive_genotype_reads_each_cell_kind_from_its_own_candidates_and_marks_it():
    normal = (("none", "skip_connect"),) * 14
    reduce = (("none", "max_pool_3x3"),) * 14
    space = ss.StageSpace.shared(normal, reduce)
    weights = [_weights([[0.5, 0.5]] * 14)] * 2
    genotype = g.derive_genotype(space, weights, 5)
    assert {op for op, _ in genotype.normal.edges} == {"skip_connect"}
    assert {op for op, _ in genotype.reduce.edges} == {"max_pool_3x3"}
    assert genotype.normal.reduction is False and genotype.reduce.reduction is True


def test_genotype_json_is_version_1_indented_by_two_and_the_record_frozen():
    import dataclasses

    genotype = g.PUBLISHED["DARTS_V2"]
    text = genotype.to_json()
    assert text.startswith('{\n  "format": "stacnas_tf.genotype",\n  "version": 1,\n')
    value = json.loads(text)
    value["version"] = 2
    with pytest.raises(ValueError, match="genotype version 2 is not supported; this stacnas_tf "
                                         "reads versions up to 1"):
        g.Genotype.from_dict(value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        genotype.cells = None
    assert g.CellGenotype(genotype.normal.edges, genotype.normal.concat).reduction is False


def test_an_edge_is_exactly_an_op_and_an_input():
    edges = list(g.PUBLISHED["DARTS_V2"].normal.edges)
    edges[0] = ("sep_conv_3x3", 0, 1)
    with pytest.raises(ValueError, match="expected edges as \\(op name, integer input\\)"):
        g.CellGenotype(tuple(edges), (2, 3, 4, 5))


def test_short_reprs_of_short_values_are_whole():
    assert g._short("ab") == "'ab'" and g._short([1, 2]) == "[1, 2]"


def test_a_range_of_16_states_is_expanded():
    # 16 states is the bound: expanded, then refused as a concat of a 4-node cell.
    text = g.PUBLISHED["DARTS_V2"].to_darts().replace("normal_concat=[2, 3, 4, 5]",
                                                      "normal_concat=range(2, 18)")
    with pytest.raises(ValueError, match="must name distinct intermediate nodes 2..5"):
        g.Genotype.from_darts(text)


def test_random_genotypes_of_three_node_cells_concatenate_three_nodes():
    genotype = g.random_genotype(ss.SearchSpace(num_nodes=3), seed=0)
    assert genotype.normal.concat == (2, 3, 4) and genotype.reduce.concat == (2, 3, 4)


def test_a_genotype_file_that_is_not_text_is_refused_by_name(tmp_path):
    path = tmp_path / "genotype.bin"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=f"--genotype file {path} is not text"):
        g.resolve(str(path))


def test_random_genotypes_reach_every_earlier_state():
    # Node 2 of a cell reads any two of states 0..3: over seeds, states 2 and 3 appear.
    inputs = {index for seed in range(20)
              for _, index in g.random_genotype(ss.SearchSpace(), seed).normal.edges[4:6]}
    assert inputs == {0, 1, 2, 3}


def test_dot_labels_every_op_edge_and_draws_both_cells():
    genotype = g.PUBLISHED["STACNAS_CIFAR10"]  # avg_pool_3x3 and dil_conv_5x5 sort before "concat"
    dot = genotype.to_dot()
    assert "subgraph cluster_normal {" in dot and "subgraph cluster_reduce {" in dot
    assert dot.count('[label="avg_pool_3x3"]') == 2 and dot.count('[label="dil_conv_5x5"]') == 3


def test_only_range_is_called_in_darts_text():
    text = g.PUBLISHED["DARTS_V2"].to_darts()
    for call in ("max(2, 6)", "abs(2, 6)"):
        with pytest.raises(ValueError, match="not a DARTS genotype text"):
            g.Genotype.from_darts(text.replace("normal_concat=[2, 3, 4, 5]", f"normal_concat={call}"))


def test_derive_cell_derives_a_normal_cell_unless_told():
    weights = _weights([[0.1, 0.3, 0.2, 0.2, 0.2]] * 14)
    assert g.derive_cell(STAGE1, weights).reduction is False
    assert g.derive_cell(STAGE1, weights, reduction=True).reduction is True


def test_genotype_dicts_without_the_format_are_refused():
    value = g.PUBLISHED["DARTS_V2"].to_dict()
    del value["format"]
    for bad in (value, [1, 2], "text"):
        with pytest.raises(ValueError, match="not a genotype JSON"):
            g.Genotype.from_dict(bad)
