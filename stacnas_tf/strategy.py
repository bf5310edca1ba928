"""Distribution strategies for the binaries (opened by the caller, never inside
layers), who writes in a multi-worker run, per-worker input, and how batch
size and learning rate follow the replica count.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
SCALING_RULES = ("none", "linear", "sqrt")
# Seconds a multi-worker start waits for every worker of TF_CONFIG to connect.
WORKER_TIMEOUT = 600.0

# Run beside a multi-worker start, which blocks in TensorFlow's C++ (no Python
# thread or signal handler runs meanwhile): after the timeout it names the problem
# and ends the start; it ends by itself once its parent is gone.
_WATCHDOG = """
import os, signal, sys, time
parent, timeout, message, interrupted = int(sys.argv[1]), float(sys.argv[2]), *sys.argv[3:5]
# Ctrl-C at a terminal reaches this process too; it ends the parent by itself.
signal.signal(signal.SIGINT, lambda *_: (os.write(2, (interrupted + "\\n").encode()), os._exit(0)))
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    time.sleep(0.2)
    if os.getppid() != parent:
        sys.exit(0)
os.write(2, (message + "\\n").encode())
os.kill(parent, signal.SIGKILL)  # TensorFlow's own SIGTERM handler keeps it waiting
"""


def make_strategy(name: str = "auto", num_gpus: int | None = None, cpu_replicas: int = 1,
                  tpu: str | None = None,
                  worker_timeout: float = WORKER_TIMEOUT) -> tf.distribute.Strategy:
    """Opens the strategy `name`:

    * `auto`: `mirrored` over every local GPU, `one_device` without GPUs
      (or `mirrored` over `cpu_replicas` logical CPUs when that is above 1).
    * `one_device`: the first GPU, else the CPU.
    * `mirrored`: synchronous data parallelism over `num_gpus` GPUs (all when
      None), or, without GPUs, over `cpu_replicas` logical CPU devices.
    * `multi_worker`: `MultiWorkerMirroredStrategy` over the hosts that the
      `TF_CONFIG` environment variable lists (every worker runs the same command).
      If the workers have not all connected within `worker_timeout` seconds,
      the process says so and ends (TensorFlow itself would wait an hour).
    * `tpu`: `TPUStrategy` on the TPU named by `tpu` ("" or None: the local one).
    """
    import tensorflow as tf  # noqa: PLC0415 (--help loads no TensorFlow)

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
        if not worker_timeout > 0:
            raise ValueError(f"--worker_timeout: expected a positive number of seconds, got "
                             f"{worker_timeout}.")
        return _multi_worker(worker_timeout)
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


def _multi_worker(timeout: float) -> tf.distribute.Strategy:
    import tensorflow as tf  # noqa: PLC0415 (--help loads no TensorFlow)

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
        return _bounded_start(tf.distribute.MultiWorkerMirroredStrategy, timeout, workers)
    except (ValueError, tf.errors.OpError) as e:
        raise ValueError(f"--strategy=multi_worker: TF_CONFIG was refused "
                         f"({str(e).splitlines()[0][:200]}).") from e


def _bounded_start(start, timeout: float, workers):
    """`start()`, which blocks until every worker has connected, ended after
    `timeout` seconds with one line naming the workers, and ended at once by
    Ctrl-C: while TensorFlow's C++ waits, Python's own handlers (and timers)
    never run, so SIGINT takes its default action meanwhile and a watchdog
    process keeps the time. (TensorFlow catches SIGTERM itself while it
    waits: the timeout ends that wait.)"""
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import threading  # noqa: PLC0415

    program = os.path.basename(sys.argv[0]) or "python"
    message = (f"{program}: error: --strategy=multi_worker: not every worker of TF_CONFIG "
               f"({', '.join(workers)}) connected within {timeout:g} s (--worker_timeout); start "
               "the same command on every worker and check the addresses and ports.")
    interrupted = f"{program}: interrupted while the workers connected; nothing was written."
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout),
                                 message, interrupted], stdin=subprocess.DEVNULL)
    # Signal handlers can be set from the main thread only (the programs' case).
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_DFL)} if main_thread else {}
    try:
        return start()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        watchdog.kill()
        watchdog.wait()


def _tpu(address: str | None) -> tf.distribute.Strategy:
    import tensorflow as tf  # noqa: PLC0415 (--help loads no TensorFlow)

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
    try:
        return config.replace(batch_size=batch_size,
                              **{name: getattr(config, name) * lr_factor for name in lr_fields})
    except ValueError as e:
        if batch_size == config.batch_size:
            raise
        # The user gave the per-replica batch: say where the larger one came from.
        raise ValueError(f"{e} (--batch_size={config.batch_size} x {replicas} replicas by "
                         f"--scaling_rule={rule}; use a smaller --batch_size or fewer replicas)"
                         ) from None


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
