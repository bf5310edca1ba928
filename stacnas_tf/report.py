"""What a search did, shown: one HTML page with its pictures (and report.json
with the numbers behind them).

From a finished (or running) search folder:
  * the cell derived from each stage's final weights, drawn;
  * the architecture weights per edge (edges x candidates heatmaps) at the
    first, middle and last epoch of each stage, and each weight over epochs;
  * the group every edge activated in stage 1;
  * skip connections and parameter-free ops in the cell derived from every
    epoch's weights (a drift to parameter-free ops is DARTS's known failure);
  * loss and accuracy per epoch;
  * how far the final weights are from uniform, with a warning when the derived
    cell rests on small differences between them;
  * parameters and multiply-adds of the paper's final networks for the genotype.

`stacnas_tf.search` writes it at the end of every search (`report/`);
`stacnas-report --search_dir=...` writes it on demand.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil

import numpy as np

from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import run_folder
from stacnas_tf import search_space
from stacnas_tf import visualize

# Final networks described in the report: the paper's CIFAR and ImageNet-mobile sizes.
SIZE_PRESETS = ("cifar10", "imagenet_mobile")
# Heatmaps are drawn for at most this many logit sets (per-cell searches have one per cell).
MAX_HEATMAP_SETS = 4
# Below this `max_weight_ratio` the chosen ops lead by less than a tenth of the
# uniform weight: short searches end there (alpha takes one small Adam step per
# batch), and their cells change with the seed and even with the thread count
# (float sums in another order): measured, docs/analyses.md.
UNDECIDED_RATIO = 1.1


def is_parameter_free(op: str) -> bool:
    """Skip connections and pools (a registered op counts as having parameters)."""
    spec = search_space.OP_TABLE.get(op)
    return spec is not None and spec.parameter_free


def op_counts(genotype: genotype_lib.Genotype) -> dict:
    """Skip connections and parameter-free ops of the normal and reduction cells."""
    counts = {}
    for name, cell in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        ops = [op for op, _ in cell.edges]
        counts[f"{name}_skip_connect"] = ops.count(search_space.SKIP)
        counts[f"{name}_parameter_free"] = sum(is_parameter_free(op) for op in ops)
    return counts


def max_weight_ratio(weights) -> float:
    """How far a cell's architecture weights ([edges][candidates] softmax
    weights) are from uniform: the mean over edges of the largest weight times
    the edge's number of candidates. 1 is uniform; k is one of k candidates
    holding all the weight."""
    return float(np.mean([np.max(edge) * len(edge) for edge in weights]))


def op_margins(candidates, weights) -> list:
    """Per edge of a cell: the softmax weight of its strongest non-`none` op minus that
    of the runner-up (None on an edge with a single op). How far the chosen op is
    from being replaced: on an edge with a margin near 0, noise (the seed, even the
    thread count) can swap it."""
    margins = []
    for edge, w in zip(candidates, weights):
        ops = sorted((weight for op, weight in zip(edge, w) if op != search_space.NONE),
                     reverse=True)
        margins.append(float(ops[0] - ops[1]) if len(ops) > 1 else None)
    return margins


def undecided_warning(weights_by_set) -> str | None:
    """A sentence for the user when the final weights are too close to uniform
    to trust the derived cell (see `UNDECIDED_RATIO`), else None."""
    ratio = float(np.mean([max_weight_ratio(w) for w in weights_by_set]))
    if ratio >= UNDECIDED_RATIO:
        return None
    return (f"the architecture weights ended close to uniform (the largest weight on an edge is "
            f"{ratio:.3f}x the uniform weight on average, below {UNDECIDED_RATIO}): the derived "
            "cell rests on small differences and may change with the seed; search for more "
            "epochs (or with a larger --arch_lr) before trusting it.")


def _stages(folder: run_folder.SearchFolder) -> dict:
    """{stage: (space, num_cells, history)} of the stages that have a result."""
    stages = {}
    for stage in (1, 2):
        stage_folder = folder.stage(stage)
        if not stage_folder.has_result():
            continue
        history = stage_folder.read_history()
        if history is None:
            continue
        result = stage_folder.read_result()
        stages[stage] = (result["stage_space"], result["num_cells"], history, result)
    if not stages:
        raise ValueError(f"{folder.flag}: {folder.path} holds no finished stage "
                         "(stage1/result.json).")
    return stages


def epoch_genotypes(space, num_cells, history, num_nodes) -> list[genotype_lib.Genotype]:
    """The genotype derived from every epoch's weights."""
    return [genotype_lib.derive_genotype(space, list(entry["weights"].values()), num_cells,
                                         num_nodes) for entry in history]


def _weight_matrix(weights) -> np.ndarray:
    """Edges x candidates, NaN where an edge has fewer candidates than the widest."""
    matrix = np.full((len(weights), max(len(w) for w in weights)), np.nan)
    for row, values in enumerate(weights):
        matrix[row, :len(values)] = values
    return matrix


def heatmap_rgb(weights, candidates, title: str = "") -> np.ndarray:
    """An edges x candidates softmax-weight matrix drawn as a labelled heatmap,
    as a uint8 RGB image for TensorBoard: rows name the edges (and, in stage 2,
    each edge's own ops), columns the candidates, and a colour bar the weights.
    The colour range follows the data, so differences of a few thousandths
    (weights near uniform) stay visible."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from PIL import Image

    matrix = _weight_matrix(weights)
    width = matrix.shape[1]
    endpoints = search_space.edge_endpoints(search_space.nodes_for_edges(len(weights)))
    columns, rows = heatmap_labels(candidates, endpoints)
    figure, ax = plt.subplots(figsize=(2.2 + 0.9 * width + 0.06 * max(map(len, rows)),
                                       0.3 * len(weights) + 1.6), dpi=100,
                              constrained_layout=True)
    low, high = np.nanmin(matrix), np.nanmax(matrix)
    image = ax.imshow(matrix, vmin=low, vmax=max(high, low + 1e-6), cmap="Blues", aspect="auto")
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xticks(range(width), columns, rotation=45, ha="right", fontsize=7)
    figure.colorbar(image, ax=ax, fraction=0.05).ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def heatmap_labels(candidates, endpoints) -> tuple[list[str], list[str]]:
    """(column labels, row labels) of a heatmap of edges x candidates, edges named
    as in the cell diagrams (c_{k-2}, c_{k-1}, then nodes 0, 1, ...). Where every
    edge searches the same ops (stage 1, flat) the columns name them; otherwise
    (stage 2: each edge its own group) each row names its edge's own ops, in
    column order, and the columns their positions."""
    width = max(len(edge) for edge in candidates)
    # The cell diagrams' names: inputs c_{k-2}, c_{k-1} (as subscripts), nodes from 0.
    states = {0: "$c_{k-2}$", 1: "$c_{k-1}$"}
    edges = [f"{states.get(a, a - 2)} -> {b - 2}" for a, b in endpoints]
    if all(edge == candidates[0] for edge in candidates):
        return list(candidates[0]), edges
    columns = ["none" if all(edge[0] == search_space.NONE for edge in candidates) else "op 1"]
    columns += [f"op {k + (columns[0] != 'none')}" for k in range(1, width)]
    rows = [f"{name}: {' | '.join(edge)}" for name, edge in zip(edges, candidates)]
    return columns, rows


def _heatmaps_png(stage, space, history, output_dir, plt) -> tuple[list[str], dict]:
    """(the heatmap pictures, each logit set's row labels as drawn)."""
    written, labels = [], {}
    epochs = sorted({0, len(history) // 2, len(history) - 1})
    names = list(history[0]["weights"])[:MAX_HEATMAP_SETS]
    for set_index, name in enumerate(names):
        candidates = space.cells[set_index]
        width = max(len(edge) for edge in candidates)
        endpoints = search_space.edge_endpoints(search_space.nodes_for_edges(len(candidates)))
        figure, axes = plt.subplots(1, len(epochs), figsize=(3.3 * len(epochs) + 1, 0.32 *
                                                              len(candidates) + 2.2),
                                    squeeze=False, constrained_layout=True)
        matrices = []
        for epoch in epochs:
            matrices.append(_weight_matrix(history[epoch]["weights"][name]))
        # One colour scale for the figure's epochs, spanning the weights shown:
        # early weights all lie near 1/candidates, and a 0-1 scale hides them.
        low, high = np.nanmin(matrices), np.nanmax(matrices)
        for ax, epoch, matrix in zip(axes[0], epochs, matrices):
            image = ax.imshow(matrix, vmin=low, vmax=max(high, low + 1e-6), cmap="Blues",
                              aspect="auto")
            ax.set_title(f"epoch {history[epoch]['epoch']}", fontsize=9)
            columns, rows = heatmap_labels(candidates, endpoints)
            labels[name] = {"columns": columns, "rows": rows}
            ax.set_yticks(range(len(candidates)), rows, fontsize=7)
            ax.set_xticks(range(width), columns, rotation=60, ha="right", fontsize=7)
        figure.colorbar(image, ax=axes[0].tolist(), fraction=0.03)
        figure.suptitle(f"stage {stage}, {name} cell: softmax weights (edges x candidates)",
                        fontsize=10)
        path = os.path.join(output_dir, f"stage{stage}_{name}_heatmap.png")
        files.write_figure(path, figure, "png")
        plt.close(figure)
        written.append(path)
    return written, labels


def _counts_png(counts_by_stage, output_dir, plt) -> str:
    figure, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    offset = 0
    for stage, counts in counts_by_stage.items():
        epochs = np.arange(1, len(counts) + 1) + offset
        for key, style in (("normal_skip_connect", "-"), ("normal_parameter_free", "--"),
                           ("reduce_skip_connect", ":"), ("reduce_parameter_free", "-.")):
            ax.plot(epochs, [c[key] for c in counts], style, marker="o", markersize=3,
                    label=f"stage {stage}: {key.replace('_', ' ')}")
        offset += len(counts)
        ax.axvline(offset + 0.5, color="grey", linewidth=0.5)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (stage 1, then stage 2)")
    ax.set_ylabel("edges of the derived cell")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title("skip connections and parameter-free ops in each epoch's derived cell",
                 fontsize=9)
    path = os.path.join(output_dir, "op_counts.png")
    files.write_figure(path, figure, "png")
    plt.close(figure)
    return path


def _curves_png(stages, output_dir, plt) -> str:
    figure, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
    for stage, (_, _, history, _) in stages.items():
        epochs = [entry["epoch"] for entry in history]
        loss_ax.plot(epochs, [entry["loss"] for entry in history], marker="o", label=f"stage {stage}")
        accuracy_ax.plot(epochs, [entry["accuracy"] for entry in history], marker="o",
                         label=f"stage {stage}")
    loss_ax.set_title("training loss", fontsize=9)
    accuracy_ax.set_title("training accuracy", fontsize=9)
    for ax in (loss_ax, accuracy_ax):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    path = os.path.join(output_dir, "curves.png")
    files.write_figure(path, figure, "png")
    plt.close(figure)
    return path


def check_output_dir(output_dir: str) -> None:
    """Refuses a folder that is neither new, empty, nor an earlier report: a
    report never mixes into a run folder or replaces the user's own files."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir: {output_dir} exists and is not a folder.")
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return
    names = os.listdir(output_dir)
    earlier = os.path.join(output_dir, "report.json")
    try:
        is_report = "search_dir" in files.read_json(earlier)
    except (OSError, ValueError, TypeError):
        is_report = False
    foreign = [n for n in names if not (n in ("report.html", "report.json") or n.endswith(".png"))]
    if not is_report or foreign:
        raise ValueError(f"--output_dir: {output_dir} holds files that are not an earlier report "
                         f"({', '.join(sorted(foreign or names)[:3])}); choose a new or empty "
                         "folder.")


def write(search: run_folder.SearchFolder | str, output_dir: str | None = None,
          size_presets: tuple[str, ...] = SIZE_PRESETS) -> str:
    """Writes report.html, report.json and the pictures of a search (its folder
    or the folder's path) into `output_dir` (default: the search folder's
    report/), replacing an earlier report there; returns the HTML page's path.
    The report is written beside it first and renamed into place, so an
    interrupted report leaves the earlier one whole."""
    folder = run_folder.search_folder(search)
    config = folder.read_config()
    stages = _stages(folder)
    expected = (1,) if config.grouping == "flat" else (1, 2)
    missing = [stage for stage in expected if stage not in stages]
    if missing and folder.has_genotype():
        # A finished search lacking a stage's files is damaged, not partial.
        raise ValueError(f"{folder.flag}: {folder.path} holds a genotype but no result of stage "
                         f"{missing[0]} (stage{missing[0]}/result.json, history.json).")
    final_dir = os.path.abspath(output_dir or folder.report_dir)
    check_output_dir(final_dir)
    parent = files.prepare_output_dir(os.path.dirname(final_dir), "--output_dir's parent")
    prefix = f".{os.path.basename(final_dir)}.partial-"
    _remove_abandoned(parent, prefix)
    # The writer's process id in the name: a later run can tell an abandoned
    # staging folder (its writer killed) from one still being written.
    staging = files.make_temp_dir(parent, f"{prefix}{os.getpid()}-")
    try:
        _write_into(folder, staging, config, stages, size_presets)
        files.replace_folder(staging, final_dir)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return os.path.join(final_dir, "report.html")


def _remove_abandoned(parent: str, prefix: str) -> None:
    """Removes staging folders of reports whose writer no longer runs (killed
    before it could clean up)."""
    for name in os.listdir(parent):
        match = re.fullmatch(re.escape(prefix) + r"(\d+)-.*", name)
        if not match or not os.path.isdir(os.path.join(parent, name)):
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def _write_into(folder, output_dir, config, stages, size_presets) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    pictures, numbers = {}, {"search_dir": os.path.abspath(folder.path), "stages": {}}
    counts_by_stage = {}
    for stage, (space, num_cells, history, result) in stages.items():
        genotypes = epoch_genotypes(space, num_cells, history, config.num_nodes)
        counts_by_stage[stage] = [op_counts(g) for g in genotypes]
        final = genotypes[-1]
        cells = []
        for name, cell in (("normal", final.normal), ("reduce", final.reduce)):
            path = os.path.join(output_dir, f"stage{stage}_{name}_cell.png")
            files.write_bytes(path, visualize.render_dot(
                genotype_lib.cell_to_dot(cell, f"stage {stage}: {name} cell"), "png"))
            cells.append(path)
        pictures[f"stage{stage}_cells"] = cells
        pictures[f"stage{stage}_heatmaps"], heatmap_labels_by_set = _heatmaps_png(
            stage, space, history, output_dir, plt)
        numbers["stages"][stage] = {
            "num_cells": num_cells, "epochs": len(history), "genotype": final.to_darts(),
            "op_counts_per_epoch": counts_by_stage[stage],
            "final_loss": history[-1]["loss"], "final_accuracy": history[-1]["accuracy"],
            "activated_groups": result.get("activated_groups"),
            "max_weight_ratio_per_epoch": {
                name: [max_weight_ratio(entry["weights"][name]) for entry in history]
                for name in history[0]["weights"]},
            "op_margins": {
                name: op_margins(cell, history[-1]["weights"][name])
                for name, cell in zip(history[-1]["weights"], space.cells)},
            # The heatmaps' axis labels as drawn (stage 2: each row its edge's own ops).
            "heatmap_labels": heatmap_labels_by_set,
        }
    pictures["trajectories"] = visualize.weights_history_png(folder, output_dir)
    pictures["op_counts"] = [_counts_png(counts_by_stage, output_dir, plt)]
    pictures["curves"] = [_curves_png(stages, output_dir, plt)]
    genotype = folder.read_genotype() if folder.has_genotype() else None
    if genotype is not None and size_presets:
        from stacnas_tf import sizes  # imported here: it loads the networks

        numbers["sizes"] = {preset: sizes.describe(genotype, preset) for preset in size_presets}
    files.write_json(os.path.join(output_dir, "report.json"), numbers)
    page = _html(config, stages, numbers, pictures, genotype, output_dir)
    files.write_text(os.path.join(output_dir, "report.html"), page)


def _img(path, output_dir, alt):
    return f'<img src="{html.escape(os.path.relpath(path, output_dir))}" alt="{html.escape(alt)}">'


def _html(config, stages, numbers, pictures, genotype, output_dir) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>StacNAS search report</title><style>",
             "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}",
             "img{max-width:100%;margin:4px 0;border:1px solid #ddd}",
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}code{font-size:12px;word-break:break-all}"
             ".warning{background:#fff3cd;padding:6px;border:1px solid #e0c36c}</style></head><body>",
             "<h1>StacNAS search report</h1>",
             f"<p>Search folder: <code>{html.escape(numbers['search_dir'])}</code></p>"]
    if genotype is not None:
        parts.append(f"<h2>Genotype found</h2><p><code>{html.escape(genotype.to_darts())}</code></p>")
        last_history = stages[max(stages)][2]
        warning = undecided_warning(list(last_history[-1]["weights"].values()))
        if warning:
            parts.append(f'<p class="warning"><b>Warning:</b> {html.escape(warning)}</p>')
    else:
        parts.append("<p><b>The search has not finished</b>: no genotype.json yet.</p>")
    for stage, (space, num_cells, history, result) in stages.items():
        what = "one op per group + none" if stage == 1 else "members of each edge's group + none"
        if config.grouping == "flat":
            what = "every op + none (flat search)"
        parts.append(f"<h2>Stage {stage}: {num_cells} cells, {len(history)} epochs ({what})</h2>")
        ratios = numbers["stages"][stage]["max_weight_ratio_per_epoch"]
        parts.append("<p>Largest weight on an edge, times its number of candidates (1 is "
                     "uniform), at the last epoch: " + ", ".join(
                         f"{html.escape(name)} {values[-1]:.3f}" for name, values in
                         list(ratios.items())[:MAX_HEATMAP_SETS]) + ".</p>")
        margins = numbers["stages"][stage]["op_margins"]
        parts.append("<p>Margin of each edge's chosen op over the runner-up (softmax weights; "
                     "near 0, noise can swap them), smallest and median: " + ", ".join(
                         f"{html.escape(name)} {min(m for m in values if m is not None):.3f} / "
                         f"{float(np.median([m for m in values if m is not None])):.3f}"
                         for name, values in list(margins.items())[:MAX_HEATMAP_SETS]
                         if any(m is not None for m in values)) + ".</p>")
        parts.append("<h3>Derived cells</h3>" + "".join(
            _img(p, output_dir, f"stage {stage} cell") for p in pictures[f"stage{stage}_cells"]))
        parts.append("<h3>Architecture weights at the first, middle and last epoch</h3>" +
                     "".join(_img(p, output_dir, f"stage {stage} heatmap")
                             for p in pictures[f"stage{stage}_heatmaps"]))
        groups = result.get("activated_groups")
        if groups:
            endpoints = search_space.edge_endpoints(config.num_nodes)
            rows = "".join(
                f"<tr><td>{a}->{b}</td>" + "".join(
                    f"<td>{html.escape(', '.join(per_set[edge]))}</td>" for per_set in groups.values())
                + "</tr>" for edge, (a, b) in enumerate(endpoints))
            head = "".join(f"<th>{html.escape(name)}</th>" for name in groups)
            parts.append(f"<h3>Group activated on every edge</h3><table><tr><th>edge</th>{head}"
                         f"</tr>{rows}</table>")
    parts.append("<h2>Weights over epochs</h2>" + "".join(
        _img(p, output_dir, "weights over epochs") for p in pictures["trajectories"]))
    parts.append("<h2>Skip connections and parameter-free ops per epoch</h2>"
                 "<p>Counted in the cell derived from each epoch's weights.</p>" +
                 _img(pictures["op_counts"][0], output_dir, "op counts per epoch"))
    parts.append("<h2>Loss and accuracy</h2>" + _img(pictures["curves"][0], output_dir, "curves"))
    if "sizes" in numbers:
        rows = "".join(
            f"<tr><td>{html.escape(preset)}</td><td>{d['num_cells']} cells, C={d['channels']}</td>"
            f"<td>{d['parameters']:,}</td><td>{d['parameters_with_auxiliary']:,}</td>"
            f"<td>{d['multiply_adds']:,}</td></tr>" for preset, d in numbers["sizes"].items())
        parts.append("<h2>Final networks of this genotype</h2><table><tr><th>preset</th>"
                     "<th>network</th><th>parameters</th><th>with auxiliary head</th>"
                     f"<th>multiply-adds</th></tr>{rows}</table>")
    settings = json.dumps(config.to_dict(), indent=1)
    parts.append(f"<h2>Settings</h2><pre>{html.escape(settings)}</pre></body></html>")
    return "\n".join(parts) + "\n"


# --- TensorBoard ----------------------------------------------------------------------


def summarize_epoch(writer, weights_by_set: dict, step: int, candidates_by_set: dict) -> None:
    """Each logit set's edges x candidates heatmap as a TensorBoard image."""
    import tensorflow as tf

    with writer.as_default(step=step):
        for name, weights in list(weights_by_set.items())[:MAX_HEATMAP_SETS]:
            image = heatmap_rgb(weights, candidates_by_set[name],
                                f"{name} cell, epoch {step + 1}: softmax weights")
            tf.summary.image(f"architecture_weights/{name}", image[None],
                             description="rows: edges (SOURCE->NODE) in DARTS order, with "
                                         "each edge's own candidates in stage 2; colour: "
                                         "softmax weight, its range the data's")


def summarize_search(log_dir: str, config, genotype: genotype_lib.Genotype) -> None:
    """The genotype as text and the run's settings as hparams, in `log_dir`."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    settings = {name: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
                for name, value in config.to_dict().items()}
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=0):
        tf.summary.text("genotype", f"`{genotype.to_darts()}`")
        tf.summary.text("genotype_json", f"```\n{genotype.to_json()}\n```")
        hparams_api.hparams(settings)
    writer.flush()
    writer.close()
