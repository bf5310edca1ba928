import os
import xml.etree.ElementTree as ElementTree

import pytest
from PIL import Image

from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import search_space
from stacnas_tf import visualize


def _check_png(path):
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 50 and image.size[1] > 50


def test_cell_diagrams_are_valid_png_and_svg_with_every_op(tmp_path):
    genotype = genotype_lib.PUBLISHED["STACNAS_CIFAR10"]
    written = visualize.cell_diagrams(genotype, str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == [
        "normal.png", "normal.svg", "reduce.png", "reduce.svg"]
    for path in written:
        if path.endswith(".png"):
            _check_png(path)
    root = ElementTree.parse(tmp_path / "reduce.svg").getroot()
    assert root.tag.endswith("svg")
    labels = [t.text for t in root.iter() if t.tag.endswith("text")]
    for op, _ in genotype.reduce.edges:
        assert op in labels
    assert labels.count("dil_conv_5x5") == 3


def test_per_cell_genotypes_draw_every_cell(tmp_path):
    space = search_space.SearchSpace()
    cells = tuple(genotype_lib.random_genotype(space, k).normal if k != 1 else
                  genotype_lib.random_genotype(space, k).reduce for k in range(3))
    genotype = genotype_lib.Genotype(normal=cells[0], reduce=cells[1], cells=cells)
    names = {os.path.basename(p) for p in visualize.cell_diagrams(genotype, str(tmp_path))}
    assert {"cell_0_normal.svg", "cell_1_reduce.png", "cell_2_normal.png"} <= names


def test_weights_history_plot(tmp_path):
    stage = tmp_path / "search" / "stage1"
    stage.mkdir(parents=True)
    candidates = search_space.SearchSpace().stage1_candidates()
    weights = {"normal": [[0.2] * 5] * 14, "reduce": [[0.1, 0.2, 0.3, 0.2, 0.2]] * 14}
    files.write_json(str(stage / "history.json"), [
        {"epoch": e, "loss": 1.0, "accuracy": 0.5, "weights": weights} for e in (1, 2, 3)])
    files.write_json(str(stage / "result.json"), {
        "space": search_space.StageSpace.shared(candidates, candidates).to_dict(), "num_cells": 5,
        "logits": {name: [{"weights": edge} for edge in edges] for name, edges in weights.items()},
        "winners": {}})
    written = visualize.weights_history_png(str(tmp_path / "search"), str(tmp_path))
    assert [os.path.basename(p) for p in written] == ["stage1_normal_weights.png",
                                                      "stage1_reduce_weights.png"]
    for path in written:
        _check_png(path)
    with pytest.raises(ValueError, match="not a search folder"):
        visualize.read_history(str(tmp_path))


def test_cell_diagram_with_subscript_labels_renders():
    # The inputs' HTML-like labels (c<SUB>k-2</SUB>) are drawn by Graphviz, not refused.
    png = visualize.render_dot(
        genotype_lib.cell_to_dot(genotype_lib.PUBLISHED["DARTS_V2"].reduce, "reduce"), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
