"""A tool-made mutation run: cosmic-ray mutates every line of a module, and each
mutant runs against that module's own tests.

  python3 -m venv /tmp/crvenv && /tmp/crvenv/bin/pip install cosmic-ray==8.7.0
  PYTHONPATH=. .venv/bin/python benchmarks/mutation_tool.py \
      --cosmic_ray=/tmp/crvenv/bin/cosmic-ray --workers=2 --modules=cells,sizes \
      --output=benchmarks/results/mutation_tool.json

Why cosmic-ray (not mutmut 3): it applies a mutant to the file on disk and runs
the test command we give it; mutmut 3 forks its own process after running the
tests in it, when TensorFlow's thread pools exist, and they do not survive a
fork. Our test command forks a server that has imported TensorFlow but run no
operation (benchmarks/pytest_forkserver.py), which saves TensorFlow's import
per mutant. cosmic-ray is not a project dependency: install it in a scratch
venv and pass its path.

Each module runs in a copy of the checkout in a scratch folder (the working
tree is never touched) with the tests `MODULES` names for it, stopping at the
first failure (`-x`); a mutant is killed when they fail or exceed the timeout.
A mutant inside an annotation of a module that postpones their evaluation
(`from __future__ import annotations`, e.g. `str | None` made `str % None`) is
never evaluated: it is marked skipped before the run and counted apart
(`equivalent_annotation`), not scored.
With --scratch_dir a stopped run keeps its folder, and --resume goes on with it
(a network or exporting run takes hours on 2 cores).
The JSON holds, per module, the counts, the score and every surviving mutant
(line, operator, diff), which the next step reads: a test that kills it, or a
written reason it is equivalent (docs/testing.md).
"""

from __future__ import annotations

import ast
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from benchmarks import mutation_selection

_COSMIC_RAY = flags.DEFINE_string("cosmic_ray", "cosmic-ray", "The cosmic-ray program.")
_MODULES = flags.DEFINE_list("modules", None, "Modules of MODULES to run (default: all).")
_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/mutation_tool.json",
                              "JSON results (modules already there are kept).")
_TIMEOUT = flags.DEFINE_float("timeout", 270.0, "Seconds one mutant's tests may take (below "
                               "the 300 s an HTTP worker's answer may take).")
_FORK = flags.DEFINE_boolean(
    "fork", True, "Run each mutant's tests in a fork of a process that has imported "
    "TensorFlow already (benchmarks/pytest_forkserver.py; 3-4x faster on small test files); "
    "--nofork starts a fresh Python for each.")
_COVERAGE_SITE = flags.DEFINE_string(
    "coverage_site", None, "A folder holding coverage.py and pytest-cov (`pip install --target "
    "DIR coverage==7.18.0 pytest-cov==7.1.0 --no-deps`): each mutant then runs only the tests "
    "that execute the line it changes (benchmarks/mutation_selection.py). Without it every "
    "mutant runs its module's whole selection.")
_SURVIVORS_ONLY = flags.DEFINE_boolean(
    "survivors_only", False, "Test again only the survivors of each module's run in --output, "
    "counting the mutants it killed as killed: refused unless the module is unchanged since "
    "that run's commit and its test files have only gained lines (a test added cannot make a "
    "failing one pass). For the run after tests are written against survivors.")
_SCRATCH_DIR = flags.DEFINE_string(
    "scratch_dir", None, "Keep each module's run (its checkout copy, session and selection) "
    "in DIR/<module> while it runs, and there after a stopped run, for --resume; removed when "
    "the run ends. Default: a temporary folder, removed however the run ends.")
_RESUME = flags.DEFINE_boolean(
    "resume", False, "Go on with the stopped run in --scratch_dir/<module>: its mutants not yet "
    "tested, in its own checkout copy (the code and tests of the commit it started at, which "
    "the results name), whatever the working tree holds now.")
_WORKERS = flags.DEFINE_integer(
    "workers", 1, "Mutants tested at once, each in its own copy of the checkout with one "
    "thread per TensorFlow kernel and pool (cosmic-ray's HTTP workers); 1 runs them one "
    "after another in this process's checkout copy.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# module -> the tests that should catch a bug in it (a test selection that keeps a
# run to hours, not days, on 2 cores). The TensorFlow-free modules run in
# seconds per mutant; the others pay TensorFlow's start-up for each one.
_NO_XLA = "--deselect=tests/supernet_test.py::test_xla_compiled_step_matches_the_graph_step"
MODULES = {
    "search_space": ["tests/search_space_test.py", "tests/genotype_test.py"],
    "genotype": ["tests/genotype_test.py"],
    "config": ["tests/config_test.py"],
    "dataset_names": ["tests/dataset_names_test.py", "tests/config_test.py"],
    "preprocessing": ["tests/preprocessing_test.py"],
    "mixed_op": ["tests/mixed_op_test.py"],
    # The XLA-compiled step (40 of supernet_test's 95 s) checks the compiler against
    # the graph step that the other tests pin: left out of the mutation runs.
    "one_level": ["tests/one_level_test.py", "tests/supernet_test.py", _NO_XLA],
    "cells": ["tests/cells_test.py"],
    # network_test counts parameters by hand with the formulas that give the reference
    # table's full-size numbers, and pins the stems and each cell's sides and widths, at
    # 5 cells of 4 channels; network_reference_test builds the 16 full-size networks
    # (3 minutes here) that a surviving mutant would otherwise pay for.
    "network": ["tests/network_test.py"],
    # sizes_test holds the reference counts (DARTS_V1 CIFAR, DARTS_V2 ImageNet) and hand
    # counts; network_reference_test repeats them for every published genotype.
    "sizes": ["tests/sizes_test.py"],
    "sources": ["tests/sources_test.py"],
    "folder_datasets": ["tests/folder_datasets_test.py"],
    "augmentation": ["tests/augmentation_test.py"],
    "pipelines": ["tests/pipelines_test.py"],
    "checkpoints": ["tests/checkpoints_test.py"],
    "supernet": ["tests/supernet_test.py", _NO_XLA],
    "resumable": ["tests/resumable_test.py", "tests/training_test.py"],
    # config_effects_test's search fields run the search driver, not training's code.
    "training": ["tests/training_test.py", "tests/config_effects_test.py", "-k",
                 "'not search_field'"],
    "exporting": ["tests/exporting_test.py"],
    "analysis/confusion": ["tests/confusion_test.py"],
    "run_folder": ["tests/run_folder_test.py"],
}


def _annotation_spans(path: str) -> list[tuple]:
    """(start, end) positions of the annotations in `path`, where the module
    postpones their evaluation (`from __future__ import annotations`): a mutant
    inside one is never evaluated, so it is equivalent by construction."""
    with open(path) as f:
        tree = ast.parse(f.read())
    if not any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names)
               for node in tree.body):
        return []
    annotations = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
    return [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in annotations]


FORK_SOCKET = ".pytest-forkserver.sock"  # relative: each checkout's tests reach their own server


def copy_checkout(destination: str, source: str = REPO) -> str:
    """A copy of the checkout `source` to run mutants in (a worker's copy of the
    run's own checkout leaves out the socket of that checkout's fork server)."""
    shutil.copytree(source, destination, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "bazel-*", "__pycache__", "runs", ".device_run", FORK_SOCKET))
    return destination


def _start_forkserver(checkout: str, env: dict) -> subprocess.Popen:
    python = os.path.join(REPO, ".venv", "bin", "python")
    log = os.path.join(checkout, "..", os.path.basename(checkout) + "-forkserver.log")
    with open(log, "w") as output:  # the server keeps its own copy of the descriptor
        server = subprocess.Popen([python, os.path.join(checkout, "benchmarks", "pytest_forkserver.py"),
                                   "serve", FORK_SOCKET], cwd=checkout,
                                  env=dict(env, PYTHONPATH=checkout), stdout=output,
                                  stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(checkout, FORK_SOCKET)):
        if server.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"the pytest fork server for {checkout} did not start; see {log}")
        time.sleep(0.5)
    return server


def _start_workers(scratch: str, count: int, env: dict, source: str) -> tuple[list, list[str]]:
    """cosmic-ray HTTP workers, each applying mutants to a copy of the checkout
    `source` of its own (a mutant is written to the file on disk, so two workers
    cannot share one)."""
    workers, urls = [], []
    for index in range(count):
        destination = os.path.join(scratch, f"worker{index}")
        shutil.rmtree(destination, ignore_errors=True)  # a stopped run's, maybe mid-mutant
        checkout = copy_checkout(destination, source)
        if _FORK.value:
            workers.append(_start_forkserver(checkout, env))
        with socket.socket() as probe:  # a free port, chosen by the kernel
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with open(os.path.join(scratch, f"worker{index}.log"), "w") as output:
            workers.append(subprocess.Popen(
                [_COSMIC_RAY.value, "http-worker", "--port", str(port)], cwd=checkout,
                env=dict(env, PYTHONPATH=checkout), stdout=output, stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:  # wait until each listens, so no mutant is sent into the void
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), 1):
                    break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"cosmic-ray http-worker at {url} did not start; "
                                       f"see {scratch}/worker*.log")
                time.sleep(0.5)
    return workers, urls


_SKIP_SCRIPT = """
import json, sys
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkResult, WorkerOutcome
spans = [tuple(map(tuple, span)) for span in json.loads(sys.argv[2])]
with use_db(sys.argv[1], WorkDB.Mode.open) as db:
    for item in list(db.work_items):
        start = tuple(item.mutations[0].start_pos)
        if any(low <= start < high for low, high in spans):
            db.set_result(item.job_id, WorkResult(output=None, test_outcome=None, diff=None,
                                                  worker_outcome=WorkerOutcome.SKIPPED))
"""


_REUSE_SCRIPT = """
import json, sys
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkResult, WorkerOutcome
survivors = {tuple(key) for key in json.loads(sys.argv[2])}
reused = 0
with use_db(sys.argv[1], WorkDB.Mode.open) as db:
    done = {result[0] for result in db.results}
    for item in list(db.work_items):
        mutation = item.mutations[0]
        key = (mutation.operator_name, mutation.occurrence, mutation.start_pos[0])
        if item.job_id not in done and key not in survivors:
            db.set_result(item.job_id, WorkResult(
                output=sys.argv[3], test_outcome=TestOutcome.KILLED, diff=None,
                worker_outcome=WorkerOutcome.NORMAL))
            reused += 1
print(reused)
"""


def _cosmic_ray_python() -> str:
    """The Python of cosmic-ray's venv, which can open its session database."""
    return os.path.join(os.path.dirname(shutil.which(_COSMIC_RAY.value)), "python")


def _check_rerun(module: str, tests: list[str], previous: dict) -> None:
    """Refuses --survivors_only where a mutant killed before might not be now."""
    # Incompetent mutants are tested again with the survivors where the run listed
    # them; a run that did not list them cannot say which they were.
    unlisted = previous.get("incompetent") and "incompetent_mutants" not in previous
    if previous.get("pending") or unlisted:
        raise ValueError(f"--survivors_only: the {module} run at {previous['commit']} left "
                         "mutants untested; run the module whole.")
    path = os.path.join("stacnas_tf", f"{module}.py")
    changed = subprocess.run(["git", "diff", "--quiet", previous["commit"], "--", path], cwd=REPO)
    if changed.returncode:
        raise ValueError(f"--survivors_only: {path} changed since the run at "
                         f"{previous['commit']}; run the module whole.")
    # The tests' shared helpers too: a helper changed changes the tests using it.
    test_files = [t for t in tests if t.endswith(".py")] + ["tests/helpers.py",
                                                            "tests/conftest.py"]
    numstat = subprocess.run(["git", "diff", "--numstat", previous["commit"], "--", *test_files],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout
    shrunk = [line.split("\t")[2] for line in numstat.splitlines() if line.split("\t")[1] != "0"]
    if shrunk:
        raise ValueError(f"--survivors_only: {', '.join(shrunk)} lost or changed lines since the "
                         f"run at {previous['commit']}; run the module whole.")


def _reuse_killed(session: str, previous: dict) -> int:
    """Marks every mutant that is not a survivor (or an incompetent one) of
    `previous` killed (before the run, so that only those are tested); returns
    their count."""
    keys = [(s["operator"], s["occurrence"], s["line"])
            for s in previous["survivors"] + previous.get("incompetent_mutants", [])]
    output = subprocess.run(
        [_cosmic_ray_python(), "-c", _REUSE_SCRIPT, session, json.dumps(keys),
         f"killed in the run at {previous['commit']} ({previous['date']})"],
        check=True, capture_output=True, text=True).stdout
    return int(output)


def _skip_annotations(session: str, spans: list) -> None:
    """Marks the mutants inside annotations skipped before the run: they are
    never evaluated, so testing them only costs a full test run each (143 of
    pipelines' 484 mutants)."""
    subprocess.run([_cosmic_ray_python(), "-c", _SKIP_SCRIPT, session, json.dumps(spans)],
                   check=True)


def _selection_map(checkout: str, module: str, tests: list[str], env: dict,
                   scratch: str) -> str:
    """Measures which tests run each line of `module` (unmutated; as the tests run
    and with tf.functions eager) and writes the map the test command selects by."""
    python = os.path.join(REPO, ".venv", "bin", "python")
    path = os.path.join(checkout, "stacnas_tf", f"{module}.py")
    env = dict(env, PYTHONPATH=f"{checkout}:{_COVERAGE_SITE.value}")
    passes = []
    for eager in ("0", "1"):
        data_file = os.path.join(scratch, f"coverage-eager{eager}")
        items_file = os.path.join(scratch, "items.json")
        result = subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
             "benchmarks.mutation_selection", f"--cov={os.path.dirname(path)}",
             "--cov-context=test", "--cov-report=", *[t.strip("'") for t in tests]],
            cwd=checkout, capture_output=True, text=True,
            env=dict(env, COVERAGE_FILE=data_file, MUTATION_SELECTION_EAGER=eager,
                     MUTATION_SELECTION_ITEMS=items_file))
        # Eager tf.functions may fail a test that checks tracing; its lines still count.
        if result.returncode not in (0, 1) or (eager == "0" and result.returncode):
            raise RuntimeError(f"measuring coverage for {module} (eager={eager}) failed: "
                               f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        reader = ("import json, sys; from coverage import CoverageData; "
                  "d = CoverageData(basename=sys.argv[1]); d.read(); "
                  "print(json.dumps(d.contexts_by_lineno(sys.argv[2])))")
        measured = subprocess.run([python, "-c", reader, data_file, path], env=env,
                                  capture_output=True, text=True, check=True).stdout
        passes.append({int(line): contexts for line, contexts in json.loads(measured).items()})
    with open(items_file) as f:
        items = json.load(f)
    with open(path) as f:
        source = f.read()
    selection = mutation_selection.build(os.path.join("stacnas_tf", f"{module}.py"), source,
                                         passes, items, [t for t in tests if t.endswith(".py")])
    selection_file = os.path.join(scratch, "selection.json")
    with open(selection_file, "w") as f:
        json.dump(selection, f)
    return selection_file


_STATE = "run.json"  # in a module's scratch folder: what a resumed run goes on with


def module_scratch(scratch_dir: str | None, resume: bool, commit: str,
                   identity: dict) -> tuple[str, dict]:
    """The scratch folder and state of a module's run: a new one (a temporary
    folder without `scratch_dir`), or, with `resume`, the stopped run's there,
    which must be a run of the same `identity` (module, tests, what it reruns,
    how it selects tests). The state names the commit the run started at and
    how long it has run."""
    module = identity["module"]
    if scratch_dir is None:
        if resume:
            raise ValueError("--resume: needs --scratch_dir, where the stopped run was kept.")
        return (tempfile.mkdtemp(prefix=f"mutation-{module.replace('/', '_')}-"),
                {"commit": commit, "seconds": 0, "resumed": 0})
    scratch = os.path.join(os.path.abspath(scratch_dir), module.replace("/", "_"))
    state_file = os.path.join(scratch, _STATE)
    if not resume:
        if os.path.exists(scratch):
            raise ValueError(f"--scratch_dir: {scratch} holds a stopped run of {module}; pass "
                             "--resume to go on with it, or remove it.")
        os.makedirs(scratch)
        state = {"identity": identity, "commit": commit, "seconds": 0, "resumed": 0}
        save_state(scratch, state)
        return scratch, state
    if not (os.path.exists(state_file) and os.path.exists(os.path.join(scratch, "session.sqlite"))):
        raise ValueError(f"--resume: {scratch} holds no stopped run of {module} (no {_STATE} "
                         "and session.sqlite).")
    with open(state_file) as f:
        state = json.load(f)
    if state["identity"] != identity:
        raise ValueError(f"--resume: the run in {scratch} is {state['identity']}, not "
                         f"{identity}.")
    return scratch, {**state, "resumed": state["resumed"] + 1}


def save_state(scratch: str, state: dict) -> None:
    tmp = os.path.join(scratch, _STATE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, os.path.join(scratch, _STATE))


def _run_module(module: str, tests: list[str], previous: dict | None = None) -> dict:
    """cosmic-ray over `module` against `tests`; with `previous` (a run of it),
    only that run's survivors are tested again (--survivors_only)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    identity = {"module": module, "tests": tests,
                "survivors_of": None if previous is None else previous["commit"],
                "selection": bool(_COVERAGE_SITE.value), "fork": _FORK.value,
                "timeout": _TIMEOUT.value}
    scratch, state = module_scratch(_SCRATCH_DIR.value, _RESUME.value, commit, identity)
    resuming = state["resumed"] > 0
    processes = []  # fork servers and HTTP workers, ended with the module
    finished = False
    started = time.time()
    try:
        checkout = os.path.join(scratch, "checkout")
        module_file = os.path.join(checkout, "stacnas_tf", f"{module}.py")
        pristine = os.path.join(scratch, "module.py.orig")
        if not resuming:
            copy_checkout(checkout)
            shutil.copyfile(module_file, pristine)
        else:  # one worker mutates the checkout itself: a stopped run may have left a mutant
            shutil.copyfile(pristine, module_file)
        spans = _annotation_spans(os.path.join(checkout, "stacnas_tf", f"{module}.py"))
        python = os.path.join(REPO, ".venv", "bin", "python")
        pytest_args = f"-x -q -p no:cacheprovider {' '.join(tests)}"
        command = f"{python} -m pytest {pytest_args}"
        if _FORK.value:
            command = f"{python} benchmarks/pytest_forkserver.py run {FORK_SOCKET} -- {pytest_args}"
        env = dict(os.environ, PYTHONPATH=checkout, TF_CPP_MIN_LOG_LEVEL="3")
        distributor = 'name = "local"'
        if _WORKERS.value > 1:
            # One thread per kernel and per pool: the workers share the cores
            # instead of each spreading over all of them.
            env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
        if _COVERAGE_SITE.value:
            selection_file = os.path.join(scratch, "selection.json")
            if not (resuming and os.path.exists(selection_file)):
                selection_file = _selection_map(checkout, module, tests, env, scratch)
            env[mutation_selection.SELECTION_ENV] = selection_file
        if _FORK.value:  # the baseline's, and the local distributor's
            processes.append(_start_forkserver(checkout, env))
        if _WORKERS.value > 1:
            worker_processes, urls = _start_workers(scratch, _WORKERS.value, env, checkout)
            processes.extend(worker_processes)
            distributor = f'name = "http"\n\n[cosmic-ray.distributor.http]\nworker-urls = {urls!r}'
        config = os.path.join(scratch, "cosmic-ray.toml")
        with open(config, "w") as f:
            f.write(f"""[cosmic-ray]
module-path = "stacnas_tf/{module}.py"
timeout = {_TIMEOUT.value}
excluded-modules = []
test-command = "{command}"

[cosmic-ray.distributor]
{distributor}
""")
        session = os.path.join(scratch, "session.sqlite")
        steps = [["init", config, session], ["baseline", config], ["exec", config, session]]
        for step in steps[2:] if resuming else steps:
            result = subprocess.run([_COSMIC_RAY.value, *step], cwd=checkout, env=env,
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"cosmic-ray {step[0]} failed for {module}: "
                                   f"{result.stderr[-2000:]}")
            if step[0] == "init" and spans:
                _skip_annotations(session, spans)
            if step[0] == "init" and previous is not None:
                reused = _reuse_killed(session, previous)
                if reused != previous["killed"]:
                    raise RuntimeError(
                        f"--survivors_only: {reused} mutants of {module} are not survivors of "
                        f"the run at {previous['commit']}, which killed {previous['killed']}: "
                        "they are not the same mutants; run the module whole.")
        dump = subprocess.run([_COSMIC_RAY.value, "dump", session], cwd=checkout, env=env,
                              capture_output=True, text=True, check=True).stdout
        finished = True
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        state["seconds"] += round(time.time() - started)
        if finished or _SCRATCH_DIR.value is None:
            shutil.rmtree(scratch, ignore_errors=True)
        else:  # kept for --resume
            save_state(scratch, state)
    counts = {"killed": 0, "survived": 0, "incompetent": 0, "pending": 0,
              "equivalent_annotation": 0}
    survivors, timed_out, incompetent = [], [], []
    for line in dump.splitlines():
        item, result = json.loads(line)
        if result is None:
            counts["pending"] += 1
            continue
        outcome = result.get("test_outcome")
        if result.get("worker_outcome") == "skipped":
            counts["equivalent_annotation"] += 1  # marked before the run (_skip_annotations)
            continue
        if outcome == "incompetent" or (result.get("worker_outcome") != "normal"
                                         and outcome is None):
            # The mutant could not be applied or tested (cosmic-ray raised), or
            # the worker failed: neither killed nor survived, and not scored.
            counts["incompetent"] += 1
            incompetent.append(mutant_record(item, result))
        elif outcome == "survived":
            mutation = item["mutations"][0]
            start = tuple(mutation["start_pos"])
            if any(low <= start < high for low, high in spans):
                counts["equivalent_annotation"] += 1
                continue
            counts["survived"] += 1
            survivors.append(mutant_record(item, result))
        else:
            counts["killed"] += 1
            if result.get("output") == "timeout":
                # Killed for running past --timeout: a hang, or a slow survivor on a
                # busy machine. Listed, so that they can be told apart.
                timed_out.append(mutant_record(item, result))
    judged = counts["killed"] + counts["survived"]
    rerun = {} if previous is None else {
        "killed_before": previous["killed"],
        "rerun_of": {"commit": previous["commit"], "date": previous["date"],
                     "survived": previous["survived"]}}
    resumed = {"resumed": state["resumed"]} if resuming else {}
    return {"module": f"stacnas_tf/{module}.py", "tests": tests, **counts, **rerun,
            "score": round(counts["killed"] / judged, 4) if judged else None,
            "seconds": state["seconds"], "commit": state["commit"], **resumed,
            "killed_by_timeout": len(timed_out), "timed_out": timed_out,
            "incompetent_mutants": incompetent, "survivors": survivors}


def mutant_record(item: dict, result: dict) -> dict:
    """A mutant as the JSON lists it, from cosmic-ray's dump: where, which
    operator (and its occurrence, which a rerun matches on), and the diff."""
    mutation = item["mutations"][0]
    return {"line": mutation["start_pos"][0], "operator": mutation["operator_name"],
            "occurrence": mutation["occurrence"], "diff": result.get("diff") or ""}


def main(argv):
    del argv
    # A stopped run still ends its workers and removes its checkouts (`finally`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = _MODULES.value or list(MODULES)
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        raise ValueError(f"--modules: unknown {unknown}; expected some of {sorted(MODULES)}.")
    if _COVERAGE_SITE.value and not _FORK.value:
        # The selection is made by the fork server's client (the test command).
        raise ValueError("--coverage_site: needs the fork server; drop --nofork.")
    results = {}
    if os.path.exists(_OUTPUT.value):
        with open(_OUTPUT.value) as f:
            results = json.load(f).get("modules", {})
    if _RESUME.value and len(names) != 1:
        raise ValueError("--resume: name the one module whose stopped run goes on (--modules).")
    for name in names:
        previous = None
        if _SURVIVORS_ONLY.value:
            if name not in results:
                raise ValueError(f"--survivors_only: {_OUTPUT.value} has no run of {name}.")
            previous = results[name]
            _check_rerun(name, MODULES[name], previous)
        print(f"{name}: mutating against {' '.join(MODULES[name])} ...", flush=True)
        results[name] = {**_run_module(name, MODULES[name], previous),
                         "date": datetime.date.today().isoformat(), "workers": _WORKERS.value,
                         "fork": _FORK.value}
        r = results[name]
        print(f"  {r['killed']} killed, {r['survived']} survived, {r['incompetent']} incompetent "
              f"(score {r['score']}), {r['seconds']} s", flush=True)
        tmp = _OUTPUT.value + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"tool": "cosmic-ray", "python": sys.version.split()[0],
                       "modules": results}, f, indent=1)
        os.replace(tmp, _OUTPUT.value)


if __name__ == "__main__":
    app.run(main)
