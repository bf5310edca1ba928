import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import exporting as export
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network as network_lib
from stacnas_tf import sources
from stacnas_tf import training as train

import helpers

G = genotype_lib.PUBLISHED
OPTIONS = export.ExportOptions(calibration_samples=32, verify_samples=32)
TINY = config_lib.TrainConfig(
    genotype="DARTS_V2", dataset="digits", channels=4, num_cells=3, epochs=1, batch_size=32,
    num_train_examples=128, num_eval_examples=32, cutout=0, aux_weight=0.0, deformable=True)

# Runs in a fresh interpreter that cannot import stacnas_tf: plain TF, ONNX Runtime, TFLite.
_PLAIN_LOADER = r"""
import json, sys
sys.modules["stacnas_tf"] = None
import numpy as np, onnxruntime, tensorflow as tf
folder, images = sys.argv[1], np.load(sys.argv[2])
out = {}
loaded = tf.saved_model.load(folder + "/saved_model")
out["saved_model"] = loaded.signatures["serving_default"](images=tf.constant(images))["logits"].numpy().tolist()
session = onnxruntime.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
out["onnx"] = session.run(["logits"], {"images": images})[0].tolist()
interpreter = tf.lite.Interpreter(model_path=folder + "/model_float32.tflite")
detail = interpreter.get_input_details()[0]
interpreter.resize_tensor_input(detail["index"], list(images.shape))
interpreter.allocate_tensors()
interpreter.set_tensor(detail["index"], images)
interpreter.invoke()
values = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
out["tflite_float32"] = [v.tolist() for v in values]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    train.run_training(TINY, str(root / "train"), verbose=0)
    exportable = export.from_training_folder(str(root / "train"))
    report = export.export(exportable, str(root / "out"), OPTIONS)
    return root, exportable, report


def test_every_format_matches_the_keras_model(exported):
    root, _, report = exported
    assert report["passed"] and report["images"] == "dataset"
    formats = report["formats"]
    assert set(formats) == {"saved_model", "onnx", "tflite_float32", "tflite_float16",
                            "tflite_dynamic_range", "tflite_int8"}
    for name in ("saved_model", "onnx", "tflite_float32"):
        assert formats[name]["max_abs_logit_diff"] < 1e-4 and formats[name]["top1_agreement"] == 1.0
    assert formats["tflite_float16"]["max_abs_logit_diff"] < 5e-2
    for name in ("tflite_dynamic_range", "tflite_int8"):
        assert formats[name]["relative_logit_error"] < 0.15 and formats[name]["top1_agreement"] >= 0.8
    assert all(f["size_bytes"] > 0 and f["latency_batch1_ms"] > 0 for f in formats.values())
    assert json.loads((root / "out" / "export_report.json").read_text()) == report


def test_artifacts_run_without_stacnas_tf(exported, tmp_path):
    root, exportable, _ = exported
    images = np.random.RandomState(0).uniform(0, 255, (3, *exportable.image_shape)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    result = subprocess.run(
        [sys.executable, "-I", "-c", _PLAIN_LOADER, str(root / "out"), str(tmp_path / "images.npy")],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    reference = exportable.network(images, training=False).numpy()
    np.testing.assert_allclose(outputs["saved_model"], reference, atol=1e-4)
    np.testing.assert_allclose(outputs["onnx"], reference, atol=1e-4)
    assert any(np.allclose(v, reference, atol=1e-4) for v in outputs["tflite_float32"])


def test_metadata_travels_with_every_format(exported):
    root, _, _ = exported
    out = root / "out"
    metadata = json.loads((out / "metadata.json").read_text())
    assert genotype_lib.Genotype.from_dict(metadata["genotype"]) == G["DARTS_V2"]
    assert metadata["num_classes"] == 10 and metadata["input_shape"] == [None, 8, 8, 1]
    assert len(metadata["preprocessing"]["mean"]) == 1 and metadata["producer"].startswith("stacnas_tf")
    assert json.loads((out / "saved_model" / "assets" / "stacnas_metadata.json").read_text()) == metadata
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert json.loads(props["stacnas_metadata"]) == metadata and props["input_layout"] == "NHWC"
    for variant in export.TFLITE_VARIANTS:
        assert export.read_tflite_metadata(str(out / f"model_{variant}.tflite")) == metadata
    # In label order, as the dataset names them (digits: "0" .. "9").
    assert metadata["class_names"] == [str(label) for label in range(10)]
    # What was exported: the folder, the checkpoint of its last epoch, a finished training.
    assert metadata["trained_from"] == {"train_dir": str(root / "train"), "checkpoint": "ckpt-1",
                                        "epoch": 1, "epochs": 1, "finished": True}


def test_a_deployment_following_the_metadata_names_what_the_keras_model_predicts(exported):
    # Everything a deployment needs comes from metadata.json: the input range and
    # where normalisation happens, the shape, the class names by label.
    import onnxruntime

    root, exportable, _ = exported
    metadata = json.loads((root / "out" / "metadata.json").read_text())
    test = sources.load("digits", "test")
    images, labels = (np.stack(a) for a in zip(*test.dataset.take(64).as_numpy_iterator()))
    low, high = metadata["input"]["range"]
    assert (low, high) == (0, 255) and metadata["preprocessing"]["inside_model"]
    pixels = images.astype(np.float32)  # raw pixels in that range: the model normalises
    assert list(pixels.shape[1:]) == metadata["input_shape"][1:]
    session = onnxruntime.InferenceSession(str(root / "out" / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    deployed = [metadata["class_names"][k]
                for k in session.run(["logits"], {"images": pixels})[0].argmax(-1)]
    keras_names = [test.class_names[k]
                   for k in exportable.network(pixels, training=False).numpy().argmax(-1)]
    assert deployed == keras_names
    assert [metadata["class_names"][label] for label in labels] == [str(label) for label in labels]


def test_int8_model_with_int8_inputs_and_outputs(exported, tmp_path):
    _, exportable, _ = exported
    options = export.ExportOptions(calibration_samples=32, verify_samples=32, int8_io=True)
    report = export.export(exportable, str(tmp_path / "int8"), options)
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "int8" / "model_int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert {d["dtype"] for d in interpreter.get_output_details()} == {np.int8}
    assert report["formats"]["tflite_int8"]["relative_logit_error"] < 0.15


def test_export_options_are_checked_up_front():
    for field, value in (("float_tolerance", -1.0), ("max_quantized_relative_error", 0.0),
                         ("calibration_samples", 0)):
        with pytest.raises(ValueError, match=f"--{field}"):
            export.ExportOptions(**{field: value})


def test_relative_logit_error_is_scale_free():
    rng = np.random.RandomState(0)
    reference = rng.randn(64, 10)
    assert export.relative_logit_error(reference, reference) == 0.0
    noisy = reference + 0.05 * rng.randn(64, 10)
    assert export.relative_logit_error(noisy, reference) == pytest.approx(0.05, rel=0.15)
    assert export.relative_logit_error(1e-3 * noisy, 1e-3 * reference) == pytest.approx(
        export.relative_logit_error(noisy, reference))
    # An unrelated network's logits: about sqrt(2).
    assert 1.2 < export.relative_logit_error(rng.randn(64, 10), reference) < 1.6
    # A constant offset per image does not change what any class scores relative to the others,
    # but it is an error of the artifact all the same.
    assert export.relative_logit_error(reference + 1.0, reference) > 0.9


def _other_network(exportable, seed):
    keras.utils.set_random_seed(seed)
    config = TINY.replace(deformable=False)
    return network_lib.build(config, exportable.genotype, exportable.num_classes,
                               exportable.image_shape, auxiliary=False)


def test_verification_catches_artifacts_of_another_network(exported, tmp_path, monkeypatch):
    # Every artifact is written from another (random) network: each format must
    # fail against the Keras model, so none is compared with the model itself.
    _, exportable, _ = exported
    wrong = export._Serving(_other_network(exportable, seed=5), exportable.image_shape)
    for writer in ("_write_saved_model", "_write_onnx", "_write_tflite"):
        original = getattr(export, writer)
        monkeypatch.setattr(export, writer,
                            lambda serving, *args, _original=original, **kwargs:
                            _original(wrong, *args, **kwargs))
    with pytest.raises(export.ExportError) as failure:
        export.export(exportable, str(tmp_path / "out"), OPTIONS)
    for name in ("saved_model", "onnx", "tflite_float32", "tflite_float16", "tflite_dynamic_range",
                 "tflite_int8"):
        assert f"{name}:" in str(failure.value).split("\n")[0]
    assert not (tmp_path / "out").exists()


def test_untrained_networks_pass_verification(exported, tmp_path):
    # Near-tied logits of an untrained network: the quantized checks must still hold.
    _, exportable, _ = exported
    untrained = export.Exportable(_other_network(exportable, seed=3), exportable.genotype,
                                  exportable.image_shape, exportable.num_classes, exportable.mean,
                                  exportable.std, None)
    report = export.export(untrained, str(tmp_path / "out"), OPTIONS)
    assert report["passed"] and report["images"] == "random"
    assert oct(os.stat(tmp_path / "out").st_mode & 0o777) == oct(0o777 & ~files.umask())


def test_existing_export_is_not_overwritten_and_failures_leave_nothing(exported, tmp_path):
    root, exportable, _ = exported
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="--overwrite"):
        export.export(exportable, str(target), OPTIONS)
    assert (target / "keep.txt").read_text() == "mine"
    impossible = export.ExportOptions(calibration_samples=8, verify_samples=8, float_tolerance=1e-30,
                                      overwrite=True)
    # --overwrite replaces an earlier export, never another folder.
    with pytest.raises(ValueError, match="is not an export"):
        export.export(exportable, str(target), impossible)
    (target / "export_report.json").write_text("{}")
    # Files an export does not write are never replaced with it.
    with pytest.raises(ValueError, match="holds files an export did not write \\(keep.txt\\)"):
        export.export(exportable, str(target), impossible)
    (target / "keep.txt").unlink()
    (target / "model.onnx").write_text("mine")
    # A staging folder of a killed export (its pid is gone) is cleaned up.
    (tmp_path / f".target.partial-{helpers.dead_pid()}-x").mkdir()
    with pytest.raises(export.ExportError, match="max logit difference"):
        export.export(exportable, str(target), impossible)
    assert (target / "model.onnx").read_text() == "mine"  # the old export is untouched
    assert sorted(os.listdir(tmp_path)) == ["target"]  # no partial folder left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="--output_dir's parent"):
        export.export(exportable, str(tmp_path / "file" / "out"), OPTIONS)
    fresh = tmp_path / "fresh"
    with pytest.raises(export.ExportError):
        export.export(exportable, str(fresh), impossible)
    assert not fresh.exists()


def test_genotype_mismatch_is_a_clear_error(exported):
    root, _, _ = exported
    with pytest.raises(ValueError, match="--genotype: the checkpoints .* another genotype"):
        export.from_training_folder(str(root / "train"), expected_genotype=G["DARTS_V1"])


def test_per_cell_network_exports(tmp_path):
    path = tmp_path / "per_cell.json"
    path.write_text(helpers.per_cell_genotype().to_json())
    config = TINY.replace(genotype=str(path), deformable=False, num_train_examples=64)
    train.run_training(config, str(tmp_path / "train"), verbose=0)
    report = export.export(export.from_training_folder(str(tmp_path / "train")), str(tmp_path / "out"),
                           export.ExportOptions(calibration_samples=16, verify_samples=16))
    assert report["passed"]


def test_onnx_is_refused_in_one_line_before_converting_grouped_convolutions():
    import types

    inputs = keras.Input((8, 8, 4))
    grouped = keras.layers.Conv2D(4, 3, padding="same", groups=2, name="grouped")
    depthwise = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")
    network = keras.Model(inputs, depthwise(grouped(inputs)))
    assert export.grouped_convolutions(network) == ["grouped"]
    exportable = types.SimpleNamespace(network=network)
    with pytest.raises(ValueError, match=r"^--formats: ONNX cannot hold this network's grouped "
                                         r"convolution\(s\) \(grouped\).*--formats=saved_model,"
                                         r"tflite_float32\)\.$"):
        export.check_formats(exportable, export.ExportOptions(
            formats=("saved_model", "onnx", "tflite_float32")))
    # Without ONNX, or without grouped convolutions, nothing is refused.
    export.check_formats(exportable, export.ExportOptions(formats=("saved_model",)))
    plain = keras.Model(inputs, depthwise(inputs))
    export.check_formats(types.SimpleNamespace(network=plain), export.ExportOptions())


def test_a_long_export_folder_name_leaves_room_for_its_staging_folder(tmp_path):
    # 240 bytes is a legal folder name; its staging folder must fit in 255 too.
    name = "e" * 240
    prefix = export._staging_prefix(name)
    staging = files.make_temp_dir(str(tmp_path), f"{prefix}{os.getpid()}-")
    assert len(os.path.basename(staging).encode()) <= 255
    # A stale staging folder of a process that is gone is found by the same prefix.
    stale = tmp_path / f"{prefix}999999999-left"
    stale.mkdir()
    export._remove_stale_partials(str(tmp_path), name)
    assert not stale.exists() and os.path.isdir(staging)


def test_exporting_an_unfinished_training_says_so_and_records_it(exported, tmp_path, caplog):
    import shutil

    root, _, _ = exported
    running = tmp_path / "running"
    shutil.copytree(root / "train", running)
    os.remove(running / "metrics.json")  # as while the training still runs
    exportable = export.from_training_folder(str(running))
    assert exportable.trained_from["finished"] is False
    assert exportable.metadata()["trained_from"]["epoch"] == 1
    assert "has not finished training" in caplog.text


# --- what the options, the runners and the checks do when nobody passes them ------------


def test_export_options_defaults_bounds_and_frozen():
    import dataclasses

    defaults = export.ExportOptions()
    # An existing export is replaced only when asked; 0.15 is the quantized formats' bound
    # (own choice: the TINY digits network of these tests, one epoch, scored 0.016 as int8
    # on 2026-12-05).
    assert defaults.overwrite is False and defaults.max_quantized_relative_error == 0.15
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.overwrite = True
    # ONNX opsets 11 .. 18 (below 11 tf2onnx writes graphs ONNX Runtime refuses), both ends kept.
    assert export.ExportOptions(opset=11).opset == 11 and export.ExportOptions(opset=18).opset == 18
    for opset in (10, 19, 17.0):
        with pytest.raises(ValueError, match="--opset: expected an ONNX opset from 11 to 18"):
            export.ExportOptions(opset=opset)
    # A tolerance is a positive finite number: an infinite one would pass anything.
    for field in ("float_tolerance", "float16_tolerance", "max_quantized_relative_error"):
        with pytest.raises(ValueError, match=f"--{field}: expected a positive tolerance"):
            export.ExportOptions(**{field: float("inf")})


def test_an_earlier_export_is_refused_under_the_default_options(exported):
    root, exportable, _ = exported
    before = sorted(os.listdir(root / "out"))
    with pytest.raises(ValueError, match="exists and is not empty; pass --overwrite"):
        export.export(exportable, str(root / "out"), export.ExportOptions())
    assert sorted(os.listdir(root / "out")) == before


def test_the_default_quantized_bound_fails_an_artifact_above_it(exported, tmp_path, monkeypatch):
    _, exportable, _ = exported
    monkeypatch.setattr(export, "relative_logit_error", lambda logits, reference: 0.2)
    options = export.ExportOptions(calibration_samples=8, verify_samples=8,
                                   formats=("tflite_dynamic_range",))
    with pytest.raises(export.ExportError, match=r"tflite_dynamic_range: relative logit error 0.2 "
                                                 r"> 0.15") as failure:
        export.export(exportable, str(tmp_path / "out"), options)
    # The message carries the per-format report, one key per line, indented to be read.
    shown = str(failure.value).split("\nreport: ", 1)[1]
    assert json.loads(shown)["tflite_dynamic_range"]["relative_logit_error"] == 0.2
    assert '\n "tflite_dynamic_range": {\n  "path": "model_dynamic_range.tflite"' in shown


def test_relative_logit_error_measures_spread_around_each_images_mean():
    # Logits of very different means per image (as a network's are): the spread is taken
    # per image (the docstring's definition), so 5% noise reads 5% whatever the offsets.
    rng = np.random.RandomState(1)
    reference = rng.randn(64, 10) + 100.0 * rng.randn(64, 1)
    noisy = reference + 0.05 * rng.randn(64, 10)
    assert export.relative_logit_error(noisy, reference) == pytest.approx(0.05, rel=0.15)


def test_the_onnx_runner_feeds_nhwc_unless_told(exported):
    root, exportable, _ = exported
    images = np.random.RandomState(2).uniform(0, 255, (4, *exportable.image_shape)).astype(np.float32)
    reference = exportable.network(images, training=False).numpy()
    np.testing.assert_allclose(export.onnx_runner(str(root / "out" / "model.onnx"))(images),
                               reference, atol=1e-4)


def _bias_only_tflite(path, bias, variant="float32"):
    """A TFLite model (as the export writes it) whose logits are `bias` for every image."""
    inputs = keras.Input((4, 4, 1))
    dense = keras.layers.Dense(len(bias), kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant(bias))
    network = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    calibration = np.random.RandomState(0).uniform(0, 255, (8, 4, 4, 1)).astype(np.float32)
    export._write_tflite(export._Serving(network, (4, 4, 1)), str(path), variant, calibration,
                         export.ExportOptions(), {})
    return network


def test_the_tflite_runner_returns_logits_not_probabilities(tmp_path):
    # Our TFLite files name their outputs Identity / Identity_1: the logits are the output
    # whose rows do not sum to 1. Small logits (near 0) on a large batch keep them apart
    # from the probabilities only when the sum runs over each image's row.
    bias = np.linspace(-0.01, 0.01, 10)
    _bias_only_tflite(tmp_path / "model.tflite", bias)
    images = np.random.RandomState(0).uniform(0, 255, (64, 4, 4, 1)).astype(np.float32)
    logits = export.tflite_runner(str(tmp_path / "model.tflite"))(images)
    np.testing.assert_allclose(logits, np.tile(bias, (64, 1)), atol=1e-6)


def test_the_tflite_runner_takes_an_output_named_logits(tmp_path):
    # Other converters name their outputs: an output named for logits is taken by its name.
    from tensorflow.lite.tools import flatbuffer_utils

    bias = np.linspace(-3.0, 3.0, 10)
    _bias_only_tflite(tmp_path / "model.tflite", bias)
    model = flatbuffer_utils.read_model(str(tmp_path / "model.tflite"))
    graph = model.subgraphs[0]
    images = np.zeros((2, 4, 4, 1), np.float32)
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "model.tflite"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images[:1])
    interpreter.invoke()
    for index in graph.outputs:
        value = interpreter.get_tensor(index)
        graph.tensors[index].name = b"logits" if np.allclose(value, bias) else b"softmax"
    flatbuffer_utils.write_model(model, str(tmp_path / "named.tflite"))
    np.testing.assert_allclose(export.tflite_runner(str(tmp_path / "named.tflite"))(images),
                               np.tile(bias, (2, 1)), atol=1e-6)


def test_the_int8_runner_quantizes_inputs_as_tflite_defines_it(exported, tmp_path):
    # TFLite's int8 scheme: q = clamp(round(x / scale) + zero_point, -128, 127) on the way in,
    # x = (q - zero_point) * scale on the way out. Raw pixels 0 (many in digits) land on -128.
    _, exportable, _ = exported
    options = export.ExportOptions(calibration_samples=32, verify_samples=32, int8_io=True,
                                   formats=("tflite_int8",))
    export.export(exportable, str(tmp_path / "int8"), options)
    path = str(tmp_path / "int8" / "model_int8.tflite")
    images = np.stack([np.zeros(exportable.image_shape), np.full(exportable.image_shape, 255.0),
                       np.random.RandomState(3).uniform(0, 255, exportable.image_shape)]
                      ).astype(np.float32)
    interpreter = tf.lite.Interpreter(model_path=path)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(images.shape))
    interpreter.allocate_tensors()
    scale, zero = interpreter.get_input_details()[0]["quantization"]
    quantized = np.clip(np.round(images / scale) + zero, -128, 127).astype(np.int8)
    assert quantized.min() == -128  # the black pixels use the lowest code
    interpreter.set_tensor(detail["index"], quantized)
    interpreter.invoke()
    by_hand = [(d, interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]
    decoded = [(v.astype(np.float32) - d["quantization"][1]) * d["quantization"][0]
               for d, v in by_hand]
    logits = export.tflite_runner(path)(images)
    assert any(np.array_equal(logits, value) for value in decoded)
    assert not np.allclose(logits.sum(-1), 1.0, atol=0.05)  # not the probabilities
    # Below the input range the code saturates at -128 (TFLite's quantize op clamps), as black.
    below = np.full((1, *exportable.image_shape), -50.0, np.float32)
    np.testing.assert_array_equal(export.tflite_runner(path)(below),
                                  export.tflite_runner(path)(np.zeros_like(below)))
    # and above it at 127, as white.
    above = np.full((1, *exportable.image_shape), 300.0, np.float32)
    np.testing.assert_array_equal(export.tflite_runner(path)(above),
                                  export.tflite_runner(path)(np.full_like(above, 255.0)))


def test_sampling_more_images_than_the_dataset_has_says_so(caplog):
    images = np.random.RandomState(0).randint(0, 256, (6, 8, 8, 1)).astype(np.uint8)
    source = sources.from_arrays(images, np.arange(6) % 2)
    exportable = export.Exportable(None, G["DARTS_V2"], (8, 8, 1), 2, (0.5,), (0.25,), source)
    assert export._sample_images(exportable, 6).shape == (6, 8, 8, 1)
    assert export._sample_images(exportable, 4).shape == (4, 8, 8, 1)
    assert "asked for" not in caplog.text
    assert export._sample_images(exportable, 7).shape == (6, 8, 8, 1)
    assert "asked for 7 images, the dataset has 6: using them all" in caplog.text


def test_a_staging_folder_of_a_process_we_may_not_signal_is_kept(tmp_path, monkeypatch):
    # kill(pid, 0) failing with EPERM means the process exists (kill(2)): its folder stays.
    def refuse(pid, signal):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(export.os, "kill", refuse)
    assert export._process_alive(12345) is True
    (tmp_path / ".out.partial-12345-x").mkdir()
    export._remove_stale_partials(str(tmp_path), "out")
    assert (tmp_path / ".out.partial-12345-x").is_dir()


def test_a_random_network_of_a_preset_normalises_with_its_placeholder_statistics():
    exportable = export.random_network(G["DARTS_V2"], "cifar10")
    # Untrained, so no dataset's statistics: 0.5 / 0.25 per channel (own choice), in the model too.
    assert exportable.mean == (0.5,) * 3 and exportable.std == (0.25,) * 3
    mean, std = exportable.network.pixel_normalization.statistics()
    np.testing.assert_allclose(mean, 0.5)
    np.testing.assert_allclose(std, 0.25)
    assert len(mean) == 3 and exportable.image_shape == (32, 32, 3) and exportable.num_classes == 10
    assert exportable.source is None and exportable.metadata()["preprocessing"]["std"] == [0.25] * 3
    assert exportable.network.deformable is False and not exportable.network.architecture_variables
    assert exportable.network.auxiliary_head is None  # nothing a deployment would carry unused
    with pytest.raises(ValueError, match="--preset: expected one of"):
        export.random_network(G["DARTS_V2"], "cifar11")


def test_each_tflite_variant_stores_what_its_name_says(tmp_path):
    # TFLite's post-training options: float16 keeps weights as float16, dynamic range
    # quantizes weights (of 1024 values or more) to int8 and computes in float, full
    # integer computes in int8; float32 changes nothing.
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(8, 3)(inputs)
    network = keras.Model(inputs, keras.layers.Dense(64)(keras.layers.Flatten()(features)))
    calibration = np.random.RandomState(0).uniform(0, 255, (8, 8, 8, 1)).astype(np.float32)
    kinds = {}
    for variant in export.TFLITE_VARIANTS:
        path = str(tmp_path / f"{variant}.tflite")
        export._write_tflite(export._Serving(network, (8, 8, 1)), path, variant, calibration,
                             export.ExportOptions(), {})
        interpreter = tf.lite.Interpreter(model_path=path)
        kinds[variant] = {np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}
    assert not kinds["float32"] & {"float16", "int8"}
    assert "float16" in kinds["float16"] and "int8" not in kinds["float16"]
    assert "int8" in kinds["dynamic_range"] and "float16" not in kinds["dynamic_range"]
    assert "int8" in kinds["int8"] and "float16" not in kinds["int8"]


def test_latency_is_the_median_of_ten_timed_runs_after_a_warm_up(monkeypatch):
    # A clock read at each timed run's start and end: runs of 1.1111 ms x (3, 1, 4, ...).
    durations = [0.0011111 * k for k in (3, 1, 4, 10, 5, 9, 2, 6, 8, 7)]
    readings = iter([t for i, d in enumerate(durations) for t in (100.0 + i, 100.0 + i + d)])
    monkeypatch.setattr(export.time, "perf_counter", lambda: next(readings))
    calls = []
    assert export._latency_ms(calls.append, np.zeros(1)) == 6.111  # (5 + 6) / 2 x 1.1111 ms
    assert len(calls) == 11


def test_a_random_network_is_seeded_with_zero_unless_told(monkeypatch):
    seeds = []

    class Stop(Exception):
        pass

    def record(seed):
        seeds.append(seed)
        raise Stop

    monkeypatch.setattr(export.keras.utils, "set_random_seed", record)
    for kwargs in ({}, {"seed": 7}):
        with pytest.raises(Stop):
            export.random_network(G["DARTS_V2"], "cifar10", **kwargs)
    assert seeds == [0, 7]


def test_an_nchw_onnx_export_takes_channels_first(exported, tmp_path):
    import onnx
    import onnxruntime

    root, exportable, _ = exported
    options = export.ExportOptions(verify_samples=8, formats=("onnx",), onnx_nchw=True)
    report = export.export(exportable, str(tmp_path / "nchw"), options)
    assert report["passed"] and report["formats"]["onnx"]["max_abs_logit_diff"] < 1e-4
    path = str(tmp_path / "nchw" / "model.onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [1, 8, 8]
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert props["input_layout"] == "NCHW"
    images = np.random.RandomState(4).uniform(0, 255, (3, 8, 8, 1)).astype(np.float32)
    channels_first = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    reference = exportable.network(images, training=False).numpy()
    np.testing.assert_allclose(session.run(["logits"], {"images": channels_first})[0], reference,
                               atol=1e-4)
    np.testing.assert_allclose(export.onnx_runner(path, nchw=True)(images), reference, atol=1e-4)


def test_tflite_metadata_is_read_by_its_exact_name(tmp_path):
    _bias_only_tflite(tmp_path / "model.tflite", np.zeros(3))
    with open(tmp_path / "model.tflite", "rb") as f:
        model = export.with_tflite_metadata(f.read(), "zz_other", {"other": 1})
    (tmp_path / "both.tflite").write_bytes(bytes(model))
    path = str(tmp_path / "both.tflite")
    # TFLite's own entries (min_runtime_version, CONVERSION_METADATA) sit beside ours.
    assert export.read_tflite_metadata(path) == {}
    assert export.read_tflite_metadata(path, "zz_other") == {"other": 1}
    assert export.read_tflite_metadata(path, "absent") is None


def test_export_options_defaults_are_the_export_binarys():
    # Own choices: ONNX opset 17 in NHWC, 100 calibration and 64 verification images, float
    # inputs for the int8 model, every format; the library gives what the binary gives.
    from stacnas_tf.commands import export as command

    defaults = export.ExportOptions()
    assert (defaults.opset, defaults.onnx_nchw, defaults.calibration_samples, defaults.int8_io,
            defaults.float_tolerance, defaults.float16_tolerance, defaults.verify_samples,
            defaults.formats) == (17, False, 100, False, 1e-4, 5e-2, 64, export.FORMATS)
    assert (command._OPSET.default, command._ONNX_NCHW.default, command._CALIBRATION.default,
            command._INT8_IO.default, command._TOLERANCE.default,
            command._QUANTIZED_ERROR.default) == (17, False, 100, False, 1e-4, 0.15)
    assert export.ExportOptions(formats=command._FORMATS.default).formats == export.FORMATS


def test_random_images_span_the_pixel_range_by_seed():
    exportable = export.Exportable(None, G["DARTS_V2"], (8, 8, 1), 10, (0.5,), (0.25,), None)
    images = export._sample_images(exportable, 64)
    assert images.shape == (64, 8, 8, 1) and images.dtype == np.float32
    assert images.min() < 0.5 and images.max() > 254.5 and images.max() < 255
    assert images.min() >= 0
    np.testing.assert_array_equal(images, export._sample_images(exportable, 64))
    assert not np.array_equal(images, export._sample_images(exportable, 64, seed=1))


def test_a_difference_at_the_tolerance_passes(exported, tmp_path):
    # The tolerances are inclusive: an artifact exactly at its bound passes.
    _, exportable, _ = exported
    formats = ("onnx", "tflite_float16", "tflite_dynamic_range")
    first = export.export(exportable, str(tmp_path / "first"), export.ExportOptions(
        verify_samples=16, formats=formats))["formats"]
    at_bounds = export.ExportOptions(
        verify_samples=16, formats=formats,
        float_tolerance=first["onnx"]["max_abs_logit_diff"] or 1e-4,
        float16_tolerance=first["tflite_float16"]["max_abs_logit_diff"],
        max_quantized_relative_error=first["tflite_dynamic_range"]["relative_logit_error"])
    assert export.export(exportable, str(tmp_path / "again"), at_bounds)["passed"]


def test_the_onnx_runner_takes_logits_by_name_or_the_first_output(exported, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    root, exportable, _ = exported
    model = onnx.load(str(root / "out" / "model.onnx"))
    outputs = list(model.graph.output)
    assert sorted(o.name for o in outputs) == ["logits", "probabilities"]
    del model.graph.output[:]
    model.graph.output.extend(sorted(outputs, key=lambda o: o.name != "probabilities"))
    onnx.save(model, str(tmp_path / "reordered.onnx"))
    images = np.random.RandomState(5).uniform(0, 255, (2, 8, 8, 1)).astype(np.float32)
    reference = exportable.network(images, training=False).numpy()
    np.testing.assert_allclose(export.onnx_runner(str(tmp_path / "reordered.onnx"))(images),
                               reference, atol=1e-4)
    # A model of another producer, one output of another name: that output.
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["images"], ["scores"])], "plain",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 8, 8, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 64])])
    plain = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    plain.ir_version = model.ir_version
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    np.testing.assert_array_equal(export.onnx_runner(str(tmp_path / "plain.onnx"))(images),
                                  images.reshape(2, 64))
    # Of two outputs, neither named for logits: the first.
    graph.node.append(helper.make_node("Neg", ["scores"], ["negated"]))
    graph.output.append(helper.make_tensor_value_info("negated", TensorProto.FLOAT, [None, 64]))
    two = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    two.ir_version = model.ir_version
    onnx.save(two, str(tmp_path / "two.onnx"))
    np.testing.assert_array_equal(export.onnx_runner(str(tmp_path / "two.onnx"))(images),
                                  images.reshape(2, 64))


def test_latency_is_timed_on_one_image_for_keras_and_every_format(exported, tmp_path, monkeypatch):
    _, exportable, _ = exported
    batches = []
    monkeypatch.setattr(export, "_latency_ms", lambda run, image: batches.append(image.shape) or 1.0)
    report = export.export(exportable, str(tmp_path / "out"), export.ExportOptions(
        verify_samples=4, formats=("saved_model", "tflite_float32")))
    assert batches == [(1, 8, 8, 1)] * 3  # Keras, then each format
    assert report["keras"]["latency_batch1_ms"] == 1.0


def test_one_calibration_or_verification_image_is_enough():
    options = export.ExportOptions(calibration_samples=1, verify_samples=1)
    assert (options.calibration_samples, options.verify_samples) == (1, 1)
    with pytest.raises(ValueError, match="--verify_samples: expected a positive count, got 0"):
        export.ExportOptions(verify_samples=0)


def test_the_int8_runner_quantizes_with_the_models_own_input_scale(tmp_path):
    # Calibrated on pixels in [0, 100], the model's input scale is about 100 / 255, not 1.
    inputs = keras.Input((4, 4, 1))
    network = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    calibration = np.random.RandomState(0).uniform(0, 100, (16, 4, 4, 1)).astype(np.float32)
    path = str(tmp_path / "int8.tflite")
    export._write_tflite(export._Serving(network, (4, 4, 1)), path, "int8", calibration,
                         export.ExportOptions(int8_io=True), {})
    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    scale, zero = detail["quantization"]
    assert 0.3 < scale < 0.45
    images = calibration[:1]
    interpreter.set_tensor(detail["index"],
                           np.clip(np.round(images / scale) + zero, -128, 127).astype(np.int8))
    interpreter.invoke()
    decoded = [(interpreter.get_tensor(d["index"]).astype(np.float32) - d["quantization"][1])
               * d["quantization"][0] for d in interpreter.get_output_details()]
    logits = export.tflite_runner(path)(images)
    assert any(np.array_equal(logits, value) for value in decoded)


@pytest.mark.parametrize("count,shown", [
    (4, r"\(grouped0, grouped1, grouped2, \.\.\.\): tf2onnx"),  # three named, and more
    (3, r"\(grouped0, grouped1, grouped2\): tf2onnx"),  # exactly three: no "..."
])
def test_the_grouped_convolution_message_names_at_most_three(count, shown):
    import types

    inputs = keras.Input((8, 8, 4))
    x = inputs
    for index in range(count):
        x = keras.layers.Conv2D(4, 3, padding="same", groups=2, name=f"grouped{index}")(x)
    exportable = types.SimpleNamespace(network=keras.Model(inputs, x))
    with pytest.raises(ValueError, match=r"convolution\(s\) " + shown):
        export.check_formats(exportable, export.ExportOptions())


def test_a_network_of_non_square_images_exports_on_its_own_images(tmp_path):
    # A folder of 8x12 images trains a network of input (8, 12, 1) (no --image_size):
    # its verification images are the dataset's own, not squares cut from them.
    rng = np.random.RandomState(0)
    source = sources.from_arrays(rng.randint(0, 256, (16, 8, 12, 1)).astype(np.uint8),
                                 np.arange(16) % 2)
    config = TINY.replace(deformable=False)
    network = network_lib.build(config, G["DARTS_V2"], 2, (8, 12, 1), auxiliary=False)
    exportable = export.Exportable(network, G["DARTS_V2"], (8, 12, 1), 2, (0.5,), (0.25,), source)
    assert export._sample_images(exportable, 4).shape == (4, 8, 12, 1)
    report = export.export(exportable, str(tmp_path / "out"), export.ExportOptions(
        verify_samples=4, formats=("saved_model", "tflite_float32")))
    assert report["passed"] and report["images"] == "dataset"


def test_exporting_a_training_checks_its_genotype_by_value_and_warns_of_nothing_left_out(
        exported, caplog):
    import gc

    root, _, _ = exported
    # The checkpoint holds the optimizers too; the inference network restores part of it
    # on purpose, so TensorFlow's "unrestored values" warning would be noise.
    copy = genotype_lib.Genotype.from_json(G["DARTS_V2"].to_json())
    assert copy is not G["DARTS_V2"]
    exportable = export.from_training_folder(str(root / "train"), expected_genotype=copy)
    assert exportable.genotype == G["DARTS_V2"]
    del exportable
    gc.collect()
    assert not [r for r in caplog.records if "unrestored" in r.getMessage()]


def test_formats_are_known_names_and_at_least_one():
    for formats in (("saved_model", "bogus"), ("bogus",), ()):
        with pytest.raises(ValueError, match="--formats: expected some of"):
            export.ExportOptions(formats=formats)
    assert export.ExportOptions(formats="tflite").formats == tuple(
        f"tflite_{variant}" for variant in export.TFLITE_VARIANTS)


@pytest.mark.parametrize("shift", [1, -1])
def test_top1_agreement_counts_equal_classes_only(exported, tmp_path, monkeypatch, shift):
    # An artifact whose logits are rolled by one class, either way, never agrees: 0.0, not
    # a partial count (each image's top class is one higher, or one lower).
    _, exportable, _ = exported
    original = export.saved_model_runner
    monkeypatch.setattr(export, "saved_model_runner", lambda path: (
        lambda images, run=original(path): np.roll(run(images), shift, -1)))
    with pytest.raises(export.ExportError) as failure:
        export.export(exportable, str(tmp_path / "out"), export.ExportOptions(
            verify_samples=16, formats=("saved_model",)))
    shown = json.loads(str(failure.value).split("\nreport: ", 1)[1])
    assert shown["saved_model"]["top1_agreement"] == 0.0


def test_int8_calibration_images_are_not_the_verification_images(tmp_path, monkeypatch):
    # Calibrating on the images the check then scores would hide the quantization error.
    network = network_lib.build(TINY.replace(deformable=False), G["DARTS_V2"], 10, (8, 8, 1),
                                auxiliary=False)
    exportable = export.Exportable(network, G["DARTS_V2"], (8, 8, 1), 10, (0.5,), (0.25,), None)
    seen = []
    original = export._write_tflite
    monkeypatch.setattr(export, "_write_tflite", lambda serving, path, variant, calibration, *rest:
                        seen.append(calibration) or original(serving, path, variant, calibration, *rest))
    export.export(exportable, str(tmp_path / "out"), export.ExportOptions(
        calibration_samples=8, verify_samples=8, formats=("tflite_int8",)))
    assert seen[0].shape == (8, 8, 8, 1)
    assert not np.allclose(seen[0], export._sample_images(exportable, 8))


def test_a_folder_that_recorded_no_class_names_exports_the_datasets(exported, tmp_path):
    # A training folder whose config.json holds no class names (written before they were
    # recorded): the export names the classes as the dataset does.
    import shutil

    root, _, _ = exported
    older = tmp_path / "older"
    shutil.copytree(root / "train", older)
    config = json.loads((older / "config.json").read_text())
    assert config["class_names"] == [str(label) for label in range(10)]
    config["class_names"] = None
    (older / "config.json").write_text(json.dumps(config))
    exportable = export.from_training_folder(str(older))
    assert exportable.class_names == tuple(str(label) for label in range(10))


def test_each_format_is_held_to_its_own_bound_only(exported, tmp_path):
    # The float16 bound is for the float16 file alone: a tiny one fails neither the float
    # formats (held to float_tolerance) nor the dynamic-range file (held to the relative error),
    # though both differ from the Keras model by more than it.
    _, exportable, _ = exported
    formats = ("onnx", "tflite_dynamic_range")
    report = export.export(exportable, str(tmp_path / "out"), export.ExportOptions(
        verify_samples=16, formats=formats, float16_tolerance=1e-12))
    assert report["passed"]
    assert report["formats"]["onnx"]["max_abs_logit_diff"] > 1e-12
    assert report["formats"]["tflite_dynamic_range"]["max_abs_logit_diff"] > 1e-12


def test_a_stale_staging_folder_removed_by_another_export_first_is_no_error(tmp_path, monkeypatch):
    # Two exports into one parent may both find a killed export's folder: the one that
    # comes second finds it gone, which is what it wanted.
    stale = tmp_path / ".out.partial-12345-x"
    stale.mkdir()

    def gone_meanwhile(pid):
        stale.rmdir()
        return False

    monkeypatch.setattr(export, "_process_alive", gone_meanwhile)
    export._remove_stale_partials(str(tmp_path), "out")
    assert not stale.exists()


def test_asking_whether_an_exports_process_is_alive_does_not_signal_it(tmp_path):
    # kill(pid, 0) checks for the process and sends nothing (kill(2)); any other signal
    # (SIGHUP ends most programs) would stop the export it asks about.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert export._process_alive(child.pid) is True
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.5)
    finally:
        child.kill()
        child.wait()
    assert export._process_alive(child.pid) is False


def test_relative_logit_error_of_logits_without_spread_is_finite():
    # A network whose logits are equal on every class (zero-initialised classifier): an
    # exact copy scores 0 and a different one a large finite number, never NaN or inf,
    # which no bound would pass or fail sensibly.
    flat = np.full((4, 10), 2.5, np.float32)
    assert export.relative_logit_error(flat, flat) == 0.0
    other = export.relative_logit_error(flat + 0.01, flat)
    assert np.isfinite(other) and other > 1e6


def test_files_an_export_did_not_write_are_named_three_at_most(tmp_path):
    # The refusal names the first three in sorted order, then stops (a folder of
    # thousands would otherwise fill the terminal).
    (tmp_path / "export_report.json").write_text("{}")
    for name in ("d.txt", "a.txt", "c.txt", "b.txt"):
        (tmp_path / name).write_text("mine")
    with pytest.raises(ValueError, match=r"did not write \(a.txt, b.txt, c.txt\); move them away"):
        export.check_output_dir(str(tmp_path), overwrite=True)


@pytest.mark.parametrize("side", [6, 12])
def test_a_network_trained_at_another_size_is_checked_on_images_of_its_size(side):
    # --image_size smaller or larger than the dataset's 8x8 images: the verification
    # images are resized to what the network was trained on, either way.
    rng = np.random.RandomState(0)
    source = sources.from_arrays(rng.randint(0, 256, (16, 8, 8, 1)).astype(np.uint8),
                                 np.arange(16) % 2)
    network = network_lib.build(TINY.replace(deformable=False), G["DARTS_V2"], 2, (side, side, 1),
                                auxiliary=False)
    exportable = export.Exportable(network, G["DARTS_V2"], (side, side, 1), 2, (0.5,), (0.25,),
                                   source)
    assert export._sample_images(exportable, 4).shape == (4, side, side, 1)
