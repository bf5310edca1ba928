"""Training a final network from a genotype (StacNAS section 3, appendix C).

Output folder:
  config.json, genotype.json    the run's TrainConfig and the genotype it trains
  checkpoints/                  weights, optimizers (schedule position), epoch
  history.json                  per epoch: loss, accuracy, top-5, lr, drop-path rate,
                                validation metrics
  metrics.json                  final evaluation: loss, top-1, top-5, parameters
  tensorboard/                  Keras summaries

Rerunning on the same folder resumes after the last completed epoch with the
learning-rate schedule where it stopped; other settings or another genotype
are refused.
"""

from __future__ import annotations

import dataclasses
import gc
import os

import keras
import tensorflow as tf

from stacnas_tf import checkpoints
from stacnas_tf import config as config_lib
from stacnas_tf import data
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network as network_lib
from stacnas_tf import optimizers
from stacnas_tf import resumable
from stacnas_tf import run_folder
from stacnas_tf import strategy as strategy_lib


def lr_schedule(config: config_lib.TrainConfig, steps_per_epoch: int):
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            config.lr, decay_steps=steps_per_epoch * config.epochs, alpha=config.lr_min / config.lr)
    # DARTS's ImageNet recipe: lr x decay_rate after every epoch.
    return keras.optimizers.schedules.ExponentialDecay(
        config.lr, decay_steps=steps_per_epoch, decay_rate=config.lr_decay_rate, staircase=True)


def train_augment(config: config_lib.TrainConfig) -> data.Augment:
    """The dataset's standard augmentation plus the recipe's AutoAugment and cutout."""
    return dataclasses.replace(data.default_augment(config.dataset),
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


def _check_folder(output_dir, config, genotype):
    """Refuses a folder trained with other settings or another genotype."""
    config_path = os.path.join(output_dir, "config.json")
    genotype_path = os.path.join(output_dir, "genotype.json")
    if os.path.exists(config_path):
        # Through TrainConfig: fields added since the folder was made take their defaults.
        # The genotype is compared below by value: a name and a file of the same
        # genotype are the same run.
        saved = config_lib.TrainConfig.from_dict(
            files.read_json(config_path), f"--output_dir: {config_path}").to_dict()
        if not files.has_progress(output_dir):
            return  # a training that failed before its first epoch: its settings are replaced
        saved.pop("genotype")
        wanted = config.to_dict()
        wanted.pop("genotype")
        files.check_same_config(output_dir, "a training run", saved, wanted)
    if os.path.exists(genotype_path):
        with open(genotype_path) as f:
            saved = genotype_lib.Genotype.from_json(f.read(), source=genotype_path)
        if saved != genotype:
            there, here = saved.to_darts(), genotype.to_darts()
            if there == here:  # the shared cells agree: only the per-cell genotypes differ
                there, here = (f"{g.to_darts()} with {'no' if g.cells is None else len(g.cells)} "
                               "per-cell genotypes" for g in (saved, genotype))
            raise ValueError(
                f"--output_dir={output_dir} holds a network trained with another genotype "
                f"({there}); this run asks for {here}. Choose another --output_dir."
            )


def run_training(config: config_lib.TrainConfig, output_dir: str, data_dir: str | None = None,
                 manual_dir: str | None = None, strategy: tf.distribute.Strategy | None = None,
                 verbose="auto", jit_compile: bool = False,
                 sources: tuple[data.Source, data.Source] | None = None, callbacks=()) -> dict:
    """Trains (or resumes) the final network of `config`; returns the final metrics.

    In a multi-worker run every worker calls this with the same arguments; only
    the chief writes into `output_dir`, and every worker resumes from the
    chief's checkpoints there. `sources` (train, test) replace loading
    `config.dataset` (images given in Python); `callbacks` (Keras callbacks)
    are passed to `fit`.
    """
    strategy = strategy or tf.distribute.get_strategy()
    chief = strategy_lib.is_chief(strategy)
    args = (config, data_dir, manual_dir, strategy, chief, verbose, jit_compile, sources,
            tuple(callbacks))
    if not chief:  # the other workers only read the chief's checkpoints
        return _run_training(os.path.abspath(output_dir), *args)
    with files.claimed_output_dir(output_dir) as output_dir:
        return _run_training(output_dir, *args)


def _run_training(output_dir, config, data_dir, manual_dir, strategy, chief, verbose,
                  jit_compile, sources, user_callbacks) -> dict:
    genotype = genotype_lib.resolve(config.genotype)
    if chief:
        files.check_run_folder(output_dir, "training run")
    _check_folder(output_dir, config, genotype)
    images = (run_folder.image_fingerprints(train=sources[0], test=sources[1])
              if sources is not None else {})
    if files.has_progress(output_dir):
        run_folder.check_same_images(output_dir, images, "a training run")
    metrics_path = os.path.join(output_dir, "metrics.json")
    if os.path.exists(metrics_path):
        return files.read_json(metrics_path)
    if sources is None:
        sources = tuple(data.load(config.dataset, split, data_dir=data_dir, manual_dir=manual_dir,
                                  image_size=config.image_size) for split in ("train", "test"))
    train_source, eval_source = sources
    if eval_source.image_shape[-1] != train_source.image_shape[-1]:
        # Found now, not by Keras after a whole epoch of training.
        raise ValueError(
            f"{eval_source.name}: the {eval_source.split} images have "
            f"{eval_source.image_shape[-1]} channel(s), the {train_source.split} images "
            f"{train_source.image_shape[-1]}: give both splits as grey or as colour images.")
    config = config_lib.with_class_names(config, train_source.class_names)
    data.check_example_count(train_source, config.num_train_examples, config.batch_size)
    _check_folder(output_dir, config, genotype)
    image_shape = data.model_input_shape(train_source, config.image_size)
    check_recipe_fits_images(config, image_shape)
    steps = data.steps_per_epoch(train_source, config.batch_size, config.num_train_examples)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        net = network_lib.build(config, genotype, train_source.num_classes, image_shape,
                                statistics=(train_source.mean, train_source.std))
        schedule, weight_optimizer, architecture_optimizer = compile_network(net, config, steps,
                                                                             jit_compile)
    trackables = {"weight_optimizer": weight_optimizer,
                  "genotype": checkpoints.genotype_record(genotype.to_json())}
    if architecture_optimizer is not None:
        trackables["architecture_optimizer"] = architecture_optimizer
    if chief:
        # Written once the network is built and compiled: a run that fails to
        # start leaves no settings behind to refuse its corrected rerun.
        files.write_json(os.path.join(output_dir, "config.json"), config.to_dict())
        files.write_text(os.path.join(output_dir, "genotype.json"), genotype.to_json() + "\n")
        run_folder.record_images(output_dir, images, train_source.image_shape)
    eval_data = data.eval_pipeline(eval_source, config.batch_size, config.image_size,
                                   config.num_eval_examples)
    history = resumable.fit(
        net, strategy, epochs=config.epochs, steps_per_epoch=steps, run_dir=output_dir,
        trackables=trackables,
        make_dataset=lambda initial_epoch, input_context: data.train_pipeline(
            train_source, config.batch_size, config.seed, config.epochs, initial_epoch,
            augment=train_augment(config), image_size=config.image_size,
            num_examples=config.num_train_examples, input_context=input_context),
        record=_recorder(schedule), what="training",
        tensorboard_dir=os.path.join(output_dir, "tensorboard"), validation_data=eval_data,
        callbacks=[_DropPathRamp(config.drop_path, config.epochs), *user_callbacks],
        verbose=verbose,
        header=(f"Training {config.num_cells} cells, C={config.channels}: "
                f"{net.parameter_count():,} parameters (without auxiliary head), "
                f"{config.epochs} epochs of {steps} steps, {strategy.num_replicas_in_sync} "
                f"replica(s), {config.precision}{', XLA' if jit_compile else ''}"))
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
    if chief:
        files.write_json(metrics_path, metrics)
    del net
    gc.collect()
    return metrics


def evaluate(train_dir: str, split: str = "test", data_dir: str | None = None,
             manual_dir: str | None = None, checkpoint_path: str | None = None,
             genotype_spec: str | None = None, batch_size: int | None = None,
             num_examples: int | None = None, source: data.Source | None = None) -> dict:
    """Loss, top-1 and top-5 of a training folder's checkpoint on a dataset split
    (or on `source`, images given in Python)."""
    for flag, value in (("--batch_size", batch_size), ("--num_examples", num_examples)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{flag}: expected a positive integer (or none for the default), "
                             f"got {value!r}.")
    folder = run_folder.training(train_dir)
    config, genotype = folder.config, folder.genotype
    # What was scored: the dataset's split, or images given in Python ("data").
    scored = split if source is None else "data"
    if genotype_spec is not None and genotype_lib.resolve(genotype_spec) != genotype:
        raise ValueError(
            f"--genotype: {genotype_spec!r} is not the genotype the checkpoints in {train_dir} "
            f"were trained with ({genotype.to_darts()})."
        )
    if source is None:
        source = data.load(config.dataset, split, data_dir=data_dir, manual_dir=manual_dir,
                           image_size=config.image_size)
    else:
        run_folder.check_image_shape(train_dir, config, source.image_shape)
    if num_examples is not None and num_examples > source.num_examples:
        raise ValueError(f"--num_examples={num_examples}: the {split} split has "
                         f"{source.num_examples} examples; pass at most that many, or none for all.")
    # Labels are class indices: other classes (a folder renamed, added) would
    # score the network against the wrong names.
    config_lib.with_class_names(config, source.class_names, "--train_dir")
    image_shape = data.model_input_shape(source, config.image_size)
    net, path = load_network(train_dir, source.num_classes, image_shape, checkpoint_path)
    compile_network(net, config, steps_per_epoch=1)
    results = net.evaluate(
        data.eval_pipeline(source, batch_size or config.batch_size, config.image_size, num_examples),
        verbose=0, return_dict=True)
    return {"checkpoint": path, "split": scored,
            "loss": float(results["loss"]),
            "top1": float(results["accuracy"]), "top5": float(results["top5"]),
            "examples": int(min(num_examples or source.num_examples, source.num_examples))}


def load_network(train_dir: str, num_classes: int, image_shape, checkpoint_path: str | None = None,
                 auxiliary: bool | None = None):
    """(network restored from a training folder's checkpoint, checkpoint path).

    `auxiliary=False` leaves the auxiliary head out (it is not needed for inference).
    """
    folder = run_folder.training(train_dir)
    config, genotype = folder.config, folder.genotype
    net = network_lib.build(config, genotype, num_classes, image_shape, auxiliary=auxiliary)
    if checkpoint_path:
        path = checkpoint_path
        if os.path.isdir(path):
            raise ValueError(f"--checkpoint: {path} is a folder; expected a checkpoint prefix such "
                             f"as {os.path.join(path, 'ckpt-3')} (the name before .index).")
        problem = checkpoints.readable(path)
        if problem is not None:
            kept = checkpoints.candidates(os.path.join(train_dir, "checkpoints"))
            raise FileNotFoundError(
                f"--checkpoint: {path} is not a readable checkpoint (expected {path}.index and its "
                f"data files; {problem}). {train_dir} holds: {', '.join(kept) or 'none'}.")
        checkpoints.restore(checkpoints.make(net), path, partial=True)
    else:
        path = checkpoints.restore_latest(checkpoints.make(net), os.path.join(train_dir, "checkpoints"),
                                          partial=True, what="--train_dir")
    if not path:
        raise ValueError(f"--train_dir: {train_dir} has no checkpoint yet.")
    folder.check_checkpoint_genotype(path)
    return net, path


def describe(genotype: genotype_lib.Genotype, preset: str) -> dict:
    """Parameter counts and multiply-adds of the paper's network for `genotype`."""
    if preset not in config_lib.NETWORK_PRESETS:
        raise ValueError(f"--preset: expected one of {sorted(config_lib.NETWORK_PRESETS)}, got {preset!r}.")
    spec = config_lib.NETWORK_PRESETS[preset]
    net = network_lib.FinalNetwork(genotype, spec["num_classes"], channels=spec["channels"],
                                   num_cells=spec["num_cells"], stem=spec["network"], auxiliary=True)
    net(tf.zeros((1,) + spec["image_shape"]), training=False)
    macs = network_lib.multiply_adds(net, spec["image_shape"])
    return {
        "preset": preset, "genotype": genotype.to_darts(), **{k: v for k, v in spec.items()},
        "parameters": net.parameter_count(),
        "parameters_with_auxiliary": net.parameter_count(include_auxiliary=True),
        # ImageNet's mobile setting: under 600M multiply-adds at 224x224 (None elsewhere).
        "multiply_adds": macs,
        "mobile_setting": bool(macs < 600_000_000) if spec["network"] == "imagenet" else None,
    }
