"""What a search does, measured at a scale 2 CPU cores can run, over seeds.

  --study=depth     Supernet depth versus skip connections (paper section 2.3.3):
                    StacNAS searches at several depths (both stages), skip
                    connections and parameter-free ops of the derived cells,
                    beside the gradient confusion measured at those depths.
  --study=collapse  Search length versus parameter-free ops: DARTS (bi-level,
                    flat) and StacNAS (one-level, grouped) searched long, the
                    genotype derived from every epoch's weights.
  --study=seeds     Stability: the default search, and the same search at the
                    paper's depths (14 and 20 cells), with several seeds: how far
                    their genotypes agree (edges, edges with their op), and the
                    test accuracy of each found cell beside random cells, all
                    trained with the default recipe.

  python benchmarks/search_studies.py --study=depth --output_dir=runs/studies --workers=2
  python benchmarks/search_studies.py --study=depth --tiny   # minutes: checks that it runs

--workers=N runs N searches or trainings at once, each on cores/N threads
(small networks use several cores poorly), then gathers their results.

Each run keeps its folder under OUTPUT_DIR/STUDY/; a rerun reuses finished
runs and resumes unfinished ones, so a study can be run in parts. Results:
OUTPUT_DIR/STUDY/results.json, results.md and a PNG (with --results_dir, also
copied there as study_STUDY.{json,md,png}).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import itertools  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402

STUDIES = ("depth", "collapse", "seeds")
_STUDY = flags.DEFINE_enum("study", "depth", list(STUDIES), "Which study.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/studies", "Runs and results.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", None,
                                   "Also copy the results here (benchmarks/results).")
_SEEDS = flags.DEFINE_list("seeds", "0,1,2", "Seeds of every setting.")
_TINY = flags.DEFINE_bool("tiny", False, "Tiny sizes: checks that the study runs.")
_DEPTHS = flags.DEFINE_list("depths", None, "--study=depth: supernet depths (default 3,5,8).")
_WORKERS = flags.DEFINE_integer(
    "workers", 1, "Run the study's searches and trainings in this many processes at once, "
    "sharing the cores (2 on a 2-core machine: small networks use one core poorly).")
_SHARD = flags.DEFINE_string("shard", None, "Internal (--workers): run only shard K/N of the "
                             "runs and write no results.")

# The data every study searches: Fashion-MNIST at 16x16 (Debian's package).
BASE = config_lib.SearchConfig(dataset="fashion_mnist", image_size=16, channels=8, batch_size=64)
DEPTHS = (3, 5, 8)


def _machine() -> str:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in cpu.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model}, {os.cpu_count()} cores"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=os.path.dirname(os.path.abspath(__file__))
                              ).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _search(config, folder):
    """(genotype, [op counts of the genotype derived at every epoch, stage 1 then 2,
    with the normal cell's `report.max_weight_ratio` of that epoch])."""
    from stacnas_tf import report
    from stacnas_tf import search_loop

    genotype = search_loop.run_search(config, folder, verbose=0, report=False)
    counts = []
    for stage in (1, 2):
        path = os.path.join(folder, f"stage{stage}", "result.json")
        if not os.path.exists(path):
            continue
        from stacnas_tf import search_space

        result = files.read_json(path)
        history = files.read_json(os.path.join(folder, f"stage{stage}", "history.json"))
        space = search_space.StageSpace.from_dict(result["space"])
        genotypes = report.epoch_genotypes(space, result["num_cells"], history, config.num_nodes)
        for entry, g in zip(history, genotypes):
            counts.append({**report.op_counts(g), "normal_max_weight_ratio":
                           report.max_weight_ratio(next(iter(entry["weights"].values())))})
    return genotype, counts


def _timed(folder, finished_marker, run):
    """(run(), seconds): the seconds of the call that finished the run, kept beside
    its folder (FOLDER.seconds.json), since a gathering call only reads finished
    runs; None for a run finished without that record."""
    path = folder + ".seconds.json"
    finished_before = os.path.exists(finished_marker)
    started = time.perf_counter()
    result = run()
    if not finished_before:
        files.write_json(path, {"seconds": round(time.perf_counter() - started, 1)})
    return result, files.read_json(path)["seconds"] if os.path.exists(path) else None


def _mine(position, shard) -> bool:
    """Whether the run at `position` of a study belongs to `shard` ((K, N) or None: all)."""
    return shard is None or position % shard[1] == shard[0]


def _mean_std(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


# --- depth versus skip connections --------------------------------------------------


def depth_study(output_dir, seeds, tiny, depths=None, shard=None):
    depths = tuple(depths or ((3, 4) if tiny else DEPTHS))
    config = BASE.replace(num_train_examples=256 if tiny else 2048,
                          stage1_epochs=1 if tiny else 3, stage2_epochs=1 if tiny else 3)
    jobs = list(itertools.product(depths, seeds))
    runs = []
    for position, (depth, seed) in enumerate(jobs):
        if not _mine(position, shard):
            continue
        folder = os.path.join(output_dir, f"cells_{depth}", f"seed_{seed}")
        settings = config.replace(stage1_cells=depth, stage2_cells=depth, seed=seed)
        (genotype, counts), seconds = _timed(folder, os.path.join(folder, "genotype.json"),
                                             lambda: _search(settings, folder))
        runs.append({"cells": depth, "seed": seed, "genotype": genotype.to_darts(),
                     "final": counts[-1], "seconds": seconds})
    if shard is not None:
        if _mine(len(jobs), shard):
            _confusion_beside(depths, config, output_dir, tiny)
        return None
    rows = []
    for depth in depths:
        finals = [r["final"] for r in runs if r["cells"] == depth]
        row = {"cells": depth}
        for key in ("normal_skip_connect", "normal_parameter_free", "reduce_skip_connect",
                    "reduce_parameter_free", "normal_max_weight_ratio"):
            row[key] = _mean_std([f[key] for f in finals])
        rows.append(row)
    confusion = _confusion_beside(depths, config, output_dir, tiny)
    return {"settings": config.to_dict(), "depths": list(depths), "runs": runs, "rows": rows,
            "confusion": confusion}


def _confusion_beside(depths, config, output_dir, tiny):
    """Gradient confusion (equations 7-8) of the stage-1 supernet at every depth,
    measured as tools/confusion.py does, on the same data. The sweep keeps each
    setting's measurement in its own folder, so a rerun (with more depths, or
    to gather) measures only what is missing."""
    from stacnas_tf.analysis import confusion

    settings = confusion.ConfusionConfig(
        dataset=config.dataset, image_size=config.image_size,
        num_train_examples=config.num_train_examples, channels=config.channels,
        batch_size=config.batch_size, train_epochs=1 if tiny else 2,
        num_batches=4 if tiny else 8, num_iterations=2 if tiny else 5,
        stage1_depths=tuple(depths), stage2_depths=(depths[0],), final_cells=6)
    result = confusion.sweep(settings, os.path.join(output_dir, "confusion"), progress=None)
    return [{"setting": m["setting"], "cells": m["cells"], "confusion": m["confusion"],
             "zeta_mean": m["zeta_mean"]}
            for m in result["measurements"] if m["setting"] in ("stage1", "final")]


def depth_markdown(results) -> str:
    lines = ["| supernet cells | skip (normal) | parameter-free (normal) | skip (reduce) | "
             "parameter-free (reduce) | largest weight / uniform (normal) | "
             "gradient confusion (per M params) | zeta (raw) |",
             "|---|---|---|---|---|---|---|---|"]
    confusion = {c["cells"]: c for c in results["confusion"] if c["setting"] == "stage1"}
    final = next((c for c in results["confusion"] if c["setting"] == "final"), None)
    for row in results["rows"]:
        cells = [f"{row[k][0]:.2f} ± {row[k][1]:.2f}" for k in (
            "normal_skip_connect", "normal_parameter_free", "reduce_skip_connect",
            "reduce_parameter_free")]
        cells.append("{:.3f} ± {:.3f}".format(*row["normal_max_weight_ratio"]))
        measured = confusion.get(row["cells"])
        lines.append(f"| {row['cells']} | " + " | ".join(cells) + (
            " | not measured | |" if measured is None else
            f" | {measured['confusion']:.3f} | {measured['zeta_mean']:.3f} |"))
    if final is not None:
        lines.append(f"\nGradient confusion of the final network ({final['cells']} cells, "
                     f"default recipe): {final['confusion']:.3f} (zeta {final['zeta_mean']:.3f}).")
    return "\n".join(lines)


def depth_plot(results, path):
    from matplotlib import pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    depths = [row["cells"] for row in results["rows"]]
    for key, label in (("normal_skip_connect", "skip, normal cell"),
                       ("normal_parameter_free", "parameter-free, normal cell")):
        means = [row[key][0] for row in results["rows"]]
        stds = [row[key][1] for row in results["rows"]]
        left.errorbar(depths, means, yerr=stds, marker="o", capsize=3, label=label)
        for run in results["runs"]:
            left.plot(run["cells"], run["final"][key], ".", color="grey", alpha=0.5)
    left.set_xlabel("supernet cells (both stages)")
    left.set_ylabel("edges of the derived normal cell (of 8)")
    left.legend(fontsize=8)
    left.set_title("derived cell vs. supernet depth (mean ± s.d. over seeds)", fontsize=9)
    confusion = [c for c in results["confusion"] if c["setting"] == "stage1"]
    raw = right.twinx()
    right.plot([c["cells"] for c in confusion], [c["confusion"] for c in confusion], marker="o",
               label="confusion (per M params), stage-1 supernet")
    raw.plot([c["cells"] for c in confusion], [c["zeta_mean"] for c in confusion], marker="s",
             color="C2", label="zeta (raw), stage-1 supernet")
    for c in results["confusion"]:
        if c["setting"] == "final":
            right.axhline(c["confusion"], color="grey", linestyle="--",
                          label=f"confusion, final network ({c['cells']} cells)")
            raw.axhline(c["zeta_mean"], color="C2", linestyle=":",
                        label=f"zeta, final network ({c['cells']} cells)")
    handles = right.get_legend_handles_labels()
    raw_handles = raw.get_legend_handles_labels()
    right.legend(handles[0] + raw_handles[0], handles[1] + raw_handles[1], fontsize=7)
    right.set_xlabel("supernet cells")
    right.set_ylabel("gradient confusion (zeta / M parameters)")
    raw.set_ylabel("zeta (equation 7)")
    right.set_title("gradient confusion (equations 7-8)", fontsize=9)
    files.write_figure(path, figure, "png")
    plt.close(figure)


# --- collapse versus search length ------------------------------------------------


def collapse_study(output_dir, seeds, tiny, depths=None, shard=None):
    epochs = 2 if tiny else 30
    base = BASE.replace(num_train_examples=256 if tiny else 1024, stage1_cells=5,
                        stage2_cells=5)
    methods = {
        "darts_bi_level_flat": base.replace(optimization="bi_level", grouping="flat",
                                            stage1_epochs=epochs, stage2_epochs=1),
        "stacnas_one_level_grouped": base.replace(stage1_epochs=epochs // 2,
                                                  stage2_epochs=epochs - epochs // 2),
    }
    runs = []
    for position, ((method, config), seed) in enumerate(itertools.product(methods.items(), seeds)):
        if not _mine(position, shard):
            continue
        folder = os.path.join(output_dir, method, f"seed_{seed}")
        (genotype, counts), seconds = _timed(folder, os.path.join(folder, "genotype.json"),
                                             lambda: _search(config.replace(seed=seed), folder))
        runs.append({"method": method, "seed": seed, "genotype": genotype.to_darts(),
                     "per_epoch": counts, "seconds": seconds})
    if shard is not None:
        return None
    curves = {}
    for method in methods:
        per_seed = [r["per_epoch"] for r in runs if r["method"] == method]
        curves[method] = {
            key: [_mean_std([seed_counts[e][key] for seed_counts in per_seed])
                  for e in range(len(per_seed[0]))]
            for key in ("normal_parameter_free", "normal_skip_connect", "reduce_parameter_free",
                        "normal_max_weight_ratio")}
    return {"settings": {m: c.to_dict() for m, c in methods.items()}, "epochs": epochs,
            "runs": runs, "curves": curves}


def collapse_markdown(results) -> str:
    epochs = results["epochs"]
    marks = sorted({1, epochs // 4, epochs // 2, 3 * epochs // 4, epochs} - {0})
    lines = ["| method | " + " | ".join(f"epoch {e}" for e in marks) + " |",
             "|---|" + "---|" * len(marks)]
    for method, curves in results["curves"].items():
        values = curves["normal_parameter_free"]
        lines.append(f"| {method}: parameter-free ops, normal cell | " + " | ".join(
            f"{values[e - 1][0]:.2f} ± {values[e - 1][1]:.2f}" for e in marks) + " |")
        values = curves["normal_skip_connect"]
        lines.append(f"| {method}: skip connections, normal cell | " + " | ".join(
            f"{values[e - 1][0]:.2f} ± {values[e - 1][1]:.2f}" for e in marks) + " |")
        values = curves["normal_max_weight_ratio"]
        lines.append(f"| {method}: largest weight / uniform, normal cell | " + " | ".join(
            f"{values[e - 1][0]:.3f} ± {values[e - 1][1]:.3f}" for e in marks) + " |")
    return "\n".join(lines)


def collapse_plot(results, path):
    from matplotlib import pyplot as plt

    figure, (ax, spread) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    for method, curves in results["curves"].items():
        for axis, key in ((ax, "normal_parameter_free"), (spread, "normal_max_weight_ratio")):
            means = np.array([m for m, _ in curves[key]])
            stds = np.array([s for _, s in curves[key]])
            epochs = np.arange(1, len(means) + 1)
            axis.plot(epochs, means, marker="o", markersize=3, label=method)
            axis.fill_between(epochs, means - stds, means + stds, alpha=0.2)
    for axis in (ax, spread):
        axis.axvline(results["epochs"] // 2 + 0.5, color="grey", linewidth=0.5)
        axis.set_xlabel("search epoch (StacNAS: stage 1, then stage 2 after the line)")
        axis.legend(fontsize=8)
    ax.set_ylabel("parameter-free ops in the normal cell (of 8)")
    ax.set_ylim(-0.2, 8.2)
    ax.set_title("the genotype derived at every epoch (mean ± s.d. over seeds)", fontsize=9)
    spread.axhline(1.0, color="grey", linestyle=":", linewidth=0.8)
    spread.set_ylabel("largest weight x candidates (1 = uniform)")
    spread.set_title("how far the normal cell's weights are from uniform", fontsize=9)
    files.write_figure(path, figure, "png")
    plt.close(figure)


# --- stability across seeds ---------------------------------------------------------


def _edges(genotype):
    """{(cell type, node, input): op} of the normal and reduction cells."""
    chosen = {}
    for name, cell in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        for position, (op, source) in enumerate(cell.edges):
            chosen[(name, position // 2 + 2, source)] = op
    return chosen


def agreement(first, second) -> dict:
    """Shares of the 16 chosen edges (8 per cell) that two genotypes both
    choose, with and without their op (edge: same node and input)."""
    a, b = _edges(first), _edges(second)
    shared = set(a) & set(b)
    return {"edges": len(shared) / len(a), "edges_and_ops": sum(a[k] == b[k] for k in shared) / len(a)}


def seeds_study(output_dir, seeds, tiny, depths=None, shard=None):
    from stacnas_tf import genotype as genotype_lib
    from stacnas_tf import report
    from stacnas_tf import training

    search_config = config_lib.PRESETS["smoke" if tiny else "default"]
    train_config = config_lib.TRAIN_PRESETS["smoke" if tiny else "default"]
    searches = {
        "default_search": search_config,
        # The paper preset at small scale: its matched depths (14 cells in stage 1,
        # 20 in stage 2), everything else as in the default search.
        "paper_depths_search": search_config.replace(
            stage1_cells=3 if tiny else config_lib.PRESETS["paper_cifar10"].stage1_cells,
            stage2_cells=4 if tiny else config_lib.PRESETS["paper_cifar10"].stage2_cells),
    }
    runs = []
    for position, (kind, seed) in enumerate(itertools.product((*searches, "random"), seeds)):
        if not _mine(position, shard):
            continue
        folder = os.path.join(output_dir, kind, f"seed_{seed}")

        def search_and_train(kind=kind, seed=seed, folder=folder):
            if kind == "random":
                genotype = genotype_lib.random_genotype(search_config.space, seed)
            else:
                genotype, _ = _search(searches[kind].replace(seed=seed),
                                      os.path.join(folder, "search"))
            os.makedirs(folder, exist_ok=True)
            genotype_path = os.path.join(folder, "genotype.json")
            files.write_text(genotype_path, genotype.to_json() + "\n")
            return genotype, training.run_training(
                train_config.replace(genotype=genotype_path, seed=seed),
                os.path.join(folder, "train"), verbose=0)

        (genotype, metrics), seconds = _timed(
            folder, os.path.join(folder, "train", "metrics.json"), search_and_train)
        runs.append({"kind": kind, "seed": seed, "genotype": genotype.to_darts(),
                     "genotype_json": genotype.to_dict(), "counts": report.op_counts(genotype),
                     "top1": metrics["top1"], "seconds": seconds})
    if shard is not None:
        return None
    summary = {}
    for kind in (*searches, "random"):
        chosen = [r for r in runs if r["kind"] == kind]
        genotypes = [genotype_lib.Genotype.from_dict(r["genotype_json"]) for r in chosen]
        pairs = [agreement(a, b) for a, b in itertools.combinations(genotypes, 2)]
        summary[kind] = {
            "top1": _mean_std([r["top1"] for r in chosen]),
            "edge_agreement": _mean_std([p["edges"] for p in pairs]) if pairs else None,
            "edge_op_agreement": _mean_std([p["edges_and_ops"] for p in pairs]) if pairs else None,
        }
    return {"settings": {**{kind: c.to_dict() for kind, c in searches.items()},
                         "train": train_config.to_dict()},
            "runs": runs, "summary": summary}


def seeds_markdown(results) -> str:
    lines = ["| cells | seeds | test top-1 | edges shared (pairs of seeds) | edges with the "
             "same op |", "|---|---|---|---|---|"]
    for kind, row in results["summary"].items():
        count = sum(r["kind"] == kind for r in results["runs"])

        def cell(value):
            return "" if value is None else f"{value[0]:.2f} ± {value[1]:.2f}"

        lines.append(f"| {kind} | {count} | {row['top1'][0]:.4f} ± {row['top1'][1]:.4f} | "
                     f"{cell(row['edge_agreement'])} | {cell(row['edge_op_agreement'])} |")
    lines += ["", "| cells | seed | normal cell: parameter-free / skip | reduction cell: "
              "parameter-free / skip | test top-1 |", "|---|---|---|---|---|"]
    for run in results["runs"]:
        counts = run["counts"]
        lines.append(f"| {run['kind']} | {run['seed']} | {counts['normal_parameter_free']} / "
                     f"{counts['normal_skip_connect']} | {counts['reduce_parameter_free']} / "
                     f"{counts['reduce_skip_connect']} | {run['top1']:.4f} |")
    return "\n".join(lines)


def seeds_plot(results, path):
    from matplotlib import pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 3.2), constrained_layout=True)
    kinds = list(results["summary"])
    for index, kind in enumerate(kinds):
        values = [r["top1"] for r in results["runs"] if r["kind"] == kind]
        ax.plot([index] * len(values), values, "o", alpha=0.7)
        ax.errorbar(index + 0.1, *results["summary"][kind]["top1"], fmt="s", capsize=4, color="k")
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_xlim(-0.5, len(kinds) - 0.5)
    ax.set_ylabel("test top-1 (default recipe)")
    ax.set_title("cells found by the searches vs random cells", fontsize=9)
    files.write_figure(path, figure, "png")
    plt.close(figure)


_STUDY_FUNCTIONS = {
    "depth": (depth_study, depth_markdown, depth_plot),
    "collapse": (collapse_study, collapse_markdown, collapse_plot),
    "seeds": (seeds_study, seeds_markdown, seeds_plot),
}


def _time_note(results) -> str:
    note = (f"The runs took {results['search_and_train_seconds']:.0f} s in all (their own "
            "times, summed")
    if results["runs_without_recorded_seconds"]:
        note += (f"; {results['runs_without_recorded_seconds']} runs finished without a "
                 "recorded time")
    return note + (f"); this call (--workers={results['workers']}) took "
                   f"{results['wall_seconds_this_call']:.0f} s.")


def run_study(study: str, output_dir: str, seeds, tiny: bool = False,
              results_dir: str | None = None, depths=None, shard=None,
              workers: int = 1, worker_seconds: float = 0.0) -> dict | None:
    """Runs (or resumes) `study` and writes its results; with `shard` (K, N), runs
    only every N-th run from the K-th and writes no results (None). `workers` and
    `worker_seconds` record how the runs were run when `run_in_workers` ran them."""
    import matplotlib

    matplotlib.use("Agg")
    run, markdown, plot = _STUDY_FUNCTIONS[study]
    study_dir = os.path.join(output_dir, study)
    os.makedirs(study_dir, exist_ok=True)
    started = time.perf_counter()
    results = run(study_dir, tuple(seeds), tiny, depths, shard)
    if shard is not None:
        return None
    results.update({"study": study, "seeds": list(seeds), "tiny": tiny, "machine": _machine(),
                    "commit": _commit(), "date": time.strftime("%Y-%m-%d"),
                    "workers": workers,
                    "wall_seconds_this_call": round(
                        worker_seconds + time.perf_counter() - started, 1),
                    "search_and_train_seconds": round(sum(
                        r["seconds"] for r in results["runs"] if r["seconds"] is not None), 1),
                    "runs_without_recorded_seconds": sum(
                        r["seconds"] is None for r in results["runs"])})
    table = markdown(results)
    files.write_json(os.path.join(study_dir, "results.json"), results)
    files.write_text(os.path.join(study_dir, "results.md"),
                     f"{table}\n\n{results['machine']}, commit {results['commit']}, "
                     f"{results['date']}. {_time_note(results)}\n")
    plot(results, os.path.join(study_dir, "results.png"))
    if results_dir:
        os.makedirs(results_dir, exist_ok=True)
        for ext in ("json", "md", "png"):
            shutil.copy(os.path.join(study_dir, f"results.{ext}"),
                        os.path.join(results_dir, f"study_{study}.{ext}"))
    return results


def _parse_shard(value):
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise app.UsageError(f"--shard: expected K/N, got {value!r}.") from None
    if not 0 <= index < count:
        raise app.UsageError(f"--shard: expected 0 <= K < N, got {value!r}.")
    return index, count


def run_in_workers(workers: int, argv_common: list[str], study_dir: str) -> None:
    """Runs shards 0..workers-1 of a study as processes at once, each with
    cores/workers threads; their logs go to STUDY_DIR/shard_K.log."""
    import sys

    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS="1",
               OMP_NUM_THREADS=threads, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    os.makedirs(study_dir, exist_ok=True)
    processes = []
    for index in range(workers):
        log_path = os.path.join(study_dir, f"shard_{index}.log")
        with open(log_path, "w") as log:
            processes.append((log_path, subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), *argv_common,
                 f"--shard={index}/{workers}"], stdout=log, stderr=subprocess.STDOUT, env=env)))
    print(f"{workers} workers started; their logs: {study_dir}/shard_*.log", flush=True)
    try:
        failed = [log for log, process in processes if process.wait() != 0]
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.terminate()
    if failed:
        raise SystemExit(f"search_studies: a worker failed; see {', '.join(failed)}")


def _integers(flag, values) -> list[int]:
    try:
        return [int(value) for value in values]
    except ValueError:
        raise app.UsageError(f"--{flag}: expected integers separated by commas, got "
                             f"{','.join(values)!r}.") from None


def main(argv):
    del argv
    seeds = _integers("seeds", _SEEDS.value)
    depths = _integers("depths", _DEPTHS.value) if _DEPTHS.value else None
    try:  # refused here, before any folder is made
        for seed in seeds:
            BASE.replace(seed=seed)
        for depth in depths or ():
            BASE.replace(stage1_cells=depth, stage2_cells=depth)
    except ValueError as e:
        flag = "--depths" if "cells" in str(e) else "--seeds"
        raise app.UsageError(f"{flag}: {e}") from None
    if _WORKERS.value < 1:
        raise app.UsageError(f"--workers: expected at least 1, got {_WORKERS.value}.")
    if _SHARD.value is not None:
        run_study(_STUDY.value, _OUTPUT_DIR.value, seeds, _TINY.value, depths=depths,
                  shard=_parse_shard(_SHARD.value))
        return
    started = time.perf_counter()
    if _WORKERS.value > 1:
        common = [f"--study={_STUDY.value}", f"--output_dir={_OUTPUT_DIR.value}",
                  f"--seeds={','.join(map(str, seeds))}"]
        common += ["--tiny"] if _TINY.value else []
        common += [f"--depths={','.join(map(str, depths))}"] if depths else []
        run_in_workers(_WORKERS.value, common, os.path.join(_OUTPUT_DIR.value, _STUDY.value))
    # With workers, every run is finished now: this gathers them into the results.
    results = run_study(_STUDY.value, _OUTPUT_DIR.value, seeds, _TINY.value, _RESULTS_DIR.value,
                        depths, workers=_WORKERS.value,
                        worker_seconds=time.perf_counter() - started)
    print((f"{_STUDY.value}: " + os.path.join(_OUTPUT_DIR.value, _STUDY.value, "results.md")))
    print(_STUDY_FUNCTIONS[_STUDY.value][1](results))


if __name__ == "__main__":
    app.run(main)
