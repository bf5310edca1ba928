"""benchmarks/mutation_tool.py: the scratch folder a stopped run is resumed from."""

import json
import os

import pytest

from benchmarks import mutation_tool as tool

IDENTITY = {"module": "analysis/confusion", "tests": ["tests/confusion_test.py"],
            "survivors_of": None, "selection": True, "fork": True, "timeout": 270.0}


def test_without_a_scratch_dir_each_run_gets_a_temporary_folder():
    scratch, state = tool.module_scratch(None, False, "abc1234", IDENTITY)
    try:
        assert os.path.isdir(scratch) and "mutation-analysis_confusion-" in scratch
        assert state == {"commit": "abc1234", "seconds": 0, "resumed": 0}
    finally:
        os.rmdir(scratch)
    with pytest.raises(ValueError, match="--resume: needs --scratch_dir"):
        tool.module_scratch(None, True, "abc1234", IDENTITY)


def test_a_stopped_run_is_resumed_at_the_commit_it_started_at(tmp_path):
    scratch, state = tool.module_scratch(str(tmp_path), False, "abc1234", IDENTITY)
    assert scratch == str(tmp_path / "analysis_confusion")
    assert json.loads((tmp_path / "analysis_confusion" / "run.json").read_text()) == state
    assert state == {"identity": IDENTITY, "commit": "abc1234", "seconds": 0, "resumed": 0}
    # A second run may not start over it ...
    with pytest.raises(ValueError, match="holds a stopped run of analysis/confusion; pass --resume"):
        tool.module_scratch(str(tmp_path), False, "def5678", IDENTITY)
    # ... nor resume it before its session exists (stopped while measuring).
    with pytest.raises(ValueError, match="holds no stopped run of analysis/confusion"):
        tool.module_scratch(str(tmp_path), True, "def5678", IDENTITY)
    (tmp_path / "analysis_confusion" / "session.sqlite").write_bytes(b"")
    tool.save_state(scratch, {**state, "seconds": 120})
    assert "run.json.tmp" not in os.listdir(scratch)
    again, resumed = tool.module_scratch(str(tmp_path), True, "def5678", IDENTITY)
    assert again == scratch
    assert resumed == {"identity": IDENTITY, "commit": "abc1234", "seconds": 120, "resumed": 1}


@pytest.mark.parametrize("field,value", [("tests", ["tests/other_test.py"]),
                                         ("survivors_of", "abc1234"), ("selection", False),
                                         ("fork", False), ("timeout", 600.0)])
def test_a_run_is_resumed_only_as_it_was_started(tmp_path, field, value):
    tool.module_scratch(str(tmp_path), False, "abc1234", IDENTITY)
    (tmp_path / "analysis_confusion" / "session.sqlite").write_bytes(b"")
    with pytest.raises(ValueError, match="--resume: the run in .* is .*, not"):
        tool.module_scratch(str(tmp_path), True, "abc1234", {**IDENTITY, field: value})


def test_a_workers_copy_of_the_runs_checkout_leaves_out_its_fork_servers_socket(tmp_path):
    import socket

    source = tmp_path / "checkout"
    (source / "stacnas_tf").mkdir(parents=True)
    (source / "stacnas_tf" / "cells.py").write_text("x = 1\n")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(source / tool.FORK_SOCKET))
    try:
        copy = tool.copy_checkout(str(tmp_path / "worker0"), str(source))
    finally:
        server.close()
    assert sorted(os.listdir(copy)) == ["stacnas_tf"]
    assert (tmp_path / "worker0" / "stacnas_tf" / "cells.py").read_text() == "x = 1\n"


def test_a_mutant_is_listed_by_line_operator_occurrence_and_diff():
    item = {"mutations": [{"start_pos": [42, 8], "operator_name": "core/NumberReplacer",
                           "occurrence": 3}]}
    assert tool.mutant_record(item, {"diff": "-a\n+b"}) == {
        "line": 42, "operator": "core/NumberReplacer", "occurrence": 3, "diff": "-a\n+b"}
    # A mutant cosmic-ray could not apply has no diff.
    assert tool.mutant_record(item, {"diff": None})["diff"] == ""
