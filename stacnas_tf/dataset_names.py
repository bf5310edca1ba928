"""The datasets `--dataset` may name, and checking a name, without TensorFlow:
configs (and so every program's `--help`) need the names, not the loaders
(`sources.py`)."""

from __future__ import annotations

import os

from stacnas_tf import files

TFDS_DATASETS = ("cifar10", "cifar100", "imagenet2012")
IN_MEMORY = "in_memory"
DATASETS = TFDS_DATASETS + ("fashion_mnist", "digits", "folder:PATH", IN_MEMORY)


def canonical_name(name: str) -> str:
    """`name` with a `folder:` path made absolute (and `~` expanded), so a run's
    config.json names the same folder from any working directory."""
    if isinstance(name, str) and name.startswith("folder:") and len(name) > len("folder:"):
        return "folder:" + os.path.abspath(files.user_path(name[len("folder:"):]))
    return name


def check_dataset_name(name: str, flag: str = "--dataset") -> None:
    if name in TFDS_DATASETS or name in ("fashion_mnist", "digits", IN_MEMORY):
        return
    if name.startswith("folder:") and len(name) > len("folder:"):
        return
    raise ValueError(f"{flag}: unknown dataset {name!r}; expected one of {list(DATASETS)}.")
