"""How soon a search's architecture weights depend on the CPU thread count, in
this project and in the StacNAS authors' code, at the same setting.

Each run is stage 1 of the default setting (Fashion-MNIST 16x16, a 5-cell C=8
supernet, batch 64, alpha's Adam at --arch_lr, no warm-up) for --steps steps,
once with 1 and once with 2 intra-op threads, same seed; the table compares the
two runs' stage-1 logits (centred per edge): their correlation, and on how many
of the 14 edges they rank the same op first. Implementations:

- `project`: `stacnas_tf.search` with `weight_init="keras"` (Glorot-uniform
  kernels, zero biases);
- `project_pytorch_init`: the same with `weight_init="pytorch"` (every
  convolution and dense weight from U(+-1/sqrt(fan_in)), as PyTorch starts
  them: the authors' code's start);
- `project_pytorch_init_eigen`: the same with oneDNN off
  (`TF_ENABLE_ONEDNN_OPTS=0`: TensorFlow's Eigen kernels);
- `authors`, `authors_glorot`: `benchmarks/authors_stage1.py` (the authors'
  model and one-level update, PyTorch in a venv of its own, never a project
  dependency) with PyTorch's default initialisation, or Glorot's.

Runs already in --output_dir are kept; it fetches nothing.

  PYTHONPATH=. python benchmarks/thread_sensitivity.py --output_dir=runs/threads \\
      --authors_dir=/path/to/StacNAS --torch_python=/path/to/venv/bin/python \\
      --seeds=0,1,2 --results=benchmarks/results/thread_sensitivity
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from absl import app
from absl import flags

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/threads", "One JSON per run.")
_AUTHORS_DIR = flags.DEFINE_string("authors_dir", None, "A local copy of susan0199/StacNAS.")
_TORCH_PYTHON = flags.DEFINE_string("torch_python", None, "A Python with PyTorch.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_STEPS = flags.DEFINE_integer("steps", 30, "Stage-1 steps.")
_ARCH_LR = flags.DEFINE_float("arch_lr", 3e-2, "Alpha's Adam rate.")
_IMPLEMENTATIONS = flags.DEFINE_list(
    "implementations", ["project", "project_pytorch_init", "authors", "authors_glorot"], "Which.")
_RESULTS = flags.DEFINE_string("results", None, "PATH.json and PATH.md")
# Internal: run one project search in this process and write its logits.
_ONE = flags.DEFINE_string("one", None, "(internal) OUTPUT.json: one project run.")
_ONE_SEED = flags.DEFINE_integer("one_seed", 0, "(internal)")
_ONE_INIT = flags.DEFINE_string("one_init", "keras", "(internal) keras or pytorch")


def _one_project_run(output, seed, init):
    import stacnas_tf
    from stacnas_tf import config as config_lib

    config = dataclasses.replace(config_lib.PRESETS["default"], steps_per_epoch=_STEPS.value,
                                 stage1_epochs=1, stage2_epochs=1, arch_warmup_epochs=0,
                                 arch_lr=_ARCH_LR.value, seed=seed, weight_init=init)
    result = stacnas_tf.search("fashion_mnist", config=config,
                               output_dir=tempfile.mkdtemp(prefix="threads-"), verbose=0)
    last = result.history["stage1"][-1]
    with open(output, "w") as f:
        json.dump({"logits": last["logits"], "loss": last["loss"]}, f)


def _run(implementation, seed, threads, path):
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    if implementation.endswith("_eigen"):
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    if implementation.startswith("project"):
        init = "pytorch" if implementation.startswith("project_pytorch_init") else "keras"
        command = [sys.executable, os.path.abspath(__file__), f"--one={path}",
                   f"--one_seed={seed}", f"--one_init={init}", f"--steps={_STEPS.value}",
                   f"--arch_lr={_ARCH_LR.value}"]
    else:
        command = [_TORCH_PYTHON.value,
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "authors_stage1.py"),
                   f"--authors_dir={_AUTHORS_DIR.value}", "--regime=custom", f"--seeds={seed}",
                   f"--steps_per_epoch={_STEPS.value}", "--epochs=1", f"--alpha_lr={_ARCH_LR.value}",
                   "--lr_schedule=step", f"--threads={threads}", f"--output={path}",
                   f"--init={'glorot' if implementation == 'authors_glorot' else 'pytorch'}"]
    subprocess.run(command, env=env, check=True, capture_output=True)


def _logits(path, cell):
    with open(path) as f:
        value = json.load(f)
    if "runs" in value:  # the authors' script: softmax weights; log gives logits up to a shift
        logits = np.log(np.array(value["runs"][0]["history"][-1][cell]["weights"]))
    else:
        logits = np.array(value["logits"][cell])
    return logits - logits.mean(axis=1, keepdims=True)


def main(argv):
    del argv
    if _ONE.value:
        _one_project_run(_ONE.value, _ONE_SEED.value, _ONE_INIT.value)
        return
    os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
    rows = []
    for implementation in _IMPLEMENTATIONS.value:
        for seed in map(int, _SEEDS.value):
            paths = [os.path.join(_OUTPUT_DIR.value, f"{implementation}_s{seed}_t{threads}.json")
                     for threads in (1, 2)]
            for threads, path in zip((1, 2), paths):
                if not os.path.exists(path):
                    _run(implementation, seed, threads, path)
            row = {"implementation": implementation, "seed": seed}
            for cell in ("normal", "reduce"):
                one, two = (_logits(path, cell) for path in paths)
                row[cell] = {"correlation": round(float(np.corrcoef(one.ravel(), two.ravel())[0, 1]), 3),
                             "same_first_op": int((one.argmax(1) == two.argmax(1)).sum()),
                             "edges": int(one.shape[0])}
            rows.append(row)
    if _RESULTS.value:
        with open(_RESULTS.value + ".json", "w") as f:
            json.dump({"steps": _STEPS.value, "arch_lr": _ARCH_LR.value, "runs": rows}, f, indent=1)
        lines = ["| implementation | seed | normal: correlation, same first op (of 14) | reduce |",
                 "|---|---|---|---|"]
        for row in rows:
            lines.append(f"| {row['implementation']} | {row['seed']} | "
                         + " | ".join(f"{row[c]['correlation']:.2f}, {row[c]['same_first_op']}"
                                      for c in ("normal", "reduce")) + " |")
        with open(_RESULTS.value + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")
    for row in rows:
        print(row)


if __name__ == "__main__":
    app.run(main)
