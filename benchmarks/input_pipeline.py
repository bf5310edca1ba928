"""Throughput of the training input pipeline, against the training step.

  PYTHONPATH=. .venv/bin/python benchmarks/input_pipeline.py \
      --output=benchmarks/results/input_pipeline_cpu.json
  ... --dataset=cifar10 --data_dir=~/tensorflow_datasets   # the real CIFAR-10 reader

Measures images per second of `pipelines.train_pipeline` (decode, DARTS
augmentation: random crop, flip, cutout; optionally AutoAugment) in several
modes: sequential augmentation, parallel (tf.data AUTOTUNE), parallel and
non-deterministic, parallel with the decoded examples cached. It then sets the
fastest training steps measured by the step benchmarks (benchmarks/results/
*.jsonl) beside it: the pipeline must deliver more images per second than the
step consumes, or the accelerator waits.
"""

import glob
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", "fashion_mnist", "Dataset (as in tools/search.py).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder (as in tools/search.py).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Images are resized to this size.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_BATCHES = flags.DEFINE_integer("batches", 150, "Batches timed per mode (after 10 of warm-up).")
_AUTOAUGMENT = flags.DEFINE_bool("autoaugment", False, "Add AutoAugment (the fancy recipe).")
_RESULTS = flags.DEFINE_string("results", os.path.join(os.path.dirname(__file__), "results"),
                               "Folder of the step benchmarks' JSON lines to compare with.")
_OUTPUT = flags.DEFINE_string("output", None, "Write the JSON result to this file.")

_MODES = {
    "sequential": dict(parallel_calls=1),
    "parallel": dict(),
    "parallel_nondeterministic": dict(deterministic=False),
    "parallel_cached": dict(cache=True),
}


def _images_per_second(dataset, batches, batch_size):
    iterator = iter(dataset)
    for _ in range(10):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def _fastest_steps(results_dir):
    """The fastest measured step of each benchmark kind and device."""
    best = {}
    for path in glob.glob(os.path.join(results_dir, "*.jsonl")):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if "images_per_s" not in row or row.get("benchmark") not in ("search_step", "train_step"):
                    continue
                key = f"{row['benchmark']} on {row.get('gpu', 'cpu')}"
                if row["images_per_s"] > best.get(key, {}).get("images_per_s", 0):
                    best[key] = {"images_per_s": row["images_per_s"], "file": os.path.basename(path),
                                 **{k: row.get(k) for k in ("num_cells", "channels", "batch_size",
                                                            "precision", "jit_compile")}}
    return best


def main(argv):
    del argv
    import tensorflow as tf

    from stacnas_tf import augmentation
    from stacnas_tf import files
    from stacnas_tf import pipelines
    from stacnas_tf import sources

    source = sources.load(_DATASET.value, "train", data_dir=files.user_path(_DATA_DIR.value),
                          image_size=_IMAGE_SIZE.value)
    base = augmentation.default_augment(source.name)
    augment = augmentation.Augment(crop_padding=base.crop_padding or 4, flip=True, cutout=16,
                                   autoaugment=_AUTOAUGMENT.value)
    needed = (_BATCHES.value + 10) * _BATCH_SIZE.value
    epochs = -(-needed // (source.num_examples // _BATCH_SIZE.value * _BATCH_SIZE.value)) + 1
    modes = {}
    for name, options in _MODES.items():
        dataset = pipelines.train_pipeline(source, _BATCH_SIZE.value, seed=0, epochs=epochs,
                                           augment=augment, image_size=_IMAGE_SIZE.value,
                                           **options)
        modes[name] = round(_images_per_second(dataset, _BATCHES.value, _BATCH_SIZE.value), 1)
        print(f"{name}: {modes[name]} images/s", flush=True)
    steps = _fastest_steps(_RESULTS.value)
    fastest_pipeline = modes["parallel"]
    result = {
        "benchmark": "input_pipeline", "dataset": source.name, "image_size": _IMAGE_SIZE.value,
        "batch_size": _BATCH_SIZE.value, "autoaugment": _AUTOAUGMENT.value,
        "images_per_s": modes,
        "training_steps": steps,
        "pipeline_over_step": {key: round(fastest_pipeline / step["images_per_s"], 1)
                               for key, step in steps.items()},
        "tensorflow": tf.__version__, "cpu_count": os.cpu_count(), "machine": platform.machine(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if _OUTPUT.value:
        files.write_text(_OUTPUT.value, text + "\n")


if __name__ == "__main__":
    app.run(main)
