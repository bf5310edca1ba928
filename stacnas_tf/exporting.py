"""Export of a final network for deployment: SavedModel, ONNX and TFLite.

Every artifact is traced at inference semantics (no auxiliary head, no drop
path, BatchNorm moving statistics, deformable edge scales fixed at their
trained values), carries its metadata (genotype, classes, input shape,
normalisation, producer), and is checked against the Keras model on real
images before the export counts as done: `export_report.json` lists, per
format, the largest logit difference, top-1 agreement, file size and batch-1
latency on this machine.

The export is written to a temporary folder beside `output_dir` and renamed
into place at the end, so a failed export leaves nothing under the final name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import statistics
import time
import warnings

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from stacnas_tf import checkpoints
from stacnas_tf import config as config_lib
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network as network_lib
from stacnas_tf import pipelines
from stacnas_tf import run_folder
from stacnas_tf import sources
from stacnas_tf import version

TFLITE_VARIANTS = ("float32", "float16", "dynamic_range", "int8")
FORMATS = ("saved_model", "onnx") + tuple(f"tflite_{variant}" for variant in TFLITE_VARIANTS)


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    opset: int = 17
    onnx_nchw: bool = False
    calibration_samples: int = 100
    int8_io: bool = False  # int8 input/output tensors for the full-integer model
    float_tolerance: float = 1e-4  # max |logit difference| of float32 formats
    float16_tolerance: float = 5e-2
    # Dynamic-range / int8 models: RMS logit error over the RMS spread of the float
    # logits around each image's mean. Top-1 agreement is reported but not
    # required: an untrained network's logits are nearly tied, so its argmax
    # flips under any error (1.4% relative error gave 86% agreement).
    max_quantized_relative_error: float = 0.15
    verify_samples: int = 64
    overwrite: bool = False
    formats: tuple[str, ...] = FORMATS  # which artifacts to write ("tflite": every TFLite one)

    def __post_init__(self):
        if not isinstance(self.opset, int) or not 11 <= self.opset <= 18:
            # Below 11 tf2onnx writes graphs ONNX Runtime refuses for these networks.
            raise ValueError(f"--opset: expected an ONNX opset from 11 to 18, got {self.opset!r}.")
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        expanded = []
        for name in formats:
            expanded += ([f"tflite_{v}" for v in TFLITE_VARIANTS] if name == "tflite" else [name])
        unknown = sorted(set(expanded) - set(FORMATS))
        if unknown or not expanded:
            raise ValueError(f"--formats: expected some of {list(FORMATS)} (or tflite), got "
                             f"{list(formats)}.")
        object.__setattr__(self, "formats", tuple(f for f in FORMATS if f in expanded))
        for name in ("float_tolerance", "float16_tolerance", "max_quantized_relative_error"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"--{name}: expected a positive tolerance, got {getattr(self, name)}.")
        for name in ("calibration_samples", "verify_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}: expected a positive count, got {getattr(self, name)}.")


@dataclasses.dataclass
class Exportable:
    """A network at inference semantics and what a deployment needs to know of it."""

    network: keras.Model
    genotype: genotype_lib.Genotype
    image_shape: tuple
    num_classes: int
    mean: tuple
    std: tuple
    source: sources.Source | None  # for verification and calibration images
    class_names: tuple[str, ...] | None = None  # label -> name, where the data has names
    # What was exported: the training folder, the checkpoint restored, the epochs it
    # holds of how many, and whether the training had finished (None: untrained).
    trained_from: dict | None = None

    def metadata(self) -> dict:
        return {
            "producer": f"stacnas_tf {version.__version__}",
            "genotype": self.genotype.to_dict(),
            "num_classes": self.num_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
            "input_shape": [None, *self.image_shape],
            "input_layout": "NHWC",
            # The model normalises: a deployment feeds raw pixels and copies nothing.
            "input": {"dtype": "float32", "range": [0, 255],
                      "what": "raw pixels (uint8 images cast to float32), NHWC"},
            "preprocessing": {"inside_model": True, "layer": "pixel_normalization",
                              "mean": list(self.mean), "std": list(self.std),
                              "formula": "(pixel / 255 - mean) / std"},
            "outputs": {"logits": "float32 [batch, num_classes]",
                        "probabilities": "softmax of logits"},
            "trained_from": self.trained_from,
        }


def from_training_folder(trained: run_folder.TrainingFolder | str, data_dir=None, manual_dir=None,
                         expected_genotype: genotype_lib.Genotype | None = None,
                         source: sources.Source | None = None) -> Exportable:
    """The trained network of a training (its folder, or the folder's path; the
    latest checkpoint).

    `expected_genotype`, when given, must be the genotype the folder was trained
    with. `source` (its training images) replaces loading the folder's dataset.
    """
    folder = run_folder.training_folder(trained)
    config, genotype, train_dir = folder.config, folder.genotype, folder.path
    if expected_genotype is not None and expected_genotype != genotype:
        raise ValueError(
            f"--genotype: the checkpoints in {train_dir} were trained with another genotype "
            f"({genotype.to_darts()})."
        )
    checkpoint_dir = folder.checkpoint_dir
    if not checkpoints.candidates(checkpoint_dir):
        raise ValueError(f"--train_dir: {train_dir} has no checkpoint yet.")
    if source is None:
        source = sources.load(config.dataset, "train", data_dir=data_dir, manual_dir=manual_dir,
                              image_size=config.image_size)
    else:
        folder.check_image_shape(source.image_shape)
    config_lib.with_class_names(config, source.class_names, "--train_dir")
    image_shape = sources.model_input_shape(source, config.image_size)
    net = network_lib.build(config, genotype, source.num_classes, image_shape)
    restored = checkpoints.restore_latest(checkpoints.make(net), checkpoint_dir, partial=True,
                                          what="--train_dir")
    folder.check_checkpoint_genotype(restored)
    # Checkpoints are numbered by the epochs they hold (resumable.fit).
    epoch = re.search(r"ckpt-(\d+)$", restored or "")
    trained_from = {
        "train_dir": os.path.abspath(train_dir),
        "checkpoint": os.path.basename(restored) if restored else None,
        "epoch": int(epoch.group(1)) if epoch else None, "epochs": config.epochs,
        "finished": folder.finished,
    }
    if not trained_from["finished"]:
        logging.warning("--train_dir: %s has not finished training (checkpoint of epoch %s of "
                        "%d); exporting it as it stands (recorded in the metadata).", train_dir,
                        trained_from["epoch"], config.epochs)
    mean, std = net.pixel_normalization.statistics()  # as restored: what the model applies
    return Exportable(net, genotype, image_shape, source.num_classes, mean, std,
                      source, class_names=config.class_names or source.class_names,
                      trained_from=trained_from)


def random_network(genotype: genotype_lib.Genotype, preset: str, deformable=False, seed=0) -> Exportable:
    """An untrained network of a paper preset, for deployment trials before training."""
    if preset not in config_lib.NETWORK_PRESETS:
        raise ValueError(f"--preset: expected one of {sorted(config_lib.NETWORK_PRESETS)}, got {preset!r}.")
    spec = config_lib.NETWORK_PRESETS[preset]
    keras.utils.set_random_seed(seed)
    config = config_lib.TrainConfig(network=spec["network"], channels=spec["channels"],
                                    num_cells=spec["num_cells"], deformable=deformable)
    mean, std = (0.5,) * spec["image_shape"][-1], (0.25,) * spec["image_shape"][-1]
    net = network_lib.build(config, genotype, spec["num_classes"], spec["image_shape"],
                            auxiliary=False, statistics=(mean, std))
    return Exportable(net, genotype, tuple(spec["image_shape"]), spec["num_classes"], mean, std, None)


class _Serving(tf.Module):
    def __init__(self, network, image_shape):
        super().__init__()
        self.network = network
        self.serve = tf.function(
            self._serve, input_signature=[tf.TensorSpec([None, *image_shape], tf.float32, name="images")])

    def _serve(self, images):
        logits = tf.cast(self.network(images, training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}


def _sample_images(exportable: Exportable, count: int, seed: int = 0) -> np.ndarray:
    """Raw pixels: real images from the dataset, or seeded noise for untrained networks."""
    if exportable.source is None:
        noise = np.random.RandomState(seed).uniform(0, 255, (count, *exportable.image_shape))
        return noise.astype(np.float32)
    if count > exportable.source.num_examples:
        logging.warning("asked for %d images, the dataset has %d: using them all.", count,
                        exportable.source.num_examples)
    # Resized only where the network was trained at another size (--image_size, a
    # square); a network of the dataset's own non-square images sees them whole.
    height, width = exportable.image_shape[:2]
    native = tuple(exportable.source.image_shape[:2]) == (height, width)
    pipeline = pipelines.eval_pipeline(exportable.source, count, None if native else height, count)
    images, _ = next(iter(pipeline))
    return images.numpy().astype(np.float32)


def _write_saved_model(serving: _Serving, path: str, metadata: dict) -> None:
    tf.saved_model.save(serving, path, signatures={"serving_default": serving.serve})
    # Metadata as an asset file beside the graph (SavedModel's place for extra files).
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    with open(os.path.join(path, "assets", "stacnas_metadata.json"), "w") as f:
        json.dump(metadata, f, indent=2)


def _write_onnx(serving: _Serving, path: str, metadata: dict, options: ExportOptions) -> None:
    import tf2onnx  # imported here: slow, and only this format needs it

    spec = [tf.TensorSpec([None, *metadata["input_shape"][1:]], tf.float32, name="images")]
    model, _ = tf2onnx.convert.from_function(
        serving.serve, input_signature=spec, opset=options.opset,
        inputs_as_nchw=["images"] if options.onnx_nchw else None)
    for key, value in (("stacnas_metadata", json.dumps(metadata)),
                       ("input_layout", "NCHW" if options.onnx_nchw else "NHWC")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "stacnas_tf"
    model.producer_version = version.__version__
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def _write_tflite(serving: _Serving, path: str, variant: str, calibration: np.ndarray,
                  options: ExportOptions, metadata: dict) -> None:
    # Converted from a frozen graph (variables folded to constants): from the
    # SavedModel, calibration of the int8 model met unfrozen READ_VARIABLE nodes,
    # and unfrozen concrete functions give NaN models.
    from tensorflow.python.framework import convert_to_constants

    frozen = convert_to_constants.convert_variables_to_constants_v2(
        serving.serve.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        def representative():
            for image in calibration:
                yield [image[None]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if options.int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with open(path, "wb") as f:
        f.write(with_tflite_metadata(converter.convert(), METADATA_NAME, metadata))


METADATA_NAME = "stacnas_metadata"


def with_tflite_metadata(model: bytes, name: str, value: dict) -> bytes:
    """`model` (a TFLite flatbuffer) with `value` as JSON in its metadata table
    under `name`, where TFLite keeps a model's own data."""
    # TensorFlow ships no public API to write TFLite metadata (tflite-support
    # does, with its own pinned TF); its flatbuffer tools are the smallest way.
    # export_test reads the entry back, so a change of these modules is noticed.
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    model_object = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(json.dumps(value).encode(), np.uint8)
    model_object.buffers.append(buffer)
    entry = schema_fb.MetadataT()
    entry.name, entry.buffer = name, len(model_object.buffers) - 1
    model_object.metadata = (model_object.metadata or []) + [entry]
    return flatbuffer_utils.convert_object_to_bytearray(model_object)


def read_tflite_metadata(path: str, name: str = METADATA_NAME) -> dict | None:
    """The JSON metadata entry `name` of a TFLite file (None when it has none)."""
    from tensorflow.lite.tools import flatbuffer_utils

    with open(path, "rb") as f:
        model_object = flatbuffer_utils.convert_bytearray_to_object(bytearray(f.read()))
    for entry in model_object.metadata or []:
        if entry.name.decode() == name:
            return json.loads(bytes(model_object.buffers[entry.buffer].data).decode())
    return None


# --- running the artifacts ----------------------------------------------------------


def tflite_runner(path: str):
    """A callable running a TFLite model on a float batch (int8 inputs/outputs handled)."""
    with warnings.catch_warnings():
        # TF 2.21 still ships the interpreter; its deprecation notice is noise here.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        interpreter = tf.lite.Interpreter(model_path=path)
    state = {"shape": None}

    def run(images: np.ndarray) -> np.ndarray:
        detail = interpreter.get_input_details()[0]
        if state["shape"] != images.shape:
            interpreter.resize_tensor_input(detail["index"], list(images.shape))
            interpreter.allocate_tensors()
            state["shape"] = images.shape
            detail = interpreter.get_input_details()[0]
        batch = images
        if detail["dtype"] == np.int8:
            scale, zero = detail["quantization"]
            batch = np.clip(np.round(images / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        # Logits are the output that is not a softmax: the one whose rows do not sum to 1.
        outputs = [(d, interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]
        decoded = []
        for d, value in outputs:
            if d["dtype"] == np.int8:
                scale, zero = d["quantization"]
                value = (value.astype(np.float32) - zero) * scale
            decoded.append((d["name"], value.astype(np.float32)))
        named = [v for name, v in decoded if "logits" in name]
        if named:
            return named[0]
        return min(decoded, key=lambda nv: -np.abs(nv[1].sum(-1) - 1).mean())[1]

    return run


def onnx_runner(path: str, nchw: bool = False):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    output = "logits" if "logits" in names else names[0]

    def run(images: np.ndarray) -> np.ndarray:
        feed = np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))) if nchw else images
        return session.run([output], {"images": feed})[0]

    return run


def saved_model_runner(path: str):
    loaded = tf.saved_model.load(path)  # kept referenced by the closure while it runs
    function = loaded.signatures["serving_default"]

    def run(images: np.ndarray) -> np.ndarray:
        return function(images=tf.constant(images))["logits"].numpy()

    run.loaded = loaded
    return run


def relative_logit_error(logits: np.ndarray, reference: np.ndarray) -> float:
    """RMS of (logits - reference) over the RMS of the reference logits around
    each image's mean logit: 0 for an exact copy, about 1.4 for an unrelated
    network, whatever the scale of the logits."""
    spread = reference - reference.mean(axis=-1, keepdims=True)
    error = float(np.sqrt(np.mean(np.square(logits - reference))))
    return error / max(float(np.sqrt(np.mean(np.square(spread)))), 1e-12)


def _latency_ms(run, image: np.ndarray, repeats: int = 10) -> float:
    run(image)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(image)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f)) for root, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


class ExportError(RuntimeError):
    """An artifact differs from the Keras model beyond the allowed tolerance."""


# What an export writes: --overwrite replaces a folder holding only these.
_EXPORT_FILES = re.compile(r"export_report\.json|metadata\.json|saved_model|model\.onnx|"
                           r"model_[a-z0-9_]+\.tflite")


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    """Refuses to replace an existing export unless asked to, and never replaces
    a folder that is not an export; checks that the parent folder is writable."""
    output_dir = os.path.abspath(files.require_path(output_dir))
    if os.path.islink(output_dir):
        raise ValueError(f"--output_dir: {output_dir} is a symbolic link; give the folder it "
                         f"points to ({os.path.realpath(output_dir)}).")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir: {output_dir} exists and is not a folder.")
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not overwrite:
            raise ValueError(f"--output_dir: {output_dir} exists and is not empty; pass "
                             "--overwrite to replace an earlier export.")
        if not os.path.exists(os.path.join(output_dir, "export_report.json")):
            raise ValueError(f"--output_dir: {output_dir} is not an export (it has no "
                             "export_report.json); --overwrite replaces only an earlier export.")
        foreign = sorted(name for name in os.listdir(output_dir) if not _EXPORT_FILES.fullmatch(name))
        if foreign:
            raise ValueError(f"--output_dir: {output_dir} holds files an export did not write "
                             f"({', '.join(foreign[:3])}); move them away, or export elsewhere.")
    files.prepare_output_dir(os.path.dirname(output_dir), flag="--output_dir's parent")


def _staging_prefix(name: str) -> str:
    """The staging folder's name prefix for an export into `name`. A file name
    holds at most 255 bytes, so a long (legal) `name` is cut to leave room for
    the pid and the random suffix."""
    return f".{name.encode()[:180].decode(errors='ignore')}.partial-"


def _remove_stale_partials(parent: str, name: str) -> None:
    """Removes staging folders of exports into `name` whose process is gone
    (their names carry the pid), left by a killed export."""
    for entry in os.listdir(parent):
        match = re.fullmatch(re.escape(_staging_prefix(name)) + r"(\d+)-.*", entry)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def grouped_convolutions(network: keras.Model) -> list[str]:
    """Paths of the network's grouped (not depthwise) convolutions: Conv2D layers
    with 1 < groups. tf2onnx 1.17 leaves each as an unconverted
    StatefulPartitionedCall, which ONNX Runtime then refuses as an invalid graph."""
    # Keras has no public recursive layer walk; checkpoints.py uses the same one.
    return [layer.path for layer in network._flatten_layers(include_self=False)  # noqa: SLF001
            if isinstance(layer, keras.layers.Conv2D) and getattr(layer, "groups", 1) > 1]


def check_formats(exportable: Exportable, options: ExportOptions) -> None:
    """Refuses, before anything is converted, a format that cannot hold the network."""
    if "onnx" in options.formats:
        grouped = grouped_convolutions(exportable.network)
        if grouped:
            others = [f for f in options.formats if f != "onnx"] or ["saved_model", "tflite"]
            raise ValueError(
                f"--formats: ONNX cannot hold this network's grouped convolution(s) "
                f"({', '.join(grouped[:3])}{', ...' if len(grouped) > 3 else ''}): tf2onnx "
                f"does not convert them; export the other formats (--formats="
                f"{','.join(others)}).")


def export(exportable: Exportable, output_dir: str, options: ExportOptions = ExportOptions()) -> dict:
    """Writes and verifies every artifact; returns the report (also export_report.json)."""
    output_dir = os.path.abspath(output_dir)
    check_output_dir(output_dir, options.overwrite)
    check_formats(exportable, options)
    parent, name = os.path.split(output_dir)
    _remove_stale_partials(parent, name)
    staging = files.make_temp_dir(parent, f"{_staging_prefix(name)}{os.getpid()}-")
    try:
        report = _export_into(exportable, staging, options)
        files.replace_folder(staging, output_dir)
        return report
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)


def _export_into(exportable: Exportable, folder: str, options: ExportOptions) -> dict:
    metadata = exportable.metadata()
    files.write_json(os.path.join(folder, "metadata.json"), metadata)
    serving = _Serving(exportable.network, exportable.image_shape)
    images = _sample_images(exportable, options.verify_samples)
    reference = serving.serve(tf.constant(images))["logits"].numpy()

    artifacts = {}
    if "saved_model" in options.formats:
        saved_model = os.path.join(folder, "saved_model")
        _write_saved_model(serving, saved_model, metadata)
        artifacts["saved_model"] = (saved_model, saved_model_runner(saved_model))
    if "onnx" in options.formats:
        onnx_path = os.path.join(folder, "model.onnx")
        _write_onnx(serving, onnx_path, metadata, options)
        artifacts["onnx"] = (onnx_path, onnx_runner(onnx_path, options.onnx_nchw))
    calibration = (_sample_images(exportable, options.calibration_samples, seed=1)
                   if "tflite_int8" in options.formats else None)
    for variant in TFLITE_VARIANTS:
        if f"tflite_{variant}" not in options.formats:
            continue
        path = os.path.join(folder, f"model_{variant}.tflite")
        _write_tflite(serving, path, variant, calibration, options, metadata)
        artifacts[f"tflite_{variant}"] = (path, tflite_runner(path))

    keras_run = lambda batch: serving.serve(tf.constant(batch))["logits"].numpy()  # noqa: E731
    report = {"producer": metadata["producer"], "verify_samples": int(len(images)),
              "images": "dataset" if exportable.source is not None else "random",
              "keras": {"latency_batch1_ms": _latency_ms(keras_run, images[:1])}, "formats": {}}
    failures = []
    for name, (path, run) in artifacts.items():
        logits = run(images)
        difference = float(np.abs(logits - reference).max())
        agreement = float((logits.argmax(-1) == reference.argmax(-1)).mean())
        relative = relative_logit_error(logits, reference)
        report["formats"][name] = {
            "path": os.path.basename(path), "max_abs_logit_diff": difference,
            "relative_logit_error": relative, "top1_agreement": agreement, "size_bytes": _size(path),
            "latency_batch1_ms": _latency_ms(run, images[:1]),
        }
        if name in ("saved_model", "onnx", "tflite_float32") and difference > options.float_tolerance:
            failures.append(f"{name}: max logit difference {difference:.3g} > {options.float_tolerance}")
        elif name == "tflite_float16" and difference > options.float16_tolerance:
            failures.append(f"{name}: max logit difference {difference:.3g} > {options.float16_tolerance}")
        elif (name in ("tflite_dynamic_range", "tflite_int8")
              and not relative <= options.max_quantized_relative_error):
            failures.append(f"{name}: relative logit error {relative:.3g} > "
                            f"{options.max_quantized_relative_error}")
    report["passed"] = not failures
    files.write_json(os.path.join(folder, "export_report.json"), report)
    if failures:
        raise ExportError("export verification failed: " + "; ".join(failures)
                          + f"\nreport: {json.dumps(report['formats'], indent=1)}")
    return report
