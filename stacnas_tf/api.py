"""The Python API: a search, a training, an evaluation, an export and a
description, each one call.

    import stacnas_tf
    found = stacnas_tf.search((x_train, y_train), stage1_epochs=2, stage2_epochs=2)
    trained = stacnas_tf.train(found.genotype, (x_train, y_train), epochs=5)
    stacnas_tf.export(trained, "export/")

`data` is a dataset name (`"fashion_mnist"`, `"cifar10"`, `"folder:PATH"`,
...), a pair of arrays (images [N, H, W(, C)] and integer labels), or a
`tf.data.Dataset` of (image, label) pairs, batched or not. Presets and
overrides are the fields of `SearchConfig` / `TrainConfig`. Every call with an
`output_dir` is resumable: call it again with the same arguments after an
interruption. The binaries in `tools/` are thin callers of these functions.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import tempfile
from typing import Any, Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import dataset_names
from stacnas_tf import exporting as export_lib
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import precision as precision_lib
from stacnas_tf import run_folder
from stacnas_tf import search_loop as search_lib
from stacnas_tf import sizes
from stacnas_tf import sources as sources_lib
from stacnas_tf import training as train_lib

Data = Any  # a dataset name, (images, labels) arrays, or a tf.data.Dataset of (image, label)


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What a search found, and where it left its files."""

    genotype: genotype_lib.Genotype
    config: config_lib.SearchConfig
    output_dir: str
    history: dict  # "stage1" / "stage2" -> per-epoch loss, accuracy, lr, logits, weights

    @property
    def genotype_path(self) -> str:
        """Where the folder holds the genotype (versioned JSON)."""
        return run_folder.SearchFolder(self.output_dir).genotype_path


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """A trained final network: `model` (at inference, without the auxiliary
    head; it takes raw pixels in [0, 255], uint8 or float, and normalises them
    itself), its metrics and its folder."""

    model: Any  # network.FinalNetwork
    metrics: dict
    config: config_lib.TrainConfig
    output_dir: str
    history: list

    @property
    def metrics_path(self) -> str:
        """Where the folder holds the final metrics."""
        return run_folder.TrainingFolder(self.output_dir).metrics_path


def _source(value: Data, what: str, num_classes, class_names,
            named: bool = False) -> sources_lib.Source:
    """`value` as a source; `named`: the caller also takes dataset names (handled before)."""
    if isinstance(value, str):
        raise ValueError(f"{what}: takes images given in Python, (images, labels) arrays or a "
                         f"tf.data.Dataset of (image, label), not a dataset name ({value!r}); a "
                         "named dataset's own splits are used without it.")
    if isinstance(value, tf.data.Dataset):
        return sources_lib.from_dataset(value, num_classes=num_classes, class_names=class_names,
                                        what=what)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return sources_lib.from_arrays(value[0], value[1], num_classes=num_classes,
                                       class_names=class_names, what=what)
    raise ValueError(f"{what}: expected {'a dataset name, ' if named else ''}(images, labels) "
                     f"arrays or a tf.data.Dataset of (image, label), got {type(value).__name__}.")


def _output_dir(output_dir: str | None, kind: str) -> str:
    if output_dir is None:  # a new folder, so a notebook call never mixes into an old run
        return tempfile.mkdtemp(prefix=f"stacnas-{kind}-")
    if not isinstance(output_dir, (str, os.PathLike)) or isinstance(os.fspath(output_dir), bytes):
        raise ValueError(f"output_dir: expected a folder path (a str or pathlib.Path), got "
                         f"{type(output_dir).__name__}.")
    return os.path.abspath(files.require_path(os.fspath(output_dir)))


def _callback_list(callbacks) -> list:
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise ValueError(f"callbacks: expected Keras callbacks (a list), got "
                         f"{type(callbacks).__name__}.") from None
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise ValueError(f"callbacks: expected keras.callbacks.Callback objects, got "
                             f"{type(callback).__name__}.")
    return callbacks


def _refuse_dataset_override(overrides: dict) -> None:
    # The images given are the data: a dataset name beside them would be recorded
    # as what the run trained on, and send later readers to another dataset.
    if "dataset" in overrides:
        raise ValueError(f"dataset={overrides['dataset']!r}: the images given in Python are this "
                         "run's data; pass either them or a dataset name as data.")


def _check_strategy(strategy) -> None:
    # Opened by the caller (its scope decides where variables live), never by name here.
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy: expected a tf.distribute.Strategy opened by the caller (such "
                         f"as tf.distribute.MirroredStrategy()), got {type(strategy).__name__} "
                         f"{strategy!r}."[:300])


# A preset's sizes belong to its own dataset. For images given in Python they
# default to the data's (all examples, their own size, one pass an epoch) unless
# the caller sets them.
_DATA_SIZED_FIELDS = ("num_train_examples", "num_eval_examples", "image_size", "steps_per_epoch")

# Names the library's messages use that are flags of the programs; the API's
# callers know them as these keyword arguments.
_KEYWORDS = {"--train_dir": "trained", "--dataset": "data", "--config": "config"}


def _keyword_messages(function):
    """Re-raises the ValueErrors of an API call with flag names (`--batch_size`) as
    the keyword arguments the caller passed (`batch_size`)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            precision_lib.check_keras_environment()
            return function(*args, **kwargs)
        except (ValueError, FileNotFoundError) as e:
            message = str(e)
            for flag, keyword in _KEYWORDS.items():
                message = re.sub(re.escape(flag) + r"\b", keyword, message)
            converted = re.sub(r"(?<![\w-])--(\w+)", r"\1", message)
            if converted == str(e):
                raise
            raise type(e)(converted) from e

    return wrapper


def with_flag_names(function):
    """An API call as the programs in tools/ make it: the same call, its messages
    naming the programs' flags (`--batch_size`) instead of keyword arguments."""
    return getattr(function, "__wrapped__", function)


def _config(presets: dict, preset: str, config, overrides: dict, what: str,
            data_sized: bool = False):
    """`config` (or else the preset) with `overrides` applied. `data_sized`: the
    data comes from Python, so a preset's sizes default to the data's."""
    expected = type(next(iter(presets.values())))
    if config is not None and not isinstance(config, expected):
        raise ValueError(f"config: {what} takes a {expected.__name__}, got "
                         f"{type(config).__name__}.")
    if config is None:
        if preset not in presets:
            raise ValueError(f"preset: expected one of {sorted(presets)}, got {preset!r}.")
        config = presets[preset]
        if data_sized:
            fields = {f.name for f in dataclasses.fields(config)}
            config = config.replace(**{name: None for name in _DATA_SIZED_FIELDS
                                       if name in fields and name not in overrides})
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        import difflib  # noqa: PLC0415

        close = {name: difflib.get_close_matches(name, fields, n=1) for name in unknown}
        hints = "".join(f" Did you mean {match[0]}= for {name}=?" for name, match in close.items()
                        if match)
        raise TypeError(f"{what}: unknown settings {unknown}; the settings are the fields of "
                        f"{type(config).__name__}: {sorted(fields)}.{hints}")
    return config.replace(**overrides)


@_keyword_messages
def search(data: Data, *, num_classes: int | None = None,
           class_names: Sequence[str] | None = None, preset: str = "default",
           config: config_lib.SearchConfig | None = None,
           output_dir: str | None = None, callbacks: Iterable = (),
           strategy: tf.distribute.Strategy | None = None, verbose="auto",
           jit_compile: bool = False, data_dir: str | None = None,
           manual_dir: str | None = None, **overrides) -> SearchResult:
    """Runs (or resumes) a two-stage StacNAS search on `data`.

    `preset` names a `SearchConfig` preset (`default`, `smoke`,
    `paper_cifar10`, ...), or `config` gives one; `overrides` set any of its
    fields (`stage1_epochs`, `groups`, `num_nodes`, ...); for images given in
    Python a preset's sizes (`num_train_examples`, `image_size`,
    `steps_per_epoch`) default to the data's: every image, at its own size, one
    pass an epoch. `callbacks` are
    Keras callbacks passed to each stage's `fit`; `verbose` is Keras's
    (progress bar by default). The search's report goes to
    `output_dir`/report/report.html. Images
    given in Python are all searched on (one-level search has no validation
    split); images are pixels in [0, 255]. Without `output_dir` the run goes
    to a new temporary folder (`result.output_dir`).
    """
    _check_strategy(strategy)
    callbacks = _callback_list(callbacks)
    if isinstance(data, str):
        config = _config(config_lib.PRESETS, preset, config, {"dataset": data, **overrides},
                         "search")
        source = None
    else:
        _refuse_dataset_override(overrides)
        config = _config(config_lib.PRESETS, preset, config,
                         {**overrides, "dataset": dataset_names.IN_MEMORY}, "search", data_sized=True)
        source = _source(data, "data", num_classes, class_names, named=True)
        config = config_lib.with_class_names(config, source.class_names, "class_names")
    # Named as the programs' flag; the API's wrapper names the argument instead.
    folder = run_folder.SearchFolder(_output_dir(output_dir, "search"), "--output_dir")
    genotype = search_lib.run_search(config, folder, data_dir=data_dir, manual_dir=manual_dir,
                                     strategy=strategy, verbose=verbose, jit_compile=jit_compile,
                                     source=source, callbacks=callbacks)
    return SearchResult(genotype, folder.read_config(), folder.path, folder.histories())


def _genotype(value) -> tuple[genotype_lib.Genotype, str]:
    """(the genotype `value` gives, how a run's settings record it): parsed here,
    once, before any work; the library is handed the `Genotype`."""
    if isinstance(value, SearchResult):
        value = value.genotype
    if isinstance(value, genotype_lib.Genotype):
        return value, genotype_lib.published_name(value) or json.dumps(value.to_dict())
    if isinstance(value, str):
        genotype = genotype_lib.resolve(value, flag="--genotype")
        return genotype, os.path.abspath(value) if os.path.isfile(value) else value
    raise ValueError(f"genotype: expected a Genotype, a SearchResult, a published name, a file "
                     f"or DARTS text, got {type(value).__name__}.")


@_keyword_messages
def train(genotype, data: Data, *, validation_data: Data | None = None,
          num_classes: int | None = None, class_names: Sequence[str] | None = None,
          preset: str = "default", config: config_lib.TrainConfig | None = None,
          output_dir: str | None = None, callbacks: Iterable = (),
          strategy: tf.distribute.Strategy | None = None, verbose="auto",
          jit_compile: bool = False, data_dir: str | None = None,
          manual_dir: str | None = None, **overrides) -> TrainResult:
    """Trains (or resumes) the final network of `genotype` on `data`.

    `genotype`: a `Genotype`, a `SearchResult`, a published name
    (`"DARTS_V2"`), a genotype file or DARTS text. `preset` names a
    `TrainConfig` recipe (`default`, `base`, `fancy`, `imagenet_base`,
    `smoke`), or `config` gives one; `overrides` set its fields (`epochs`, `channels`, ...).
    For images given in Python a preset's sizes (`num_train_examples`,
    `num_eval_examples`, `image_size`) default to the data's. Images
    given in Python are evaluated on `validation_data`, or else on a seeded 10%
    of every class held out of the training images.
    """
    _check_strategy(strategy)
    callbacks = _callback_list(callbacks)
    if class_names is None and isinstance(genotype, SearchResult):
        class_names = genotype.config.class_names  # the same data's names, as recorded
    genotype, spec = _genotype(genotype)
    if isinstance(data, str):
        config = _config(config_lib.TRAIN_PRESETS, preset, config,
                         {"dataset": data, "genotype": spec, **overrides}, "train")
        sources = tuple(sources_lib.load(data, split, data_dir=data_dir, manual_dir=manual_dir,
                                         image_size=config.image_size)
                        for split in ("train", "test"))
    else:
        _refuse_dataset_override(overrides)
        config = _config(config_lib.TRAIN_PRESETS, preset, config,
                         {"genotype": spec, **overrides, "dataset": dataset_names.IN_MEMORY}, "train",
                         data_sized=True)
        source = _source(data, "data", num_classes, class_names, named=True)
        if validation_data is None:
            sources = sources_lib.held_out_splits(source)
        else:
            sources = (source, _source(validation_data, "validation_data", source.num_classes,
                                       source.class_names))
            if sources[1].image_shape[-1] != source.image_shape[-1] or (
                    config.image_size is None and sources[1].image_shape != source.image_shape):
                raise ValueError(
                    f"validation_data: the images are {run_folder.shape_text(sources[1].image_shape)}; "
                    f"the training images are {run_folder.shape_text(source.image_shape)}: give "
                    "both at one size and as grey or colour alike (image_size resizes both).")
        config = config_lib.with_class_names(config, source.class_names, "class_names")
    folder = run_folder.TrainingFolder(_output_dir(output_dir, "train"), "--output_dir")
    metrics = train_lib.run_training(config, folder, genotype=genotype, strategy=strategy,
                                     verbose=verbose, jit_compile=jit_compile, sources=sources,
                                     callbacks=callbacks)
    folder = run_folder.TrainingFolder.existing(folder.path, folder.flag)
    model, _ = train_lib.load_network(
        folder, sources[0].num_classes,
        sources_lib.model_input_shape(sources[0], folder.config.image_size), auxiliary=False)
    return TrainResult(model, metrics, folder.config, folder.path, folder.read_history())


def _train_dir(trained) -> str:
    if isinstance(trained, TrainResult):
        return trained.output_dir
    if isinstance(trained, (str, os.PathLike)):
        return os.fspath(trained)
    raise ValueError("expected a TrainResult or a training folder (its output_dir), got "
                     f"{type(trained).__name__}.")


def _trained_config(train_dir: str) -> config_lib.TrainConfig:
    return run_folder.TrainingFolder.existing(train_dir).config


@_keyword_messages
def evaluate(trained, data: Data | None = None, *, split: str = "test",
             num_classes: int | None = None, batch_size: int | None = None,
             num_examples: int | None = None, checkpoint: str | None = None,
             genotype=None, data_dir: str | None = None, manual_dir: str | None = None) -> dict:
    """Loss, top-1 and top-5 of a trained network (a `TrainResult` or a training
    folder) on `data` (images given in Python), or else on `split` of the
    dataset it was trained on. `checkpoint`: a checkpoint prefix (default: the
    latest); `genotype`: the genotype expected in the folder (checked)."""
    train_dir = _train_dir(trained)
    if data is None and _trained_config(train_dir).dataset == dataset_names.IN_MEMORY:
        raise ValueError("data: this network was trained on images given in Python; pass the "
                         "images to evaluate on as data=(images, labels).")
    if data is not None and num_classes is None:
        # A test subset may hold fewer classes than the network tells apart.
        from stacnas_tf import checkpoints  # noqa: PLC0415

        num_classes = checkpoints.class_count(run_folder.TrainingFolder(train_dir).checkpoint_dir)
    source = None if data is None else _source(data, "data", num_classes, None)
    return train_lib.evaluate(train_dir, split, data_dir=data_dir, manual_dir=manual_dir,
                              checkpoint_path=checkpoint, batch_size=batch_size,
                              num_examples=num_examples, source=source,
                              genotype=None if genotype is None else _genotype(genotype)[0])


@_keyword_messages
def export(trained, output_dir: str, *, formats: Sequence[str] | None = None,
           data: Data | None = None, overwrite: bool = False, genotype=None,
           random_init: str | None = None, deformable: bool = False,
           data_dir: str | None = None, manual_dir: str | None = None, **options) -> dict:
    """Exports a trained network (a `TrainResult` or a training folder) to
    SavedModel, ONNX and TFLite (`formats`: any of `exporting.FORMATS`, or
    "tflite" for every TFLite variant; default all), checks every artifact
    against the Keras model and returns the report (also export_report.json).

    `data`: the training images, when they were given in Python (they verify
    the export and calibrate the int8 model). `genotype`: the genotype expected
    in the folder (checked). With `random_init` (a network preset: `cifar10`,
    `cifar100`, `imagenet_mobile`), `trained` is a genotype and an untrained
    network of that size is exported (deployment trials). `options` are
    `ExportOptions` fields (`opset`, `int8_io`, tolerances, ...). An existing
    `output_dir` is replaced only with `overwrite`, and only if it holds an
    earlier export.
    """
    output_dir = _output_dir(files.require_path(output_dir, "output_dir"), "export")
    if formats is not None:
        options["formats"] = (formats,) if isinstance(formats, str) else tuple(formats)
    # numpy scalars (np.int64(13)) are the numbers they hold.
    options = {key: value.item() if isinstance(value, np.generic) else value
               for key, value in options.items()}
    export_options = export_lib.ExportOptions(overwrite=overwrite, **options)
    export_lib.check_output_dir(os.path.abspath(output_dir), overwrite)
    if random_init is not None:
        exportable = export_lib.random_network(_genotype(trained)[0], random_init,
                                               deformable=deformable)
    else:
        train_dir = _train_dir(trained)
        if data is None and _trained_config(train_dir).dataset == dataset_names.IN_MEMORY:
            raise ValueError("data: this network was trained on images given in Python; pass "
                             "them again as data= (they verify the export and calibrate the int8 "
                             "model).")
        source = None if data is None else _source(data, "data", None, None)
        expected = None if genotype is None else _genotype(genotype)[0]
        exportable = export_lib.from_training_folder(train_dir, data_dir, manual_dir,
                                                     expected_genotype=expected, source=source)
    return export_lib.export(exportable, output_dir, export_options)


@_keyword_messages
def describe(genotype, preset: str = "cifar10") -> dict:
    """Parameters and multiply-adds of the paper's final network (`cifar10`,
    `cifar100` or `imagenet_mobile`) for `genotype`."""
    return sizes.describe(_genotype(genotype)[0], preset)
