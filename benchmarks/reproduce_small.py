"""A small-scale reproduction of the paper's ablation (table 4).

For several seeds, each row searches a genotype its own way, trains it the same
short way and measures its test error:

  random                       genotypes drawn uniformly from the cell space (the floor)
  darts_bi_level_flat          DARTS first order: one stage over all 8 ops, bi-level
  one_level_flat               one stage over all 8 ops, one-level
  one_level_grouped            StacNAS's two stages, both at the unmatched search depth
  one_level_grouped_matched    StacNAS: two stages at depths matched to the final network

  bazel run //benchmarks:reproduce_small                  # the default: < 60 min on 2 CPU cores
  bazel run //benchmarks:reproduce_small -- --preset=tiny # minutes: checks that it all runs
  python benchmarks/reproduce_small.py --dataset=cifar10 --data_dir=~/tensorflow_datasets \
      --image_size=32 --channels=16 --search_epochs=50 --final_epochs=100 --seeds=0,1,2,3 ...

Writes OUTPUT_DIR/results.json (every run and the per-row summary) and
OUTPUT_DIR/results.md (the table). Runs already finished in OUTPUT_DIR are
reused, so an interrupted reproduction continues where it stopped.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402

ROWS = ("random", "darts_bi_level_flat", "one_level_flat", "one_level_grouped",
        "one_level_grouped_matched")


@dataclasses.dataclass(frozen=True)
class ReproductionConfig:
    """Sizes of the reproduction; every row uses the same data and final training."""

    dataset: str = "fashion_mnist"
    image_size: int | None = 16
    search_examples: int = 4096
    channels: int = 8
    batch_size: int = 64
    search_epochs: int = 3  # per stage
    search_cells: int = 3  # unmatched depth (DARTS: a shallower proxy than the final network)
    matched_stage1_cells: int = 4  # matched depths (the paper: 14 and 20 for 20 final cells)
    matched_stage2_cells: int = 6
    final_cells: int = 6
    final_epochs: int = 4
    final_examples: int = 8192
    eval_examples: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)

    def search_config(self, row: str, seed: int) -> config_lib.SearchConfig:
        base = config_lib.SearchConfig(
            dataset=self.dataset, image_size=self.image_size,
            num_train_examples=self.search_examples, channels=self.channels,
            batch_size=self.batch_size, stage1_epochs=self.search_epochs,
            stage2_epochs=self.search_epochs, stage1_cells=self.search_cells,
            stage2_cells=self.search_cells, seed=seed)
        return {
            "darts_bi_level_flat": base.replace(grouping="flat", optimization="bi_level"),
            "one_level_flat": base.replace(grouping="flat"),
            "one_level_grouped": base,
            "one_level_grouped_matched": base.replace(stage1_cells=self.matched_stage1_cells,
                                                      stage2_cells=self.matched_stage2_cells),
        }[row]

    def train_config(self, genotype_path: str, seed: int) -> config_lib.TrainConfig:
        return config_lib.TRAIN_PRESETS["default"].replace(
            genotype=genotype_path, dataset=self.dataset, image_size=self.image_size,
            num_train_examples=self.final_examples, num_eval_examples=self.eval_examples,
            channels=self.channels, num_cells=self.final_cells, epochs=self.final_epochs,
            batch_size=self.batch_size, seed=seed)


PRESETS = {
    "default": ReproductionConfig(),
    # End to end in minutes: the test of this script.
    "tiny": ReproductionConfig(
        dataset="digits", image_size=None, search_examples=64, channels=4, batch_size=32,
        search_epochs=1, search_cells=3, matched_stage1_cells=3, matched_stage2_cells=4,
        final_cells=4, final_epochs=1, final_examples=128, eval_examples=64, seeds=(0,)),
}

_PRESET = flags.DEFINE_enum("preset", "default", sorted(PRESETS), "Sizes; flags override them.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/reproduce_small",
                                  "Folder for every search, training and the result table.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder (see tools/search.py).")
_ROWS = flags.DEFINE_list("rows", list(ROWS), f"Rows to run, of {list(ROWS)}.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds, e.g. 0,1,2.")
_INT_FIELDS = ("search_examples", "channels", "batch_size", "search_epochs", "search_cells",
               "matched_stage1_cells", "matched_stage2_cells", "final_cells", "final_epochs",
               "final_examples", "eval_examples", "image_size")
_INT_FLAGS = {name: flags.DEFINE_integer(name, None, f"Overrides the preset's {name}.")
              for name in _INT_FIELDS}
_DATASET = flags.DEFINE_string("dataset", None, "Overrides the preset's dataset.")


def run_one(config: ReproductionConfig, row: str, seed: int, output_dir: str,
            data_dir: str | None) -> dict:
    """Searches (or draws) the row's genotype for `seed`, trains it, returns its record."""
    from stacnas_tf import genotype as genotype_lib
    from stacnas_tf import search_loop as search
    from stacnas_tf import training as train

    run_dir = os.path.join(output_dir, row, f"seed_{seed}")
    record_path = os.path.join(run_dir, "record.json")
    if os.path.exists(record_path):
        return files.read_json(record_path)
    os.makedirs(run_dir, exist_ok=True)
    started = time.perf_counter()
    if row == "random":
        search_config = config.search_config("one_level_grouped", seed)
        genotype = genotype_lib.random_genotype(search_config.space, seed)
        search_seconds = 0.0
    else:
        search_config = config.search_config(row, seed)
        genotype = search.run_search(search_config, os.path.join(run_dir, "search"),
                                     data_dir=data_dir, verbose=0, report=False)
        search_seconds = time.perf_counter() - started
    genotype_path = os.path.join(run_dir, "genotype.json")
    files.write_text(genotype_path, genotype.to_json() + "\n")
    started = time.perf_counter()
    metrics = train.run_training(config.train_config(genotype_path, seed),
                                 os.path.join(run_dir, "train"), data_dir=data_dir, verbose=0)
    record = {
        "row": row, "seed": seed, "genotype": genotype.to_darts(),
        "search_seconds": round(search_seconds, 1),
        "train_seconds": round(time.perf_counter() - started, 1),
        "test_error": 1.0 - metrics["top1"], "parameters": metrics["parameters"],
        "search": None if row == "random" else search_config.to_dict(),
    }
    files.write_json(record_path, record)
    return record


def summarize(records: list[dict]) -> list[dict]:
    """Per row: test error mean and sample std over seeds, mean search time."""
    summary = []
    for row in ROWS:
        rows = [r for r in records if r["row"] == row]
        if not rows:
            continue
        errors = np.array([r["test_error"] for r in rows])
        summary.append({
            "row": row, "seeds": len(rows),
            "test_error_mean": float(errors.mean()),
            "test_error_std": float(errors.std(ddof=1)) if len(rows) > 1 else 0.0,
            "search_seconds_mean": float(np.mean([r["search_seconds"] for r in rows])),
            "parameters_mean": float(np.mean([r["parameters"] for r in rows])),
        })
    return summary


def markdown(summary: list[dict], config: ReproductionConfig, machine: str) -> str:
    lines = [
        f"Dataset {config.dataset} ({config.image_size or 'native'} px), search on "
        f"{config.search_examples} images, {config.search_epochs} epoch(s) per stage, C={config.channels}; "
        f"every genotype trained as a {config.final_cells}-cell network for {config.final_epochs} "
        f"epochs on {config.final_examples} images, tested on {config.eval_examples} test images. "
        f"Machine: {machine}.",
        "",
        "| row | test error (%) mean ± std | seeds | search time (s) | parameters |",
        "|---|---|---|---|---|",
    ]
    for entry in summary:
        lines.append(
            f"| {entry['row']} | {100 * entry['test_error_mean']:.2f} ± "
            f"{100 * entry['test_error_std']:.2f} | {entry['seeds']} | "
            f"{entry['search_seconds_mean']:.0f} | {entry['parameters_mean']:,.0f} |")
    return "\n".join(lines) + "\n"


def reproduce(config: ReproductionConfig, output_dir: str, rows=ROWS, data_dir=None,
              progress=print) -> dict:
    """Runs every (row, seed); writes results.json and results.md in `output_dir`."""
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        raise ValueError(f"--rows: unknown row(s) {unknown}; expected some of {list(ROWS)}.")
    output_dir = files.prepare_output_dir(output_dir)
    records = []
    runs = [(row, seed) for seed in config.seeds for row in rows]
    started = time.perf_counter()
    for index, (row, seed) in enumerate(runs):
        record = run_one(config, row, seed, output_dir, data_dir)
        records.append(record)
        progress(f"[{index + 1}/{len(runs)}] {row} seed {seed}: test error "
                 f"{100 * record['test_error']:.2f}%, search {record['search_seconds']:.0f} s, "
                 f"train {record['train_seconds']:.0f} s ({time.perf_counter() - started:.0f} s so far)")
    import tensorflow as tf

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, TF {tf.__version__}"
    summary = summarize(records)
    result = {"config": dataclasses.asdict(config), "machine": machine,
              "wall_seconds": round(time.perf_counter() - started, 1),
              "summary": summary, "runs": records}
    files.write_json(os.path.join(output_dir, "results.json"), result)
    files.write_text(os.path.join(output_dir, "results.md"), markdown(summary, config, machine))
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    overrides = {name: flag.value for name, flag in _INT_FLAGS.items() if flag.value is not None}
    if _DATASET.value:
        overrides["dataset"] = _DATASET.value
    try:
        if _SEEDS.value:
            overrides["seeds"] = tuple(int(seed) for seed in _SEEDS.value)
        config = dataclasses.replace(PRESETS[_PRESET.value], **overrides)
        result = reproduce(config, files.user_path(_OUTPUT_DIR.value), rows=_ROWS.value,
                           data_dir=files.user_path(_DATA_DIR.value))
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    print(markdown(result["summary"], config, result["machine"]))


if __name__ == "__main__":
    app.run(main)
