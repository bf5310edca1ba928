"""benchmarks/mutation_selection.py: which tests a mutant runs."""

import json
import os
import subprocess
import sys
import textwrap

from benchmarks import mutation_selection as sel

import helpers

SOURCE = textwrap.dedent('''\
    import math

    def area(radius, scale=1.0):
        value = math.pi * (
            radius ** 2)
        if value > 10 and (
                radius > 1):
            return value * scale
        return value

    def unused():
        return 0
    ''')
ITEMS = [
    {"nodeid": "tests/a_test.py::test_small", "shared": []},
    {"nodeid": "tests/a_test.py::test_large", "shared": ["tests/a_test.py::model"]},
    {"nodeid": "tests/a_test.py::test_reads_model", "shared": ["tests/a_test.py::model"]},
    {"nodeid": "tests/b_test.py::test_other", "shared": []},
]
SMALL, LARGE, READS, OTHER = (item["nodeid"] for item in ITEMS)
ARGS = ["-x", "-q", "tests/a_test.py", "tests/b_test.py", "-k", "not slow"]


def _selection(contexts):
    return sel.build("m.py", SOURCE, [contexts], ITEMS, ["tests/a_test.py", "tests/b_test.py"])


def _mutant(old, new):
    assert SOURCE.count(old) == 1
    return SOURCE.replace(old, new)


def test_statement_starts_hold_continuation_lines_and_headers_only():
    starts = sel.statement_starts(SOURCE)
    assert starts[4] == starts[5] == 4            # `value = ... (\n radius ** 2)`
    assert starts[6] == starts[7] == 6            # the `if` header's two lines
    assert starts[8] == 8                         # the body belongs to its own statement
    assert starts[3] == 3                         # `def` holds its header only
    assert 2 not in starts and 10 not in starts   # blank lines


def test_changed_lines_of_a_replacement_a_deletion_and_an_insertion():
    before = "a\nb\nc\nd\n"
    assert sel.changed_lines(before, "a\nB\nc\nd\n") == {2}
    assert sel.changed_lines(before, "a\nc\nd\n") == {2}
    assert sel.changed_lines(before, "a\nb\nx\nc\nd\n") == {3}
    assert sel.changed_lines(before, before) == set()


def test_a_mutant_runs_the_tests_of_its_line_in_place_of_the_paths():
    selection = _selection({8: [f"{OTHER}|run", f"{SMALL}|run"]})
    picked = sel.select(ARGS, selection, _mutant("value * scale", "value / scale"))
    # Options kept (-k too), test paths replaced by the tests, in collected order.
    assert picked == ["-x", "-q", "-k", "not slow", SMALL, OTHER]


def test_the_fastest_tests_run_first():
    timed = [dict(item, seconds=seconds) for item, seconds in zip(ITEMS, (3.0, 0.5, 9.0, 0.5))]
    selection = sel.build("m.py", SOURCE, [{8: [f"{n}|run" for n in (SMALL, LARGE, READS, OTHER)]}],
                          timed, ["tests/a_test.py", "tests/b_test.py"])
    # Equal times keep their collected order.
    assert sel.select(ARGS, selection, _mutant("value * scale", "value / scale"))[4:] == [
        LARGE, OTHER, SMALL, READS]


def test_a_continuation_line_takes_its_statements_tests():
    selection = _selection({4: [f"{LARGE}|run"], 6: [f"{SMALL}|run"]})
    assert sel.select(ARGS, selection, _mutant("radius ** 2", "radius ** 3"))[-1:] == [LARGE]
    assert sel.select(ARGS, selection, _mutant("radius > 1", "radius >= 1"))[-1:] == [SMALL]


def test_what_the_map_cannot_tell_runs_the_whole_selection():
    # A line no test runs (a mutant there may only be seen by code AutoGraph ran
    # from a generated file), one run at import (a default), and no change at all.
    selection = _selection({8: [f"{SMALL}|run"], 3: [""]})
    assert sel.select(ARGS, selection, _mutant("return 0", "return 1")) == ARGS
    assert sel.select(ARGS, selection, _mutant("scale=1.0", "scale=2.0")) == ARGS
    assert sel.select(ARGS, selection, SOURCE) == ARGS
    # A test that the collection no longer has.
    gone = _selection({8: ["tests/a_test.py::test_gone|run"]})
    assert sel.select(ARGS, gone, _mutant("value * scale", "value / scale")) == ARGS
    # Two lines changed, one of them unknown: the whole selection.
    both = _mutant("value * scale", "value / scale").replace("return 0", "return 1")
    assert sel.select(ARGS, selection, both) == ARGS


def test_a_line_run_by_a_shared_fixture_runs_every_test_sharing_it():
    selection = _selection({8: [f"{LARGE}|setup"]})
    picked = sel.select(ARGS, selection, _mutant("value * scale", "value / scale"))
    assert picked[4:] == [LARGE, READS]
    # Run in a test's own body: that test only.
    selection = _selection({8: [f"{LARGE}|run"]})
    assert sel.select(ARGS, selection, _mutant("value * scale", "value / scale"))[4:] == [LARGE]


def test_the_test_command_reads_the_map_and_the_module_on_disk(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text(_mutant("value * scale", "value - scale"))
    (tmp_path / "map.json").write_text(json.dumps(_selection({8: [f"{READS}|run"]})))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(sel.SELECTION_ENV, raising=False)
    assert sel.select_from_environment(ARGS) == ARGS
    monkeypatch.setenv(sel.SELECTION_ENV, str(tmp_path / "map.json"))
    assert sel.select_from_environment(ARGS)[4:] == [READS]


def test_the_plugin_records_collected_tests_and_their_shared_fixtures(tmp_path):
    # A real pytest run: the order, -k's deselection, the seconds, and which fixtures
    # are shared (module scope, defined in the tests) rather than pytest's own.
    (tmp_path / "x_test.py").write_text(textwrap.dedent('''\
        import time

        import pytest

        @pytest.fixture(scope="module")
        def model(tmp_path_factory):
            return 1

        @pytest.fixture
        def fresh():
            return 2

        def test_b(model): time.sleep(0.2)
        def test_a(fresh, tmp_path): pass
        def test_slow(model): pass
        '''))
    items_file = tmp_path / "items.json"
    env = dict(os.environ, PYTHONPATH=helpers.REPO, **{sel.ITEMS_ENV: str(items_file)})
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                    "benchmarks.mutation_selection", "-k", "not slow", "x_test.py"],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    items = json.loads(items_file.read_text())
    assert [(item["nodeid"], item["shared"]) for item in items] == [
        ("x_test.py::test_b", ["x_test.py::model"]),
        ("x_test.py::test_a", []),
    ]
    assert items[0]["seconds"] >= 0.2 > items[1]["seconds"]
