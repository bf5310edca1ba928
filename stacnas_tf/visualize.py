"""Pictures: cell diagrams of a genotype (Graphviz) and the architecture
weights of a search over its epochs (matplotlib)."""

from __future__ import annotations

import os

import numpy as np

from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import run_folder
from stacnas_tf import search_space

FORMATS = ("png", "svg")


def render_dot(dot: str, file_format: str) -> bytes:
    """DOT text rendered by Graphviz's `dot` program (Debian package `graphviz`)."""
    import graphviz

    try:
        return graphviz.Source(dot).pipe(format=file_format)
    except graphviz.ExecutableNotFound as e:
        raise ValueError("Graphviz's `dot` program is missing: install it (apt-get install "
                         "graphviz, or ./setup.sh).") from e


def cell_diagrams(genotype: genotype_lib.Genotype, output_dir: str) -> list[str]:
    """Writes normal/reduce (and, for per-cell genotypes, every cell) as PNG and SVG."""
    cells = [("normal", genotype.normal), ("reduce", genotype.reduce)]
    if genotype.cells is not None:
        cells += [(f"cell_{k}_{'reduce' if c.reduction else 'normal'}", c)
                  for k, c in enumerate(genotype.cells)]
    written = []
    for name, cell in cells:
        dot = genotype_lib.cell_to_dot(cell, name)
        for file_format in FORMATS:
            path = os.path.join(output_dir, f"{name}.{file_format}")
            files.write_bytes(path, render_dot(dot, file_format))
            written.append(path)
    return written


def read_history(search: run_folder.SearchFolder | str) -> dict:
    """{stage: history entries} of the stages a search (its folder or the
    folder's path) holds."""
    folder = run_folder.search_folder(search)
    stages = {stage: history for stage in (1, 2)
              if (history := folder.stage(stage).read_history()) is not None}
    if not stages:
        raise ValueError(f"{folder.flag}: {folder.path} holds no stage*/history.json (not a "
                         "search folder).")
    return stages


def weights_history_png(search: run_folder.SearchFolder | str, output_dir: str) -> list[str]:
    """One figure per stage and logit set: the softmax weight of every candidate on
    every edge over the epochs (a panel per edge)."""
    folder = run_folder.search_folder(search)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    for stage, history in read_history(folder).items():
        if not history:
            continue
        stage_folder = folder.stage(stage)
        space = stage_folder.read_result()["stage_space"] if stage_folder.has_result() else None
        epochs = [entry["epoch"] for entry in history]
        for set_index, name in enumerate(history[0]["weights"]):
            weights = [entry["weights"][name] for entry in history]  # [epoch][edge][candidate]
            num_edges = len(weights[0])
            endpoints = search_space.edge_endpoints(search_space.nodes_for_edges(num_edges))
            columns = 5
            rows = -(-num_edges // columns)
            figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows),
                                        sharex=True, sharey=True, squeeze=False)
            for edge in range(num_edges):
                ax = axes[edge // columns][edge % columns]
                series = np.array([w[edge] for w in weights])
                candidates = (space.cells[set_index][edge] if space is not None
                              else [f"op {k}" for k in range(series.shape[1])])
                for k, op in enumerate(candidates):
                    ax.plot(epochs, series[:, k], label=op)
                ax.set_title(f"edge {endpoints[edge][0]}->{endpoints[edge][1]}", fontsize=9)
            for edge in range(num_edges, rows * columns):
                axes[edge // columns][edge % columns].axis("off")
            handles, labels = axes[0][0].get_legend_handles_labels()
            figure.legend(handles, labels, loc="lower right", fontsize=8)
            figure.suptitle(f"stage {stage}, {name}: softmax weights per epoch")
            figure.supxlabel("epoch")
            figure.tight_layout()
            path = os.path.join(output_dir, f"stage{stage}_{name}_weights.png")
            files.write_figure(path, figure, "png")
            plt.close(figure)
            written.append(path)
    return written
