"""Gradient confusion -> search depth (StacNAS section 2.3.3, equation 7, appendix D).

For mini-batch losses L_1..L_m at trained weights W, the gradient confusion is

    zeta = max(0, max_{i != j} -<grad L_i(W), grad L_j(W)>)            (eq. 7)

It is estimated `num_iterations` times on fresh random mini-batches, averaged,
and divided by the parameter count in millions (eq. 8), which makes networks
of different sizes comparable. Sweeping the depth of the stage-1 and stage-2
supernets and comparing with the final network picks the depths whose
optimization complexity matches (the paper: 14 and 20 cells for 20 final cells).
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from stacnas_tf import augmentation
from stacnas_tf import config as config_lib
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import pipelines
from stacnas_tf import run_folder
from stacnas_tf import search_loop as search
from stacnas_tf import search_space
from stacnas_tf import sources
from stacnas_tf import training as train


def max_negative_inner(gradients: np.ndarray) -> float:
    """max_{i != j} -<g_i, g_j> over the rows of `gradients` ([m, P]); may be negative."""
    gradients = np.asarray(gradients, np.float64)
    if gradients.ndim != 2 or gradients.shape[0] < 2:
        raise ValueError(f"gradient confusion needs at least two gradients, got shape {gradients.shape}.")
    inner = gradients @ gradients.T
    pairs = np.triu_indices(len(gradients), k=1)
    return float(np.max(-inner[pairs]))


def zeta(gradients: np.ndarray) -> float:
    """Equation 7 for the rows of `gradients` ([m, P], one flattened gradient per mini-batch)."""
    return max(0.0, max_negative_inner(gradients))


def gradient_fn(model, variables, loss_fn):
    """A tf.function: (images, labels) -> the flattened gradient of the mean batch loss."""

    @tf.function
    def gradient(images, labels):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
            loss = loss_fn(labels, logits)
        grads = tape.gradient(loss, variables)
        return tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)

    return gradient


def estimate(model, variables, batches, num_batches: int, num_iterations: int, loss_fn=None) -> dict:
    """Equation 8: zeta on `num_batches` mini-batches, `num_iterations` times, over the
    parameter count of `variables` in millions. `batches` yields (images, labels)."""
    if num_batches < 2 or num_iterations < 1:
        raise ValueError(f"--num_batches must be >= 2 and --num_iterations >= 1, got "
                         f"{num_batches} and {num_iterations}.")
    loss_fn = loss_fn or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    gradient = gradient_fn(model, list(variables), loss_fn)
    parameters = int(sum(np.prod(v.shape) for v in variables))
    iterator = iter(batches)
    zetas, unfloored = [], []
    for _ in range(num_iterations):
        rows = []
        for _ in range(num_batches):
            try:
                images, labels = next(iterator)
            except StopIteration as e:
                raise ValueError(f"gradient confusion: the data ran out after {len(zetas)} "
                                 "iterations; use fewer --num_iterations or --num_batches.") from e
            rows.append(gradient(images, labels).numpy())
        unfloored.append(max_negative_inner(np.stack(rows)))
        zetas.append(max(0.0, unfloored[-1]))
    mean = float(np.mean(zetas))
    # The unfloored value still ranks settings whose gradients all agree (zeta = 0).
    return {"zetas": zetas, "zeta_mean": mean, "zeta_std": float(np.std(zetas)),
            "max_negative_inner_mean": float(np.mean(unfloored)),
            "parameters": parameters, "confusion": mean / (parameters / 1e6)}


@dataclasses.dataclass(frozen=True)
class ConfusionConfig:
    """A depth sweep: supernets of both stages and the final network, briefly trained."""

    dataset: str = "fashion_mnist"
    image_size: int | None = 16
    num_train_examples: int | None = 2048
    channels: int = 8
    batch_size: int = 64
    train_epochs: int = 2
    num_batches: int = 8
    num_iterations: int = 5
    stage1_depths: tuple[int, ...] = (3, 4, 5, 6)
    stage2_depths: tuple[int, ...] = (3, 4, 5, 6)
    final_cells: int = 6
    genotype: str = "STACNAS_CIFAR10"
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "stage1_depths", tuple(self.stage1_depths))
        object.__setattr__(self, "stage2_depths", tuple(self.stage2_depths))
        for name in ("stage1_depths", "stage2_depths"):
            if not getattr(self, name) or min(getattr(self, name)) < 3:
                raise ValueError(f"--{name}: expected depths of at least 3 cells, got {getattr(self, name)}.")
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ValueError(f"--{name}: a depth is listed twice: {getattr(self, name)}.")
        if self.final_cells < 3 or self.train_epochs < 1:
            raise ValueError("--final_cells must be >= 3 and --train_epochs >= 1.")
        if self.num_batches < 2:
            # Confusion compares gradients of different batches.
            raise ValueError(f"--num_batches: expected at least 2, got {self.num_batches}.")
        if self.num_iterations < 1:
            raise ValueError(f"--num_iterations: expected a positive count, got "
                             f"{self.num_iterations}.")

    def search_config(self) -> config_lib.SearchConfig:
        return config_lib.SearchConfig(
            dataset=self.dataset, image_size=self.image_size,
            num_train_examples=self.num_train_examples, channels=self.channels,
            batch_size=self.batch_size, stage1_epochs=self.train_epochs,
            stage2_epochs=self.train_epochs, seed=self.seed)

    def train_config(self) -> config_lib.TrainConfig:
        return config_lib.TRAIN_PRESETS["default"].replace(
            genotype=self.genotype, dataset=self.dataset, image_size=self.image_size,
            num_train_examples=self.num_train_examples, num_eval_examples=self.batch_size,
            channels=self.channels, num_cells=self.final_cells, epochs=self.train_epochs,
            batch_size=self.batch_size, drop_path=0.0, seed=self.seed)


CONFUSION_PRESETS = {
    "default": ConfusionConfig(),
    "tiny": ConfusionConfig(dataset="digits", image_size=None, num_train_examples=128,
                            channels=4, batch_size=16, train_epochs=1, num_batches=3,
                            num_iterations=2, stage1_depths=(3,), stage2_depths=(3,),
                            final_cells=3),
}


def genotype_stage2_winners(genotype: genotype_lib.Genotype, space: search_space.SearchSpace):
    """Stage-1 winners implied by a genotype: each edge the genotype keeps gets its
    op; edges it drops get the first group's representative that is a convolution
    (the group that wins most edges in the paper's searches)."""
    fallback = next((op for op in space.representatives if "conv" in op), space.representatives[0])
    members = {op for group in space.groups for op in group}
    winners = []
    for cell in (genotype.normal, genotype.reduce):
        # Edge k of a cell genotype enters node 2 + k // 2.
        kept = {(source, 2 + index // 2): op for index, (op, source) in enumerate(cell.edges)}
        winners.append([kept[endpoint] if kept.get(endpoint) in members else fallback
                        for endpoint in search_space.edge_endpoints(space.num_nodes)])
    return winners


# What a sweep's folder holds: one folder per setting, the summary, its settings.
SWEEP_FILES = r"(stage1|stage2|final)_\d+cells|confusion\.(json|md|png)|sweep\.json"


def sweep(config: ConfusionConfig, output_dir: str, data_dir: str | None = None,
          search_dir: str | None = None, progress=print) -> dict:
    """Trains and measures every setting; writes confusion.json, .md and .png."""
    search_config = config.search_config()
    space = search_config.space
    source = sources.load(config.dataset, "train", data_dir=data_dir, image_size=config.image_size)
    image_shape = sources.model_input_shape(source, config.image_size)
    if search_dir:
        stage1 = run_folder.SearchFolder(search_dir, "--search_dir").stage(1).read_result()
        winners = list(stage1["winners"].values())
        if len(winners) != 2:
            raise ValueError(f"--search_dir: {search_dir} has per-cell logits; use a shared-logits search.")
        winners_from = f"stage 1 of {search_dir}"
    else:
        winners = genotype_stage2_winners(genotype_lib.resolve(config.genotype), space)
        winners_from = f"genotype {config.genotype}"
    # Only a sweep's own folder is written into (a rerun reuses its finished
    # settings, so they must have been measured with these settings).
    files.check_only_holds(output_dir, SWEEP_FILES, "a confusion sweep")
    settings_path = os.path.join(output_dir, "sweep.json")
    wanted = json.loads(json.dumps({**dataclasses.asdict(config), "search_dir": search_dir}))
    if os.path.exists(settings_path):
        files.check_same_config(output_dir, "a confusion sweep", files.read_json(settings_path), wanted)
    # Every input read and checked: only now the output folder is made.
    with files.removed_if_left_empty(os.path.abspath(output_dir)):
        output_dir = files.prepare_output_dir(output_dir)
        with files.output_lock(output_dir):
            files.write_json(settings_path, wanted)
            return _measure_all(config, output_dir, source=source, image_shape=image_shape,
                                winners=winners, winners_from=winners_from, data_dir=data_dir,
                                progress=progress)


def _measure_all(config, output_dir, *, source, image_shape, winners, winners_from, data_dir,
                 progress) -> dict:
    search_config = config.search_config()
    space = search_config.space
    settings = ([("stage1", d) for d in config.stage1_depths]
                + [("stage2", d) for d in config.stage2_depths] + [("final", config.final_cells)])
    measurements = []
    for index, (kind, cells) in enumerate(settings):
        folder = os.path.join(output_dir, f"{kind}_{cells}cells")
        record_path = os.path.join(folder, "confusion.json")
        if os.path.exists(record_path):
            measurements.append(files.read_json(record_path))
            continue
        keras.utils.set_random_seed(config.seed)
        if kind == "final":
            train.run_training(config.train_config(), folder, data_dir=data_dir, verbose=0)
            model, _ = train.load_network(folder, source.num_classes, image_shape, auxiliary=False)
            variables = model.weight_variables
        else:
            stage = 1 if kind == "stage1" else 2
            stage_space = (search_space.stage1_space(space, cells, False) if stage == 1
                           else search_space.stage2_space(space, winners, cells, cells, False))
            run = search.SearchRun(config=search_config,
                                   folder=run_folder.SearchFolder(folder, "--search_dir"),
                                   strategy=tf.distribute.get_strategy(), source=source, verbose=0)
            search.run_stage(run, search.StagePlan(stage, stage_space, cells, config.train_epochs))
            model = search.load_stage_network(run.folder, stage, source.num_classes, image_shape,
                                              config=search_config, stage_space=stage_space,
                                              num_cells=cells)
            variables = model.weight_variables
        batches = pipelines.train_pipeline(source, config.batch_size,
                                           seed=config.seed + 1000 + index, epochs=10 ** 6,
                                           augment=augmentation.Augment(),
                                           image_size=config.image_size,
                                           num_examples=config.num_train_examples)
        record = {"setting": kind, "cells": cells,
                  **estimate(model, variables, batches, config.num_batches, config.num_iterations)}
        files.write_json(record_path, record)
        measurements.append(record)
        if progress:
            progress(f"[{index + 1}/{len(settings)}] {kind} {cells} cells: zeta {record['zeta_mean']:.4g}, "
                     f"{record['parameters']:,} parameters, confusion {record['confusion']:.4g}")
    final = next(m for m in measurements if m["setting"] == "final")

    def closest(kind):
        # Ties (e.g. zeta = 0 at every depth) go to the deepest supernet: no harder to
        # optimize than the final network, and closest to it in shape.
        candidates = [m for m in measurements if m["setting"] == kind]
        return min(candidates, key=lambda m: (abs(m["confusion"] - final["confusion"]), -m["cells"]))["cells"]

    result = {"config": dataclasses.asdict(config), "stage2_winners_from": winners_from,
              "measurements": measurements,
              "recommended": {"stage1_cells": closest("stage1"), "stage2_cells": closest("stage2"),
                              "final_cells": config.final_cells}}
    files.write_json(os.path.join(output_dir, "confusion.json"), result)
    files.write_text(os.path.join(output_dir, "confusion.md"), markdown(result))
    plot_png(os.path.join(output_dir, "confusion.png"), result)
    return result


def markdown(result: dict) -> str:
    lines = ["| setting | cells | parameters | zeta mean ± std | confusion (zeta / M params) "
             "| max -<g_i, g_j> (unfloored) |",
             "|---|---|---|---|---|---|"]
    for m in result["measurements"]:
        lines.append(f"| {m['setting']} | {m['cells']} | {m['parameters']:,} | "
                     f"{m['zeta_mean']:.4g} ± {m['zeta_std']:.2g} | {m['confusion']:.4g} | "
                     f"{m['max_negative_inner_mean']:.4g} |")
    rec = result["recommended"]
    lines += ["", f"Recommended: stage 1 with {rec['stage1_cells']} cells, stage 2 with "
              f"{rec['stage2_cells']} cells, for a final network of {rec['final_cells']} cells."]
    return "\n".join(lines) + "\n"


def plot_png(path: str, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for kind, marker in (("stage1", "o"), ("stage2", "s")):
        points = sorted((m["cells"], m["confusion"]) for m in result["measurements"] if m["setting"] == kind)
        axes.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=f"{kind} supernet")
    final = next(m for m in result["measurements"] if m["setting"] == "final")
    axes.axhline(final["confusion"], color="black", linestyle="--",
                 label=f"final network ({final['cells']} cells)")
    axes.set_xlabel("cells")
    axes.set_ylabel("gradient confusion / M parameters")
    axes.legend()
    figure.tight_layout()
    files.write_figure(path, figure, "png")
    plt.close(figure)
