"""The StacNAS search: stage 1 (groups), stage 2 (ops in the winning groups),
then the genotype (Algorithm 1, stages 1-2).

The paper's ablations are settings of the same search (`SearchConfig`):
`grouping="flat"` runs DARTS's single stage over every op, and
`optimization="bi_level"` DARTS's first-order alternation on two halves of
the training data.

A search writes into a `run_folder.SearchFolder` (its layout is described
there). Rerunning on the same folder resumes from the last completed epoch; a
folder made with another configuration is refused.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from stacnas_tf import augmentation
from stacnas_tf import checkpoints
from stacnas_tf import config as config_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import initialization
from stacnas_tf import optimizers
from stacnas_tf import pipelines
from stacnas_tf import precision
from stacnas_tf import repeatable
from stacnas_tf import report
from stacnas_tf import resumable
from stacnas_tf import run_folder
from stacnas_tf import search_space
from stacnas_tf import sources
from stacnas_tf import strategy as strategy_lib
from stacnas_tf import supernet


@dataclasses.dataclass(frozen=True)
class SearchRun:
    """One search, as its stages need it: the settings, the folder it writes
    into, the images (None until loaded), and how it runs. The caller opens
    the strategy."""
    config: config_lib.SearchConfig
    folder: run_folder.SearchFolder
    strategy: tf.distribute.Strategy
    source: sources.Source | None = None
    data_dir: str | None = None
    manual_dir: str | None = None
    verbose: Any = "auto"
    jit_compile: bool = False
    callbacks: tuple = ()
    write_report: bool = True

    @property
    def chief(self) -> bool:
        return strategy_lib.is_chief(self.strategy)


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """What one stage searches: its candidates, depth and length."""
    stage: int
    space: search_space.StageSpace
    num_cells: int
    epochs: int


@dataclasses.dataclass(frozen=True)
class StageResult:
    stage: int
    num_cells: int
    space: search_space.StageSpace
    weights: list  # per logit set: [edges][candidates] softmax weights
    result: dict  # what result.json holds


def make_optimizers(config: config_lib.SearchConfig, steps_per_epoch: int, epochs: int):
    """(learning-rate schedule, weight optimizer, architecture optimizer) of a stage:
    SGD with momentum on the weights, its rate cosine-annealed from weight_lr to
    weight_lr_min over the stage, and Adam on alpha, as DARTS. Call under the
    strategy's scope."""
    schedule = keras.optimizers.schedules.CosineDecay(
        config.weight_lr, decay_steps=steps_per_epoch * epochs,
        alpha=config.weight_lr_min / config.weight_lr,
    )
    weight_optimizer = optimizers.FusedSGD(schedule, momentum=config.weight_momentum)
    architecture_optimizer = keras.optimizers.Adam(
        architecture_lr(config, steps_per_epoch), beta_1=config.arch_beta_1, beta_2=config.arch_beta_2,
        epsilon=config.arch_epsilon,
    )
    return schedule, weight_optimizer, architecture_optimizer


def architecture_lr(config: config_lib.SearchConfig, steps_per_epoch: int):
    """alpha's Adam learning rate: `arch_lr`, or 0 for the first `arch_warmup_epochs`
    epochs (the weights train first, as in P-DARTS / PC-DARTS). Adam still sees the
    warm-up gradients, so its moment estimates start from them when alpha moves."""
    if not config.arch_warmup_epochs:
        return config.arch_lr
    # Adam reads the rate at its step count before the update: steps 0..W-1 stay still.
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [config.arch_warmup_epochs * steps_per_epoch - 1], [0.0, config.arch_lr])


def stage_steps(config: config_lib.SearchConfig, source: sources.Source) -> int:
    """Steps of one search epoch: `steps_per_epoch`, else one pass over the examples
    (over one half of them for bi_level)."""
    bi_level = config.optimization == "bi_level"
    examples = (pipelines.bi_level_split(source, config.num_train_examples)[0]
                if bi_level else config.num_train_examples)
    try:
        passes = sources.steps_per_epoch(source, config.batch_size, examples)
    except ValueError as e:
        if not bi_level:
            raise
        raise ValueError(f"{e} (bi_level trains the weights and alpha on two halves of the "
                         "training examples)") from None
    return config.steps_per_epoch or passes


def _logits_json(model: supernet.SearchNetwork) -> dict:
    """`architecture_weights()` with each edge's logits."""
    weights = model.architecture_weights()
    for edges, values in zip(weights.values(), model.logit_values()):
        for edge, (_, logits, _) in zip(edges, values):
            edge["logits"] = logits
    return weights


def _recorder(schedule, writer):
    """The history entry of a search epoch: loss, accuracy, learning rate and
    every edge's logits and softmax weights, also written as TensorBoard scalars."""

    def record(model, epoch, logs):
        logits = _logits_json(model)
        lr = float(schedule(model.optimizer.iterations))
        # At Keras's own epoch steps (its TensorBoard callback writes epoch k at step k).
        with writer.as_default(step=epoch):
            for name, edges in logits.items():
                for e in edges:
                    for op, weight in zip(e["candidates"], e["weights"]):
                        tf.summary.scalar(f"alpha/{name}/{e['edge']}/{op}", weight)
            tf.summary.scalar("lr", lr)
        report.summarize_epoch(
            writer, {name: [e["weights"] for e in edges] for name, edges in logits.items()},
            epoch, {name: [e["candidates"] for e in edges] for name, edges in logits.items()})
        writer.flush()
        return {
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", np.nan)),
            "accuracy": float(logs.get("accuracy", np.nan)),
            "lr": lr,
            "logits": {name: [e["logits"] for e in edges] for name, edges in logits.items()},
            "weights": {name: [e["weights"] for e in edges] for name, edges in logits.items()},
        }

    return record


def build_supernet(config: config_lib.SearchConfig, stage: int,
                   stage_space: search_space.StageSpace, num_cells: int, num_classes: int,
                   image_shape, *, statistics=None) -> supernet.SearchNetwork:
    """The supernet of `stage`, built for images of `image_shape`. Training and
    loading both use it, so the variable paths the checkpoints are keyed by
    always agree. `statistics` (mean, std) of the training pixels normalise its
    input (None: mean and std 0.5 until a checkpoint's weights replace them)."""
    with precision.policy_scope(config.precision):
        model = supernet.SearchNetwork(
            stage_space, num_classes, channels=config.channels, num_cells=num_cells,
            weight_decay=config.weight_decay, architecture_weight_decay=config.arch_weight_decay,
            grad_clip_norm=config.grad_clip_norm, seed=config.seed * 10 + stage,
            optimization=config.optimization, name=f"stage{stage}_supernet",
            **dict(zip(("mean", "std"), statistics or (None, None))),
        )
        model.build((None,) + tuple(image_shape))
    if config.weight_init == "pytorch":
        initialization.pytorch_default(model, seed=config.seed * 10 + stage)
    return model


def _stage_callbacks(callbacks, stage: int) -> list:
    """The user's callbacks for `stage`. A Keras TensorBoard callback among them
    writes each stage as a run of its own (LOG_DIR/stage1, LOG_DIR/stage2), as the
    search's own logs do: both stages count epochs from 0, and in one run their
    curves would overwrite each other."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.TensorBoard):
            # The folder the user gave, remembered on the callback across stages.
            base = getattr(callback, "stacnas_base_log_dir", callback.log_dir)
            callback.stacnas_base_log_dir = base
            callback.log_dir = os.path.join(base, f"stage{stage}")
    return list(callbacks)


def run_stage(run: SearchRun, plan: StagePlan) -> StageResult:
    """Trains one supernet to the end of its epochs (resuming if checkpointed).

    Only the chief writes into the run's folder; every worker resumes from the
    chief's checkpoints there (a shared folder in a multi-host run).
    """
    config, source, strategy, stage = run.config, run.source, run.strategy, plan.stage
    folder = run.folder.stage(stage)
    if run.chief:
        folder.make()
    bi_level = config.optimization == "bi_level"
    steps = stage_steps(config, source)
    image_shape = sources.model_input_shape(source, config.image_size)
    keras.utils.set_random_seed(config.seed * 10 + stage)
    with strategy.scope():
        model = build_supernet(config, stage, plan.space, plan.num_cells, source.num_classes,
                               image_shape, statistics=(source.mean, source.std))
        schedule, weight_optimizer, architecture_optimizer = make_optimizers(
            config, steps, plan.epochs)
        model.compile(weight_optimizer, architecture_optimizer, jit_compile=run.jit_compile)
    pipeline = pipelines.bi_level_pipeline if bi_level else pipelines.train_pipeline
    writer = (tf.summary.create_file_writer(os.path.join(folder.tensorboard_dir, "architecture"))
              if run.chief else None)
    # On CPU without Grappler's rewrites: see stacnas_tf/repeatable.py.
    with repeatable.search_graphs():
        history = resumable.fit(
            model, strategy, epochs=plan.epochs, steps_per_epoch=steps, folder=folder,
            trackables={"weight_optimizer": weight_optimizer,
                        "architecture_optimizer": architecture_optimizer},
            make_dataset=lambda initial_epoch, input_context: pipeline(
                source, config.batch_size, seed=config.seed, epochs=plan.epochs,
                initial_epoch=initial_epoch,
                augment=augmentation.default_augment(source.name), image_size=config.image_size,
                num_examples=config.num_train_examples, input_context=input_context,
                epoch_steps=steps),
            record=_recorder(schedule, writer), what=f"stage {stage}",
            callbacks=_stage_callbacks(run.callbacks, stage), verbose=run.verbose,
            header=(f"{config.optimization} {config.grouping} search, stage {stage}: "
                    f"{plan.num_cells} cells, {plan.epochs} epochs of {steps} steps "
                    f"({model.count_params():,} parameters, {strategy.num_replicas_in_sync} "
                    f"replica(s), {config.precision}{', XLA' if run.jit_compile else ''})"))
    if run.chief and len(history) < plan.epochs:  # only the chief keeps the history
        # A callback set model.stop_training: a stage result must come from every
        # epoch, or a rerun would take the shortened stage as finished.
        raise ValueError(f"stage {stage} stopped after {len(history)} of {plan.epochs} epochs (a "
                         "callback set model.stop_training); it is not recorded as finished: "
                         "rerun without that callback to complete it.")
    logits = _logits_json(model)
    weights = [[e["weights"] for e in edges] for edges in logits.values()]
    result = {
        "stage": stage, "num_cells": plan.num_cells, "epochs": plan.epochs,
        "space": plan.space.to_dict(), "logits": logits,
        "final_loss": history[-1]["loss"] if history else None,
        "final_accuracy": history[-1]["accuracy"] if history else None,
    }
    del model
    gc.collect()
    return StageResult(stage, plan.num_cells, plan.space, weights, result)


def _winners(stage: StageResult) -> list[list[str]]:
    return [genotype_lib.strongest_ops(cell, weights)
            for cell, weights in zip(stage.space.cells, stage.weights)]


def run_search(config: config_lib.SearchConfig, output_dir: str | run_folder.SearchFolder, *,
               data_dir: str | None = None, manual_dir: str | None = None,
               strategy: tf.distribute.Strategy | None = None, verbose="auto",
               jit_compile: bool = False, source: sources.Source | None = None,
               callbacks=(), report: bool = True) -> genotype_lib.Genotype:
    """Runs (or resumes) a two-stage StacNAS search and returns its genotype.

    The caller opens the distribution strategy; the default strategy is used
    when none is given. In a multi-worker run every worker calls this with the
    same arguments; only the chief writes into `output_dir`. `jit_compile`
    compiles the training step with XLA. `source` replaces loading
    `config.dataset` (images given in Python); `callbacks` (Keras callbacks)
    are passed to each stage's `fit`, after its own (see `resumable.fit`).
    `report`: write the search's report (report/report.html) and its
    TensorBoard summary at the end.
    """
    # A path comes from the command line (its flag names it in errors); a folder from the API.
    folder = (output_dir if isinstance(output_dir, run_folder.SearchFolder)
              else run_folder.SearchFolder(output_dir))
    run = SearchRun(config=config, folder=folder,
                    strategy=strategy or tf.distribute.get_strategy(), source=source,
                    data_dir=data_dir, manual_dir=manual_dir, verbose=verbose,
                    jit_compile=jit_compile, callbacks=tuple(callbacks), write_report=report)
    if not run.chief:  # the other workers only read the chief's checkpoints
        return _search(dataclasses.replace(run, folder=folder.absolute()))
    with folder.claimed() as claimed:
        return _search(dataclasses.replace(run, folder=claimed))


def _search(run: SearchRun) -> genotype_lib.Genotype:
    folder, config = run.folder, run.config
    if repeatable.thread_count_changes_results():
        logging.info("a kernel may use %s threads here, so this search's numbers may change "
                     "with the number of CPU threads; TF_NUM_INTRAOP_THREADS=1, set before "
                     "TensorFlow starts (the programs do), keeps them the same.",
                     repeatable.threads_per_kernel() or "every core's")
    if run.chief or folder.has_config():
        folder.check_run(config)
    images = run_folder.image_fingerprints(train=run.source)
    if folder.has_progress():
        folder.check_same_images(images)
    if folder.has_genotype():
        genotype = folder.read_genotype()
        if run.chief and run.write_report and not folder.has_report():
            # The search finished but was stopped before its report (killed).
            _write_report(run, genotype)
        return genotype
    source = run.source or sources.load(config.dataset, "train", data_dir=run.data_dir,
                                        manual_dir=run.manual_dir, image_size=config.image_size)
    sources.model_input_shape(source, config.image_size)
    config = config_lib.with_class_names(config, source.class_names)
    sources.check_example_count(source, config.num_train_examples, config.batch_size)
    stage_steps(config, source)  # bi_level's halves hold a batch each
    # Recorded once the inputs are known to be good, so a failed start leaves no config behind.
    if run.chief:
        folder.check_run(config, record=True)
        folder.record_images(images, source.image_shape)
    run = dataclasses.replace(run, config=config, source=source)
    space = config.space

    if config.grouping == "flat":
        # DARTS: one stage over every op; the genotype comes from it.
        flat = search_space.StageSpace(
            cells=(space.full_candidates(),) * (config.stage1_cells if config.per_cell_logits else 2),
            per_cell=config.per_cell_logits)
        final = _load_or_run(run, StagePlan(1, flat, config.stage1_cells, config.stage1_epochs),
                             extra=lambda s: {"winners": dict(zip(s.result["logits"], _winners(s)))})
    else:
        stage1 = _load_or_run(
            run, StagePlan(1, search_space.stage1_space(space, config.stage1_cells,
                                                        config.per_cell_logits),
                           config.stage1_cells, config.stage1_epochs),
            extra=lambda s: _activation(space, s))
        stage2_space = search_space.stage2_space(
            space, _winners(stage1), config.stage2_cells, config.stage1_cells,
            config.per_cell_logits)
        final = _load_or_run(
            run, StagePlan(2, stage2_space, config.stage2_cells, config.stage2_epochs),
            extra=lambda s: {"winners": dict(zip(s.result["logits"], _winners(s)))})
    genotype = genotype_lib.derive_genotype(final.space, final.weights, final.num_cells,
                                            space.num_nodes)
    if not run.chief:
        return genotype
    warning = report.undecided_warning(final.weights)
    if warning:
        logging.warning("%s", warning)
    folder.write_genotype(genotype)
    if run.write_report:
        _write_report(run, genotype)
    return genotype


def _write_report(run: SearchRun, genotype: genotype_lib.Genotype) -> None:
    report.summarize_search(run.folder.summary_dir, run.config, genotype)
    try:
        path = report.write(run_folder.SearchFolder(run.folder.path, "--search_dir"))
    except (OSError, ValueError) as e:  # the search itself is done and kept
        logging.warning("the search is done, but its report failed (%s); write it with "
                        "stacnas-report --search_dir=%s", e, run.folder.path)
    else:
        if run.verbose:
            print(f"report: {path}", flush=True)


def _activation(space: search_space.SearchSpace, stage: StageResult) -> dict:
    names = list(stage.result["logits"])
    winners = _winners(stage)
    return {
        "winners": dict(zip(names, winners)),
        "activated_groups": {
            name: [list(space.group_of(op)) for op in ops] for name, ops in zip(names, winners)
        },
    }


def _load_or_run(run: SearchRun, plan: StagePlan, extra) -> StageResult:
    folder = run.folder.stage(plan.stage)
    if folder.has_result():
        result = folder.read_result()
        space, weights = result.pop("stage_space"), result.pop("weights")
        return StageResult(plan.stage, plan.num_cells, space, weights, result)
    outcome = run_stage(run, plan)
    outcome.result.update(extra(outcome))
    if run.chief:
        folder.write_result(outcome.result)
    return outcome


def load_stage_network(folder: run_folder.SearchFolder, stage: int, num_classes: int,
                       image_shape, *, config: config_lib.SearchConfig | None = None,
                       stage_space: search_space.StageSpace | None = None,
                       num_cells: int | None = None) -> supernet.SearchNetwork:
    """The trained supernet of `stage` in a search folder (its latest checkpoint).

    The config, candidates and depth are read from the folder unless given.
    """
    if config is None:
        config = folder.read_config()
    if stage_space is None or num_cells is None:
        result = folder.stage(stage).read_result()
        stage_space, num_cells = result["stage_space"], result["num_cells"]
    model = build_supernet(config, stage, stage_space, num_cells, num_classes, image_shape)
    path = checkpoints.restore_latest(
        checkpoints.make(model), folder.stage(stage).checkpoint_dir,
        partial=True, what=f"{folder.flag} stage {stage}")
    if not path:
        raise ValueError(f"{folder.flag}: {folder.path}/stage{stage} has no checkpoint.")
    return model
