r"""Exports a final network to SavedModel, ONNX and TFLite, and verifies every artifact.

  stacnas-export --train_dir=runs/train --output_dir=runs/export
  stacnas-export --genotype=DARTS_V2 --preset=imagenet_mobile --random_init \
      --output_dir=runs/export_mobile

Writes saved_model/, model.onnx, model_{float32,float16,dynamic_range,int8}.tflite,
metadata.json and export_report.json; fails (non-zero) when an artifact
differs from the Keras model beyond the tolerances.
"""

import json
import os

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402

_TRAIN_DIR = flags.DEFINE_string("train_dir", None, "Output folder of tools/train.py to export.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/export", "Folder for the exported artifacts.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing, non-empty --output_dir.")
_GENOTYPE = flags.DEFINE_string("genotype", None,
                                "With --random_init: the genotype to build. With --train_dir: checked "
                                "against the folder's.")
_PRESET = flags.DEFINE_enum("preset", "cifar10", sorted(config_lib.NETWORK_PRESETS),
                            "Network size for --random_init.")
_RANDOM_INIT = flags.DEFINE_bool("random_init", False,
                                 "Export an untrained network of --preset (deployment trials).")
_DEFORMABLE = flags.DEFINE_bool("deformable", False, "With --random_init: deformable edges.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder (verification / calibration images).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Official archives for a tfds dataset.")
_FORMATS = flags.DEFINE_list(
    "formats", "saved_model,onnx,tflite",
    "Artifacts to write: saved_model, onnx, tflite (every TFLite variant) or tflite_float32, "
    "tflite_float16, tflite_dynamic_range, tflite_int8.")
_OPSET = flags.DEFINE_integer("opset", 17, "ONNX opset, 11 to 18.")
_ONNX_NCHW = flags.DEFINE_bool("onnx_nchw", False, "ONNX model takes NCHW images.")
_CALIBRATION = flags.DEFINE_integer("calibration_samples", 100,
                                    "Training images calibrating the int8 model.")
_INT8_IO = flags.DEFINE_bool("int8_io", False, "int8 input and output tensors for the int8 model.")
_TOLERANCE = flags.DEFINE_float("float_tolerance", 1e-4,
                                "Largest allowed |logit difference| of the float32 formats.")
_QUANTIZED_ERROR = flags.DEFINE_float(
    "max_quantized_relative_error", 0.15,
    "Largest allowed relative logit error (RMS error / RMS spread of the float logits) of the "
    "quantized TFLite models.")


def main(argv):
    from stacnas_tf import api  # here: --help needs none of what it loads

    # The API call, its messages naming this program's flags.
    export_call = api.with_flag_names(api.export)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if bool(_TRAIN_DIR.value) == _RANDOM_INIT.value:
        raise ValueError("pass either --train_dir (a trained network) or --random_init with --genotype.")
    if _RANDOM_INIT.value and not _GENOTYPE.value:
        raise ValueError("--random_init needs --genotype.")
    genotype = files.user_file_or_value(_GENOTYPE.value) if _GENOTYPE.value else None
    output_dir = files.user_path(_OUTPUT_DIR.value)
    options = dict(
        formats=_FORMATS.value, opset=_OPSET.value, onnx_nchw=_ONNX_NCHW.value,
        calibration_samples=_CALIBRATION.value, int8_io=_INT8_IO.value,
        float_tolerance=_TOLERANCE.value, max_quantized_relative_error=_QUANTIZED_ERROR.value,
        overwrite=_OVERWRITE.value, data_dir=files.user_path(_DATA_DIR.value),
        manual_dir=files.user_path(_MANUAL_DIR.value))
    try:
        if _RANDOM_INIT.value:
            report = export_call(genotype, output_dir, random_init=_PRESET.value,
                                 deformable=_DEFORMABLE.value, **options)
        else:
            from stacnas_tf import run_folder  # noqa: PLC0415

            train_dir = files.user_path(_TRAIN_DIR.value)
            run_folder.TrainingFolder.existing(train_dir).check_loadable_from_the_command_line(
                f"stacnas_tf.export({train_dir!r}, {output_dir!r}, data=(training images, labels))")
            report = export_call(train_dir, output_dir,
                                 genotype=genotype, **options)
    except RuntimeError as e:  # exporting.ExportError: verification failed
        raise SystemExit(f"error: {e}") from None
    print(json.dumps(report["formats"], indent=2))
    print(f"exported to {os.path.abspath(output_dir)}")


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
