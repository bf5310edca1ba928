"""How decided a short search ends, per setting: the sweep behind the `default` preset.

Every setting is a full two-stage search (the `default` preset with some fields
replaced), run in its own process with a chosen number of CPU threads. For each
run it records the wall time, the stage-1 and final weights' distance from
uniform (`report.max_weight_ratio`), the per-edge margins (best op's weight
minus the second's, both as shares of the edge), the genotype, and, across
runs, how far genotypes agree (same setting: other seed / other thread count).

  python benchmarks/default_sweep.py --output_dir=runs/sweep \\
      --setting='lr3e-4:{"arch_lr": 3e-4}' --setting='lr3e-3:{"arch_lr": 3e-3}' --seeds=0,1,2
  python benchmarks/default_sweep.py --output_dir=runs/sweep --threads=1,2 --setting=...
  python benchmarks/default_sweep.py --output_dir=runs/sweep --gather \\
      --results=benchmarks/results/default_sweep     # .json, .md, .png

A rerun skips runs whose summary exists, so a sweep can be run in parts.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/sweep", "One folder per run, and summaries.")
_SETTINGS = flags.DEFINE_multi_string(
    "setting", [], "NAME:JSON of SearchConfig fields replacing the default preset's.")
_SEEDS = flags.DEFINE_list("seeds", "0", "Seeds of every setting.")
_THREADS = flags.DEFINE_list("threads", "2", "CPU thread counts of every setting and seed.")
_SPLIT_KERNELS = flags.DEFINE_bool(
    "split_kernels", False,
    "Give every kernel all the threads, one kernel at a time (TF_NUM_INTRAOP_THREADS=N, "
    "TF_NUM_INTEROP_THREADS=1), as the runs before 2026-12-05 did; default: one thread per "
    "kernel and N kernels at once, as the programs run (stacnas_tf/repeatable.py).")
_GATHER = flags.DEFINE_bool("gather", False, "Only gather the finished runs' summaries.")
_RESULTS = flags.DEFINE_string("results", None, "With --gather: write PATH.json, .md and .png.")
_RUN = flags.DEFINE_string("run", None, "Internal: run one search (NAME|JSON|seed|threads).")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
                    return [flag for flag in line.split(":", 1)[1].split() if flag in wanted]
    except OSError:
        pass
    return []


def _stage_numbers(run_dir: str, stage: int) -> dict | None:
    from stacnas_tf import report

    path = os.path.join(run_dir, f"stage{stage}", "result.json")
    if not os.path.exists(path):
        return None
    result = files.read_json(path)
    weights = {name: [e["weights"] for e in edges] for name, edges in result["logits"].items()}
    candidates = {name: [e["candidates"] for e in edges] for name, edges in result["logits"].items()}
    history = files.read_json(os.path.join(run_dir, f"stage{stage}", "history.json"))
    return {
        "max_weight_ratio": {name: report.max_weight_ratio(w) for name, w in weights.items()},
        "max_weight_ratio_per_epoch": {
            name: [report.max_weight_ratio(entry["weights"][name]) for entry in history]
            for name in weights},
        "op_margins": {name: report.op_margins(candidates[name], w) for name, w in weights.items()},
        "winners": result.get("winners"),
        "final_accuracy": result.get("final_accuracy"),
    }


def run_one(spec: str) -> None:
    """Runs one search in this process and writes its summary.json."""
    from stacnas_tf import search_loop

    name, overrides, seed, threads = spec.split("|")
    config = config_lib.PRESETS["default"].replace(**json.loads(overrides), seed=int(seed))
    run_dir = os.path.join(_OUTPUT_DIR.value, f"{name}_seed{seed}_threads{threads}")
    start = time.perf_counter()
    genotype = search_loop.run_search(config, run_dir, verbose=2)
    seconds = time.perf_counter() - start
    summary = {
        "setting": name, "overrides": json.loads(overrides), "seed": int(seed),
        "threads": int(threads),
        "threads_per_kernel": int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0")),
        "seconds": round(seconds, 1), "config": config.to_dict(),
        "genotype": json.loads(genotype.to_json()),
        "stage1": _stage_numbers(run_dir, 1), "stage2": _stage_numbers(run_dir, 2),
        "cpu": cpu_name(), "cpu_flags": cpu_flags(),
        "date": time.strftime("%Y-%m-%d"), "code": _commit(),
    }
    files.write_json(os.path.join(run_dir, "summary.json"), summary)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _edges(genotype: dict) -> dict:
    """{(cell, node, input): op} of a genotype's JSON."""
    chosen = {}
    for cell in ("normal", "reduce"):
        for position, edge in enumerate(genotype[cell]):
            chosen[(cell, position // 2 + 2, edge["input"])] = edge["op"]
    return chosen


def agreement(first: dict, second: dict) -> dict:
    """Per cell: edges (node and input) both genotypes choose, and those with the same op."""
    a, b = _edges(first), _edges(second)
    result = {}
    for cell in ("normal", "reduce"):
        keys = [k for k in a if k[0] == cell]
        shared = [k for k in keys if k in b]
        result[cell] = {"edges": len(shared), "edges_and_ops": sum(a[k] == b[k] for k in shared),
                        "of": len(keys)}
    return result


def gather(output_dir: str) -> dict:
    summaries = []
    for entry in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, entry, "summary.json")
        if os.path.exists(path):
            summaries.append(files.read_json(path))
    settings = {}
    for summary in summaries:
        settings.setdefault(summary["setting"], []).append(summary)
    table = {}
    for name, runs in settings.items():
        final = [np.mean(list(r["stage2"]["max_weight_ratio"].values())) for r in runs]
        stage1 = [np.mean(list(r["stage1"]["max_weight_ratio"].values())) for r in runs]
        op_margins = [m for r in runs for ms in r["stage2"]["op_margins"].values() for m in ms
                      if m is not None]
        by_seed = {}
        for r in runs:
            by_seed.setdefault(r["seed"], {})[r["threads"]] = r
        threads_pairs = [agreement(v[1]["genotype"], v[2]["genotype"])
                         for v in by_seed.values() if 1 in v and 2 in v]
        # Seeds compared at the thread count most of them ran with (it changes the cell too).
        counts = [r["threads"] for r in runs]
        main_runs = [r for r in runs if r["threads"] == max(set(counts), key=counts.count)]
        seed_pairs = [agreement(a["genotype"], b["genotype"])
                      for a, b in itertools.combinations(main_runs, 2)]
        table[name] = {
            "overrides": runs[0]["overrides"], "runs": len(runs),
            "seconds_mean": float(np.mean([r["seconds"] for r in runs])),
            "stage1_ratio_mean": float(np.mean(stage1)),
            "final_ratio_mean": float(np.mean(final)), "final_ratio_min": float(np.min(final)),
            "op_margin_median": float(np.median(op_margins)) if op_margins else None,
            "op_margin_min": float(np.min(op_margins)) if op_margins else None,
            "threads_agreement": threads_pairs,
            "seed_agreement_mean": _mean_agreement(seed_pairs),
            "final_accuracy_mean": float(np.mean([r["stage2"]["final_accuracy"] for r in runs])),
        }
    return {"settings": table, "runs": summaries, "random_cells_agreement": random_agreement()}


def random_agreement(count: int = 40) -> dict:
    """The same agreement between random cells of the default space (all pairs of
    `count` seeds): what agreement means by chance."""
    from stacnas_tf import genotype as genotype_lib

    space = config_lib.PRESETS["default"].space
    cells = [json.loads(genotype_lib.random_genotype(space, seed).to_json()) for seed in range(count)]
    return _mean_agreement([agreement(a, b) for a, b in itertools.combinations(cells, 2)])


def _mean_agreement(pairs) -> dict | None:
    if not pairs:
        return None
    return {cell: {key: float(np.mean([p[cell][key] for p in pairs]))
                   for key in ("edges", "edges_and_ops")} for cell in ("normal", "reduce")}


def write_results(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files.write_json(path + ".json", results)
    lines = ["| setting | fields | runs | minutes | stage-1 ratio | final ratio (min) | "
             "op margin median (min) | pairs of seeds: edges (with the op) shared of 8, normal / "
             "reduce | 1 vs 2 threads, same seed: the same |", "|---" * 9 + "|"]
    for name, row in results["settings"].items():
        agree = row["seed_agreement_mean"]
        agree_text = ("-" if agree is None else
                      f"{agree['normal']['edges']:.1f} ({agree['normal']['edges_and_ops']:.1f}) / "
                      f"{agree['reduce']['edges']:.1f} ({agree['reduce']['edges_and_ops']:.1f})")
        threads_text = "; ".join(
            f"{p['normal']['edges']} ({p['normal']['edges_and_ops']}) / "
            f"{p['reduce']['edges']} ({p['reduce']['edges_and_ops']})"
            for p in row["threads_agreement"]) or "-"
        margin = ("-" if row["op_margin_median"] is None else
                  f"{row['op_margin_median']:.3f} ({row['op_margin_min']:.3f})")
        lines.append(f"| {name} | `{json.dumps(row['overrides'])}` | {row['runs']} | "
                     f"{row['seconds_mean'] / 60:.1f} | {row['stage1_ratio_mean']:.3f} | "
                     f"{row['final_ratio_mean']:.3f} ({row['final_ratio_min']:.3f}) | {margin} | "
                     f"{agree_text} | {threads_text} |")
    chance = results["random_cells_agreement"]
    lines += ["", f"Random cells of the same space agree on {chance['normal']['edges']:.2f} edges "
              f"and {chance['normal']['edges_and_ops']:.2f} edges with their op of 8 (normal; "
              f"reduce {chance['reduce']['edges']:.2f} / {chance['reduce']['edges_and_ops']:.2f}), "
              "averaged over all pairs of 40 random cells."]
    files.write_text(path + ".md", "\n".join(lines) + "\n")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, runs in _by_setting(results["runs"]).items():
        for stage, axis in zip(("stage1", "stage2"), axes):
            curves = [np.mean(list(r[stage]["max_weight_ratio_per_epoch"].values()), axis=0)
                      for r in runs]
            mean = np.mean(curves, axis=0)
            axis.plot(np.arange(1, len(mean) + 1), mean, marker="o", label=name)
    for stage, axis in zip(("stage 1", "stage 2"), axes):
        axis.axhline(1.1, color="grey", linestyle="--", linewidth=1)
        axis.set_title(f"{stage}: largest weight x candidates (mean over edges, cells, seeds)")
        axis.set_xlabel("epoch")
        axis.set_ylabel("max weight ratio (1 = uniform)")
        axis.title.set_fontsize(9)
    axes[1].legend(fontsize=7)
    figure.tight_layout()
    files.write_figure(path + ".png", figure, "png")
    plt.close(figure)


def _by_setting(runs):
    grouped = {}
    for r in runs:
        grouped.setdefault(r["setting"], []).append(r)
    return grouped


def main(argv):
    del argv
    if _RUN.value:
        run_one(_RUN.value)
        return
    if not _GATHER.value:
        for setting, seed, threads in itertools.product(_SETTINGS.value, _SEEDS.value,
                                                        _THREADS.value):
            name, overrides = setting.split(":", 1)
            run_dir = os.path.join(_OUTPUT_DIR.value, f"{name}_seed{seed}_threads{threads}")
            if os.path.exists(os.path.join(run_dir, "summary.json")):
                continue
            per_kernel, at_once = (threads, "1") if _SPLIT_KERNELS.value else ("1", threads)
            env = dict(os.environ, TF_NUM_INTRAOP_THREADS=per_kernel,
                       TF_NUM_INTEROP_THREADS=at_once, OMP_NUM_THREADS=per_kernel,
                       TF_ENABLE_ONEDNN_OPTS="1",
                       PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            print(f"{name} seed {seed}, {threads} thread(s)", flush=True)
            subprocess.run([sys.executable, __file__, f"--output_dir={_OUTPUT_DIR.value}",
                            f"--run={name}|{json.dumps(json.loads(overrides))}|{seed}|{threads}"],
                           env=env, check=True)
    results = gather(_OUTPUT_DIR.value)
    print(json.dumps(results["settings"], indent=1))
    if _RESULTS.value:
        write_results(results, _RESULTS.value)


if __name__ == "__main__":
    app.run(main)
