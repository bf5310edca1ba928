import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import search_space
from stacnas_tf.analysis import confusion


def test_zeta_is_the_floored_largest_negative_inner_product():
    gradients = np.array([[1.0, 0.0], [-2.0, 1.0], [0.5, 3.0]])
    # Inner products: <0,1> = -2, <0,2> = 0.5, <1,2> = 2 -> max of negatives = 2.
    assert confusion.zeta(gradients) == pytest.approx(2.0)
    assert confusion.zeta(np.array([[1.0, 1.0], [2.0, 0.5]])) == 0.0  # all agree: floored
    assert confusion.max_negative_inner(np.array([[1.0, 1.0], [2.0, 0.5]])) == pytest.approx(-2.5)
    with pytest.raises(ValueError, match="two gradients"):
        confusion.zeta(np.ones((1, 3)))


def test_estimate_equals_a_hand_computation_from_per_batch_gradients():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(3)])
    rng = np.random.default_rng(1)
    batches = [(rng.normal(size=(6, 4)).astype(np.float32), rng.integers(0, 3, 6)) for _ in range(6)]
    result = confusion.estimate(model, model.trainable_variables, batches, num_batches=3,
                                num_iterations=2)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    hand = []
    for iteration in range(2):
        rows = []
        for x, y in batches[3 * iteration: 3 * iteration + 3]:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            rows.append(np.concatenate([g.numpy().ravel() for g in
                                        tape.gradient(loss, model.trainable_variables)]))
        inner = np.array(rows, np.float64) @ np.array(rows, np.float64).T
        hand.append(max(0.0, max(-inner[0, 1], -inner[0, 2], -inner[1, 2])))
    np.testing.assert_allclose(result["zetas"], hand, rtol=1e-5, atol=1e-9)
    assert result["parameters"] == 4 * 5 + 5 + 5 * 3 + 3
    assert result["confusion"] == pytest.approx(np.mean(hand) / (43 / 1e6))
    with pytest.raises(ValueError, match="ran out"):
        confusion.estimate(model, model.trainable_variables, batches, num_batches=4, num_iterations=2)


def test_stage2_winners_from_a_genotype():
    space = search_space.SearchSpace()
    normal, reduce = confusion.genotype_stage2_winners(genotype_lib.PUBLISHED["DARTS_V2"], space)
    assert len(normal) == len(reduce) == 14
    # DARTS_V2's normal node 0 takes sep_conv_3x3 from both inputs (edges 0 and 1).
    assert normal[:2] == ["sep_conv_3x3", "sep_conv_3x3"]
    assert reduce[0] == "max_pool_3x3"
    # Node 3's edge from node 0 (state 2) is dil_conv_3x3; its edge from input 1 is dropped.
    assert normal[search_space.edge_endpoints(4).index((2, 5))] == "dil_conv_3x3"
    assert normal[search_space.edge_endpoints(4).index((1, 5))] == "sep_conv_3x3"


def _measured(setting, cells, confusion_value):
    return {"setting": setting, "cells": cells, "zetas": [1.0, 3.0], "zeta_mean": 2.0,
            "zeta_std": 1.0, "max_negative_inner_mean": 2.0, "parameters": 1000,
            "confusion": confusion_value}


def test_each_stage_takes_the_depth_whose_confusion_is_closest_to_the_final_networks(tmp_path):
    # Section 3.3: the search network's depth matches the final network's
    # gradient confusion. Measurements a sweep finished are reused, so the
    # choice is tested on set numbers: stage 1 at 4 and 5 cells is 0.5 away
    # (a tie: the deeper wins), stage 2 at 3 cells is exact.
    config = dataclasses.replace(confusion.CONFUSION_PRESETS["tiny"], stage1_depths=(3, 4, 5),
                                 stage2_depths=(3, 4), final_cells=6)
    records = [_measured("stage1", 3, 4.0), _measured("stage1", 4, 9.5),
               _measured("stage1", 5, 10.5), _measured("stage2", 3, 10.0),
               _measured("stage2", 4, 12.0), _measured("final", 6, 10.0)]
    for record in records:
        folder = tmp_path / f"{record['setting']}_{record['cells']}cells"
        folder.mkdir()
        (folder / "confusion.json").write_text(json.dumps(record))
    (tmp_path / "sweep.json").write_text(json.dumps({**dataclasses.asdict(config), "search_dir": None}))
    lines = []
    result = confusion.sweep(config, str(tmp_path), progress=lines.append)
    assert lines == []  # nothing measured again
    assert result["measurements"] == records
    assert result["recommended"] == {"stage1_cells": 5, "stage2_cells": 3, "final_cells": 6}
    assert "Recommended: stage 1 with 5 cells, stage 2 with 3 cells, for a final network of 6 cells." \
        in (tmp_path / "confusion.md").read_text()


def test_a_sweep_never_writes_into_a_run_or_the_users_files(tmp_path):
    run = tmp_path / "train"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"holds other files \(config.json\); choose a new or empty "
                                         "folder, or one that holds only a confusion sweep"):
        confusion.sweep(confusion.CONFUSION_PRESETS["tiny"], str(run), progress=None)
    assert os.listdir(run) == ["config.json"]


def test_the_default_sweep_is_the_one_recorded_in_benchmarks():
    # docs/analyses.md reads benchmarks/results/confusion_default_cpu.json as
    # what `confusion_sweep` does without flags.
    with open(os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results",
                           "confusion_default_cpu.json")) as f:
        recorded = json.load(f)["config"]
    default = json.loads(json.dumps(dataclasses.asdict(confusion.CONFUSION_PRESETS["default"])))
    assert default == recorded


@pytest.mark.parametrize("changes, message", [
    ({"stage1_depths": (2,)}, r"^--stage1_depths: expected depths of at least 3 cells, got \(2,\)"),
    ({"stage2_depths": (4, 2)}, r"^--stage2_depths: expected depths of at least 3 cells"),
    ({"stage1_depths": ()}, r"^--stage1_depths: expected depths of at least 3 cells, got \(\)"),
    ({"stage2_depths": (3, 4, 3)}, r"^--stage2_depths: a depth is listed twice: \(3, 4, 3\)"),
    ({"stage1_depths": (5, 5)}, r"^--stage1_depths: a depth is listed twice"),
    ({"final_cells": 2}, r"^--final_cells must be >= 3"),
    ({"train_epochs": 0}, r"--train_epochs >= 1"),
    ({"num_batches": 1}, r"^--num_batches: expected at least 2, got 1"),
    ({"num_iterations": 0}, r"^--num_iterations: expected a positive count, got 0"),
])
def test_bad_sweeps_are_refused_naming_the_flag(changes, message):
    with pytest.raises(ValueError, match=message):
        confusion.ConfusionConfig(**changes)


def test_the_smallest_sweep_allowed_and_lists_given_as_depths():
    config = confusion.ConfusionConfig(stage1_depths=[3], stage2_depths=[3, 4], final_cells=3,
                                       train_epochs=1, num_batches=2, num_iterations=1)
    assert (config.stage1_depths, config.stage2_depths) == ((3,), (3, 4))  # tuples: hashable, JSON lists


def test_the_sweep_trains_each_setting_as_its_config_says():
    config = confusion.ConfusionConfig(dataset="digits", image_size=8, num_train_examples=96,
                                       channels=6, batch_size=12, train_epochs=3, final_cells=5,
                                       genotype="DARTS_V1", seed=7)
    search = config.search_config()
    assert (search.dataset, search.image_size, search.num_train_examples, search.channels,
            search.batch_size, search.stage1_epochs, search.stage2_epochs, search.seed) == (
        "digits", 8, 96, 6, 12, 3, 3, 7)
    final = config.train_config()
    assert (final.genotype, final.dataset, final.image_size, final.num_train_examples,
            final.num_eval_examples, final.channels, final.num_cells, final.epochs,
            final.batch_size, final.seed) == ("DARTS_V1", "digits", 8, 96, 12, 6, 5, 3, 12, 7)
    # No drop path: the supernets it is compared with have none. The rest is the default recipe.
    assert final.drop_path == 0.0
    default = config_lib.TRAIN_PRESETS["default"]
    assert final == default.replace(genotype="DARTS_V1", dataset="digits", image_size=8,
                                    num_train_examples=96, num_eval_examples=12, channels=6,
                                    num_cells=5, epochs=3, batch_size=12, drop_path=0.0, seed=7)


def test_tiny_sweep_end_to_end(tmp_path):
    # One batch per epoch and 3 x 6 batches drawn: the measuring pipeline
    # repeats the data for as long as the estimate draws.
    tiny = dataclasses.replace(confusion.CONFUSION_PRESETS["tiny"], num_train_examples=16,
                               num_iterations=6)
    lines = []
    result = confusion.sweep(tiny, str(tmp_path / "sweep"), progress=lines.append)
    settings = [(m["setting"], m["cells"]) for m in result["measurements"]]
    assert settings == [("stage1", 3), ("stage2", 3), ("final", 3)]
    for m in result["measurements"]:
        assert len(m["zetas"]) == 6 and all(z >= 0 for z in m["zetas"]) and m["parameters"] > 0
    assert [line.split(":")[0] for line in lines] == [
        "[1/3] stage1 3 cells", "[2/3] stage2 3 cells", "[3/3] final 3 cells"]
    # Each supernet setting trains the stage it names.
    for stage in (1, 2):
        folder = tmp_path / "sweep" / f"stage{stage}_3cells"
        assert sorted(p.name for p in folder.iterdir() if p.name.startswith("stage")) == [f"stage{stage}"]
    assert result["recommended"] == {"stage1_cells": 3, "stage2_cells": 3, "final_cells": 3}
    assert "| stage1 | 3 |" in (tmp_path / "sweep" / "confusion.md").read_text()
    assert (tmp_path / "sweep" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun reuses the finished settings only when they were measured with these settings.
    again = confusion.sweep(tiny, str(tmp_path / "sweep"), progress=None)
    assert again["measurements"] == result["measurements"]
    other = dataclasses.replace(tiny, num_batches=4)
    with pytest.raises(ValueError, match=r"holds a confusion sweep with other settings \(num_batches=3 "
                                         r"there, 4 now\)"):
        confusion.sweep(other, str(tmp_path / "sweep"), progress=None)
