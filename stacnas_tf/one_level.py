"""One-level updates: weights and architecture logits from one backward pass.

Shared by the supernet (search, and its bi-level ablation, which uses the same
pieces on two batches) and deformable final networks. Gradients are
summed over replicas first, so clipping sees the global batch's gradient and
every replica applies the same update; L2 decay is added to the gradient after
clipping, as PyTorch's `weight_decay` does in DARTS. `TrainingHooks` is what
both models' training steps share (float16 loss scaling, logs, Keras hooks).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def reduced_gradients(tape, loss, variables):
    """Gradients of `loss`, summed over the replicas of a strategy. A variable
    the loss does not reach (the normal cells' logits of a supernet too shallow
    to have a normal cell) gets a zero gradient."""
    variables = list(variables)
    grads = [tf.zeros(v.shape, v.dtype) if g is None else g
             for g, v in zip(tape.gradient(loss, variables), variables)]
    replica_context = tf.distribute.get_replica_context()
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
        grads = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    return grads


def weight_update(grads, weight_vars, grad_clip_norm, weight_decay):
    """(clipped grads + L2 decay, raw global norm) of already-reduced weight gradients."""
    raw_norm = tf.linalg.global_norm(grads)
    # One scale and one decay tensor for all variables: a supernet has thousands,
    # and per-variable constants and identities (as tf.clip_by_global_norm adds)
    # make its graph, and so its tracing, larger.
    decay = tf.convert_to_tensor(weight_decay, tf.float32)
    if tf.is_tensor(grad_clip_norm) or grad_clip_norm:
        # tf.clip_by_global_norm's scale: clip / max(norm, clip), NaN when the norm is.
        clip = tf.convert_to_tensor(grad_clip_norm, tf.float32)
        scale = clip * tf.minimum(1.0 / raw_norm, 1.0 / clip)
        return [g * scale + decay * v for g, v in zip(grads, weight_vars)], raw_norm
    return [g + decay * v for g, v in zip(grads, weight_vars)], raw_norm


def architecture_update(grads, arch_vars, arch_weight_decay):
    """Already-reduced architecture gradients + L2 decay; never clipped."""
    decay = tf.convert_to_tensor(arch_weight_decay, tf.float32)
    return [g + decay * v for g, v in zip(grads, arch_vars)]


def processed_gradients(tape, loss, weight_vars, arch_vars, *, grad_clip_norm, weight_decay,
                        arch_weight_decay, loss_scale=None):
    """Returns (weight grads, arch grads, raw weight-gradient global norm).

    Weight gradients are clipped by global norm (when `grad_clip_norm` is set)
    and get `weight_decay * w`; architecture gradients are never clipped and
    get `arch_weight_decay * alpha`.

    With a `loss_scale` (float16 training: `loss` was multiplied by it), the
    returned gradients stay multiplied by it, for a `LossScaleOptimizer` to
    divide out and to skip when they overflowed: the clipping threshold and the
    decay terms are scaled alike, which gives exactly the unscaled update.
    """
    grads = reduced_gradients(tape, loss, list(weight_vars) + list(arch_vars))
    weight_grads, arch_grads = grads[: len(weight_vars)], grads[len(weight_vars):]
    scale = 1.0 if loss_scale is None else tf.cast(loss_scale, tf.float32)
    weight_grads, raw_norm = weight_update(weight_grads, weight_vars,
                                           grad_clip_norm * scale if grad_clip_norm else None,
                                           weight_decay * scale)
    arch_grads = architecture_update(arch_grads, arch_vars, arch_weight_decay * scale)
    return weight_grads, arch_grads, raw_norm / scale


def loss_scale(optimizer):
    """The dynamic loss scale of a `LossScaleOptimizer` (float16 training), else None."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.convert_to_tensor(optimizer.dynamic_scale)
    return None


def matching_loss_scaling(weight_optimizer, arch_optimizer):
    """`arch_optimizer`, wrapped in a LossScaleOptimizer when the weights' is one
    (Keras wraps the compiled optimizer under mixed_float16), so that an
    overflowing step is skipped for alpha too."""
    if (arch_optimizer is not None
            and isinstance(weight_optimizer, keras.optimizers.LossScaleOptimizer)
            and not isinstance(arch_optimizer, keras.optimizers.LossScaleOptimizer)):
        return keras.optimizers.LossScaleOptimizer(arch_optimizer,
                                                   name="architecture_loss_scale_optimizer")
    return arch_optimizer


def rescaled(arch_grads, weight_loss_scale, arch_optimizer):
    """Architecture gradients computed at `weight_loss_scale`, brought to the
    architecture optimizer's own scale (the two agree unless only one of them
    saw an overflow; each divides by its own)."""
    arch_scale = loss_scale(arch_optimizer)
    if weight_loss_scale is None or arch_scale is None:
        return arch_grads
    return [g * (arch_scale / weight_loss_scale) for g in arch_grads]


class TrainingHooks:
    """What the training steps of the supernet and the final network share;
    mix in before `keras.Model`. The model provides `num_classes`, `weight_variables`,
    `architecture_variables`, `architecture_optimizer`, `grad_clip_norm`,
    `weight_decay` and `architecture_weight_decay`."""

    def _one_level_gradients(self, forward):
        """(loss, outputs, weight grads, architecture grads, raw weight-gradient
        norm) of one forward/backward pass; `forward()` returns (loss, outputs).

        Under float16 the gradients come from the scaled loss, the weights'
        with clipping and decay scaled alike; see `processed_gradients`.
        """
        scale = loss_scale(self.optimizer)
        with tf.GradientTape() as tape:
            loss, outputs = forward()
            scaled_loss = loss if scale is None else loss * scale
        weight_grads, arch_grads, raw_norm = processed_gradients(
            tape, scaled_loss, self.weight_variables, self.architecture_variables,
            grad_clip_norm=self.grad_clip_norm, weight_decay=self.weight_decay,
            arch_weight_decay=self.architecture_weight_decay, loss_scale=scale)
        arch_grads = rescaled(arch_grads, scale, self.architecture_optimizer)
        return loss, outputs, weight_grads, arch_grads, raw_norm

    # Keras saves `compile`'s arguments in a `.keras` file, but on loading it
    # does not call an overridden `compile` (it warns instead), and it knows
    # nothing of the architecture optimizer or the models' other arguments.
    def _extra_compile_config(self) -> dict:
        """The compile arguments beyond Keras's own (the model overrides it)."""
        return {"architecture_optimizer": self.architecture_optimizer}

    def get_compile_config(self):
        config = super().get_compile_config()
        # Keras gives {} for a network never compiled; it saves and loads uncompiled.
        if config:
            config.update(keras.saving.serialize_keras_object(self._extra_compile_config()))
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))

    def _step_logs(self, images, labels, logits, loss):
        """Updates the metrics with a step's loss and logits; returns the logs."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for metric in self.metrics:
            if metric.name == "loss":
                # The loss was divided by the replica count; the tracker wants the batch mean.
                metric.update_state(loss * replicas, sample_weight=tf.shape(images)[0])
        return replica_logs(self.compute_metrics(images, labels, logits))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras hook (private; tests/keras_private_api_test.py notices if it
        # changes). Under a strategy Keras takes a batch from a throwaway
        # iterator over the training data to build what is still unbuilt; the
        # models are built and `compile` builds the rest, so no batch is taken.
        # A throwaway iterator is not free: every iterator over a seeded,
        # reshuffling dataset draws the next shuffle orders, so a resumed run
        # (whose first batch lies a pass further on) would train on other
        # batches than an uninterrupted one; under MultiWorkerMirroredStrategy
        # Keras could not even reduce a nested batch.
        super()._maybe_symbolic_build(data_batch=data_batch)

    def _build_compiled_state(self):
        """Creates the compiled loss's and metrics' state for integer labels and
        [batch, self.num_classes] logits, the only shapes it depends on here.

        Keras would create it by tracing the whole network symbolically when
        fit starts under a strategy, or else inside the first training step,
        which tf.function must then trace a second time; either doubled the
        start-up of a deep supernet.
        """
        # Keras's own means of running code on symbolic tensors (its fit does the
        # same); not public. tests/keras_private_api_test.py notices if it changes.
        from keras.src import backend as keras_backend

        labels = keras.KerasTensor((None,), dtype="int64")
        logits = keras.KerasTensor((None, self.num_classes), dtype="float32")
        keras_backend.compute_output_spec(self.compute_metrics, None, labels, logits)
        keras_backend.compute_output_spec(
            lambda y, y_pred: self.compute_loss(y=y, y_pred=y_pred, training=False),
            labels, logits)


def replica_logs(logs):
    """A step's logs, shaped for Keras to reduce over the workers.

    Under MultiWorkerMirroredStrategy Keras averages each log over the replicas
    along axis 0, which a scalar lacks; a one-element vector averages to the
    same scalar. Elsewhere the logs are returned unchanged.
    """
    strategy = tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not (
            resolver is not None and resolver.task_type):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


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
