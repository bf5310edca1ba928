"""Distribution strategies for the binaries (opened by the caller, never inside
layers), who writes in a multi-worker run, per-worker input, and how batch
size and learning rate follow the replica count.
"""

from __future__ import annotations

import json
import math
import os

import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
SCALING_RULES = ("none", "linear", "sqrt")


def make_strategy(name: str = "auto", num_gpus: int | None = None, cpu_replicas: int = 1,
                  tpu: str | None = None) -> tf.distribute.Strategy:
    """Opens the strategy `name`:

    * `auto`: `mirrored` over every local GPU, `one_device` without GPUs
      (or `mirrored` over `cpu_replicas` logical CPUs when that is above 1).
    * `one_device`: the first GPU, else the CPU.
    * `mirrored`: synchronous data parallelism over `num_gpus` GPUs (all when
      None), or, without GPUs, over `cpu_replicas` logical CPU devices.
    * `multi_worker`: `MultiWorkerMirroredStrategy` over the hosts that the
      `TF_CONFIG` environment variable lists (every worker runs the same command).
    * `tpu`: `TPUStrategy` on the TPU named by `tpu` ("" or None: the local one).
    """
    if name == "default":  # the name of earlier versions
        name = "one_device"
    if name not in STRATEGIES:
        raise ValueError(f"--strategy: expected one of {list(STRATEGIES)}, got {name!r}.")
    if cpu_replicas < 1:
        raise ValueError(f"--cpu_replicas: expected a positive count, got {cpu_replicas}.")
    if cpu_replicas > 1 and name not in ("mirrored", "auto"):
        raise ValueError(f"--cpu_replicas={cpu_replicas} applies to --strategy=mirrored (or auto "
                         f"without GPUs), not to --strategy={name}.")
    if name == "multi_worker":
        return _multi_worker()
    if name == "tpu":
        return _tpu(tpu)
    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus is not None and not 1 <= num_gpus <= len(gpus):
        raise ValueError(f"--num_gpus={num_gpus}, but this machine has {len(gpus)} GPU(s).")
    if cpu_replicas > 1 and not gpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
    if name == "auto":
        name = "mirrored" if gpus or cpu_replicas > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if gpus:
        count = len(gpus) if num_gpus is None else num_gpus
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(count)])
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def _multi_worker() -> tf.distribute.Strategy:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "--strategy=multi_worker: set TF_CONFIG on every worker, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}.')
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        task = tf_config["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--strategy=multi_worker: TF_CONFIG is not valid ({e!r}): {raw[:200]}") from e
    if not workers:
        raise ValueError("--strategy=multi_worker: TF_CONFIG lists no worker.")
    if not isinstance(workers, list) or not all(
            isinstance(w, str) and w.rpartition(":")[2].isdigit() and w.rpartition(":")[0]
            for w in workers):
        raise ValueError("--strategy=multi_worker: TF_CONFIG's cluster.worker must be a list of "
                         f'"host:port" addresses, got {workers!r}.')
    index = int(task["index"])
    members = tf_config["cluster"].get(task["type"]) if task["type"] in ("worker", "chief") else None
    if not isinstance(members, list) or not 0 <= index < len(members):
        raise ValueError(f"--strategy=multi_worker: TF_CONFIG's task must be a worker (or the "
                         f"chief) listed in its cluster, with an index from 0; got {task!r}.")
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, tf.errors.OpError) as e:
        raise ValueError(f"--strategy=multi_worker: TF_CONFIG was refused "
                         f"({str(e).splitlines()[0][:200]}).") from e


def _tpu(address: str | None) -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as e:
        raise ValueError(f"--strategy=tpu: no TPU found ({str(e).splitlines()[0][:200]}).") from e
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes checkpoints, logs and results: always, except
    for the non-chief workers of a multi-worker run (the chief is task `chief`,
    or `worker` 0 when the cluster has no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def scale_factor(rule: str, replicas: int) -> float:
    """How much the global batch and the learning rate grow with `replicas`:
    `none` keeps both (the batch is split over the replicas), `linear` multiplies
    both by the replica count (Goyal et al. 2017), `sqrt` the batch by the count
    and the learning rate by its square root (Krizhevsky 2014)."""
    if rule not in SCALING_RULES:
        raise ValueError(f"--scaling_rule: expected one of {list(SCALING_RULES)}, got {rule!r}.")
    if rule == "none":
        return 1.0
    return float(replicas) if rule == "linear" else math.sqrt(replicas)


def scale_for_replicas(config, rule: str, replicas: int, lr_fields: tuple[str, ...]):
    """`config` (a SearchConfig or TrainConfig) with its global batch and the
    learning rates named in `lr_fields` scaled for `replicas` by `rule` (see
    `scale_factor`). Adam's step on the architecture logits does not depend on
    the gradient's scale, so `arch_lr` is never scaled."""
    lr_factor = scale_factor(rule, replicas)
    batch_size = config.batch_size if rule == "none" else config.batch_size * replicas
    if batch_size % replicas:
        raise ValueError(f"--batch_size={config.batch_size} does not split evenly over "
                         f"{replicas} replicas; use a multiple of {replicas}.")
    return config.replace(batch_size=batch_size,
                          **{name: getattr(config, name) * lr_factor for name in lr_fields})


def distribute(strategy: tf.distribute.Strategy, make_dataset):
    """The training input for `strategy`.

    Across several workers, `make_dataset(input_context)` builds one pipeline
    per worker, which reads and augments only its own shard and batches per
    replica. On one machine `make_dataset(None)` gives the global batches and
    Keras splits them over the local replicas.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    multi_worker = resolver is not None and bool(resolver.task_type)
    if not multi_worker:
        return make_dataset(None)
    return strategy.distribute_datasets_from_function(make_dataset)
