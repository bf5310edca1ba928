"""Projects the wall time of the paper's full CIFAR-10 search from measured steps.

  PYTHONPATH=. .venv/bin/python benchmarks/project_search.py benchmarks/results/gpu_check/steps.jsonl

Reads the search-step JSON lines of benchmarks/search_step.py and, for each
(device, precision, XLA) setting measured at the paper's size (C=16, batch 64,
32x32), projects stage 1 (14-cell supernet) + stage 2 (20-cell supernet), each
`--epochs` epochs of `--examples` images: steps x median step time. Stage 2
uses its own measurement when there is one, else stage 1's per-cell time x 20
(marked `estimated`). Start-up (first step) is added once per stage.
"""

import json
import math
import sys

from absl import app
from absl import flags

_EPOCHS = flags.DEFINE_integer("epochs", 80, "Epochs per stage (the paper's CIFAR search: 80).")
_EXAMPLES = flags.DEFINE_integer("examples", 50000, "Training images per epoch (CIFAR-10: 50k).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size of the measured steps.")


def project(rows, epochs=80, examples=50000, batch_size=64):
    """{setting: {stage1_h, stage2_h, total_h, ...}} from search_step rows."""
    steps = math.ceil(examples / batch_size) * epochs
    settings = {}
    for row in rows:
        if row.get("benchmark") != "search_step" or row.get("batch_size") != batch_size:
            continue
        key = f"{row.get('gpu', 'cpu')}, {row.get('precision', 'float32')}" + (
            ", XLA" if row.get("jit_compile") else "")
        stage = {("stage1", 14): "stage1", ("stage2", 20): "stage2"}.get(
            (row.get("space"), row.get("num_cells")))
        if stage:
            settings.setdefault(key, {})[stage] = row
    projections = {}
    for key, stages in settings.items():
        if "stage1" not in stages:
            continue
        stage1 = stages["stage1"]
        stage2 = stages.get("stage2")
        stage2_step = (stage2["median_step_s"] if stage2
                       else stage1["median_step_s"] / stage1["num_cells"] * 20)
        stage2_start = stage2["first_step_s"] if stage2 else stage1["first_step_s"] * 20 / 14
        hours = [(steps * stage1["median_step_s"] + stage1["first_step_s"]) / 3600,
                 (steps * stage2_step + stage2_start) / 3600]
        projections[key] = {
            "stage1_step_s": stage1["median_step_s"], "stage2_step_s": round(stage2_step, 4),
            "stage2": "measured" if stage2 else "estimated from stage 1",
            "stage1_h": round(hours[0], 2), "stage2_h": round(hours[1], 2),
            "total_h": round(sum(hours), 2), "days": round(sum(hours) / 24, 3),
            "peak_gpu_mb": max(r.get("peak_gpu_mb", 0) for r in (stage1, stage2) if r),
        }
    return {"epochs_per_stage": epochs, "examples": examples, "batch_size": batch_size,
            "steps_per_stage": steps, "projections": projections}


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("expected one JSON-lines file of search_step results.")
    with open(argv[1]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    json.dump(project(rows, _EPOCHS.value, _EXAMPLES.value, _BATCH_SIZE.value), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    app.run(main)
