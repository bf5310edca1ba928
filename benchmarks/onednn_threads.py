"""Where a change of the CPU thread count enters a search: oneDNN's kernels
against TensorFlow's own (Eigen), on the first batch, before any training.

For each kernel library (oneDNN on / off, `TF_ENABLE_ONEDNN_OPTS`) and thread
count (1, 2), in a fresh process:
- the fused batch normalisation the project's `ops.BatchNorm` runs
  (`FusedBatchNormV3`, training mode) on a 64x16x16x24 activation: its largest
  error against the same normalisation in float64, and its output and input
  gradient;
- the default search's stage-1 supernet (PyTorch's start, seed 0): alpha's
  gradient on the first Fashion-MNIST batch.
It prints, per library, the error against float64 and the difference between
1 and 2 threads (largest, relative to the largest value; alpha: median
relative). It fetches nothing (Fashion-MNIST from the Debian package).

  PYTHONPATH=. python benchmarks/onednn_threads.py \\
      --output=benchmarks/results/onednn_threads.json
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from absl import app
from absl import flags

_OUTPUT = flags.DEFINE_string("output", None, "Also write the results as JSON here.")
_ONE = flags.DEFINE_string("one", None, "(internal) OUTPUT.npz: one process's measurements.")


def _one(path):
    import keras
    import tensorflow as tf

    from stacnas_tf import config as config_lib
    from stacnas_tf import search_loop
    from stacnas_tf import search_space
    from stacnas_tf import sources

    rng = np.random.RandomState(0)
    x = (0.3 * rng.randn(64, 16, 16, 24) + 0.01).astype(np.float32)
    upstream = rng.randn(64, 16, 16, 24).astype(np.float32)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=tf.ones([24]), offset=tf.zeros([24]), mean=tf.zeros([24]),
            variance=tf.ones([24]), epsilon=1e-5, exponential_avg_factor=0.1,
            data_format="NHWC", is_training=True)
        loss = tf.reduce_sum(y * upstream)
    bn_grad = tape.gradient(loss, inputs)
    exact = x.astype(np.float64)
    exact = (exact - exact.mean((0, 1, 2))) / np.sqrt(exact.var((0, 1, 2)) + 1e-5)

    keras.utils.set_random_seed(0)
    config = config_lib.PRESETS["default"]
    source = sources.load("fashion_mnist", "train", image_size=16)
    space = search_space.StageSpace(cells=(config.space.stage1_candidates(),) * 2)
    net = search_loop.build_supernet(config, 1, space, config.stage1_cells, 10, source.image_shape,
                                     statistics=(source.mean, source.std))
    images, labels = next(iter(source.dataset.batch(64)))
    with tf.GradientTape() as tape:
        logits = net(tf.cast(images, tf.float32), training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True))
    alpha_grad = np.concatenate([g.numpy().ravel()
                                 for g in tape.gradient(loss, net.architecture_variables)])
    np.savez(path, bn=y.numpy(), bn_grad=bn_grad.numpy(),
             bn_error=np.abs(y.numpy() - exact).max(), alpha_grad=alpha_grad)


def main(argv):
    del argv
    if _ONE.value:
        _one(_ONE.value)
        return
    folder = tempfile.mkdtemp(prefix="onednn-threads-")
    runs = {}
    for onednn in (1, 0):
        for threads in (1, 2):
            path = os.path.join(folder, f"onednn{onednn}_t{threads}.npz")
            env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=str(onednn), TF_CPP_MIN_LOG_LEVEL="3",
                       TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
            subprocess.run([sys.executable, os.path.abspath(__file__), f"--one={path}"], env=env,
                           check=True, capture_output=True)
            runs[onednn, threads] = np.load(path)
    results = []
    for onednn in (1, 0):
        one, two = runs[onednn, 1], runs[onednn, 2]

        def largest(key, one=one, two=two):
            return float(np.abs(one[key] - two[key]).max() / np.abs(one[key]).max())

        alpha = np.abs(one["alpha_grad"] - two["alpha_grad"]) / (np.abs(one["alpha_grad"]) + 1e-12)
        results.append({
            "kernels": "oneDNN" if onednn else "Eigen (oneDNN off)",
            "batchnorm_error_vs_float64": {"1 thread": float(one["bn_error"]),
                                           "2 threads": float(two["bn_error"])},
            "batchnorm_1_vs_2_threads": {"output": largest("bn"), "input_gradient": largest("bn_grad")},
            "alpha_gradient_1_vs_2_threads_median_relative": float(np.median(alpha)),
        })
    text = json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=1)
    print(text)
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    app.run(main)
