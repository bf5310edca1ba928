"""Cells the default search found against random cells of the same space.

Every cell (each search's genotype.json, and `--random` random genotypes of
the space) is trained with one recipe and evaluated on the whole test split.
The training's own seed noise is measured first (`--noise_cells` cells, each
trained with `--noise_seeds`), so the table says whether a difference between
two cells is larger than what retraining one cell gives. Results: every run,
the mean and standard error per kind, and a two-sided Mann-Whitney U test.

  python benchmarks/searched_vs_random.py --output_dir=runs/vs_random \\
      --searched='runs/sweep/lr3e-2_w2_seed*_threads1' --random=10 --workers=2 \\
      --results=benchmarks/results/searched_vs_random
  python benchmarks/searched_vs_random.py --tiny ...   # seconds: checks that it runs

Each training keeps its folder; a rerun reuses the finished ones.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import glob  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/vs_random", "One folder per training.")
_SEARCHED = flags.DEFINE_string("searched", None, "Glob of search folders holding genotype.json.")
_RANDOM = flags.DEFINE_integer("random", 10, "Random cells (seeds 0..N-1 of random_genotype).")
_NOISE_SEEDS = flags.DEFINE_list("noise_seeds", "0,1,2", "Training seeds of the noise cells.")
_NOISE_CELLS = flags.DEFINE_list("noise_cells", "random_0,random_1",
                                 "Cells retrained with every --noise_seeds seed.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Trainings at once (each on cores/N threads).")
_RESULTS = flags.DEFINE_string("results", None, "Write PATH.json, .md and .png.")
_TINY = flags.DEFINE_bool("tiny", False, "The smoke recipe: checks that it runs.")
_ONE = flags.DEFINE_string("one", None, "Internal: train one cell (NAME|GENOTYPE_PATH|SEED).")


def recipe(tiny: bool) -> config_lib.TrainConfig:
    """The default training recipe, evaluated on the whole test split (10,000 images)
    so that evaluation noise (binomial, ~0.35% at 85%) stays below training noise."""
    if tiny:
        return config_lib.TRAIN_PRESETS["smoke"]
    return config_lib.TRAIN_PRESETS["default"].replace(num_eval_examples=None)


def train_one(spec: str, output_dir: str, tiny: bool) -> None:
    from stacnas_tf import training

    name, genotype_path, seed = spec.split("|")
    folder = os.path.join(output_dir, f"{name}_train{seed}")
    start = time.perf_counter()
    metrics = training.run_training(recipe(tiny).replace(genotype=genotype_path, seed=int(seed)),
                                    folder, verbose=0)
    files.write_json(folder + ".summary.json", {
        "cell": name, "train_seed": int(seed), "top1": metrics["top1"],
        "seconds": round(time.perf_counter() - start, 1), "genotype_path": genotype_path})


def cells(output_dir: str, searched_glob: str | None, random_count: int, tiny: bool) -> dict:
    """{name: genotype path}: searched cells by their folder, random ones written here."""
    from stacnas_tf import genotype as genotype_lib

    found = {}
    for folder in sorted(glob.glob(searched_glob or "")):
        path = os.path.join(folder, "genotype.json")
        if os.path.exists(path):
            found[f"searched_{os.path.basename(folder.rstrip('/'))}"] = os.path.abspath(path)
    space = config_lib.PRESETS["smoke" if tiny else "default"].space
    os.makedirs(output_dir, exist_ok=True)
    for seed in range(random_count):
        path = os.path.join(output_dir, f"random_{seed}.json")
        if not os.path.exists(path):
            files.write_text(path, genotype_lib.random_genotype(space, seed).to_json() + "\n")
        found[f"random_{seed}"] = os.path.abspath(path)
    return found


def jobs(found: dict, noise_cells, noise_seeds) -> list[str]:
    specs = [f"{name}|{path}|0" for name, path in found.items()]
    for name in noise_cells:
        if name in found:
            specs += [f"{name}|{found[name]}|{seed}" for seed in noise_seeds if seed != "0"]
    return specs


def run_all(specs, output_dir, workers, tiny) -> None:
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS="1",
               OMP_NUM_THREADS=threads, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    pending = [s for s in specs if not os.path.exists(_summary_path(output_dir, s))]
    running = []
    while pending or running:
        while pending and len(running) < workers:
            spec = pending.pop(0)
            print(f"training {spec.split('|')[0]} (seed {spec.split('|')[2]})", flush=True)
            running.append(subprocess.Popen(
                [sys.executable, __file__, f"--output_dir={output_dir}", f"--one={spec}",
                 f"--tiny={tiny}"], env=env))
        time.sleep(2)
        for process in [p for p in running if p.poll() is not None]:
            running.remove(process)
            if process.returncode:
                raise RuntimeError(f"a training failed (exit {process.returncode})")


def _summary_path(output_dir, spec):
    name, _, seed = spec.split("|")
    return os.path.join(output_dir, f"{name}_train{seed}.summary.json")


def gather(output_dir: str, specs, tiny: bool) -> dict:
    from scipy import stats

    runs = [files.read_json(_summary_path(output_dir, s)) for s in specs
            if os.path.exists(_summary_path(output_dir, s))]
    first = [r for r in runs if r["train_seed"] == 0]
    searched = [r["top1"] for r in first if r["cell"].startswith("searched_")]
    random = [r["top1"] for r in first if r["cell"].startswith("random_")]

    def describe(values):
        values = np.asarray(values, np.float64)
        return {"n": len(values), "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "sem": float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None}

    noise = {}
    for name in sorted({r["cell"] for r in runs}):
        values = [r["top1"] for r in runs if r["cell"] == name]
        if len(values) > 1:
            noise[name] = describe(values)
    test = None
    if len(searched) > 1 and len(random) > 1:
        u = stats.mannwhitneyu(searched, random, alternative="two-sided")
        test = {"U": float(u.statistic), "p_two_sided": float(u.pvalue),
                "p_searched_greater": float(stats.mannwhitneyu(
                    searched, random, alternative="greater").pvalue)}
    return {"recipe": recipe(tiny).to_dict(), "runs": runs,
            "searched": describe(searched) if searched else None,
            "random": describe(random) if random else None,
            "training_noise": noise, "mann_whitney_u": test,
            "date": time.strftime("%Y-%m-%d")}


def write_results(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    files.write_json(path + ".json", results)
    lines = ["| cells | n | mean test top-1 | s.d. | s.e. |", "|---|---|---|---|---|"]
    for kind in ("searched", "random"):
        row = results[kind]
        if row:
            lines.append(f"| {kind} | {row['n']} | {row['mean']:.4f} | {row['std'] or 0:.4f} | "
                         f"{row['sem'] or 0:.4f} |")
    test = results["mann_whitney_u"]
    if test:
        lines += ["", f"Mann-Whitney U = {test['U']:.1f}, two-sided p = {test['p_two_sided']:.3f}"
                  f" (one-sided, searched > random: p = {test['p_searched_greater']:.3f})."]
    lines += ["", "Training-seed noise (one cell, retrained):", "",
              "| cell | seeds | mean | s.d. |", "|---|---|---|---|"]
    for name, row in results["training_noise"].items():
        lines.append(f"| {name} | {row['n']} | {row['mean']:.4f} | {row['std']:.4f} |")
    lines += ["", "| cell | training seed | test top-1 | seconds |", "|---|---|---|---|"]
    for run in sorted(results["runs"], key=lambda r: (r["cell"], r["train_seed"])):
        lines.append(f"| {run['cell']} | {run['train_seed']} | {run['top1']:.4f} | "
                     f"{run['seconds']:.0f} |")
    files.write_text(path + ".md", "\n".join(lines) + "\n")
    figure, ax = plt.subplots(figsize=(5.5, 3.2), constrained_layout=True)
    first = [r for r in results["runs"] if r["train_seed"] == 0]
    for index, kind in enumerate(("searched", "random")):
        values = [r["top1"] for r in first if r["cell"].startswith(kind + "_")]
        ax.plot(index + np.linspace(-0.08, 0.08, len(values)), values, "o", alpha=0.7)
        if results[kind] and results[kind]["sem"]:
            ax.errorbar(index + 0.2, results[kind]["mean"], results[kind]["sem"], fmt="s",
                        capsize=4, color="k")
    for name, row in results["training_noise"].items():
        values = [r["top1"] for r in results["runs"] if r["cell"] == name]
        ax.plot([2] * len(values), values, "x", alpha=0.8, label=name)
    ax.set_xticks([0, 1, 2], ["searched", "random", "one cell,\nretrained"])
    ax.set_ylabel("test top-1 (10,000 images)")
    ax.set_title("default search vs random cells, same recipe (mean ± s.e.)", fontsize=9)
    if results["training_noise"]:
        ax.legend(fontsize=7)
    files.write_figure(path + ".png", figure, "png")
    plt.close(figure)


def main(argv):
    del argv
    if _ONE.value:
        train_one(_ONE.value, _OUTPUT_DIR.value, _TINY.value)
        return
    found = cells(_OUTPUT_DIR.value, _SEARCHED.value, _RANDOM.value, _TINY.value)
    specs = jobs(found, _NOISE_CELLS.value, _NOISE_SEEDS.value)
    run_all(specs, _OUTPUT_DIR.value, _WORKERS.value, _TINY.value)
    results = gather(_OUTPUT_DIR.value, specs, _TINY.value)
    print(json.dumps({k: results[k] for k in ("searched", "random", "mann_whitney_u")}, indent=1))
    if _RESULTS.value:
        write_results(results, _RESULTS.value)


if __name__ == "__main__":
    app.run(main)
