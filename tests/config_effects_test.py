"""Every field of `SearchConfig` and `TrainConfig` reaches what it sets.

The real drivers (`search_loop.run_search`, `training.run_training`) run on a
tiny config up to the point where training would start; `resumable.fit` is
replaced by a spy that records what it was handed: the built network's
config and dtype policy, the optimizers' configs, the first batch of the
training pipeline, the evaluation data, the callbacks, the loss on fixed
logits. Changing one field must change the record where that field belongs:
a field the driver ignores (a loss option recorded but never passed, an
augmentation size dropped on the way) fails here. A field added to a config
without a row below fails `test_every_field_has_an_effect_row`.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import resumable
from stacnas_tf import search_loop
from stacnas_tf import training

SEARCH = config_lib.PRESETS["smoke"].replace(stage1_epochs=2, stage2_epochs=2)
TRAIN = config_lib.TRAIN_PRESETS["smoke"].replace(epochs=2, genotype="DARTS_V2")
MERGED_GROUPS = (("skip_connect",), ("max_pool_3x3", "avg_pool_3x3"),
                 ("dil_conv_3x3", "dil_conv_5x5", "sep_conv_3x3", "sep_conv_5x5"))


class _Stop(Exception):
    pass


def _jsonable(value):
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _batch_record(dataset):
    element = next(iter(dataset))
    tensors = tf.nest.flatten(element)
    return _jsonable({
        "shapes": [list(t.shape) for t in tensors],
        "sums": [round(float(tf.reduce_sum(tf.cast(t, tf.float64))), 3) for t in tensors],
        "labels": [t.numpy().tolist() for t in tensors if t.dtype.is_integer and t.shape.rank == 1],
    })


def _record(model, kwargs) -> dict:
    trackables = kwargs["trackables"]
    architecture_optimizer = trackables.get("architecture_optimizer")
    record = {
        "epochs": kwargs["epochs"],
        "steps": kwargs["steps_per_epoch"],
        "model": _jsonable(model.get_config()),
        # The weights the network starts from (the largest kernel value of each).
        "weights": sorted(round(float(np.abs(v.numpy()).max()), 6) for v in model.trainable_variables
                          if len(v.shape) >= 2),
        "policy": model.dtype_policy.name,
        "weight_optimizer": _jsonable(trackables["weight_optimizer"].get_config()),
        "architecture_optimizer": (None if architecture_optimizer is None
                                   else _jsonable(architecture_optimizer.get_config())),
        "batch": _batch_record(kwargs["make_dataset"](0, None)),
        "callbacks": _jsonable([(type(c).__name__, {k: v for k, v in vars(c).items()
                                                    if isinstance(v, (int, float, str, bool))})
                                for c in kwargs.get("callbacks", ())]),
        "compiled": _jsonable({name: getattr(model, name, None) for name in (
            "aux_weight", "grad_clip_norm", "weight_decay", "architecture_weight_decay")}),
    }
    validation = kwargs.get("validation_data")
    if validation is not None:
        batches = list(validation)
        record["validation"] = {"examples": sum(int(b[0].shape[0]) for b in batches),
                                "shape": list(batches[0][0].shape[1:])}
    # The loss as the model computes it, on fixed labels and logits.
    classes = model.get_config()["num_classes"]
    logits = tf.constant(np.linspace(-2.0, 2.0, 2 * classes).reshape(2, classes), tf.float32)
    record["loss"] = round(float(model.compute_loss(y=tf.constant([0, 1]), y_pred=logits)), 6)
    return record


def _search_records(config, tmp_path, monkeypatch, stages=1) -> list:
    records = []

    def spy(model, strategy, **kwargs):
        records.append(_record(model, kwargs))
        if len(records) == stages:
            raise _Stop
        # This stage "trained" every epoch: the search goes on to the next.
        return [{"loss": 1.0, "accuracy": 0.5}] * kwargs["epochs"]

    monkeypatch.setattr(resumable, "fit", spy)
    with pytest.raises(_Stop):
        search_loop.run_search(config, str(tmp_path / f"search{len(os.listdir(tmp_path))}"),
                               verbose=0, report=False)
    return records


def _training_record(config, tmp_path, monkeypatch) -> dict:
    records = []

    def spy(model, strategy, **kwargs):
        records.append(_record(model, kwargs))
        raise _Stop

    monkeypatch.setattr(resumable, "fit", spy)
    with pytest.raises(_Stop):
        training.run_training(config, str(tmp_path / f"train{len(os.listdir(tmp_path))}"),
                              verbose=0)
    return records[0]


def _changed(before: dict, after: dict) -> set:
    return {key for key in set(before) | set(after) if before.get(key) != after.get(key)}


# field: (value, where it must show, fields of the baseline it needs)
SEARCH_EFFECTS = {
    "dataset": ("fashion_mnist", "batch", {}),
    "image_size": (16, "batch", {}),
    "num_train_examples": (64, "steps", {}),
    "steps_per_epoch": (3, "steps", {}),
    "stage1_cells": (4, "model", {}),
    "stage2_cells": (4, "stage2_model", {}),
    "stage1_epochs": (3, "epochs", {}),
    "stage2_epochs": (3, "stage2_epochs", {}),
    "batch_size": (16, "batch", {}),
    "channels": (6, "model", {}),
    "seed": (1, "batch", {}),
    "per_cell_logits": (True, "model", {}),
    "groups": (MERGED_GROUPS, "model", {}),
    "optimization": ("bi_level", "batch", {}),
    "grouping": ("flat", "model", {}),
    "precision": ("mixed_bfloat16", "policy", {}),
    "weight_init": ("keras", "weights", {}),
    "weight_lr": (0.05, "weight_optimizer", {}),
    "weight_lr_min": (0.0, "weight_optimizer", {}),
    "weight_momentum": (0.5, "weight_optimizer", {}),
    "weight_decay": (1e-4, "model", {}),
    "grad_clip_norm": (1.0, "model", {}),
    "arch_lr": (1e-2, "architecture_optimizer", {}),
    "arch_beta_1": (0.9, "architecture_optimizer", {}),
    "arch_beta_2": (0.99, "architecture_optimizer", {}),
    "arch_epsilon": (1e-6, "architecture_optimizer", {}),
    "arch_weight_decay": (1e-2, "model", {}),
    "arch_warmup_epochs": (1, "architecture_optimizer", {}),
    "num_nodes": (3, "model", {}),
}

TRAIN_EFFECTS = {
    "genotype": ("DARTS_V1", "model", {}),
    "dataset": ("fashion_mnist", "batch", {}),
    "image_size": (16, "batch", {}),
    "num_train_examples": (64, "steps", {}),
    "num_eval_examples": (32, "validation", {}),
    "network": ("imagenet", "model", {"image_size": 32}),
    "channels": (6, "model", {}),
    "num_cells": (4, "model", {}),
    "deformable": (True, "architecture_optimizer", {}),
    "precision": ("mixed_bfloat16", "policy", {}),
    "epochs": (3, "epochs", {}),
    "batch_size": (16, "batch", {}),
    "lr": (0.05, "weight_optimizer", {}),
    "lr_schedule": ("exponential", "weight_optimizer", {}),
    "lr_min": (0.001, "weight_optimizer", {}),
    "lr_decay_rate": (0.5, "weight_optimizer", {"lr_schedule": "exponential"}),
    "momentum": (0.5, "weight_optimizer", {}),
    "weight_decay": (1e-3, "compiled", {}),
    "grad_clip_norm": (1.0, "compiled", {}),
    "cutout": (4, "batch", {}),
    "autoaugment": (True, "batch", {}),
    "drop_path": (0.3, "callbacks", {}),
    "aux_weight": (0.4, "compiled", {"image_size": 32}),
    "label_smoothing": (0.1, "loss", {}),
    "arch_lr": (1e-2, "architecture_optimizer", {"deformable": True}),
    "arch_weight_decay": (1e-2, "compiled", {"deformable": True}),
    "seed": (1, "batch", {}),
}


@pytest.mark.parametrize("config_class,effects", [
    (config_lib.SearchConfig, SEARCH_EFFECTS), (config_lib.TrainConfig, TRAIN_EFFECTS)])
def test_every_field_has_an_effect_row(config_class, effects):
    # class_names is recorded from the data, not set: its own test below.
    fields = {field.name for field in dataclasses.fields(config_class)}
    assert set(effects) | {"class_names"} == fields


def _search_view(records) -> dict:
    view = dict(records[0])
    if len(records) > 1:
        view["stage2_model"] = records[1]["model"]
        view["stage2_epochs"] = records[1]["epochs"]
    return view


@pytest.mark.parametrize("field", sorted(SEARCH_EFFECTS))
def test_a_search_field_reaches_what_it_sets(field, tmp_path, monkeypatch):
    value, where, needs = SEARCH_EFFECTS[field]
    stages = 2 if where.startswith("stage2") else 1
    base = SEARCH.replace(**needs)
    before = _search_view(_search_records(base, tmp_path, monkeypatch, stages))
    after = _search_view(_search_records(base.replace(**{field: value}), tmp_path, monkeypatch,
                                         stages))
    assert where in _changed(before, after), f"{field}={value!r} left {where} unchanged"


@pytest.mark.parametrize("field", sorted(TRAIN_EFFECTS))
def test_a_training_field_reaches_what_it_sets(field, tmp_path, monkeypatch):
    value, where, needs = TRAIN_EFFECTS[field]
    base = TRAIN.replace(**needs)
    before = _training_record(base, tmp_path, monkeypatch)
    after = _training_record(base.replace(**{field: value}), tmp_path, monkeypatch)
    assert where in _changed(before, after), f"{field}={value!r} left {where} unchanged"


def test_recorded_class_names_are_checked_against_the_data(tmp_path, monkeypatch):
    # digits names its classes "0" .. "9".
    names = tuple(f"class {k}" for k in range(10))
    with pytest.raises(ValueError, match="are not the classes this run was made with"):
        _search_records(SEARCH.replace(class_names=names), tmp_path, monkeypatch)
    with pytest.raises(ValueError, match="are not the classes this run was made with"):
        _training_record(TRAIN.replace(class_names=names), tmp_path, monkeypatch)
