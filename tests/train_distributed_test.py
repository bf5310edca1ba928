"""Final-network training under MirroredStrategy on 2 logical CPU devices."""

import numpy as np
import pytest

from stacnas_tf import config as config_lib
from stacnas_tf import strategy as strategy_lib
from stacnas_tf import training as train

import helpers

STRATEGY = strategy_lib.make_strategy("mirrored", cpu_replicas=2)


def _replicas_agree(model):
    # every replica holds the same weights and deformable logits
    for variable in model.architecture_variables + model.weight_variables[:10]:
        replicas = STRATEGY.experimental_local_results(variable.value)
        assert len(replicas) == 2
        np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())


def test_mirrored_training_resumes_as_if_uninterrupted(tmp_path):
    config = config_lib.TrainConfig(
        genotype="DARTS_V2", dataset="digits", channels=4, num_cells=3, epochs=2, batch_size=32,
        num_train_examples=256, num_eval_examples=64, cutout=0, aux_weight=0.0, deformable=True,
        drop_path=0.0)
    resumed_dir, uninterrupted_dir = tmp_path / "resumed", tmp_path / "uninterrupted"
    with pytest.raises(KeyboardInterrupt):
        train.run_training(config, str(resumed_dir), strategy=STRATEGY, verbose=0,
                           callbacks=[helpers.interrupt_after_epoch(1, check=_replicas_agree)])
    assert [h["epoch"] for h in helpers.read_json(resumed_dir / "history.json")] == [1]
    recorder, began = helpers.epochs_begun()
    metrics = train.run_training(config, str(resumed_dir), strategy=STRATEGY, verbose=0,
                                 callbacks=[recorder])
    assert began == [2]  # after the saved epoch, not from the start
    history = helpers.read_json(resumed_dir / "history.json")
    assert [h["epoch"] for h in history] == [1, 2]
    assert np.isfinite(metrics["loss"]) and 0 <= metrics["top1"] <= 1
    # The resumed epoch saw the batches an uninterrupted run sees (Keras's
    # throwaway iterator used to shift the seeded shuffle of the second pass).
    train.run_training(config, str(uninterrupted_dir), strategy=STRATEGY, verbose=0)
    reference = helpers.read_json(uninterrupted_dir / "history.json")
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in reference], rel=1e-5)
