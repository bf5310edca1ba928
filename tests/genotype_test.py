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
