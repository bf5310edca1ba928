"""Opening a distribution strategy for the binaries (never inside layers)."""

from __future__ import annotations

import tensorflow as tf


def make_strategy(name: str = "default", num_gpus: int | None = None,
                  cpu_replicas: int = 1) -> tf.distribute.Strategy:
    """`default`: TF's default strategy (one device). `mirrored`: synchronous
    data parallelism over `num_gpus` GPUs (all when None), or, on a machine
    without GPUs, over `cpu_replicas` logical CPU devices."""
    if name not in ("default", "mirrored"):
        raise ValueError(f"--strategy: expected 'default' or 'mirrored', got {name!r}.")
    if cpu_replicas < 1:
        raise ValueError(f"--cpu_replicas: expected a positive count, got {cpu_replicas}.")
    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus is not None and num_gpus > len(gpus):
        raise ValueError(f"--num_gpus={num_gpus}, but this machine has {len(gpus)} GPU(s).")
    if cpu_replicas > 1 and not gpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    if name == "default":
        return tf.distribute.get_strategy()
    if gpus:
        count = len(gpus) if num_gpus is None else num_gpus
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(count)])
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
