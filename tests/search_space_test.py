import json

import pytest

from stacnas_tf import search_space as ss


def test_cell_has_14_edges_in_darts_order():
    assert ss.num_edges(4) == 14
    endpoints = ss.edge_endpoints(4)
    assert endpoints[:5] == [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert endpoints[-1] == (4, 5)


def test_reduction_positions_at_thirds():
    assert ss.reduction_positions(20) == {6, 13}
    assert ss.reduction_positions(14) == {4, 9}
    assert ss.reduction_positions(8) == {2, 5}


def test_stage1_uses_one_representative_per_group_plus_none():
    space = ss.SearchSpace()
    cell = space.stage1_candidates()
    assert len(cell) == 14
    assert cell[0] == ("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3")


def test_stage2_activates_the_winning_group_per_edge():
    space = ss.SearchSpace()
    winners = ["skip_connect", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3"] * 3 + ["sep_conv_3x3"] * 2
    cell = space.activate(winners)
    assert cell[0] == ("none", "skip_connect")  # a group of one stays one op
    assert cell[1] == ("none", "max_pool_3x3", "avg_pool_3x3")
    assert cell[2] == ("none", "sep_conv_3x3", "sep_conv_5x5")
    assert cell[3] == ("none", "dil_conv_3x3", "dil_conv_5x5")
    stage = ss.stage2_space(space, [winners, winners[::-1]], 20, 14, per_cell=False)
    assert not stage.per_cell and stage.cells[0] == cell and stage.cells[1] == space.activate(winners[::-1])


def test_stage2_per_cell_maps_cells_by_type_and_position():
    space = ss.SearchSpace()
    reps = space.representatives
    winners = [[reps[k % 4]] * 14 for k in range(14)]
    stage = ss.stage2_space(space, winners, 20, 14, per_cell=True)
    assert stage.per_cell and len(stage.cells) == 20
    reductions = ss.reduction_positions(20)
    for k in range(20):
        source = ss.map_cell_index(k, 20, 14)
        assert (source in ss.reduction_positions(14)) == (k in reductions)
        assert stage.cells[k] == space.activate(winners[source])
    assert ss.map_cell_index(0, 20, 14) == 0 and ss.map_cell_index(19, 20, 14) == 13


def test_bad_groups_are_refused():
    with pytest.raises(ValueError, match="unknown op"):
        ss.SearchSpace(groups=(("conv_7x7",),))
    with pytest.raises(ValueError, match="disjoint"):
        ss.SearchSpace(groups=(("skip_connect",), ("skip_connect", "max_pool_3x3")))
    with pytest.raises(ValueError, match="none"):
        ss.SearchSpace(groups=(("none",),))


def test_groups_file(tmp_path, caplog):
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"groups": [["skip_connect"], ["sep_conv_3x3", "dil_conv_3x3"]]}))
    with caplog.at_level("WARNING"):
        assert ss.load_groups(str(path)) == (("skip_connect",), ("sep_conv_3x3", "dil_conv_3x3"))
    # A file naming only some ops is taken as meant, but not silently.
    assert ("leaves out max_pool_3x3, avg_pool_3x3, sep_conv_5x5, dil_conv_5x5 of the DARTS ops: "
            "they are not searched") in caplog.text
    caplog.clear()
    path.write_text(json.dumps({"groups": [list(g) for g in ss.PAPER_GROUPS]}))
    with caplog.at_level("WARNING"):
        ss.load_groups(str(path))
    assert "leaves out" not in caplog.text
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="--groups"):
        ss.load_groups(str(path))
    with pytest.raises(ValueError, match="does not exist"):
        ss.load_groups(str(tmp_path / "missing.json"))
    # Untrusted content: one-line errors, nothing split into characters or recursed into.
    for text in ('{"groups": ["skip_connect"]}', '{"groups": "skip_connect"}',
                 '{"groups": [[1, 2]]}', '{"groups": ' + "[" * 100000 + "]" * 100000 + "}",
                 '{"groups": [["skip_connect"]]] junk'):
        path.write_text(text)
        with pytest.raises(ValueError, match="--groups: .* is not a groups file"):
            ss.load_groups(str(path))


def test_stage_space_round_trip_and_validation():
    space = ss.stage1_space(ss.SearchSpace(), 5, per_cell=True)
    assert ss.StageSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    with pytest.raises(ValueError, match="twice"):
        ss.StageSpace.shared([("none", "skip_connect", "skip_connect")] * 14, [("none", "skip_connect")] * 14)
