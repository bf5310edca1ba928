import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import augmentation
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
    with pytest.raises(ValueError, match=r"needs at least two gradients, got shape \(1, 3\)"):
        confusion.zeta(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"got shape \(6,\)"):  # one flat vector is one gradient
        confusion.zeta(np.ones(6))
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2\)"):  # rows must be flat
        confusion.zeta(np.ones((2, 2, 2)))
    assert confusion.zeta(np.array([[1.0, 0.0], [-3.0, 0.0]])) == pytest.approx(3.0)  # two suffice


def test_estimate_equals_a_hand_computation_from_per_batch_gradients():
    keras.utils.set_random_seed(0)
    # Batch norm: gradients are taken in training mode (batch statistics), as while training.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.BatchNormalization(center=False, scale=False),
                              keras.layers.Dense(3)])
    rng = np.random.default_rng(1)
    batches = [(rng.normal(size=(6, 4)).astype(np.float32), rng.integers(0, 3, 6)) for _ in range(6)]
    result = confusion.estimate(model, model.trainable_variables, batches, num_batches=3,
                                num_iterations=2)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    hand, unfloored = [], []
    for iteration in range(2):
        rows = []
        for x, y in batches[3 * iteration: 3 * iteration + 3]:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            rows.append(np.concatenate([g.numpy().ravel() for g in
                                        tape.gradient(loss, model.trainable_variables)]))
        inner = np.array(rows, np.float64) @ np.array(rows, np.float64).T
        unfloored.append(max(-inner[0, 1], -inner[0, 2], -inner[1, 2]))
        hand.append(max(0.0, unfloored[-1]))
    np.testing.assert_allclose(result["zetas"], hand, rtol=1e-5, atol=1e-9)
    assert result["zeta_mean"] == pytest.approx(np.mean(hand), rel=1e-5)
    assert result["zeta_std"] == pytest.approx(np.std(hand), rel=1e-4, abs=1e-9)
    assert result["max_negative_inner_mean"] == pytest.approx(np.mean(unfloored), rel=1e-5)
    assert result["parameters"] == 4 * 5 + 5 + 5 * 3 + 3
    assert result["confusion"] == pytest.approx(np.mean(hand) / (43 / 1e6), rel=1e-5)
    assert result["confusion"] == pytest.approx(result["zeta_mean"] * 1e6 / 43, rel=1e-12)  # per million
    with pytest.raises(ValueError, match="^gradient confusion: the data ran out after 1 iterations"):
        confusion.estimate(model, model.trainable_variables, batches, num_batches=4, num_iterations=2)
    for num_batches, num_iterations in ((1, 2), (3, 0)):
        with pytest.raises(ValueError, match=f"^--num_batches must be >= 2 and --num_iterations >= 1, "
                                             f"got {num_batches} and {num_iterations}"):
            confusion.estimate(model, model.trainable_variables, batches, num_batches, num_iterations)
    smallest = confusion.estimate(model, model.trainable_variables, batches, num_batches=2,
                                  num_iterations=1)
    assert len(smallest["zetas"]) == 1


def test_a_model_with_an_auxiliary_output_is_measured_on_its_main_logits():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="tanh")(inputs)
    main, auxiliary = keras.layers.Dense(3)(hidden), keras.layers.Dense(3)(hidden)
    both = keras.Model(inputs, [main, auxiliary])
    only_main = keras.Model(inputs, main)
    rng = np.random.default_rng(2)
    batches = [(rng.normal(size=(6, 4)).astype(np.float32), rng.integers(0, 3, 6)) for _ in range(3)]
    variables = only_main.trainable_variables
    assert (confusion.estimate(both, variables, batches, num_batches=3, num_iterations=1)["zetas"]
            == pytest.approx(confusion.estimate(only_main, variables, batches, num_batches=3,
                                                num_iterations=1)["zetas"]))


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
    # A space without convolutions falls back to its first group's representative.
    pools = search_space.SearchSpace(groups=(("skip_connect",), ("max_pool_3x3", "avg_pool_3x3")))
    normal, reduce = confusion.genotype_stage2_winners(genotype_lib.PUBLISHED["DARTS_V2"], pools)
    assert set(normal) == {"skip_connect"} and set(reduce) <= {"skip_connect", "max_pool_3x3"}
    assert "max_pool_3x3" in reduce  # DARTS_V2's reduction cell keeps max pools


def _measured(setting, cells, confusion_value):
    return {"setting": setting, "cells": cells, "zetas": [1.0, 3.0], "zeta_mean": 2.0,
            "zeta_std": 1.0, "max_negative_inner_mean": 2.0, "parameters": 1000,
            "confusion": confusion_value}


def _finished_sweep(folder, config, records=None, search_dir=None):
    """A sweep folder whose every setting is measured already (reused, not trained):
    `records`, or the same confusion at every depth."""
    records = records or ([_measured("stage1", d, 1.0) for d in config.stage1_depths]
                          + [_measured("stage2", d, 1.0) for d in config.stage2_depths]
                          + [_measured("final", config.final_cells, 1.0)])
    for record in records:
        setting = folder / f"{record['setting']}_{record['cells']}cells"
        setting.mkdir(parents=True)
        (setting / "confusion.json").write_text(json.dumps(record))
    (folder / "sweep.json").write_text(json.dumps({**dataclasses.asdict(config),
                                                   "search_dir": search_dir}))


def test_each_stage_takes_the_depth_whose_confusion_is_closest_to_the_final_networks(tmp_path,
                                                                                     monkeypatch):
    # Section 3.3: the search network's depth matches the final network's
    # gradient confusion. Measurements a sweep finished are reused, so the
    # choice is tested on set numbers: stage 1 at 4 and 5 cells is 0.5 away
    # (a tie: the deeper wins), stage 2 at 3 cells is exact.
    config = dataclasses.replace(confusion.CONFUSION_PRESETS["tiny"], stage1_depths=(3, 4, 5),
                                 stage2_depths=(3, 4), final_cells=6)
    records = [_measured("stage1", 3, 4.0), _measured("stage1", 4, 9.5),
               _measured("stage1", 5, 10.5), _measured("stage2", 3, 10.0),
               _measured("stage2", 4, 12.0), _measured("final", 6, 10.0)]
    _finished_sweep(tmp_path, config, records)
    lines, figures = [], []
    write_figure = confusion.files.write_figure
    monkeypatch.setattr(confusion.files, "write_figure", lambda path, figure, kind: (
        figures.append(figure), write_figure(path, figure, kind)))
    result = confusion.sweep(config, str(tmp_path), progress=lines.append)
    assert lines == []  # nothing measured again
    # The picture: confusion against depth for each stage, the final network as a line.
    axes = figures[0].axes[0]
    drawn = [(line.get_label(), line.get_xydata().tolist()) for line in axes.lines]
    assert drawn == [("stage1 supernet", [[3, 4.0], [4, 9.5], [5, 10.5]]),
                     ("stage2 supernet", [[3, 10.0], [4, 12.0]]),
                     ("final network (6 cells)", [[0, 10.0], [1, 10.0]])]
    png = (tmp_path / "confusion.png").read_bytes()
    # 6 x 4 inches at 100 dots per inch (the IHDR chunk's width and height).
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (600, 400)
    assert result["measurements"] == records
    assert result["recommended"] == {"stage1_cells": 5, "stage2_cells": 3, "final_cells": 6}
    assert "Recommended: stage 1 with 5 cells, stage 2 with 3 cells, for a final network of 6 cells." \
        in (tmp_path / "confusion.md").read_text()


def _stage1_result(search_dir, per_cell, num_cells=3):
    space = search_space.stage1_space(search_space.SearchSpace(), num_cells, per_cell)
    names = space.set_names(num_cells)
    logits = {name: [{"weights": [1.0 / len(edge)] * len(edge)} for edge in cell]
              for name, cell in zip(names, space.cells)}
    winners = {name: [edge[1] for edge in cell] for name, cell in zip(names, space.cells)}
    os.makedirs(search_dir / "stage1")
    (search_dir / "stage1" / "result.json").write_text(json.dumps(
        {"space": space.to_dict(), "num_cells": num_cells, "logits": logits, "winners": winners}))


def test_stage2_winners_come_from_a_search_given_and_per_cell_ones_are_refused(tmp_path):
    config = dataclasses.replace(confusion.CONFUSION_PRESETS["tiny"], stage1_depths=(3,),
                                 stage2_depths=(3,))
    _stage1_result(tmp_path / "search", per_cell=False)
    _finished_sweep(tmp_path / "sweep", config, search_dir=str(tmp_path / "search"))
    result = confusion.sweep(config, str(tmp_path / "sweep"), search_dir=str(tmp_path / "search"),
                             progress=None)
    assert result["stage2_winners_from"] == f"stage 1 of {tmp_path / 'search'}"
    for num_cells in (3, 1):  # per-cell sets: one per cell, however many
        per_cell = tmp_path / f"per_cell{num_cells}"
        _stage1_result(per_cell, per_cell=True, num_cells=num_cells)
        with pytest.raises(ValueError, match=f"^--search_dir: {per_cell} has per-cell logits; "
                                             "use a shared-logits search"):
            confusion.sweep(config, str(tmp_path / "sweep3"), search_dir=str(per_cell), progress=None)
        assert not (tmp_path / "sweep3").exists()
    # Without a search, the genotype's edges stand in for stage 1's winners.
    _finished_sweep(tmp_path / "by_genotype", config)
    assert confusion.sweep(config, str(tmp_path / "by_genotype"), progress=None)[
        "stage2_winners_from"] == "genotype STACNAS_CIFAR10"


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
    with pytest.raises(dataclasses.FrozenInstanceError):  # checked once, in __post_init__
        config.final_cells = 2


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


def test_tiny_sweep_end_to_end(tmp_path, monkeypatch, capsys):
    # One batch per epoch and 3 x 6 batches drawn: the measuring pipeline
    # repeats the data for as long as the estimate draws.
    tiny = dataclasses.replace(confusion.CONFUSION_PRESETS["tiny"], num_train_examples=16,
                               num_iterations=6, seed=0)
    measuring = []  # the pipelines that outlast any training (the measurements')
    train_pipeline = confusion.pipelines.train_pipeline

    def spy(source, batch_size, **kwargs):
        if kwargs["epochs"] > 100:
            measuring.append((kwargs["seed"], kwargs["augment"], batch_size, kwargs["num_examples"]))
        return train_pipeline(source, batch_size, **kwargs)

    monkeypatch.setattr(confusion.pipelines, "train_pipeline", spy)
    lines = []
    result = confusion.sweep(tiny, str(tmp_path / "sweep"), progress=lines.append)
    # Each setting measured on batches of its own, none the training's (seed 0), unaugmented.
    seeds = [seed for seed, *_ in measuring]
    assert len(set(seeds)) == 3 and 0 not in seeds
    assert {tuple(rest) for _, *rest in measuring} == {(augmentation.Augment(), 16, 16)}
    settings = [(m["setting"], m["cells"]) for m in result["measurements"]]
    assert settings == [("stage1", 3), ("stage2", 3), ("final", 3)]
    for m in result["measurements"]:
        assert len(m["zetas"]) == 6 and all(z >= 0 for z in m["zetas"]) and m["parameters"] > 0
    assert [line.split(":")[0] for line in lines] == [
        "[1/3] stage1 3 cells", "[2/3] stage2 3 cells", "[3/3] final 3 cells"]
    final = result["measurements"][-1]
    assert lines[-1].endswith(f"zeta {final['zeta_mean']:.4g}, {final['parameters']:,} parameters, "
                              f"confusion {final['confusion']:.4g}")
    # Equation 8 counts the network's weights: the trained network's own count (no auxiliary head).
    trained = json.loads((tmp_path / "sweep" / "final_3cells" / "metrics.json").read_text())
    assert final["parameters"] == trained["parameters"]
    assert final["confusion"] == pytest.approx(final["zeta_mean"] / (trained["parameters"] / 1e6))
    # Each supernet setting trains the stage it names, on that stage's candidates: stage 2
    # on the groups the genotype's edges imply (shared logits, as the paper's default).
    space = search_space.SearchSpace()
    expected = {1: search_space.stage1_space(space, 3, False),
                2: search_space.stage2_space(space, confusion.genotype_stage2_winners(
                    genotype_lib.PUBLISHED["STACNAS_CIFAR10"], space), 3, 3, False)}
    for stage in (1, 2):
        folder = tmp_path / "sweep" / f"stage{stage}_3cells"
        assert sorted(p.name for p in folder.iterdir() if p.name.startswith("stage")) == [f"stage{stage}"]
        weights = json.loads((folder / f"stage{stage}" / "history.json").read_text())[-1]["weights"]
        # Candidates per edge (the history records each edge's softmax weights, one per candidate).
        assert [[len(edge) for edge in weights[name]] for name in ("normal", "reduce")] == [
            [len(edge) for edge in cell] for cell in expected[stage].cells]
    assert expected[1].cells != expected[2].cells
    assert capsys.readouterr().out == ""  # only `progress` speaks: the trainings run quietly
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
