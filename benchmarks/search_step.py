"""Speed and memory of the one-level search step on random data.

  PYTHONPATH=. .venv/bin/python benchmarks/search_step.py --channels=16 --num_cells=8 \
      --batch_size=32 --image_size=32 --steps=5 --output=benchmarks/results/search_step.json \
      [--jit_compile] [--precision=mixed_bfloat16]

For each supernet (`stage1`: none + one op per group; `stage2`: none + the
separable convolutions, the costliest stage-2 group; `full`: all 8 DARTS ops)
it runs in a fresh process (so peak RSS is that of one network) and prints
one JSON line: seconds to construct, build and compile the supernet
(`build_s`), first step seconds (tracing included), median seconds per
later step, images per second, peak RSS (and GPU memory) in MB and parameter
count.
"""

import json
import multiprocessing
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks.timing import time_train_steps  # noqa: E402

_CHANNELS = flags.DEFINE_integer("channels", 16, "Initial channels C.")
_NUM_CELLS = flags.DEFINE_integer("num_cells", 8, "Cells of the supernet.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch size.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Square input size (3 channels).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps after the first.")
_JIT = flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")
_PRECISION = flags.DEFINE_enum("precision", "float32",
                               ["float32", "mixed_float16", "mixed_bfloat16"], "Keras dtype policy.")
_FUSED_SGD = flags.DEFINE_bool("fused_sgd", True,
                                "Weights' SGD as one fused op per variable (as the search runs "
                                "it); off: Keras's SGD.")
_GRAPPLER = flags.DEFINE_bool("grappler", True,
                               "Run TF's Grappler graph optimizations (off: faster first step, "
                               "slower steps).")
_SPACES = flags.DEFINE_list("spaces", ["stage1", "full"],
                            "Supernets to measure: stage1, stage2, full.")
_SPACE_NAMES = ("stage1", "stage2", "full")
_OUTPUT = flags.DEFINE_string("output", None, "Also append the JSON lines to this file.")


def measure(space_name, channels, num_cells, batch_size, image_size, steps, jit_compile,
            precision_name="float32", grappler=True, fused_sgd=True):
    import keras
    import tensorflow as tf

    if not grappler:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    from stacnas_tf import optimizers
    from stacnas_tf import precision
    from stacnas_tf import search_space
    from stacnas_tf import supernet

    space = search_space.SearchSpace()
    cell = {
        "stage1": space.stage1_candidates,
        "stage2": lambda: tuple(("none", "sep_conv_3x3", "sep_conv_5x5") for _ in range(14)),
        "full": space.full_candidates,
    }[space_name]()
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    with precision.policy_scope(precision_name):
        net = supernet.SearchNetwork(search_space.StageSpace.shared(cell, cell), 10,
                                     channels=channels, num_cells=num_cells, seed=0)
        net.build((None, image_size, image_size, 3))
    sgd = optimizers.FusedSGD if fused_sgd else keras.optimizers.SGD
    net.compile(sgd(0.025, momentum=0.9),
                keras.optimizers.Adam(3e-4, beta_1=0.5, beta_2=0.999), jit_compile=jit_compile)
    build_s = time.perf_counter() - start
    timing = time_train_steps(net, batch_size, image_size, steps)
    return {
        "benchmark": "search_step", "framework": "keras-tf", "space": space_name,
        "channels": channels, "num_cells": num_cells, "batch_size": batch_size,
        "image_size": image_size, "jit_compile": jit_compile, "precision": precision_name,
        "grappler": grappler, "fused_sgd": fused_sgd, "steps": steps,
        "build_s": round(build_s, 3), **timing,
        "parameters": int(net.count_params()),
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
    }


def main(argv):
    del argv
    context = multiprocessing.get_context("spawn")
    for space_name in _SPACES.value:
        if space_name not in _SPACE_NAMES:
            raise app.UsageError(f"--spaces: expected one of {list(_SPACE_NAMES)}, got {space_name!r}.")
        with context.Pool(1) as pool:
            result = pool.apply(measure, (space_name, _CHANNELS.value, _NUM_CELLS.value,
                                          _BATCH_SIZE.value, _IMAGE_SIZE.value, _STEPS.value,
                                          _JIT.value, _PRECISION.value, _GRAPPLER.value,
                                          _FUSED_SGD.value))
        line = json.dumps(result)
        print(line, flush=True)
        if _OUTPUT.value:
            os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
            with open(_OUTPUT.value, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    app.run(main)
