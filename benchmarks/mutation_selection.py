"""Coverage-based test selection for the mutation tool: a mutant runs only the
tests that execute the line it changes.

A mutant on a line no test executes cannot fail a test, and one on a line that
three tests execute can fail only those three; running the module's whole
test selection for each is most of a run's time (a survivor costs the whole
selection: 2-4 minutes for network, training and exporting). This is what
mutmut 3 and Stryker do ("per-test coverage"). The map comes from coverage.py
with pytest-cov's per-test contexts, measured once on the unmutated checkout
(benchmarks/mutation_tool.py, --coverage_site), twice:
  - as the tests run, and
  - with every tf.function run eagerly (this file loaded as a pytest plugin,
    MUTATION_SELECTION_EAGER=1): Python that AutoGraph converts runs from a
    generated file, so coverage sees it only when nothing is converted.
Lines are measured per statement: a changed line inside a statement that spans
lines takes the tests of the statement's first line too.

Conservative wherever the map cannot tell, so a selection can only leave out
tests that never run the changed line:
  - a line no test runs, or one run while the tests are collected (imports,
    definitions, defaults), runs the module's whole selection;
  - a line run while a test's fixtures are set up adds every test that shares
    one of its module- or session-scoped fixtures defined in the tests (the
    fixture runs once, for the first of them; the others read its result).
Selected tests run fastest first (their seconds in the measuring pass, set-up
included): a mutant that a cheap test kills costs that test, not the slow ones
collected before it (-x stops at the first failure). A module-scoped fixture
runs for whichever of its tests comes first.
"""

from __future__ import annotations

import ast
import difflib
import json
import os

import pytest

SELECTION_ENV = "MUTATION_SELECTION"  # the map's path, read by the test command
ITEMS_ENV = "MUTATION_SELECTION_ITEMS"  # where the plugin writes the collected tests
EAGER_ENV = "MUTATION_SELECTION_EAGER"  # "1": every tf.function runs eagerly
_ITEMS = pytest.StashKey[dict]()


# pytest plugin hooks (active only with `-p benchmarks.mutation_selection`).
def pytest_configure(config):
    del config
    if os.environ.get(EAGER_ENV) == "1":
        import tensorflow as tf
        tf.config.run_functions_eagerly(True)


def pytest_collection_finish(session):
    if not os.environ.get(ITEMS_ENV):
        return
    items = []
    for item in session.items:
        shared = []
        # pytest's public `item.fixturenames` has no scopes; `_fixtureinfo`
        # does (pinned by tests/mutation_selection_test.py's plugin run).
        info = getattr(item, "_fixtureinfo", None)
        for name in (info.names_closure if info else []):
            definitions = info.name2fixturedefs.get(name) or ()
            # pytest's own fixtures (tmp_path_factory, ...) have an empty base id:
            # sharing one of them says nothing about sharing a result.
            if definitions and definitions[-1].scope != "function" and definitions[-1].baseid:
                shared.append(f"{definitions[-1].baseid}::{name}")
        items.append({"nodeid": item.nodeid, "shared": shared, "seconds": 0.0})
    session.config.stash[_ITEMS] = {item["nodeid"]: item for item in items}


def pytest_runtest_makereport(item, call):
    # Timed as they run: set-up, call and tear-down. (None: pytest makes the report.)
    entry = item.config.stash.get(_ITEMS, {}).get(item.nodeid)
    if entry is not None:
        entry["seconds"] += call.duration


def pytest_sessionfinish(session):
    path = os.environ.get(ITEMS_ENV)
    if path and _ITEMS in session.config.stash:
        with open(path, "w") as f:
            json.dump(list(session.config.stash[_ITEMS].values()), f)


def statement_starts(source: str) -> dict[int, int]:
    """line -> first line of the innermost statement holding it."""
    starts = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.stmt):
            body_start = min((child.lineno for field in ("body", "orelse", "finalbody",
                                                         "handlers")
                              for child in getattr(node, field, []) or []),
                             default=node.end_lineno + 1)
            # A compound statement holds its header's lines only; its body's
            # statements hold theirs (ast.walk visits them after it).
            for line in range(node.lineno, min(node.end_lineno, body_start - 1) + 1):
                starts[line] = node.lineno
    return starts


def build(module_path: str, source: str, contexts_by_line: list[dict], items: list[dict],
          test_paths: list[str]) -> dict:
    """The map the test command reads: the unmutated source, line -> contexts
    (from every measuring pass, each line with its statement's first line's),
    the collected tests in order, and the positional test paths to replace."""
    starts = statement_starts(source)
    merged = {}
    for line in range(1, source.count("\n") + 2):
        contexts = set()
        for measured in contexts_by_line:
            contexts.update(measured.get(line, ()))
            contexts.update(measured.get(starts.get(line, line), ()))
        if contexts:
            merged[str(line)] = sorted(contexts)
    # Fastest first; sorted() keeps the collected order among equals.
    items = sorted(items, key=lambda item: item.get("seconds", 0.0))
    return {"module_path": module_path, "source": source, "lines": merged, "items": items, "test_paths": test_paths}


def changed_lines(before: str, after: str) -> set[int]:
    """Lines of `before` that `after` changes or removes (1-based), and the
    line an insertion lands before."""
    changed = set()
    matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(),
                                      autojunk=False)
    for tag, low, high, _, _ in matcher.get_opcodes():
        if tag != "equal":
            changed.update(range(low + 1, max(high, low + 1) + 1))
    return changed


def select(args: list[str], selection: dict, mutated: str) -> list[str]:
    """pytest's arguments for a mutant: the tests that run a changed line,
    fastest first, in place of the test paths; `args` unchanged when
    the map cannot tell (see the module's docstring) or nothing changed
    (the baseline)."""
    changed = changed_lines(selection["source"], mutated)
    if not changed:
        return args
    items = {item["nodeid"]: item for item in selection["items"]}
    chosen = set()
    for line in changed:
        contexts = selection["lines"].get(str(line))
        if not contexts:
            return args
        for context in contexts:
            nodeid, _, phase = context.rpartition("|")
            if nodeid not in items:  # "" (collection) or a test the selection lost
                return args
            chosen.add(nodeid)
            if phase != "run":
                shared = set(items[nodeid]["shared"])
                chosen.update(other for other, item in items.items()
                              if shared.intersection(item["shared"]))
    kept = [arg for arg in args if arg not in selection["test_paths"]]
    return kept + [item["nodeid"] for item in selection["items"] if item["nodeid"] in chosen]


def select_from_environment(args: list[str]) -> list[str]:
    """`select` with the map SELECTION_ENV names and the module as it is on disk
    (mutated, in the current directory's checkout); `args` without a map."""
    path = os.environ.get(SELECTION_ENV)
    if not path:
        return args
    with open(path) as f:
        selection = json.load(f)
    with open(selection["module_path"]) as f:
        return select(args, selection, f.read())
