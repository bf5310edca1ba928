import json

import pytest

from benchmarks import reproduce_small


def test_tiny_reproduction_end_to_end(tmp_path):
    lines = []
    config = reproduce_small.PRESETS["tiny"]
    result = reproduce_small.reproduce(config, str(tmp_path), progress=lines.append)
    assert [entry["row"] for entry in result["summary"]] == list(reproduce_small.ROWS)
    assert len(result["runs"]) == len(reproduce_small.ROWS) == len(lines)
    by_row = {r["row"]: r for r in result["runs"]}
    assert by_row["random"]["search_seconds"] == 0.0 and by_row["random"]["search"] is None
    for row in reproduce_small.ROWS[1:]:
        assert by_row[row]["search_seconds"] > 0
        assert 0.0 <= by_row[row]["test_error"] <= 1.0
    assert by_row["darts_bi_level_flat"]["search"]["optimization"] == "bi_level"
    assert by_row["one_level_flat"]["search"]["grouping"] == "flat"
    matched = by_row["one_level_grouped_matched"]["search"]
    assert (matched["stage1_cells"], matched["stage2_cells"]) == (3, 4)
    assert not (tmp_path / "one_level_flat" / "seed_0" / "search" / "stage2").exists()
    assert (tmp_path / "one_level_grouped" / "seed_0" / "search" / "stage2" / "result.json").exists()
    table = (tmp_path / "results.md").read_text()
    assert "| darts_bi_level_flat |" in table
    assert json.loads((tmp_path / "results.json").read_text())["summary"] == result["summary"]
    # A rerun reuses every finished run.
    again = reproduce_small.reproduce(config, str(tmp_path), progress=lambda line: None)
    assert again["runs"] == result["runs"]


def test_unknown_row_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--rows"):
        reproduce_small.reproduce(reproduce_small.PRESETS["tiny"], str(tmp_path), rows=["bogus"])
