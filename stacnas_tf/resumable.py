"""One resumable `fit`, shared by the search stages and the final training.

After every epoch the chief records it in history.json, then every worker
saves a checkpoint of the model, its optimizers and the completed-epoch count
(two are kept). A rerun restores the newest checkpoint that reads cleanly and
goes on after its epoch, with the input pipeline started at that epoch, so it
sees the batches an uninterrupted run would.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from typing import Callable

import keras
import tensorflow as tf
from absl import logging

from stacnas_tf import checkpoints
from stacnas_tf import files
from stacnas_tf import strategy as strategy_lib


class _EpochEnd(keras.callbacks.Callback):
    """After every epoch: the chief appends `record(model, epoch, logs)` to the
    history and writes history.json, then every worker saves the checkpoint
    with the completed-epoch count. A crash between the two only repeats the
    epoch. Non-chief workers save into a scratch folder:
    MultiWorkerMirroredStrategy's collectives expect every worker to take part."""

    def __init__(self, manager, epoch_variable, chief, history=None, history_path=None,
                 record=None):
        super().__init__()
        self.manager = manager
        self.epoch_variable = epoch_variable
        self.chief = chief
        self.history = history
        self.history_path = history_path
        self.record = record

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            # Weights that are NaN or infinite are never saved, nor trained further.
            raise ValueError(
                f"the loss became {float(loss)} in epoch {epoch + 1}: training diverged (a "
                "learning rate too large for these settings?). This epoch was not saved; the "
                "folder holds the epochs before it. Start again with a smaller rate in another "
                "output folder.")
        if self.chief:
            self.history.append(self.record(self.model, epoch, logs or {}))
            files.write_json(self.history_path, self.history)
        self.epoch_variable.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


def _resumed_history(path: str, checkpoint_dir: str, completed: int, what: str) -> list:
    """The history of the `completed` epochs a checkpoint holds. history.json is
    written before each checkpoint, so it records at least those epochs, in
    order; one that records fewer, or something else, was changed by hand or
    damaged, and resuming would leave gaps (or junk) in the record."""
    fix = f"restore it, or move {checkpoint_dir} away to start {what} again"
    if not os.path.exists(path):
        if completed:
            raise ValueError(f"{what}: {path} is missing, but the checkpoint holds {completed} "
                             f"epoch(s); {fix}.")
        return []
    history = files.read_json(path)
    if not isinstance(history, list) or not all(
            isinstance(entry, dict) and entry.get("epoch") == index + 1
            for index, entry in enumerate(history)):
        raise ValueError(f"{what}: {path} is not a history (a list of per-epoch records, epochs "
                         f"1, 2, ...); {fix}.")
    if len(history) < completed:
        raise ValueError(f"{what}: {path} records {len(history)} epoch(s), but the checkpoint "
                         f"holds {completed}; {fix}.")
    return history[:completed]


def fit(model: keras.Model, strategy: tf.distribute.Strategy, *, epochs: int,
        steps_per_epoch: int, folder, trackables: dict, make_dataset: Callable,
        record: Callable, what: str, validation_data=None, callbacks=(),
        verbose="auto", header: str | None = None) -> list:
    """Fits `model` (built and compiled under `strategy`) for the epochs not
    yet done, resuming from `folder`'s checkpoints; returns the history.

    `folder` (a `run_folder.StageFolder` or `TrainingFolder`) names where the
    checkpoints, history.json and Keras's TensorBoard logs go.

    `trackables` (optimizers, ...) are checkpointed beside the model's
    variables. `make_dataset(initial_epoch, input_context)` gives the training
    pipeline from an epoch on. `record(model, epoch, logs)` gives an epoch's
    history entry (chief only).
    Only the chief writes into `folder`; every worker resumes from its
    checkpoints there (a shared folder in a multi-host run).

    `callbacks` (Keras callbacks, on every worker) run after this function's
    own: each epoch is recorded in history.json and checkpointed before their
    `on_epoch_end`. A callback that stops the process there (a Ctrl-C, an
    exception, a kill) leaves a folder that resumes after that epoch.
    """
    chief = strategy_lib.is_chief(strategy)
    with strategy.scope():
        epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        checkpoint = checkpoints.make(model, completed_epochs=epoch_variable, **trackables)
    checkpoint_dir, history_path = folder.checkpoint_dir, folder.history_path
    history = []
    if checkpoints.restore_latest(checkpoint, checkpoint_dir, what=what):
        if chief:
            history = _resumed_history(history_path, checkpoint_dir,
                                       int(epoch_variable.numpy()), what)
        logging.info("%s: resuming after epoch %d", what, int(epoch_variable.numpy()))
    initial_epoch = int(epoch_variable.numpy())
    if initial_epoch >= epochs:
        return history
    scratch_dir = None if chief else tempfile.mkdtemp(prefix="stacnas-worker-")
    manager = tf.train.CheckpointManager(checkpoint, scratch_dir or checkpoint_dir, max_to_keep=2)
    dataset = strategy_lib.distribute(
        strategy, lambda input_context: make_dataset(initial_epoch, input_context))
    if chief:
        all_callbacks = [
            _EpochEnd(manager, epoch_variable, True, history, history_path, record),
            keras.callbacks.TensorBoard(log_dir=folder.tensorboard_dir, write_graph=False),
        ]
    else:
        all_callbacks, verbose = [_EpochEnd(manager, epoch_variable, False)], 0
    all_callbacks += list(callbacks)
    if verbose and header:
        print(header, flush=True)
    try:
        model.fit(dataset, epochs=epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps_per_epoch, validation_data=validation_data,
                  callbacks=all_callbacks, verbose=verbose, shuffle=False)
    finally:
        if scratch_dir:
            shutil.rmtree(scratch_dir, ignore_errors=True)
    return history
