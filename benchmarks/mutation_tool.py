"""A tool-made mutation run: cosmic-ray mutates every line of a module, and each
mutant runs against that module's own tests.

  python3 -m venv /tmp/crvenv && /tmp/crvenv/bin/pip install cosmic-ray==8.7.0
  PYTHONPATH=. .venv/bin/python benchmarks/mutation_tool.py \
      --cosmic_ray=/tmp/crvenv/bin/cosmic-ray --modules=search_space,genotype,config \
      --output=benchmarks/results/mutation_tool.json

Why cosmic-ray (not mutmut 3): it applies a mutant to the file on disk and runs
the test command as a fresh process, which TensorFlow tolerates; mutmut 3 runs
the tests inside a forked, already-imported process, and TensorFlow's thread
pools do not survive a fork. cosmic-ray is not a project dependency: install it
in a scratch venv and pass its path.

Each module runs in a copy of the checkout in a scratch folder (the working
tree is never touched) with the tests `MODULES` names for it, stopping at the
first failure (`-x`); a mutant is killed when they fail or exceed the timeout.
A survivor inside an annotation of a module that postpones their evaluation
(`from __future__ import annotations`, e.g. `str | None` made `str % None`) is
never evaluated: it is counted apart (`equivalent_annotation`), not scored.
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
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

_COSMIC_RAY = flags.DEFINE_string("cosmic_ray", "cosmic-ray", "The cosmic-ray program.")
_MODULES = flags.DEFINE_list("modules", None, "Modules of MODULES to run (default: all).")
_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/mutation_tool.json",
                              "JSON results (modules already there are kept).")
_TIMEOUT = flags.DEFINE_float("timeout", 300.0, "Seconds one mutant's tests may take.")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# module -> the tests that should catch a bug in it (a test selection that keeps a
# run to hours, not days, on 2 cores). The TensorFlow-free modules run in
# seconds per mutant; the others pay TensorFlow's start-up for each one.
MODULES = {
    "search_space": ["tests/search_space_test.py", "tests/genotype_test.py"],
    "genotype": ["tests/genotype_test.py"],
    "config": ["tests/config_test.py"],
    "dataset_names": ["tests/dataset_names_test.py", "tests/config_test.py"],
    "preprocessing": ["tests/preprocessing_test.py"],
    "mixed_op": ["tests/mixed_op_test.py"],
    "one_level": ["tests/supernet_test.py"],
    "cells": ["tests/cells_test.py"],
    "network": ["tests/network_test.py", "tests/network_reference_test.py"],
    "sizes": ["tests/sizes_test.py", "tests/network_reference_test.py"],
    "sources": ["tests/sources_test.py"],
    "folder_datasets": ["tests/folder_datasets_test.py"],
    "augmentation": ["tests/augmentation_test.py"],
    "pipelines": ["tests/pipelines_test.py"],
    "checkpoints": ["tests/checkpoints_test.py"],
    "supernet": ["tests/supernet_test.py"],
    "resumable": ["tests/training_test.py"],
    "training": ["tests/training_test.py", "tests/config_effects_test.py"],
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


def _run_module(module: str, tests: list[str]) -> dict:
    scratch = tempfile.mkdtemp(prefix=f"mutation-{module.replace('/', '_')}-")
    try:
        checkout = os.path.join(scratch, "checkout")
        shutil.copytree(REPO, checkout, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "bazel-*", "__pycache__", "runs", ".device_run"))
        spans = _annotation_spans(os.path.join(checkout, "stacnas_tf", f"{module}.py"))
        python = os.path.join(REPO, ".venv", "bin", "python")
        command = f"{python} -m pytest -x -q -p no:cacheprovider {' '.join(tests)}"
        config = os.path.join(scratch, "cosmic-ray.toml")
        with open(config, "w") as f:
            f.write(f"""[cosmic-ray]
module-path = "stacnas_tf/{module}.py"
timeout = {_TIMEOUT.value}
excluded-modules = []
test-command = "{command}"

[cosmic-ray.distributor]
name = "local"
""")
        session = os.path.join(scratch, "session.sqlite")
        env = dict(os.environ, PYTHONPATH=checkout, TF_CPP_MIN_LOG_LEVEL="3")
        started = time.time()
        for step in (["init", config, session], ["baseline", config], ["exec", config, session]):
            result = subprocess.run([_COSMIC_RAY.value, *step], cwd=checkout, env=env,
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"cosmic-ray {step[0]} failed for {module}: "
                                   f"{result.stderr[-2000:]}")
        dump = subprocess.run([_COSMIC_RAY.value, "dump", session], cwd=checkout, env=env,
                              capture_output=True, text=True, check=True).stdout
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    counts = {"killed": 0, "survived": 0, "incompetent": 0, "pending": 0,
              "equivalent_annotation": 0}
    survivors = []
    for line in dump.splitlines():
        item, result = json.loads(line)
        if result is None:
            counts["pending"] += 1
            continue
        outcome = result.get("test_outcome")
        if result.get("worker_outcome") != "normal" and outcome is None:
            counts["incompetent"] += 1  # the mutant did not import, or the worker failed
        elif outcome == "survived":
            mutation = item["mutations"][0]
            start = tuple(mutation["start_pos"])
            if any(low <= start < high for low, high in spans):
                counts["equivalent_annotation"] += 1
                continue
            counts["survived"] += 1
            survivors.append({"line": mutation["start_pos"][0],
                              "operator": mutation["operator_name"],
                              "occurrence": mutation["occurrence"],
                              "diff": result.get("diff", "")})
        else:
            counts["killed"] += 1
    judged = counts["killed"] + counts["survived"]
    return {"module": f"stacnas_tf/{module}.py", "tests": tests, **counts,
            "score": round(counts["killed"] / judged, 4) if judged else None,
            "seconds": round(time.time() - started), "survivors": survivors}


def main(argv):
    del argv
    names = _MODULES.value or list(MODULES)
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        raise ValueError(f"--modules: unknown {unknown}; expected some of {sorted(MODULES)}.")
    results = {}
    if os.path.exists(_OUTPUT.value):
        with open(_OUTPUT.value) as f:
            results = json.load(f).get("modules", {})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    for name in names:
        print(f"{name}: mutating against {' '.join(MODULES[name])} ...", flush=True)
        results[name] = {**_run_module(name, MODULES[name]), "commit": commit,
                         "date": datetime.date.today().isoformat()}
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
