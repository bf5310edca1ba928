"""Shared timing of training steps for the benchmarks (Keras and PyTorch)."""

import resource
import statistics
import time

import numpy as np


def time_steps(step, steps: int, batch_size: int) -> dict:
    """Runs `step()` once (the first step: tracing, warm-up), then `steps` more;
    returns the first step's time, the median step, images/s and peak RSS.
    Framework-free: the PyTorch benchmarks use it too."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "first_step_s": round(first, 3), "median_step_s": round(median, 4),
        "images_per_s": round(batch_size / median, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def time_train_steps(net, batch_size: int, image_size: int, steps: int, channels: int = 3) -> dict:
    """Times `net.train_on_batch` on one random batch (`time_steps`), with the
    peak GPU memory where there is a GPU."""
    rng = np.random.RandomState(0)
    x = rng.randn(batch_size, image_size, image_size, channels).astype(np.float32)
    y = rng.randint(0, 10, batch_size).astype(np.int64)
    result = time_steps(lambda: net.train_on_batch(x, y), steps, batch_size)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        result["peak_gpu_mb"] = round(
            tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)
        result["gpu"] = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return result
