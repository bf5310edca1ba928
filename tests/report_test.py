"""The search report (HTML page, pictures, report.json) and its TensorBoard
summaries, from a real (tiny) search."""

import glob
import json
import logging
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from stacnas_tf import config as config_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import report
from stacnas_tf import search_loop
from stacnas_tf import search_space

import helpers

TINY = config_lib.PRESETS["smoke"].replace(stage1_epochs=2, stage2_epochs=2, num_train_examples=64)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def search_and_warnings(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("search"))
    records = _Records()
    logging.getLogger("absl").addHandler(records)
    try:
        genotype = search_loop.run_search(TINY, out, verbose=0)
    finally:
        logging.getLogger("absl").removeHandler(records)
    return out, genotype, records.messages


@pytest.fixture(scope="module")
def searched(search_and_warnings):
    return search_and_warnings[:2]


def test_op_counts_by_hand():
    # DARTS_V2: normal cell sep, sep, sep, sep, sep, skip, skip, dil; reduction
    # cell max, max, skip, max, max, skip, skip, max.
    assert report.op_counts(genotype_lib.PUBLISHED["DARTS_V2"]) == {
        "normal_skip_connect": 2, "normal_parameter_free": 2,
        "reduce_skip_connect": 3, "reduce_parameter_free": 8}
    assert [report.is_parameter_free(op) for op in (
        "skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "dil_conv_5x5",
        "conv_7x1_1x7", "none")] == [True, True, True, False, False, False, True]


def test_max_weight_ratio_is_one_at_uniform_and_k_at_one_hot():
    assert report.max_weight_ratio([[0.2] * 5, [0.5, 0.5]]) == pytest.approx(1.0)
    # Edge 1: one of 3 candidates holds everything (3); edge 2: uniform (1).
    assert report.max_weight_ratio([[1.0, 0.0, 0.0], [0.5, 0.5]]) == pytest.approx(2.0)
    assert report.max_weight_ratio([[0.3, 0.7]]) == pytest.approx(1.4)


def test_op_margin_is_best_minus_runner_up_leaving_out_none():
    candidates = [("none", "max_pool_3x3", "avg_pool_3x3"), ("none", "skip_connect"),
                  ("none", "sep_conv_3x3", "sep_conv_5x5")]
    # `none` (0.6) is the heaviest on edge 1 but is never chosen: 0.3 - 0.1.
    weights = [[0.6, 0.3, 0.1], [0.2, 0.8], [0.1, 0.45, 0.45]]
    assert report.op_margins(candidates, weights) == pytest.approx([0.2, None, 0.0])


def test_stage2_heatmap_rows_name_each_edges_own_ops():
    candidates = [("none", "skip_connect"), ("none", "max_pool_3x3", "avg_pool_3x3"),
                  ("none", "sep_conv_3x3", "sep_conv_5x5")]
    columns, rows = report.heatmap_labels(candidates, [(0, 2), (1, 2), (2, 3)])
    assert columns == ["none", "op 1", "op 2"]
    # Edges named as in the cell diagrams: inputs c_{k-2}, c_{k-1}, nodes from 0.
    assert rows == ["$c_{k-2}$ -> 0: none | skip_connect",
                    "$c_{k-1}$ -> 0: none | max_pool_3x3 | avg_pool_3x3",
                    "0 -> 1: none | sep_conv_3x3 | sep_conv_5x5"]
    # Stage 1: every edge the same candidates, which the columns name.
    shared = [("none", "skip_connect", "max_pool_3x3")] * 2
    assert report.heatmap_labels(shared, [(0, 2), (1, 2)]) == (
        ["none", "skip_connect", "max_pool_3x3"], ["$c_{k-2}$ -> 0", "$c_{k-1}$ -> 0"])


def test_undecided_weights_are_named_and_decided_ones_are_not():
    near_uniform = [[[0.21, 0.2, 0.2, 0.2, 0.19]] * 14]
    warning = report.undecided_warning(near_uniform)
    assert "1.050x the uniform weight" in warning and "--arch_lr" in warning
    assert report.undecided_warning([[[0.5, 0.25, 0.25]] * 14]) is None  # 1.5x


def test_tensorboard_heatmap_is_large_labelled_and_spans_small_differences():
    # Weights within a thousandth of uniform (1/5) still get the whole colour range.
    weights = [[0.2005, 0.1995, 0.2, 0.2, 0.2]] * 14
    candidates = [("none", "skip_connect", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3")] * 14
    image = report.heatmap_rgb(weights, candidates, "title")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 300 and image.shape[1] >= 300
    # The darkest and lightest cells differ strongly though the weights barely do.
    grey = image.astype(int).sum(-1)
    assert grey.max() - grey.min() > 300


def test_every_search_writes_its_report(searched):
    out, genotype = searched
    page = open(os.path.join(out, "report", "report.html")).read()
    images = re.findall(r'<img src="([^"]+)"', page)
    # Cells (2 per stage), heatmaps (2 per stage), trajectories (2 per stage),
    # op counts, curves.
    assert len(images) == 14 and len(set(images)) == 14
    for name in images:
        with Image.open(os.path.join(out, "report", name)) as picture:
            picture.load()
            assert picture.format == "PNG" and min(picture.size) > 50
    assert genotype.to_darts().replace("'", "&#x27;") in page
    for text in ("Group activated on every edge", "Skip connections and parameter-free ops",
                 "Loss and accuracy", "Final networks of this genotype", "imagenet_mobile",
                 "Largest weight on an edge"):
        assert text in page


def test_a_search_ending_near_uniform_weights_warns_in_its_log_and_report(search_and_warnings):
    # Two epochs on 64 images leave the weights within a few percent of uniform.
    out, _, messages = search_and_warnings
    assert sum("ended close to uniform" in m for m in messages) == 1
    page = open(os.path.join(out, "report", "report.html")).read()
    assert '<p class="warning"><b>Warning:</b> the architecture weights ended close' in page


def test_report_numbers_follow_from_the_search(searched):
    out, genotype = searched
    numbers = json.loads(open(os.path.join(out, "report", "report.json")).read())
    stage2 = numbers["stages"]["2"]
    assert stage2["genotype"] == genotype.to_darts()
    assert len(stage2["op_counts_per_epoch"]) == 2
    assert stage2["op_counts_per_epoch"][-1] == report.op_counts(genotype)
    result = json.loads(open(os.path.join(out, "stage1", "result.json")).read())
    assert numbers["stages"]["1"]["activated_groups"] == result["activated_groups"]
    # The first epoch's stage-1 genotype, derived independently of the report.
    history = json.loads(open(os.path.join(out, "stage1", "history.json")).read())
    space = search_space.StageSpace.from_dict(result["space"])
    first = genotype_lib.derive_genotype(space, list(history[0]["weights"].values()), 3)
    assert numbers["stages"]["1"]["op_counts_per_epoch"][0] == report.op_counts(first)
    # Closeness to uniform per epoch, recomputed here from the history.
    ratios = numbers["stages"]["1"]["max_weight_ratio_per_epoch"]["normal"]
    by_hand = [np.mean([max(edge) * len(edge) for edge in entry["weights"]["normal"]])
               for entry in history]
    np.testing.assert_allclose(ratios, by_hand, rtol=1e-6)
    # The final margins of every stage-2 edge, recomputed from its last weights.
    stage2_history = json.loads(open(os.path.join(out, "stage2", "history.json")).read())
    for name, margins in stage2["op_margins"].items():
        for margin, weights, edge in zip(margins, stage2_history[-1]["weights"][name],
                                         json.loads(open(os.path.join(
                                             out, "stage2", "result.json")).read())["logits"][name]):
            ops = sorted((w for w, op in zip(weights, edge["candidates"]) if op != "none"))
            assert margin == (pytest.approx(ops[-1] - ops[-2]) if len(ops) > 1 else None)
    page = open(os.path.join(out, "report", "report.html")).read()
    assert "Margin of each edge's chosen op over the runner-up" in page
    # The stage-2 heatmaps' row labels (as drawn) name each edge's own ops, which
    # differ from edge to edge: one legend for every edge would fail here.
    stage2_result = json.loads(open(os.path.join(out, "stage2", "result.json")).read())
    for name, edges in stage2_result["logits"].items():
        rows = stage2["heatmap_labels"][name]["rows"]
        assert [row.split(": ", 1)[1].split(" | ") for row in rows] == [
            edge["candidates"] for edge in edges]
    assert len({row.split(": ", 1)[1] for rows in (
        v["rows"] for v in stage2["heatmap_labels"].values()) for row in rows}) > 1
    assert numbers["stages"]["1"]["heatmap_labels"]["normal"]["columns"] == (
        result["logits"]["normal"][0]["candidates"])
    cifar = numbers["sizes"]["cifar10"]
    assert cifar["num_cells"] == 20 and cifar["parameters"] > 1_000_000


def _summaries(folder):
    import tensorflow as tf

    found = {}
    for path in glob.glob(os.path.join(folder, "**", "events.out.tfevents*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(
                    (value.metadata.plugin_data.plugin_name, event.step))
    return found


def test_tensorboard_has_heatmaps_per_epoch_the_genotype_and_hparams(searched):
    out, _ = searched
    found = _summaries(os.path.join(out, "tensorboard"))
    for stage in (1, 2):
        tags = _summaries(os.path.join(out, "tensorboard", f"stage{stage}"))
        # The weights sit at the steps of Keras's own epoch summaries.
        keras_steps = [step for _, step in tags["epoch_loss"]]
        assert keras_steps == [0, 1]
        assert [step for _, step in tags["architecture_weights/normal"]] == keras_steps
        assert sorted({step for tag, values in tags.items() if tag.startswith("alpha/")
                       for _, step in values}) == keras_steps
        assert tags["architecture_weights/reduce"][0][0] == "images"
    # The stage-2 heatmap, decoded from the event file: a picture of readable size.
    import tensorflow as tf

    sizes = []
    for path in glob.glob(os.path.join(out, "tensorboard", "stage2", "**", "events.out.tfevents*"),
                          recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "architecture_weights/normal":
                    tensor = tf.make_ndarray(value.tensor)
                    sizes.append(tf.io.decode_png(tensor[2]).numpy().shape)
    assert len(sizes) == 2 and all(h >= 300 and w >= 300 for h, w, _ in sizes), sizes
    assert found["genotype"][0][0] == "text"
    assert any(plugin == "hparams" for values in found.values() for plugin, _ in values)


def test_report_is_written_on_demand_into_another_folder(searched, tmp_path):
    out, _ = searched
    path = report.write(out, str(tmp_path / "again"), size_presets=())
    assert os.path.exists(path) and "Final networks" not in open(path).read()
    report.write(out, str(tmp_path / "again"), size_presets=())  # an earlier report: replaced
    assert sorted(os.listdir(tmp_path)) == ["again"]  # nothing staged is left beside it
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("my page")
    (mine / "curves.png").write_text("my picture")
    with pytest.raises(ValueError, match="holds files that are not an earlier report"):
        report.write(out, str(mine), size_presets=())
    assert (mine / "report.html").read_text() == "my page"
    with pytest.raises(ValueError, match="not an earlier report \\(config.json, genotype"):
        report.write(out, out, size_presets=())  # into the search folder itself
    with pytest.raises(ValueError, match="--search_dir: .* holds no config.json"):
        report.write(str(tmp_path), str(tmp_path / "x"))


def test_a_search_killed_before_its_report_writes_it_on_rerun(searched, tmp_path):
    # kill -9 right after genotype.json: no report/, a staging folder of a dead writer.
    out, genotype = searched
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report"))
    abandoned = copy / f".report.partial-{helpers.dead_pid()}-x1y2"
    abandoned.mkdir()
    (abandoned / "report.html").write_text("half")
    live = copy / f".report.partial-{os.getppid()}-a1b2"  # a running writer's: kept
    live.mkdir()
    assert search_loop.run_search(TINY, str(copy), verbose=0) == genotype
    assert (copy / "report" / "report.html").exists()
    assert not abandoned.exists() and live.exists()


def test_a_finished_search_missing_a_stage_is_refused(searched, tmp_path):
    out, _ = searched
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged, ignore=shutil.ignore_patterns("checkpoints", "report"))
    shutil.rmtree(damaged / "stage2")
    with pytest.raises(ValueError, match="holds a genotype but no result of stage 2"):
        report.write(str(damaged), str(tmp_path / "r"), size_presets=())
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("stage,name,content,message", [
    (2, "result.json", lambda r: {k: v for k, v in r.items() if k != "space"},
     'stage2/result.json is not a stage result: expected "space" \\(dict\\)'),
    (1, "result.json", lambda r: {**r, "num_cells": "5"},
     'stage1/result.json is not a stage result: expected "num_cells" \\(int\\)'),
    (1, "result.json", lambda r: {**r, "logits": {name: edges[:3] for name, edges in r["logits"].items()}},
     'stage1/result.json is not a stage result: its "logits" do not match its "space"'),
    (1, "history.json", lambda h: {}, "stage1/history.json is not a search history"),
    (2, "history.json", lambda h: [], "stage2/history.json is not a search history"),
    (1, "history.json", lambda h: [{**h[0], "loss": None}], "stage1/history.json is not a search history"),
])
def test_a_hand_edited_stage_file_is_named_with_what_was_expected(searched, tmp_path, stage, name,
                                                                 content, message):
    out, _ = searched
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged, ignore=shutil.ignore_patterns("checkpoints", "report"))
    path = damaged / f"stage{stage}" / name
    path.write_text(json.dumps(content(json.loads(path.read_text()))))
    with pytest.raises(ValueError, match=f"^--search_dir: .*{message}"):
        report.write(str(damaged), str(tmp_path / "r"), size_presets=())
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium is not installed (apt-get install chromium)")
def test_a_real_browser_shows_the_pictures(searched, tmp_path):
    out, _ = searched
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    screenshot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={screenshot}", "--window-size=1300,4200",
                    "file://" + os.path.join(out, "report", "report.html")],
                   capture_output=True, timeout=180, check=True)
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    # The heatmaps' blues and the plots' coloured lines: a page whose images did
    # not load is black text on white.
    assert ((blue - red > 60) & (blue > 120)).sum() > 5000
    assert ((red - blue > 60) & (red > 150)).sum() > 200  # orange / red plot lines
