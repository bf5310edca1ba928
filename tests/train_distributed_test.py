"""Final-network training under MirroredStrategy on 2 logical CPU devices."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import strategy as strategy_lib  # noqa: E402
from stacnas_tf import training as train  # noqa: E402
from stacnas_tf import resumable  # noqa: E402

STRATEGY = strategy_lib.make_strategy("mirrored", cpu_replicas=2)


def test_mirrored_training_resumes_as_if_uninterrupted(tmp_path, monkeypatch):
    config = config_lib.TrainConfig(
        genotype="DARTS_V2", dataset="digits", channels=4, num_cells=3, epochs=2, batch_size=32,
        num_train_examples=256, num_eval_examples=64, cutout=0, aux_weight=0.0, deformable=True,
        drop_path=0.0)
    original = resumable._EpochEnd.on_epoch_end

    def stop_after_first_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        # every replica holds the same weights and deformable logits
        for variable in self.model.architecture_variables + self.model.weight_variables[:10]:
            replicas = STRATEGY.experimental_local_results(variable.value)
            assert len(replicas) == 2
            np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(resumable._EpochEnd, "on_epoch_end", stop_after_first_epoch)
    resumed_dir, uninterrupted_dir = tmp_path / "resumed", tmp_path / "uninterrupted"
    try:
        train.run_training(config, str(resumed_dir), strategy=STRATEGY, verbose=0)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(resumable._EpochEnd, "on_epoch_end", original)
    metrics = train.run_training(config, str(resumed_dir), strategy=STRATEGY, verbose=0)
    history = json.loads((resumed_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert np.isfinite(metrics["loss"]) and 0 <= metrics["top1"] <= 1
    # The resumed epoch saw the batches an uninterrupted run sees (Keras's
    # throwaway iterator used to shift the seeded shuffle of the second pass).
    train.run_training(config, str(uninterrupted_dir), strategy=STRATEGY, verbose=0)
    reference = json.loads((uninterrupted_dir / "history.json").read_text())
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in reference], rel=1e-5)
