"""Checkpoints of Keras models and their optimizers, with clear errors.

A Keras 3 model keeps its sublayers in Keras's own tracked lists, which
`tf.train.Checkpoint` does not follow (non-trainable variables such as
BatchNorm statistics would be lost). So the model's variables are checkpointed
explicitly, keyed by their place in the model's structure
(`model_variables`); optimizers are tracked as usual.
"""

from __future__ import annotations

import glob
import os
import re

import keras
import tensorflow as tf
from absl import logging


def model_variables(model) -> dict:
    """Every variable of `model` by a name that depends on the model's structure
    alone, so a checkpoint written by one process restores in another: the path
    of layer names from the model down, each name with a trailing `_<number>`
    replaced by the layer's position among its siblings of the same base name
    (dropped for a layer alone with its base).
    Keras numbers unnamed layers with process-wide counters (`conv2d_7` in one
    process is `conv2d_2` in the next); a user's op built as an unnamed
    `keras.Sequential` would otherwise never restore. Layers named without a
    number, and several numbered siblings created in order (`edge_0`, `edge_1`,
    ...), keep their Keras paths. Random-generator states are keyed by their owner's path."""
    keys = {}
    # Keras has no public recursive layer walk, nor public lists of a layer's own
    # variables and seed generators; tests/keras_private_api_test.py notices if these change.

    def walk(layer, path):
        for index, generator in enumerate(getattr(layer, "_seed_generators", [])):
            keys.setdefault(id(generator.state), (f"{path}/seed_generator_{index}", generator.state))
        for variable in (list(getattr(layer, "_trainable_variables", []))
                         + list(getattr(layer, "_non_trainable_variables", []))):
            keys.setdefault(id(variable), (f"{path}/{variable.name}", variable))
        children = layer._flatten_layers(include_self=False, recursive=False)  # noqa: SLF001
        for child, segment in zip(children, _segments([c.name for c in children])):
            walk(child, f"{path}/{segment}")

    walk(model, _segments([model.name])[0])
    variables = {}
    for variable in model.variables:
        key, _ = keys.get(id(variable), (variable.path, None))
        variables[key] = variable
    if len(variables) != len(model.variables):
        raise ValueError(f"{model.name}: variable names are not unique; cannot checkpoint them.")
    return variables


def _segments(names: list[str]) -> list[str]:
    """Sibling layer names with Keras's numbering replaced by positions: each
    name loses a trailing `_<number>` (its base); bases shared by several
    siblings get `_<k>`, k counting those siblings in order."""
    bases = [re.sub(r"_\d+$", "", name) for name in names]
    counts = {base: bases.count(base) for base in bases}
    seen = dict.fromkeys(bases, 0)
    segments = []
    for name, base in zip(names, bases):
        if counts[base] == 1:
            segments.append(base)
        else:
            segments.append(f"{base}_{seen[base]}")
        seen[base] += 1
    return segments


def make(model, **trackables) -> tf.train.Checkpoint:
    """A checkpoint of every variable of `model` plus `trackables` (optimizers, counters)."""
    return tf.train.Checkpoint(model_variables=model_variables(model), **trackables)


def restore(checkpoint: tf.train.Checkpoint, path: str, partial: bool = False) -> None:
    """Restores `path`, with a clear error when it belongs to another network.

    `partial`: the checkpoint may hold more (optimizers) than `checkpoint` tracks.
    """
    # Shapes are compared first: a restore that fails on one leaves TensorFlow
    # warning of every value it did not restore when the process exits.
    mismatch = _shape_mismatch(checkpoint, path)
    if mismatch:
        raise ValueError(f"checkpoint {path} does not fit this network: {mismatch}")
    status = None
    try:
        status = checkpoint.restore(path)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        if status is not None:
            status.expect_partial()  # else TensorFlow warns of every unmatched value, at exit
        if _predates_pixel_normalization(checkpoint, path):
            raise ValueError(
                f"checkpoint {path} was written by stacnas_tf 0.2 or older, whose networks took "
                "images normalised by the data pipeline; networks now normalise raw pixels "
                "themselves (PixelNormalization) and keep the statistics in their checkpoints. "
                "Run the search or training again with this version (in a new folder).") from e
        raise ValueError(
            f"checkpoint {path} does not fit this network (another genotype or size, or a "
            f"stacnas_tf 0.1 search checkpoint, whose supernet had one layer per edge?): "
            f"{str(e).splitlines()[0][:300]}"
        ) from e


def _checkpoint_key(key: str) -> str:
    # tf.train.Checkpoint's escaping of a dict key inside a checkpoint's names.
    return f"model_variables/{key.replace('.', '..').replace('/', '.S')}/.ATTRIBUTES/VARIABLE_VALUE"


def _shape_mismatch(checkpoint: tf.train.Checkpoint, path: str) -> str | None:
    """What differs between the network and the one checkpoint `path` holds,
    in the user's terms (classes, image channels), or None when every variable
    both hold has one shape."""
    wanted = getattr(checkpoint, "model_variables", None)
    try:
        held = dict(tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError):
        return None
    if not wanted:
        return None
    for key, variable in wanted.items():
        there = held.get(_checkpoint_key(key))
        here = tuple(variable.shape)
        if there is None or tuple(there) == here:
            continue
        if key.endswith("/classifier/kernel"):
            return (f"its network tells {there[-1]} classes apart, this one {here[-1]} (data with "
                    "other classes than it was trained on?).")
        if "/pixel_normalization/" in key:
            return (f"its network takes images with {there[0]} channel(s), these have {here[0]} "
                    "(grey images for a network of colour ones, or the reverse?).")
        return (f"{key} has shape {list(there)} there and {list(here)} here (another genotype, "
                "channel count or depth).")
    return None


def class_count(directory: str) -> int | None:
    """How many classes the network of the newest checkpoint in `directory` tells
    apart (its classifier's width); None without a readable checkpoint."""
    for path in candidates(directory):
        try:
            shapes = dict(tf.train.list_variables(path))
        except (tf.errors.OpError, ValueError):
            continue
        widths = [shape[-1] for name, shape in shapes.items()
                  if name.endswith(".Sclassifier.Sbias/.ATTRIBUTES/VARIABLE_VALUE")]
        return int(widths[0]) if widths else None
    return None


def _predates_pixel_normalization(checkpoint: tf.train.Checkpoint, path: str) -> bool:
    wanted = any("/pixel_normalization/" in key
                 for key in getattr(checkpoint, "model_variables", {}))
    try:
        held = [name for name, _ in tf.train.list_variables(path)]
    except (tf.errors.OpError, ValueError):
        return False
    return wanted and not any("pixel_normalization" in name for name in held)


def genotype_record(genotype_json: str) -> tf.Variable:
    """The genotype a network is trained with, as a checkpointed value (under
    the name `genotype`), so that readers can tell a genotype.json changed after
    training from the one the weights belong to."""
    return tf.Variable(genotype_json, trainable=False, dtype=tf.string)


def recorded_genotype(path: str) -> str | None:
    """The genotype JSON checkpoint `path` was trained with (None: not recorded)."""
    try:
        reader = tf.train.load_checkpoint(path)
        key = "genotype/.ATTRIBUTES/VARIABLE_VALUE"
        if not reader.has_tensor(key):
            return None
        value = reader.get_tensor(key)
    except (tf.errors.OpError, ValueError):
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


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
