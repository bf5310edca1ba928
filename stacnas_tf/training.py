"""Training a final network from a genotype (StacNAS section 3, appendix C).

A training writes into a `run_folder.TrainingFolder` (its layout is described
there). Rerunning on the same folder resumes after the last completed epoch
with the learning-rate schedule where it stopped; other settings or another
genotype are refused.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from typing import Any

import keras
import tensorflow as tf

from stacnas_tf import augmentation
from stacnas_tf import checkpoints
from stacnas_tf import config as config_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network as network_lib
from stacnas_tf import optimizers
from stacnas_tf import pipelines
from stacnas_tf import resumable
from stacnas_tf import run_folder
from stacnas_tf import sources as sources_lib
from stacnas_tf import strategy as strategy_lib


def lr_schedule(config: config_lib.TrainConfig, steps_per_epoch: int):
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            config.lr, decay_steps=steps_per_epoch * config.epochs, alpha=config.lr_min / config.lr)
    # DARTS's ImageNet recipe: lr x decay_rate after every epoch.
    return keras.optimizers.schedules.ExponentialDecay(
        config.lr, decay_steps=steps_per_epoch, decay_rate=config.lr_decay_rate, staircase=True)


def train_augment(config: config_lib.TrainConfig) -> augmentation.Augment:
    """The dataset's standard augmentation plus the recipe's AutoAugment and cutout."""
    return dataclasses.replace(augmentation.default_augment(config.dataset),
                               autoaugment=config.autoaugment, cutout=config.cutout)


def check_recipe_fits_images(config: config_lib.TrainConfig, image_shape) -> None:
    """Refuses settings that cannot work on images of `image_shape`: the ImageNet
    stem's three halvings before the two reduction cells, a cutout square that
    blanks the whole image."""
    height, width = image_shape[:2]
    if config.network == "imagenet" and (height % 32 or width % 32):
        raise ValueError(f"--network=imagenet: its stem halves the images three times and two "
                         f"reduction cells halve them again, so their sides must be multiples "
                         f"of 32; these are {height}x{width}: pass --image_size (224 as "
                         "ImageNet), or --network=cifar.")
    if config.cutout >= min(height, width):
        raise ValueError(f"--cutout={config.cutout}: a square that large blanks the whole "
                         f"{height}x{width} image; expected a side below {min(height, width)} "
                         "(DARTS: 16 on 32x32), or 0 for none.")


def compile_network(net, config: config_lib.TrainConfig, steps_per_epoch: int,
                    jit_compile: bool = False):
    """Compiles `net` with the recipe's optimizers; returns (schedule, weight and
    architecture optimizers). Call under the strategy's scope. `jit_compile`
    compiles the training step with XLA."""
    schedule = lr_schedule(config, steps_per_epoch)
    weight_optimizer = optimizers.FusedSGD(schedule, momentum=config.momentum)
    architecture_optimizer = (
        keras.optimizers.Adam(config.arch_lr, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
        if config.deformable else None)
    net.compile(weight_optimizer, architecture_optimizer, aux_weight=config.aux_weight,
                label_smoothing=config.label_smoothing, grad_clip_norm=config.grad_clip_norm,
                weight_decay=config.weight_decay, architecture_weight_decay=config.arch_weight_decay,
                jit_compile=jit_compile)
    return schedule, weight_optimizer, architecture_optimizer


class _DropPathRamp(keras.callbacks.Callback):
    """Drop-path rate ramps linearly from 0 to its maximum over training (DARTS)."""

    def __init__(self, maximum, epochs):
        super().__init__()
        self.maximum = maximum
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.model.drop_path_rate.assign(self.maximum * epoch / self.epochs)


def _recorder(schedule):
    """The history entry of a training epoch: Keras's metrics, learning rate,
    drop-path rate and, for deformable cells, every edge's scale."""

    def record(model, epoch, logs):
        entry = {k: float(v) for k, v in logs.items()}
        entry.update({
            "epoch": epoch + 1,
            "lr": float(schedule(model.optimizer.iterations)),
            "drop_path_rate": float(model.drop_path_rate.numpy()),
        })
        if model.deformable:
            entry["edge_scales"] = [cell.edge_scales().numpy().tolist()
                                    for cell in model.derived_cells]
        return entry

    return record


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """One training: the recipe, the genotype it trains, the folder it writes
    into, the images (train, test; None until loaded) and how it runs. The
    caller opens the strategy."""
    config: config_lib.TrainConfig
    genotype: genotype_lib.Genotype
    folder: run_folder.TrainingFolder
    strategy: tf.distribute.Strategy
    sources: tuple | None = None
    data_dir: str | None = None
    manual_dir: str | None = None
    verbose: Any = "auto"
    jit_compile: bool = False
    callbacks: tuple = ()

    @property
    def chief(self) -> bool:
        return strategy_lib.is_chief(self.strategy)


def run_training(config: config_lib.TrainConfig, output_dir: str | run_folder.TrainingFolder, *,
                 genotype: genotype_lib.Genotype | None = None, data_dir: str | None = None,
                 manual_dir: str | None = None, strategy: tf.distribute.Strategy | None = None,
                 verbose="auto", jit_compile: bool = False,
                 sources: tuple[sources_lib.Source, sources_lib.Source] | None = None,
                 callbacks=()) -> dict:
    """Trains (or resumes) the final network of `config`; returns the final metrics.

    `genotype`: the genotype to train, parsed by the caller (default: the one
    `config.genotype` names). In a multi-worker run every worker calls this
    with the same arguments; only the chief writes into `output_dir`, and every
    worker resumes from the chief's checkpoints there. `sources` (train, test)
    replace loading `config.dataset` (images given in Python); `callbacks`
    (Keras callbacks) are passed to `fit`, after its own (see `resumable.fit`).
    """
    # A path comes from the command line (its flag names it in errors); a folder from the API.
    folder = (output_dir if isinstance(output_dir, run_folder.TrainingFolder)
              else run_folder.TrainingFolder(output_dir))
    run = TrainingRun(
        config=config,
        genotype=genotype if genotype is not None else genotype_lib.resolve(config.genotype),
        folder=folder, strategy=strategy or tf.distribute.get_strategy(),
        sources=sources, data_dir=data_dir, manual_dir=manual_dir, verbose=verbose,
        jit_compile=jit_compile, callbacks=tuple(callbacks))
    if not run.chief:  # the other workers only read the chief's checkpoints
        return _train(dataclasses.replace(run, folder=folder.absolute()))
    with folder.claimed() as claimed:
        return _train(dataclasses.replace(run, folder=claimed))


def _train(run: TrainingRun) -> dict:
    folder, config, genotype, strategy = run.folder, run.config, run.genotype, run.strategy
    if run.chief or folder.has_config():
        folder.check_run(config, genotype)
    sources = run.sources
    images = (run_folder.image_fingerprints(train=sources[0], test=sources[1])
              if sources is not None else {})
    if folder.has_progress():
        folder.check_same_images(images)
    if folder.finished:
        return folder.read_metrics()
    if sources is None:
        sources = tuple(sources_lib.load(config.dataset, split, data_dir=run.data_dir,
                                         manual_dir=run.manual_dir, image_size=config.image_size)
                        for split in ("train", "test"))
    train_source, eval_source = sources
    if eval_source.image_shape[-1] != train_source.image_shape[-1]:
        # Found now, not by Keras after a whole epoch of training.
        raise ValueError(
            f"{eval_source.name}: the {eval_source.split} images have "
            f"{eval_source.image_shape[-1]} channel(s), the {train_source.split} images "
            f"{train_source.image_shape[-1]}: give both splits as grey or as colour images.")
    config = config_lib.with_class_names(config, train_source.class_names)
    sources_lib.check_example_count(train_source, config.num_train_examples, config.batch_size)
    if run.chief or folder.has_config():
        folder.check_run(config, genotype)
    image_shape = sources_lib.model_input_shape(train_source, config.image_size)
    check_recipe_fits_images(config, image_shape)
    steps = sources_lib.steps_per_epoch(train_source, config.batch_size, config.num_train_examples)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        net = network_lib.build(config, genotype, train_source.num_classes, image_shape,
                                statistics=(train_source.mean, train_source.std))
        schedule, weight_optimizer, architecture_optimizer = compile_network(net, config, steps,
                                                                             run.jit_compile)
    trackables = {"weight_optimizer": weight_optimizer,
                  "genotype": checkpoints.genotype_record(genotype.to_json())}
    if architecture_optimizer is not None:
        trackables["architecture_optimizer"] = architecture_optimizer
    if run.chief:
        # Written once the network is built and compiled: a run that fails to
        # start leaves no settings behind to refuse its corrected rerun.
        folder.record(config, genotype)
        folder.record_images(images, train_source.image_shape)
    eval_data = pipelines.eval_pipeline(eval_source, config.batch_size, config.image_size,
                                        config.num_eval_examples)
    history = resumable.fit(
        net, strategy, epochs=config.epochs, steps_per_epoch=steps, folder=folder,
        trackables=trackables,
        make_dataset=lambda initial_epoch, input_context: pipelines.train_pipeline(
            train_source, config.batch_size, seed=config.seed, epochs=config.epochs,
            initial_epoch=initial_epoch, augment=train_augment(config), image_size=config.image_size,
            num_examples=config.num_train_examples, input_context=input_context),
        record=_recorder(schedule), what="training", validation_data=eval_data,
        callbacks=[_DropPathRamp(config.drop_path, config.epochs), *run.callbacks],
        verbose=run.verbose,
        header=(f"Training {config.num_cells} cells, C={config.channels}: "
                f"{net.parameter_count():,} parameters (without auxiliary head), "
                f"{config.epochs} epochs of {steps} steps, {strategy.num_replicas_in_sync} "
                f"replica(s), {config.precision}{', XLA' if run.jit_compile else ''}"))
    results = net.evaluate(eval_data, verbose=0, return_dict=True)
    metrics = {
        "loss": float(results["loss"]), "top1": float(results["accuracy"]),
        "top5": float(results["top5"]), "epochs": config.epochs,
        # Fewer when a callback (early stopping) ended the training: said, not hidden.
        "epochs_trained": len(history),
        "parameters": net.parameter_count(),
        "parameters_with_auxiliary": net.parameter_count(include_auxiliary=True),
        "eval_examples": int(min(config.num_eval_examples or eval_source.num_examples,
                                 eval_source.num_examples)),
    }
    if run.chief:
        folder.write_metrics(metrics)
    del net
    gc.collect()
    return metrics


def evaluate(trained: run_folder.TrainingFolder | str, split: str = "test", *,
             data_dir: str | None = None, manual_dir: str | None = None,
             checkpoint_path: str | None = None,
             genotype: genotype_lib.Genotype | None = None, batch_size: int | None = None,
             num_examples: int | None = None, source: sources_lib.Source | None = None) -> dict:
    """Loss, top-1 and top-5 of a training's checkpoint (its folder, or the
    folder's path) on a dataset split (or on `source`, images given in Python).
    `genotype`: the genotype expected in the folder (checked)."""
    for flag, value in (("--batch_size", batch_size), ("--num_examples", num_examples)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{flag}: expected a positive integer (or none for the default), "
                             f"got {value!r}.")
    folder = run_folder.training_folder(trained)
    config = folder.config
    # What was scored: the dataset's split, or images given in Python ("data").
    scored = split if source is None else "data"
    if genotype is not None and genotype != folder.genotype:
        raise ValueError(
            f"--genotype: {genotype_lib.published_name(genotype) or genotype.to_darts()!r} is "
            f"not the genotype the checkpoints in "
            f"{folder.path} were trained with ({folder.genotype.to_darts()})."
        )
    if source is None:
        source = sources_lib.load(config.dataset, split, data_dir=data_dir, manual_dir=manual_dir,
                                  image_size=config.image_size)
    else:
        folder.check_image_shape(source.image_shape)
    if num_examples is not None and num_examples > source.num_examples:
        raise ValueError(f"--num_examples={num_examples}: the {split} split has "
                         f"{source.num_examples} examples; pass at most that many, or none for all.")
    # Labels are class indices: other classes (a folder renamed, added) would
    # score the network against the wrong names.
    config_lib.with_class_names(config, source.class_names, "--train_dir")
    image_shape = sources_lib.model_input_shape(source, config.image_size)
    net, path = load_network(folder, source.num_classes, image_shape,
                             checkpoint_path=checkpoint_path)
    compile_network(net, config, steps_per_epoch=1)
    results = net.evaluate(
        pipelines.eval_pipeline(source, batch_size or config.batch_size, config.image_size,
                                num_examples),
        verbose=0, return_dict=True)
    return {"checkpoint": path, "split": scored,
            "loss": float(results["loss"]),
            "top1": float(results["accuracy"]), "top5": float(results["top5"]),
            "examples": int(min(num_examples or source.num_examples, source.num_examples))}


def load_network(trained: run_folder.TrainingFolder | str, num_classes: int, image_shape, *,
                 checkpoint_path: str | None = None, auxiliary: bool | None = None):
    """(network restored from a training's checkpoint, checkpoint path); `trained`
    is its folder, or the folder's path.

    `auxiliary=False` leaves the auxiliary head out (it is not needed for inference).
    """
    folder = run_folder.training_folder(trained)
    config, genotype = folder.config, folder.genotype
    net = network_lib.build(config, genotype, num_classes, image_shape, auxiliary=auxiliary)
    if checkpoint_path:
        path = checkpoint_path
        if os.path.isdir(path):
            raise ValueError(f"--checkpoint: {path} is a folder; expected a checkpoint prefix such "
                             f"as {os.path.join(path, 'ckpt-3')} (the name before .index).")
        problem = checkpoints.readable(path)
        if problem is not None:
            kept = checkpoints.candidates(folder.checkpoint_dir)
            raise FileNotFoundError(
                f"--checkpoint: {path} is not a readable checkpoint (expected {path}.index and its "
                f"data files; {problem}). {folder.path} holds: {', '.join(kept) or 'none'}.")
        checkpoints.restore(checkpoints.make(net), path, partial=True)
    else:
        path = checkpoints.restore_latest(checkpoints.make(net), folder.checkpoint_dir,
                                          partial=True, what=folder.flag)
    if not path:
        raise ValueError(f"{folder.flag}: {folder.path} has no checkpoint yet.")
    folder.check_checkpoint_genotype(path)
    return net, path
