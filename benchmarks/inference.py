"""Latency and throughput of an export folder's formats and of the Keras model.

  PYTHONPATH=. .venv/bin/python benchmarks/inference.py --export_dir=runs/export \
      --train_dir=runs/train --batch_sizes=1,32 --repeats=20

Prints one JSON line per (format, batch size): median and p90 latency in ms and
images per second, on random images of the exported input shape.
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Output folder of tools/export.py.", required=True)
_TRAIN_DIR = flags.DEFINE_string("train_dir", None, "Training folder, to time the Keras model too.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes to time.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed runs per measurement (after a warm-up).")
_OUTPUT = flags.DEFINE_string("output", None, "Also append the JSON lines to this file.")


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from stacnas_tf import exporting as export

    folder = _EXPORT_DIR.value
    with open(os.path.join(folder, "metadata.json")) as f:
        metadata = json.load(f)
    with open(os.path.join(folder, "export_report.json")) as f:
        report = json.load(f)
    nchw = False
    runners = {"saved_model": export.saved_model_runner(os.path.join(folder, "saved_model")),
               "onnx": export.onnx_runner(os.path.join(folder, "model.onnx"), nchw)}
    for name, entry in report["formats"].items():
        if name.startswith("tflite_"):
            runners[name] = export.tflite_runner(os.path.join(folder, entry["path"]))
    if _TRAIN_DIR.value:
        network = export.from_training_folder(_TRAIN_DIR.value).network
        function = tf.function(lambda x: network(x, training=False))
        runners["keras"] = lambda images: function(tf.constant(images)).numpy()
    shape = metadata["input_shape"][1:]
    for batch in (int(b) for b in _BATCH_SIZES.value):
        images = np.random.RandomState(0).randn(batch, *shape).astype(np.float32)
        for name, run in runners.items():
            run(images)
            times = []
            for _ in range(_REPEATS.value):
                start = time.perf_counter()
                run(images)
                times.append(time.perf_counter() - start)
            median, p90 = np.percentile(times, 50), np.percentile(times, 90)
            line = json.dumps({"benchmark": "inference", "format": name, "batch_size": batch,
                               "median_ms": round(median * 1000, 3), "p90_ms": round(p90 * 1000, 3),
                               "images_per_s": round(batch / median, 1)})
            print(line, flush=True)
            if _OUTPUT.value:
                with open(_OUTPUT.value, "a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    app.run(main)
