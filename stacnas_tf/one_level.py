"""One-level updates: weights and architecture logits from one backward pass.

Shared by the supernet (search, and its bi-level ablation, which uses the same
pieces on two batches) and deformable final networks. Gradients are
summed over replicas first, so clipping sees the global batch's gradient and
every replica applies the same update; L2 decay is added to the gradient after
clipping, as PyTorch's `weight_decay` does in DARTS.
"""

from __future__ import annotations

import tensorflow as tf


def reduced_gradients(tape, loss, variables):
    """Gradients of `loss`, summed over the replicas of a strategy."""
    grads = tape.gradient(loss, list(variables))
    replica_context = tf.distribute.get_replica_context()
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
        grads = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    return grads


def weight_update(grads, weight_vars, grad_clip_norm, weight_decay):
    """(clipped grads + L2 decay, raw global norm) of already-reduced weight gradients."""
    raw_norm = tf.linalg.global_norm(grads)
    if grad_clip_norm:
        grads, _ = tf.clip_by_global_norm(grads, grad_clip_norm, use_norm=raw_norm)
    return [g + weight_decay * v for g, v in zip(grads, weight_vars)], raw_norm


def architecture_update(grads, arch_vars, arch_weight_decay):
    """Already-reduced architecture gradients + L2 decay; never clipped."""
    return [g + arch_weight_decay * v for g, v in zip(grads, arch_vars)]


def processed_gradients(tape, loss, weight_vars, arch_vars, grad_clip_norm, weight_decay,
                        arch_weight_decay):
    """Returns (weight grads, arch grads, raw weight-gradient global norm).

    Weight gradients are clipped by global norm (when `grad_clip_norm` is set)
    and get `weight_decay * w`; architecture gradients are never clipped and
    get `arch_weight_decay * alpha`.
    """
    grads = reduced_gradients(tape, loss, list(weight_vars) + list(arch_vars))
    weight_grads, arch_grads = grads[: len(weight_vars)], grads[len(weight_vars):]
    weight_grads, raw_norm = weight_update(weight_grads, weight_vars, grad_clip_norm, weight_decay)
    return weight_grads, architecture_update(arch_grads, arch_vars, arch_weight_decay), raw_norm


def apply(weight_optimizer, weight_grads, weight_vars, arch_optimizer=None, arch_grads=(),
          arch_vars=()):
    """Steps both optimizers with already-reduced gradients."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        # Keras optimizers sum gradients over replicas again; ours are already reduced.
        weight_grads = [g / replicas for g in weight_grads]
        arch_grads = [g / replicas for g in arch_grads]
    weight_optimizer.apply(weight_grads, weight_vars)
    if arch_optimizer is not None and arch_vars:
        arch_optimizer.apply(arch_grads, arch_vars)
