"""Speed and memory of a final-network training step on random data.

  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py --channels=36 --num_cells=20 \
      --batch_size=96 --image_size=32 --steps=5 [--jit_compile] [--precision=mixed_bfloat16]

Runs in a fresh process and prints one JSON line: first step seconds (tracing
included), median seconds per later step, images per second, peak RSS in MB
(and peak GPU memory where there is a GPU), parameter count.
"""

import json
import multiprocessing
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks.timing import time_train_steps  # noqa: E402

_GENOTYPE = flags.DEFINE_string("genotype", "STACNAS_CIFAR10", "Published genotype name.")
_NETWORK = flags.DEFINE_enum("network", "cifar", ["cifar", "imagenet"], "Stem of the network.")
_CHANNELS = flags.DEFINE_integer("channels", 36, "Initial channels C.")
_NUM_CELLS = flags.DEFINE_integer("num_cells", 20, "Cells of the network.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 96, "Batch size.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Square input size (3 channels).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps after the first.")
_JIT = flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")
_PRECISION = flags.DEFINE_enum("precision", "float32",
                               ["float32", "mixed_float16", "mixed_bfloat16"], "Keras dtype policy.")
_OUTPUT = flags.DEFINE_string("output", None, "Also append the JSON line to this file.")


def measure(genotype, network, channels, num_cells, batch_size, image_size, steps, jit,
            precision_name):
    import keras
    import tensorflow as tf

    from stacnas_tf import genotype as genotype_lib
    from stacnas_tf import network as network_lib
    from stacnas_tf import optimizers
    from stacnas_tf import precision

    keras.utils.set_random_seed(0)
    with precision.policy_scope(precision_name):
        net = network_lib.FinalNetwork(genotype_lib.PUBLISHED[genotype], 10, channels=channels,
                                       num_cells=num_cells, stem=network, auxiliary=True)
        net(tf.zeros([1, image_size, image_size, 3]), training=False)
    net.compile(optimizers.FusedSGD(0.025, momentum=0.9), jit_compile=jit)
    timing = time_train_steps(net, batch_size, image_size, steps)
    result = {
        "benchmark": "train_step", "genotype": genotype, "network": network, "channels": channels,
        "num_cells": num_cells, "batch_size": batch_size, "image_size": image_size,
        "jit_compile": jit, "precision": precision_name, "steps": steps,
        **timing,
        "parameters": net.parameter_count(include_auxiliary=True),
        "tensorflow": tf.__version__, "cpu_count": os.cpu_count(), "machine": platform.machine(),
    }
    return result


def main(argv):
    del argv
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(measure, (_GENOTYPE.value, _NETWORK.value, _CHANNELS.value,
                                      _NUM_CELLS.value, _BATCH_SIZE.value, _IMAGE_SIZE.value,
                                      _STEPS.value, _JIT.value, _PRECISION.value))
    line = json.dumps(result)
    print(line, flush=True)
    if _OUTPUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
        with open(_OUTPUT.value, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    app.run(main)
