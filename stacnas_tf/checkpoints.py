"""Checkpoints of Keras models and their optimizers, with clear errors.

A Keras 3 model keeps its sublayers in Keras's own tracked lists, which
`tf.train.Checkpoint` does not follow (non-trainable variables such as
BatchNorm statistics would be lost). So the model's variables are checkpointed
explicitly, keyed by their Keras paths; optimizers are tracked as usual.
"""

from __future__ import annotations

import glob
import os
import re

import keras
import tensorflow as tf
from absl import logging


def model_variables(model) -> dict:
    """Every variable of `model` by a name that is stable across processes: its
    path, or for random-generator states (whose own names are numbered
    process-wide) the owning layer's path."""
    variables = {}
    # Keras has no public recursive layer walk, nor a public list of a layer's
    # seed generators; tests/keras_private_api_test.py notices if these change.
    for layer in model._flatten_layers(include_self=True):  # noqa: SLF001
        for index, generator in enumerate(getattr(layer, "_seed_generators", [])):
            variables[f"{layer.path}/seed_generator_{index}"] = generator.state
    state_ids = {id(v) for v in variables.values()}
    for variable in model.variables:
        if id(variable) not in state_ids:
            variables[variable.path] = variable
    if len(variables) != len(model.variables):
        raise ValueError(f"{model.name}: variable names are not unique; cannot checkpoint them.")
    return variables


def make(model, **trackables) -> tf.train.Checkpoint:
    """A checkpoint of every variable of `model` plus `trackables` (optimizers, counters)."""
    return tf.train.Checkpoint(model_variables=model_variables(model), **trackables)


def restore(checkpoint: tf.train.Checkpoint, path: str, partial: bool = False) -> None:
    """Restores `path`, with a clear error when it belongs to another network.

    `partial`: the checkpoint may hold more (optimizers) than `checkpoint` tracks.
    """
    status = None
    try:
        status = checkpoint.restore(path)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        if status is not None:
            status.expect_partial()  # else TensorFlow warns of every unmatched value, at exit
        raise ValueError(
            f"checkpoint {path} does not fit this network (another genotype or size, or a "
            f"stacnas_tf 0.1 search checkpoint, whose supernet had one layer per edge?): "
            f"{str(e).splitlines()[0][:300]}"
        ) from e


def candidates(directory: str) -> list[str]:
    """The checkpoints in `directory`, newest first, found from their files
    (`ckpt-N.index`), not from the `checkpoint` state file, which may be damaged."""
    numbered = []
    for index in glob.glob(os.path.join(glob.escape(directory), "*.index")):
        match = re.fullmatch(r"(.*-(\d+))\.index", index)
        if match:
            numbered.append((int(match.group(2)), match.group(1)))
    return [path for _, path in sorted(numbered, reverse=True)]


def readable(path: str) -> str | None:
    """None when every tensor of checkpoint `path` reads back (TF checks each
    one's checksum), else why not."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError, OSError, RuntimeError) as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}" if str(e) else type(e).__name__
    return None


def restore_latest(checkpoint: tf.train.Checkpoint, directory: str, partial: bool = False,
                   what: str = "checkpoint") -> str | None:
    """Restores the newest checkpoint of `directory` that reads cleanly and
    returns its path (None when there is none). Damaged ones (truncated, a
    flipped bit) are skipped with a warning naming them; if every one is
    damaged the error names them all. A checkpoint of another network is an
    error (see `restore`)."""
    found = candidates(directory)
    damaged = []
    for path in found:
        problem = readable(path)
        if problem is not None:
            damaged.append(f"{path} ({problem})")
            continue
        restore(checkpoint, path, partial=partial)
        if damaged:
            logging.warning("%s: skipped damaged %s; resumed from %s", what, "; ".join(damaged), path)
        return path
    if damaged:
        raise ValueError(
            f"{what}: every checkpoint in {directory} is damaged: {'; '.join(damaged)}. Move them "
            "away to start this stage again from scratch.")
    return None
