"""Flags shared by tools/search.py and tools/train.py: where to run (strategy),
how batch and learning rate follow the replicas, precision and XLA."""

from absl import flags

from stacnas_tf import precision
from stacnas_tf import strategy as strategy_lib

STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", list(strategy_lib.STRATEGIES),
    "auto: mirrored over all local GPUs, else one_device; one_device; mirrored (local GPUs, or "
    "--cpu_replicas logical CPUs); multi_worker: MultiWorkerMirroredStrategy over the hosts in "
    "TF_CONFIG (run the same command on every host); tpu: TPUStrategy (--tpu).")
NUM_GPUS = flags.DEFINE_integer("num_gpus", None, "GPUs for --strategy=mirrored (default: all).")
CPU_REPLICAS = flags.DEFINE_integer("cpu_replicas", 1,
                                    "Logical CPU devices to mirror over when there is no GPU.")
WORKER_TIMEOUT = flags.DEFINE_float(
    "worker_timeout", strategy_lib.WORKER_TIMEOUT,
    "Seconds a --strategy=multi_worker start waits for every worker of TF_CONFIG to connect "
    "before it gives up with a message.")
TPU = flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu (default: local).")
SCALING_RULE = flags.DEFINE_enum(
    "scaling_rule", "none", list(strategy_lib.SCALING_RULES),
    "How --batch_size and the learning rate follow the replica count: none (the batch is split "
    "over the replicas), linear (batch x replicas, lr x replicas), sqrt (batch x replicas, "
    "lr x sqrt(replicas)). The scaled values are what config.json records.")
PRECISION = flags.DEFINE_enum("precision", None, list(precision.PRECISIONS),
                              "float32, mixed_float16 (GPUs, with loss scaling) or mixed_bfloat16 "
                              "(TPUs, recent GPUs and CPUs). Default: the preset's (float32).")
JIT_COMPILE = flags.DEFINE_bool("jit_compile", False,
                                "Compile the training step with XLA (fastest on GPUs/TPUs; slow on CPU).")


DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", False,
    "Deterministic TensorFlow kernels (tf.config.experimental.enable_op_determinism): the same "
    "command gives the same numbers on the same machine, and a resumed run ends exactly as an "
    "uninterrupted one. Without it, multithreaded kernels may sum in another order from run "
    "to run.")


def open_strategy():
    if DETERMINISTIC.value:
        import tensorflow as tf  # noqa: PLC0415 (imported with the strategy, as make_strategy does)

        tf.config.experimental.enable_op_determinism()
    return strategy_lib.make_strategy(STRATEGY.value, NUM_GPUS.value, CPU_REPLICAS.value, TPU.value,
                                      worker_timeout=WORKER_TIMEOUT.value)


def for_strategy(config, strategy, lr_fields):
    """`config` with --precision applied and its batch/learning rates scaled by
    --scaling_rule for the strategy's replica count."""
    if PRECISION.value is not None:
        config = config.replace(precision=PRECISION.value)
    return strategy_lib.scale_for_replicas(config, SCALING_RULE.value,
                                           strategy.num_replicas_in_sync, lr_fields)
