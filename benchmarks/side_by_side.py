"""Stage 1 of this project beside the StacNAS authors' code, epoch by epoch.

Reads the authors' runs (the JSON `benchmarks/authors_stage1.py` writes, or
several of them combined as {name: result}) and this project's search folders
(`benchmarks/default_sweep.py` runs), and tabulates, per regime and
implementation, the edges of the normal and reduction cells won by pools,
skips and convolutions (strongest non-`none` op of the 14 edges, as stage 1
activates groups) and the weight ratio (largest weight x candidates), at
every epoch; writes PATH.json, PATH.md and PATH.png.

  PYTHONPATH=. python benchmarks/side_by_side.py --authors=benchmarks/results/authors_stage1_runs.json \\
      --project='subset=runs/sweep/subset_lr3e-4_seed*' \\
      --project='fresh=runs/sweep/lr3e-2_w2_seed*_threads1' \\
      --authors_runs='subset=subset_same_seed*' --authors_runs='fresh=fresh_lr3e-2_w2_seed*' \\
      --output=benchmarks/results/side_by_side
"""

import fnmatch
import glob
import json
import os

import numpy as np
from absl import app
from absl import flags

from stacnas_tf import genotype as genotype_lib

_AUTHORS = flags.DEFINE_string("authors", None, "The authors' runs (combined JSON).")
_PROJECT = flags.DEFINE_multi_string("project", [], "REGIME=GLOB of this project's search folders.")
_AUTHORS_RUNS = flags.DEFINE_multi_string("authors_runs", [], "REGIME=PATTERN of the authors' run "
                                          "names (several: LABEL:REGIME=PATTERN for variants).")
_OUTPUT = flags.DEFINE_string("output", None, "PATH.json, .md, .png")

POOLS = ("max_pool_3x3", "avg_pool_3x3")
# The authors' stage-1 candidates (their genotypes.OPS_DICT), for runs stopped
# before they recorded them.
AUTHORS_STAGE1_OPS = ["max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3", "none"]


def kind(op: str) -> str:
    return "pool" if op in POOLS else "skip" if op == "skip_connect" else "conv"


def winners(weights, candidates) -> list[str]:
    """Each edge's strongest non-`none` op (ties: the earlier), as stage 1 activates groups."""
    return genotype_lib.strongest_ops(candidates, weights)


def counts(weights, candidates) -> dict:
    """Edges won by each kind."""
    found = {"pool": 0, "skip": 0, "conv": 0}
    for op in winners(weights, candidates):
        found[kind(op)] += 1
    return found


def ratio(weights) -> float:
    return float(np.mean([max(w) * len(w) for w in weights]))


def project_curves(folder: str) -> list[dict]:
    with open(os.path.join(folder, "stage1", "history.json")) as f:
        history = json.load(f)
    with open(os.path.join(folder, "stage1", "result.json")) as f:
        result = json.load(f)
    curves = []
    for entry in history:
        row = {"epoch": entry["epoch"], "accuracy": entry["accuracy"]}
        for name in ("normal", "reduce"):
            candidates = [e["candidates"] for e in result["logits"][name]]
            row[name] = {"counts": counts(entry["weights"][name], candidates),
                         "ratio": ratio(entry["weights"][name]),
                         "winners": winners(entry["weights"][name], candidates)}
        curves.append(row)
    return curves


def authors_curves(run: dict) -> list[dict]:
    ops = run.get("ops", AUTHORS_STAGE1_OPS)
    return [{"epoch": e["epoch"], "accuracy": e["accuracy"],
             **{name: {"counts": e[name]["counts"], "ratio": e[name]["ratio"],
                       "winners": winners(e[name]["weights"], [ops] * len(e[name]["weights"]))}
                for name in ("normal", "reduce")}} for e in run["history"]]


def summarize(curves_by_seed: list[list[dict]]) -> dict:
    """Mean over seeds, per epoch, of each count and ratio (seeds cut to the shortest run)."""
    epochs = min(len(c) for c in curves_by_seed)
    rows = []
    for index in range(epochs):
        entries = [c[index] for c in curves_by_seed]
        row = {"epoch": index + 1, "accuracy": float(np.mean([e["accuracy"] for e in entries]))}
        for name in ("normal", "reduce"):
            row[name] = {k: float(np.mean([e[name]["counts"][k] for e in entries]))
                         for k in ("pool", "skip", "conv")}
            row[name]["ratio"] = float(np.mean([e[name]["ratio"] for e in entries]))
        rows.append(row)
    # How far the seeds agree at the end: edges (of 14) whose winner two seeds share,
    # over all pairs of seeds. By chance (4 ops to win) that is 14 / 4 = 3.5.
    last = [c[epochs - 1] for c in curves_by_seed]
    pairs = [(a, b) for i, a in enumerate(last) for b in last[i + 1:]]
    agreement = {name: (float(np.mean([sum(x == y for x, y in zip(a[name]["winners"],
                                                                  b[name]["winners"]))
                                       for a, b in pairs])) if pairs else None)
                 for name in ("normal", "reduce")}
    # Chance with these runs' own op frequencies: two edges drawn independently from
    # the pooled winners agree with probability sum(p_op^2).
    chance = {}
    for name in ("normal", "reduce"):
        pooled = [op for entry in last for op in entry[name]["winners"]]
        shares = [pooled.count(op) / len(pooled) for op in set(pooled)]
        chance[name] = float(len(last[0][name]["winners"]) * np.sum(np.square(shares)))
    return {"seeds": len(curves_by_seed), "epochs": rows, "seed_agreement": agreement,
            "chance_agreement": chance}


def collect(authors_path, project_specs, authors_specs) -> dict:
    with open(authors_path) as f:
        authors = json.load(f)
    table = {}
    for spec in project_specs:
        regime, pattern = spec.split("=", 1)
        folders = sorted(glob.glob(pattern))
        curves = [project_curves(f) for f in folders
                  if os.path.exists(os.path.join(f, "stage1", "result.json"))]
        if curves:
            table[f"project:{regime}"] = summarize(curves)
    for spec in authors_specs:
        label, pattern = spec.split("=", 1)
        regime = label.split(":")[-1]
        name = label.split(":")[0] if ":" in label else "authors"
        names = sorted(n for n in authors if fnmatch.fnmatch(n, pattern))
        curves = [authors_curves(authors[n]["runs"][0]) for n in names
                  if authors[n].get("runs") and authors[n]["runs"][0]["history"]]
        if curves:
            entry = summarize(curves)
            entry["settings"] = {k: v for k, v in authors[names[0]]["settings"].items()
                                 if k not in ("output", "seeds", "authors_dir", "data_dir")}
            entry["device"] = authors[names[0]].get("device_name")
            entry["torch"] = authors[names[0]].get("torch")
            table[f"{name}:{regime}"] = entry
    return table


def markdown(table: dict) -> str:
    lines = ["| implementation:regime | seeds | epochs | normal: pool / skip / conv edges "
             "(of 14) | reduce: pool / skip / conv | ratio normal / reduce | train acc. | "
             "edges with the same winner, pairs of seeds (normal / reduce) | the same by chance "
             "at these op frequencies |", "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in table.items():
        last = entry["epochs"][-1]
        lines.append(
            f"| {name} | {entry['seeds']} | {last['epoch']} | "
            f"{last['normal']['pool']:.1f} / {last['normal']['skip']:.1f} / "
            f"{last['normal']['conv']:.1f} | {last['reduce']['pool']:.1f} / "
            f"{last['reduce']['skip']:.1f} / {last['reduce']['conv']:.1f} | "
            f"{last['normal']['ratio']:.3f} / {last['reduce']['ratio']:.3f} | "
            f"{last['accuracy']:.3f} | {_agreement(entry['seed_agreement'])} | "
            f"{_agreement(entry['chance_agreement'])} |")
    return "\n".join(lines) + "\n"


def _agreement(agreement) -> str:
    if agreement["normal"] is None:
        return "-"
    return f"{agreement['normal']:.1f} / {agreement['reduce']:.1f}"


def plot(table: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    # One colour per regime; the line style says whose code (variants dotted).
    regimes = sorted({name.split(":", 1)[1] for name in table})
    colours = {regime: plt.cm.tab10(k % 10) for k, regime in enumerate(regimes)}
    for name, entry in table.items():
        who, regime = name.split(":", 1)
        style = {"project": "-", "authors": "--"}.get(who, ":")
        epochs = [r["epoch"] for r in entry["epochs"]]
        for axis, key in zip(axes, ("pool", "conv", "ratio")):
            axis.plot(epochs, [r["normal"][key] for r in entry["epochs"]], style,
                      color=colours[regime], label=name)
    for axis, title in zip(axes, ("normal cell: edges won by pools (of 14)",
                                  "normal cell: edges won by convolutions (of 14)",
                                  "normal cell: weight ratio (1 = uniform)")):
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("epoch")
    axes[2].legend(fontsize=7)
    figure.suptitle("stage 1: this project (solid) beside the authors' code (dashed; their "
                    "variants dotted), one colour per regime; mean over seeds", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv):
    del argv
    table = collect(_AUTHORS.value, _PROJECT.value, _AUTHORS_RUNS.value)
    print(markdown(table))
    if _OUTPUT.value:
        for suffix, write in ((".json", lambda f: json.dump(table, f, indent=1)),
                              (".md", lambda f: f.write(markdown(table)))):
            with open(_OUTPUT.value + suffix + ".tmp", "w") as f:
                write(f)
            os.replace(_OUTPUT.value + suffix + ".tmp", _OUTPUT.value + suffix)
        plot(table, _OUTPUT.value + ".png")


if __name__ == "__main__":
    app.run(main)
