"""What keeps a search's numbers the same whatever the number of CPU threads.

Two searches that differed only in the CPU thread count used to part within
tens of steps and end on other cells (docs/analyses.md, "How soon the thread
count changes a search"). Two causes, measured on the default's supernet
(`benchmarks/onednn_threads.py`; docs/analyses.md, "One thread per kernel"):

1. Kernels that split one sum over several threads sum in another order with
   another thread count: oneDNN's fused batch normalisation, which ends every
   op of the supernet, changes alpha's first gradient by 1.5% between 1 and 2
   threads. With one thread per kernel (`TF_NUM_INTRAOP_THREADS=1`, which the
   programs set before TensorFlow starts) every kernel sums in one order, and
   the threads run other kernels at once (inter-op parallelism,
   `TF_NUM_INTEROP_THREADS`). On the supernet's many small independent ops
   that is also the faster setting on CPU.
2. Grappler's rewrites of the training step make its result depend on which
   kernels finish first: on a loaded machine, two runs of one step with the
   same thread counts differed in the last bit of 40% of the weights. On CPU
   the search's steps are built without them (`search_graphs`), which costs
   no step time there and shortens tracing; on a GPU they stay (its layout
   rewrites are worth having, and its kernels are not repeatable anyway).
"""

from __future__ import annotations

import contextlib
import os

import tensorflow as tf


def threads_per_kernel() -> int:
    """How many threads one kernel may use in this process (0: TensorFlow's
    default, every core)."""
    configured = tf.config.threading.get_intra_op_parallelism_threads()
    if configured:
        return configured
    # TensorFlow reads the variable when it makes its thread pools; the setting
    # above then still says 0.
    value = os.environ.get("TF_NUM_INTRAOP_THREADS", "0").strip()
    return int(value) if value.isdigit() else 0


def thread_count_changes_results() -> bool:
    """Whether a search in this process may compute other numbers with another
    thread count: on CPU, when a kernel may use more than one thread."""
    return not tf.config.list_logical_devices("GPU") and threads_per_kernel() != 1


@contextlib.contextmanager
def search_graphs():
    """Builds the training steps traced in the block without Grappler's
    rewrites on a CPU-only machine (see the module docstring); restores the
    previous setting after."""
    if tf.config.list_logical_devices("GPU"):
        yield
        return
    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})
