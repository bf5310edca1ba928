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


def test_per_cell_mapping_keeps_each_cells_relative_position_by_hand():
    # 20 cells (reductions 6, 13) onto 14 (reductions 4, 9): each normal segment of
    # 6 cells onto one of 4, cell k at position k/6 -> source index int(4 k / 6).
    assert [ss.map_cell_index(k, 20, 14) for k in range(20)] == [
        0, 0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 7, 8, 9, 10, 10, 11, 12, 12, 13]
    # Onto a network whose middle segment is empty (3 cells: reductions 1 and 2),
    # a normal cell takes a normal cell of the source.
    assert [ss.map_cell_index(k, 5, 3) for k in range(5)] == [0, 1, 0, 2, 0]
    with pytest.raises(ValueError, match="cell 20 out of range for 20 cells"):
        ss.map_cell_index(20, 20, 14)


def test_logit_sets_of_cells_shared_and_per_cell():
    shared = ss.stage1_space(ss.SearchSpace(), 5, per_cell=False)
    assert shared.set_names(5) == ("normal", "reduce")
    assert [shared.set_of_cell(k, k in ss.reduction_positions(5)) for k in range(5)] == [
        0, 1, 0, 1, 0]
    per_cell = ss.stage1_space(ss.SearchSpace(), 5, per_cell=True)
    assert len(per_cell.cells) == 5
    assert per_cell.set_names(5) == ("cell_0_normal", "cell_1_reduce", "cell_2_normal",
                                     "cell_3_reduce", "cell_4_normal")
    assert [per_cell.set_of_cell(k, True) for k in range(5)] == [0, 1, 2, 3, 4]


def test_nodes_of_a_cell_from_its_edges():
    # n nodes: 2 + 3 + ... + (n + 1) edges.
    assert [ss.nodes_for_edges(count) for count in (2, 5, 9, 14, 20)] == [1, 2, 3, 4, 5]
    for count in (1, 3, 4, 13, 15):
        with pytest.raises(ValueError, match=f"^{count} edges make no cell"):
            ss.nodes_for_edges(count)


def test_op_table_is_darts_operations():
    # DARTS cnn/operations.py: SepConv(C, C, k, stride, k // 2), DilConv(C, C, k,
    # stride, k - 1, 2), pools of 3, FacConv 7x1 then 1x7.
    table = ss.OP_TABLE
    assert table["max_pool_3x3"] == ss.OpSpec("pool", 3, 1, "max")
    assert table["avg_pool_3x3"] == ss.OpSpec("pool", 3, 1, "avg")
    assert [(table[f"sep_conv_{k}x{k}"].kind, table[f"sep_conv_{k}x{k}"].kernel_size,
             table[f"sep_conv_{k}x{k}"].dilation) for k in (3, 5, 7)] == [
        ("sep_conv", 3, 1), ("sep_conv", 5, 1), ("sep_conv", 7, 1)]
    assert [(table[f"dil_conv_{k}x{k}"].kernel_size, table[f"dil_conv_{k}x{k}"].dilation)
            for k in (3, 5)] == [(3, 2), (5, 2)]
    assert table["conv_7x1_1x7"] == ss.OpSpec("conv_7x1_1x7", 7, 1, "")
    assert table["none"] == ss.OpSpec("none", 1, 1, "") and table["skip_connect"].kind == "skip"
    assert [op for op in ss.OPS if table[op].parameter_free] == [
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"]


def test_full_candidates_are_none_then_every_group_member():
    space = ss.SearchSpace(num_nodes=3)
    edge = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3",
            "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert space.full_candidates() == (edge,) * 9
    assert space.stage1_candidates() == (("none", "skip_connect", "max_pool_3x3",
                                          "sep_conv_3x3", "dil_conv_3x3"),) * 9
    with pytest.raises(ValueError, match="expected 9 winners, got 14"):
        space.activate(["skip_connect"] * 14)
    assert ss.SearchSpace.from_dict(space.to_dict()) == space
    assert ss.SearchSpace.from_dict({"groups": [["skip_connect"]]}).num_nodes == 4


def test_space_and_stage_space_refuse_malformed_candidates():
    with pytest.raises(ValueError, match="non-empty groups"):
        ss.SearchSpace(groups=())
    with pytest.raises(ValueError, match="non-empty groups"):
        ss.SearchSpace(groups=(("skip_connect",), ()))
    with pytest.raises(ValueError, match="twice.*disjoint"):
        ss.SearchSpace(groups=(("max_pool_3x3", "max_pool_3x3"),))
    for nodes in (0, -1):
        with pytest.raises(ValueError, match="num_nodes: expected a positive count"):
            ss.SearchSpace(num_nodes=nodes)
    ss.SearchSpace(num_nodes=1)
    edge = ("none", "skip_connect")
    with pytest.raises(ValueError, match="shared logits need \\(normal, reduce\\) candidates, "
                                         "got 3 sets"):
        ss.StageSpace(cells=((edge,) * 14,) * 3)
    ss.StageSpace(cells=((edge,) * 14,) * 3, per_cell=True)
    for bad in (("skip_connect", "none"), ("none",), ("skip_connect",)):
        with pytest.raises(ValueError, match="must start with `none` and hold an op"):
            ss.StageSpace.shared((bad,) * 14, (edge,) * 14)


def test_registered_ops_are_found_by_name_and_checked():
    assert ss.custom_op("sep_conv_3x3") is None and ss.custom_op("never_registered") is None
    op = ss.CustomOp("probe_op_3x3", lambda channels, stride, name: None)
    ss.add_custom_op(op)
    try:
        assert ss.custom_op("probe_op_3x3") is op
        assert ss.op_names()[-1] == "probe_op_3x3"
    finally:
        ss.remove_custom_op("probe_op_3x3")
    assert ss.custom_op("probe_op_3x3") is None
    for name in ("3x3_op", "my op", "", 7):
        with pytest.raises(ValueError, match="expected an op name like 'se_conv_3x3'"):
            ss.add_custom_op(ss.CustomOp(name, print))
    with pytest.raises(ValueError, match="'skip_connect' is a built-in op"):
        ss.add_custom_op(ss.CustomOp("skip_connect", print))


def test_a_groups_file_may_not_hold_more_groups_than_there_are_ops(tmp_path):
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"groups": [["skip_connect"]] * (len(ss.op_names()) + 1)}))
    with pytest.raises(ValueError, match="is not a groups file"):
        ss.load_groups(str(path))


def test_the_spaces_and_op_records_are_frozen():
    import dataclasses

    space = ss.SearchSpace()
    records = ((space, "num_nodes"), (ss.stage1_space(space, 5, per_cell=False), "per_cell"),
               (ss.OP_TABLE["skip_connect"], "kind"), (ss.CustomOp("probe_op_3x3", print), "name"))
    for record, field in records:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, getattr(record, field))


def test_stage2_needs_a_winner_for_every_edge():
    space = ss.SearchSpace()
    with pytest.raises(ValueError, match="expected 14 winners, got 13"):
        space.activate(["skip_connect"] * 13)
    with pytest.raises(ValueError, match="expected 14 winners, got 15"):
        space.activate(["skip_connect"] * 15)


def test_shared_logits_need_exactly_two_candidate_sets():
    edge = ("none", "skip_connect")
    with pytest.raises(ValueError, match="shared logits need \\(normal, reduce\\) candidates, got 1 "
                                         "sets"):
        ss.StageSpace(cells=((edge,) * 14,))


def test_every_edge_starts_with_none_whatever_op_comes_first():
    # Ops sorting before and after "none" alike.
    edge = ("none", "skip_connect")
    for first in ("avg_pool_3x3", "dil_conv_3x3", "max_pool_3x3", "sep_conv_3x3", "skip_connect"):
        with pytest.raises(ValueError, match="must start with `none` and hold an op"):
            ss.StageSpace.shared(((first, "none"),) * 14, (edge,) * 14)


def test_groups_must_each_be_a_list_of_names():
    # A string among lists (a group of one op written without its brackets) is refused,
    # not read as a group of its letters.
    for groups in ([["skip_connect"], "max_pool_3x3"], ["skip_connect"], [("skip_connect",), 3]):
        with pytest.raises(ValueError, match="groups: expected a list of groups, each a list of op "
                                             "names"):
            ss.check_groups_shape(groups)
    ss.check_groups_shape([["skip_connect"], ("max_pool_3x3", "avg_pool_3x3")])
    # The message shows what was given, cut at 400 characters.
    with pytest.raises(ValueError) as error:
        ss.check_groups_shape("x" * 1000)
    assert len(str(error.value)) == 400 and str(error.value).endswith("xxx")


def test_a_groups_file_of_one_group_per_op_gets_its_real_reason(tmp_path):
    # As many groups as there are op names: not too many, so the file is read and the
    # search space says what is wrong (`none` is not a group).
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"groups": [[op] for op in ss.op_names()]}))
    with pytest.raises(ValueError, match="--groups: .*none"):
        ss.load_groups(str(path))
    path.write_text(json.dumps({"groups": [[op] for op in ss.op_names() if op != "none"]}))
    assert len(ss.load_groups(str(path))) == len(ss.op_names()) - 1


def test_a_groups_file_is_read_up_to_1000001_characters(tmp_path):
    # Leading spaces pad a valid file to a size: one character more and its closing brace
    # is not read.
    text = json.dumps({"groups": [list(g) for g in ss.PAPER_GROUPS]})
    path = tmp_path / "groups.json"
    path.write_text(" " * (1_000_001 - len(text)) + text)
    assert ss.load_groups(str(path)) == ss.PAPER_GROUPS
    path.write_text(" " * (1_000_002 - len(text)) + text)
    with pytest.raises(ValueError, match="is not a groups file"):
        ss.load_groups(str(path))
