"""Operator correlation -> operator groups (StacNAS section 2.3.2, appendix B).

A supernet holding every candidate op on every edge is trained; training
images are then passed through it and, on every edge, the flattened outputs of
the measured ops (all but `none` and `skip_connect`) are correlated (Pearson).
Ops whose outputs correlate are clustered into groups (average-linkage
hierarchical clustering on 1 - correlation); `skip_connect` is a group of its
own, as in the paper.

The statistics are accumulated batch by batch with centred sums (Chan et al.'s
pairwise update), so any number of images fits in memory and the result does
not suffer the cancellation of raw second moments.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from scipy.cluster import hierarchy
from scipy.spatial import distance

from stacnas_tf import files
from stacnas_tf import search_space


@dataclasses.dataclass
class CorrelationAccumulator:
    """Running mean and centred cross-products of K flattened signals."""

    count: int = 0
    mean: np.ndarray | None = None  # [K]
    comoments: np.ndarray | None = None  # [K, K]: sum of (x - mean)(x - mean)^T

    def update(self, count: int, mean: np.ndarray, comoments: np.ndarray) -> None:
        """Adds a batch given by its element count, mean and centred cross-products."""
        mean, comoments = np.asarray(mean, np.float64), np.asarray(comoments, np.float64)
        if self.count == 0:
            self.count, self.mean, self.comoments = count, mean, comoments
            return
        total = self.count + count
        delta = mean - self.mean
        self.comoments = (self.comoments + comoments
                          + np.outer(delta, delta) * self.count * count / total)
        self.mean = self.mean + delta * count / total
        self.count = total

    def add(self, signals: np.ndarray) -> None:
        """Adds a [K, M] array: M more elements of each of the K signals."""
        signals = np.asarray(signals, np.float64)
        mean = signals.mean(axis=1)
        centred = signals - mean[:, None]
        self.update(signals.shape[1], mean, centred @ centred.T)

    def correlation(self) -> np.ndarray:
        """Pearson correlation matrix [K, K]; a constant signal correlates 0 with others."""
        variance = np.diag(self.comoments)
        scale = np.sqrt(np.outer(variance, variance))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(scale > 0, self.comoments / np.where(scale > 0, scale, 1), 0.0)
        np.fill_diagonal(corr, 1.0)
        return np.clip(corr, -1.0, 1.0)


def batch_statistics(outputs):
    """(count, mean [K], centred cross-products [K, K]) of K same-shaped tensors (in TF)."""
    signals = tf.stack([tf.reshape(tf.cast(o, tf.float32), [-1]) for o in outputs])
    count = tf.shape(signals)[1]
    mean = tf.reduce_mean(signals, axis=1)
    centred = signals - mean[:, None]
    return count, mean, tf.matmul(centred, centred, transpose_b=True)


def measured_ops(candidates) -> list[int]:
    """Indices of the candidates whose outputs are correlated: not `none`, not skip."""
    return [k for k, op in enumerate(candidates) if op not in (search_space.NONE, search_space.SKIP)]


def edge_names(model) -> list[str]:
    endpoints = search_space.edge_endpoints(model.search_cells[0].num_nodes)
    return [f"{cell.name}/edge_{source}_{node}" for cell in model.search_cells
            for source, node in endpoints]


def make_statistics_fn(model):
    """A tf.function: images -> per edge (count, mean, cross-products) of the measured ops."""

    @tf.function
    def statistics(images):
        collected = []

        def on_cell(cell, inputs, weights):
            states = cell.states(inputs, weights, training=False)
            outputs = cell.edge_op_outputs(states, training=False)
            for candidates, edge_outputs in zip(cell.candidates, outputs):
                collected.append(batch_statistics(
                    [edge_outputs[candidates[k]] for k in measured_ops(candidates)]))

        model.run_cells(images, training=False, on_cell=on_cell)
        return collected

    return statistics


def measure(model, batches, num_images: int, progress=None) -> dict:
    """Correlations of the measured ops on every edge of `model` (a SearchNetwork
    whose edges all hold the same candidates) over `num_images` images of `batches`."""
    candidates = model.search_cells[0].candidates[0]
    for cell in model.search_cells:
        if any(edge != candidates for edge in cell.candidates):
            raise ValueError("correlation: every edge of the supernet must hold the same candidates "
                             "(a flat search, --grouping=flat).")
    ops = [candidates[k] for k in measured_ops(candidates)]
    if len(ops) < 2:
        raise ValueError(f"correlation: need at least two measured ops, got {ops}.")
    statistics = make_statistics_fn(model)
    names = edge_names(model)
    accumulators = [CorrelationAccumulator() for _ in names]
    seen = 0
    for images, _ in batches:
        for accumulator, (count, mean, comoments) in zip(accumulators, statistics(images)):
            accumulator.update(int(count), mean.numpy(), comoments.numpy())
        seen += int(images.shape[0])
        if progress:
            progress(min(seen, num_images))
        if seen >= num_images:
            break
    if seen < num_images:
        raise ValueError(f"--num_images: asked for {num_images} images, the data holds {seen}.")
    per_edge = [a.correlation() for a in accumulators]
    mean = np.mean(per_edge, axis=0)
    np.fill_diagonal(mean, 1.0)
    return {
        "ops": ops, "num_images": seen, "mean": mean.tolist(),
        # The paper's section 2.3.2 reads the first edge of the last cell.
        "first_edge_last_cell": per_edge[len(names) - len(model.search_cells[-1].candidates)].tolist(),
        "edges": [{"edge": name, "correlation": c.tolist()} for name, c in zip(names, per_edge)],
    }


def cluster(ops, correlation, min_correlation: float, add_skip: bool = True):
    """Groups of ops whose average-linkage correlation is at least `min_correlation`.

    Members of a group and the groups are ordered as in `search_space.PRIMITIVES`,
    so a group's representative (its first member) follows the paper's choice.
    `skip_connect` is its own group, first, when `add_skip`.
    """
    correlation = np.asarray(correlation, np.float64)
    if correlation.shape != (len(ops), len(ops)):
        raise ValueError(f"correlation: expected a {len(ops)}x{len(ops)} matrix, got {correlation.shape}.")
    if not -1 <= min_correlation <= 1:
        raise ValueError(f"--min_correlation: expected a value in [-1, 1], got {min_correlation}.")
    order = {op: k for k, op in enumerate(search_space.PRIMITIVES)}
    if len(ops) == 1:
        labels = [1]
    else:
        dissimilarity = 1.0 - (correlation + correlation.T) / 2
        np.fill_diagonal(dissimilarity, 0.0)
        linkage = hierarchy.linkage(distance.squareform(np.clip(dissimilarity, 0, 2)), method="average")
        labels = hierarchy.fcluster(linkage, t=1.0 - min_correlation, criterion="distance")
    groups = {}
    for op, label in zip(ops, labels):
        groups.setdefault(int(label), []).append(op)
    groups = sorted((sorted(g, key=order.get) for g in groups.values()), key=lambda g: order[g[0]])
    if add_skip:
        groups = [[search_space.SKIP]] + groups
    return tuple(tuple(g) for g in groups)


def heatmap_png(path_png: str, ops, correlation, title: str) -> None:
    """Writes the correlation matrix as an annotated heatmap (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    correlation = np.asarray(correlation)
    figure, axes = plt.subplots(figsize=(1.1 * len(ops) + 2, 1.1 * len(ops) + 1))
    image = axes.imshow(correlation, vmin=-1, vmax=1, cmap="RdBu_r")
    axes.set_xticks(range(len(ops)), ops, rotation=45, ha="right")
    axes.set_yticks(range(len(ops)), ops)
    for i in range(len(ops)):
        for j in range(len(ops)):
            axes.text(j, i, f"{correlation[i, j]:.2f}", ha="center", va="center", fontsize=8,
                      color="white" if abs(correlation[i, j]) > 0.6 else "black")
    axes.set_title(title)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    files.write_figure(path_png, figure, "png")
    plt.close(figure)
