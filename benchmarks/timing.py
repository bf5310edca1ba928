"""Shared timing of Keras training steps for the benchmarks."""

import resource
import statistics
import time

import numpy as np


def time_train_steps(net, batch_size: int, image_size: int, steps: int, channels: int = 3) -> dict:
    """Times `net.train_on_batch` on one random batch: the first step (tracing
    included), then the median of `steps` more; with images/s and peak RSS."""
    rng = np.random.RandomState(0)
    x = rng.randn(batch_size, image_size, image_size, channels).astype(np.float32)
    y = rng.randint(0, 10, batch_size).astype(np.int64)
    start = time.perf_counter()
    net.train_on_batch(x, y)
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        net.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = {
        "first_step_s": round(first, 3), "median_step_s": round(median, 4),
        "images_per_s": round(batch_size / median, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        result["peak_gpu_mb"] = round(
            tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)
        result["gpu"] = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return result
