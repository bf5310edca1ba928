"""Genotypes: the discrete cells a search ends with.

A genotype lists, for each intermediate node of the normal and the reduction
cell, its two incoming edges as (op, input) pairs; input 0 and 1 are the
outputs of the previous-but-one and previous cell, input 2 + i is node i.
Optionally every cell of a network has its own genotype (`cells`).

The JSON form is versioned; the DARTS textual form
`Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)`
is read too, so genotypes published by DARTS-family papers can be used.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
from typing import Sequence

import numpy as np

from stacnas_tf import search_space

FORMAT = "stacnas_tf.genotype"
VERSION = 1
# Bounds on what a genotype may hold, checked before anything is expanded:
# genotypes come from files and flags.
MAX_NODES = 16
MAX_CELLS = 1000
MAX_TEXT = 1_000_000  # characters of a genotype file or text

Edge = tuple[str, int]


@dataclasses.dataclass(frozen=True)
class CellGenotype:
    """One cell: two (op, input) edges per node, and the nodes concatenated."""

    edges: tuple[Edge, ...]
    concat: tuple[int, ...]
    reduction: bool = False

    def __post_init__(self):
        if not isinstance(self.edges, (tuple, list)) or len(self.edges) > 2 * MAX_NODES:
            raise ValueError(f"genotype: expected a list of at most {2 * MAX_NODES} (op, input) "
                             f"edges, got {_short(self.edges)}.")
        for edge in self.edges:
            if (not isinstance(edge, (tuple, list)) or len(edge) != 2
                    or not isinstance(edge[0], str) or not _is_index(edge[1])):
                raise ValueError(f"genotype: expected edges as (op name, integer input), got "
                                 f"{_short(edge)}.")
        if (not isinstance(self.concat, (tuple, list)) or len(self.concat) > MAX_NODES
                or not all(_is_index(i) for i in self.concat)):
            raise ValueError(f"genotype: expected concat as a list of at most {MAX_NODES} integer "
                             f"states, got {_short(self.concat)}.")
        edges = tuple((op, int(index)) for op, index in self.edges)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "concat", tuple(int(i) for i in self.concat))
        if not edges or len(edges) % 2:
            raise ValueError(f"genotype: expected 2 edges per node, got {len(edges)} edges.")
        search_space.check_ops([op for op, _ in edges], "genotype")
        for position, (op, index) in enumerate(edges):
            node = position // 2
            if op == search_space.NONE:
                raise ValueError("genotype: `none` cannot be a chosen op.")
            if not 0 <= index < node + 2:
                raise ValueError(
                    f"genotype: edge {position} ({op!r}, {index}) of node {node} has input "
                    f"index {index}; expected 0..{node + 1}."
                )
        if (not self.concat or any(not 2 <= i < self.num_nodes + 2 for i in self.concat)
                or len(set(self.concat)) != len(self.concat)):
            raise ValueError(
                f"genotype: concat {list(self.concat)} must name distinct intermediate nodes "
                f"2..{self.num_nodes + 1}."
            )

    @property
    def num_nodes(self) -> int:
        return len(self.edges) // 2

    def to_dict(self) -> dict:
        return {
            "reduction": self.reduction,
            "edges": [{"op": op, "input": index} for op, index in self.edges],
            "concat": list(self.concat),
        }

    @classmethod
    def from_dict(cls, value: dict) -> "CellGenotype":
        return cls(
            edges=tuple((e["op"], e["input"]) for e in value["edges"]),
            concat=tuple(value["concat"]),
            reduction=bool(value.get("reduction", False)),
        )


_JSON_KEYS = frozenset({"format", "version", "normal", "normal_concat", "reduce", "reduce_concat",
                        "cells"})


@dataclasses.dataclass(frozen=True)
class Genotype:
    """A searched architecture: a normal and a reduction cell, and optionally
    one cell genotype per cell of the network (the enlarged space)."""

    normal: CellGenotype
    reduce: CellGenotype
    cells: tuple[CellGenotype, ...] | None = None

    @classmethod
    def from_edges(cls, normal, normal_concat, reduce, reduce_concat, cells=None) -> "Genotype":
        return cls(
            normal=CellGenotype(tuple(normal), tuple(normal_concat), reduction=False),
            reduce=CellGenotype(tuple(reduce), tuple(reduce_concat), reduction=True),
            cells=cells,
        )

    def cell(self, index: int, reduction: bool) -> CellGenotype:
        """The genotype of cell `index` of a network."""
        if self.cells is not None:
            if index >= len(self.cells):
                raise ValueError(
                    f"genotype has {len(self.cells)} per-cell genotypes; cell {index} requested."
                )
            return self.cells[index]
        return self.reduce if reduction else self.normal

    # --- JSON ------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "normal": self.normal.to_dict()["edges"],
            "normal_concat": list(self.normal.concat),
            "reduce": self.reduce.to_dict()["edges"],
            "reduce_concat": list(self.reduce.concat),
            "cells": None if self.cells is None else [c.to_dict() for c in self.cells],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, value: dict, source: str = "genotype") -> "Genotype":
        # A misspelt key ("cell" for "cells") would drop what it holds: refused.
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            raise ValueError(f"{source}: not a genotype JSON (expected \"format\": \"{FORMAT}\").")
        unknown = sorted(set(value) - _JSON_KEYS)
        if unknown:
            raise ValueError(f"{source}: unknown genotype field(s) {unknown[:5]}; expected "
                             f"{sorted(_JSON_KEYS)}.")
        version = value.get("version")
        if not _is_index(version) or not 1 <= version <= VERSION:
            raise ValueError(
                f"{source}: genotype version {version!r} is not supported; this stacnas_tf reads "
                f"versions up to {VERSION}."
            )
        cells = value.get("cells")
        if cells is not None and (not isinstance(cells, list) or not 1 <= len(cells) <= MAX_CELLS):
            raise ValueError(f"{source}: \"cells\" must be null or a list of 1 to {MAX_CELLS} "
                             f"cell genotypes, got {_short(cells)}.")
        try:
            return cls.from_edges(
                [(e["op"], e["input"]) for e in value["normal"]], value["normal_concat"],
                [(e["op"], e["input"]) for e in value["reduce"]], value["reduce_concat"],
                cells=None if cells is None else tuple(CellGenotype.from_dict(c) for c in cells),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"{source}: malformed genotype JSON ({e!r}).") from e
        except ValueError as e:
            raise ValueError(f"{source}: {str(e).removeprefix('genotype: ')}") from e

    @classmethod
    def from_json(cls, text: str, source: str = "genotype") -> "Genotype":
        if not isinstance(text, (str, bytes, bytearray)):
            raise ValueError(f"{source}: from_json takes JSON text, got {type(text).__name__}"
                             f"{' (use Genotype.from_dict for a dict)' if isinstance(text, dict) else ''}.")
        return cls.from_dict(load_json_text(text, source), source)

    # --- DARTS text --------------------------------------------------------------

    def to_darts(self) -> str:
        def edges(cell):
            return "[" + ", ".join(f"({op!r}, {index})" for op, index in cell.edges) + "]"

        return (
            f"Genotype(normal={edges(self.normal)}, normal_concat={list(self.normal.concat)}, "
            f"reduce={edges(self.reduce)}, reduce_concat={list(self.reduce.concat)})"
        )

    @classmethod
    def from_darts(cls, text: str, source: str = "genotype") -> "Genotype":
        fields = ("normal", "normal_concat", "reduce", "reduce_concat")
        if len(text) > MAX_TEXT:
            raise ValueError(f"{source}: a DARTS genotype text of {len(text)} characters; "
                             f"expected at most {MAX_TEXT}.")
        try:
            call = ast.parse(text.strip(), mode="eval").body
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Genotype"):
                raise ValueError("expected Genotype(...)")
            values = dict(zip(fields, call.args))
            values.update({kw.arg: kw.value for kw in call.keywords})
            if set(values) != set(fields):
                raise ValueError(f"expected the fields {list(fields)}, got {sorted(values)}")
            parsed = {name: _literal(node) for name, node in values.items()}
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as e:
            raise ValueError(f"{source}: not a DARTS genotype text ({type(e).__name__}: "
                             f"{_short(str(e))}).") from e
        try:
            return cls.from_edges(**parsed)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {str(e).removeprefix('genotype: ')}") from e

    # --- pictures ----------------------------------------------------------------

    def to_graph(self) -> dict:
        """Picture-ready form: nodes and labelled edges of each cell."""
        graph = {"format": "stacnas_tf.genotype_graph", "version": VERSION,
                 "normal": _cell_graph(self.normal), "reduce": _cell_graph(self.reduce)}
        if self.cells is not None:
            graph["cells"] = [_cell_graph(c) for c in self.cells]
        return graph

    def to_dot(self) -> str:
        """Graphviz DOT text of the normal and reduction cells."""
        lines = ["digraph genotype {", "  rankdir=LR;", "  node [style=filled];"]
        for name, cell in (("normal", self.normal), ("reduce", self.reduce)):
            lines.append(f"  subgraph cluster_{name} {{")
            lines.append(f'    label="{name}";')
            lines += _dot_lines(cell, prefix=f"{name}_", indent="    ")
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"


def cell_to_dot(cell: CellGenotype, title: str) -> str:
    """Graphviz DOT text of one cell, titled `title`."""
    lines = ["digraph cell {", "  rankdir=LR;", f'  label="{title}";', "  labelloc=t;",
             '  node [style=filled, fontname="Helvetica"];', '  edge [fontname="Helvetica"];']
    lines += _dot_lines(cell, prefix="", indent="  ")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_lines(cell: CellGenotype, prefix: str, indent: str) -> list[str]:
    colours = {"input": "darkseagreen2", "intermediate": "lightblue", "output": "palegoldenrod"}
    graph = _cell_graph(cell)
    lines = []
    for node in graph["nodes"]:
        shape = "box" if node["kind"] != "intermediate" else "ellipse"
        lines.append(f'{indent}"{prefix}{node["id"]}" [label={_dot_label(node["id"])}, '
                     f'shape={shape}, fillcolor={colours[node["kind"]]}];')
    for edge in graph["edges"]:
        label = "" if edge["op"] == "concat" else f' [label="{edge["op"]}"]'
        lines.append(f'{indent}"{prefix}{edge["source"]}" -> "{prefix}{edge["target"]}"{label};')
    return lines


def _dot_label(node_id: str) -> str:
    """A node's label as Graphviz draws it: `c_{k-2}` with a real subscript (an
    HTML-like label), intermediate nodes by their number."""
    if node_id.startswith("c_{") and node_id.endswith("}"):
        return f"<c<SUB>{node_id[3:-1]}</SUB>>"
    return f'"{node_id}"'


def _literal(node):
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "range":
        bounds = [ast.literal_eval(a) for a in node.args]
        if not 1 <= len(bounds) <= 2 or not all(_is_index(b) for b in bounds):
            raise ValueError("range() takes one or two integers here")
        values = range(*bounds)
        if len(values) > MAX_NODES:  # checked before the list is made
            raise ValueError(f"range() of {len(values)} states; a cell has at most {MAX_NODES}")
        return list(values)
    return ast.literal_eval(node)


def _is_index(value) -> bool:
    """An int that is not a bool (JSON's true is no state index)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def load_json_text(text: str, source: str):
    """JSON from a file or flag, with one-line errors (also for overflowing
    numbers and nesting too deep for Python)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not valid JSON ({e}).") from e
    except ValueError as e:  # a constant refused by _refuse_constant
        raise ValueError(f"{source}: {e}.") from e
    except RecursionError as e:
        raise ValueError(f"{source}: JSON nested too deeply.") from e


def _refuse_constant(name):
    raise ValueError(f"not a finite number: {name}")


def _cell_graph(cell: CellGenotype) -> dict:
    def name(index):
        return {0: "c_{k-2}", 1: "c_{k-1}"}.get(index, str(index - 2))

    nodes = [{"id": "c_{k-2}", "kind": "input"}, {"id": "c_{k-1}", "kind": "input"}]
    nodes += [{"id": str(i), "kind": "intermediate"} for i in range(cell.num_nodes)]
    nodes.append({"id": "c_{k}", "kind": "output"})
    edges = [
        {"source": name(index), "target": str(position // 2), "op": op}
        for position, (op, index) in enumerate(cell.edges)
    ]
    edges += [{"source": name(i), "target": "c_{k}", "op": "concat"} for i in cell.concat]
    return {"reduction": cell.reduction, "nodes": nodes, "edges": edges}


# --- derivation ------------------------------------------------------------------


def derive_cell(
    candidates: search_space.CellCandidates,
    weights: Sequence[Sequence[float]],
    num_nodes: int = 4,
    reduction: bool = False,
) -> CellGenotype:
    """DARTS's discretisation of one cell from its softmaxed logits.

    For each node keep the 2 incoming edges with the largest `edge_strength`
    and, on each, the strongest non-`none` op. Ties go to the earlier edge and
    the earlier candidate.
    """
    width = max(len(edge) for edge in candidates)
    edges = []
    start = 0
    for node in range(num_nodes):
        end = start + node + 2
        strengths = [(edge_strength(candidates[e], weights[e], width), e) for e in range(start, end)]
        # sorted() is stable: equal strengths keep the lower input first.
        chosen = sorted(strengths, key=lambda item: -item[0][0])[:2]
        edges += [(op, e - start) for (_, op), e in chosen]
        start = end
    return CellGenotype(tuple(edges), tuple(range(2, 2 + num_nodes)), reduction=reduction)


def edge_strength(candidates: Sequence[str], weights: Sequence[float],
                  width: int) -> tuple[float, str]:
    """(strength, op) of an edge: its strongest non-`none` op, and that op's
    softmax weight among `width` candidates.

    DARTS ranks edges by the op's softmax weight, which is fair only when
    every edge has as many candidates. In StacNAS's stage 2 a `skip_connect`
    edge searches `none` + skip (2 candidates) while the others search `none`
    + two ops, so at equal logits skip would start at 1/2 and the others at
    1/3. An edge with fewer than `width` candidates is therefore scored as if
    it had the missing ones, each with the geometric mean of the edge's op
    weights (for a one-op group, a copy of the op, as the authors' code pads
    the skip group with a second skip): equal logits score equally on every
    edge, and edges of equal size are ranked exactly as DARTS ranks them.
    """
    options = [(w, k) for k, (op, w) in enumerate(zip(candidates, weights))
               if op != search_space.NONE]
    weight, k = max(options, key=lambda wk: (wk[0], -wk[1]))
    missing = width - len(candidates)
    if missing > 0:
        # Softmax weights sum to 1 over the real candidates; virtual ones add their share.
        filler = float(np.exp(np.mean(np.log(np.maximum([w for w, _ in options], 1e-38)))))
        weight = weight / (float(np.sum(weights)) + missing * filler)
    return weight, candidates[k]


def strongest_ops(candidates: search_space.CellCandidates, weights) -> list[str]:
    """The strongest non-`none` op of every edge (ties: earlier candidate)."""
    winners = []
    for edge, w in zip(candidates, weights):
        options = [(w[k], -k, op) for k, op in enumerate(edge) if op != search_space.NONE]
        winners.append(max(options)[2])
    return winners


def derive_genotype(stage_space: search_space.StageSpace, weights, num_cells: int,
                    num_nodes: int = 4) -> Genotype:
    """Genotype from the softmaxed logits of every logit set of a supernet."""
    reductions = search_space.reduction_positions(num_cells)
    if not stage_space.per_cell:
        normal = derive_cell(stage_space.cells[0], weights[0], num_nodes, reduction=False)
        reduce = derive_cell(stage_space.cells[1], weights[1], num_nodes, reduction=True)
        return Genotype(normal=normal, reduce=reduce)
    cells = tuple(
        derive_cell(stage_space.cells[k], weights[k], num_nodes, reduction=k in reductions)
        for k in range(num_cells)
    )
    normal = next(c for c in cells if not c.reduction)
    reduce = next(c for c in cells if c.reduction)
    return Genotype(normal=normal, reduce=reduce, cells=cells)


def random_genotype(space: search_space.SearchSpace, seed: int) -> Genotype:
    """A genotype drawn uniformly from the discrete cell space: every node takes
    two distinct earlier states and, on each, any op of `space` (the random-search
    floor of the reproduction)."""
    rng = np.random.default_rng(seed)
    ops = [op for group in space.groups for op in group]

    def cell(reduction):
        edges = []
        for node in range(space.num_nodes):
            inputs = sorted(rng.choice(2 + node, size=2, replace=False).tolist())
            edges += [(ops[int(rng.integers(len(ops)))], int(source)) for source in inputs]
        return CellGenotype(tuple(edges), tuple(range(2, 2 + space.num_nodes)), reduction=reduction)

    return Genotype(normal=cell(False), reduce=cell(True))


# --- published genotypes ----------------------------------------------------------

PUBLISHED = {
    # Liu et al., DARTS (first order), from the DARTS code's genotypes.py.
    "DARTS_V1": Genotype.from_edges(
        [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        [2, 3, 4, 5],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
        [2, 3, 4, 5],
    ),
    # Liu et al., DARTS (second order).
    "DARTS_V2": Genotype.from_edges(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        [2, 3, 4, 5],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
        [2, 3, 4, 5],
    ),
    # Zoph et al., NASNet-A, as the DARTS code's genotypes.py has it (5 nodes).
    "NASNET": Genotype.from_edges(
        [("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
         ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
         ("sep_conv_3x3", 1), ("skip_connect", 1)],
        [2, 3, 4, 5, 6],
        [("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
         ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
         ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        [4, 5, 6],
    ),
    # Real et al., AmoebaNet-A, as the DARTS code's genotypes.py has it (5 nodes).
    "AMOEBANET": Genotype.from_edges(
        [("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
         ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
         ("skip_connect", 0), ("avg_pool_3x3", 1)],
        [4, 5, 6],
        [("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
         ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
         ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
        [3, 4, 6],
    ),
    # Xu et al., PC-DARTS, searched on CIFAR-10 (its genotypes.py: PC_DARTS_cifar).
    "PC_DARTS_CIFAR10": Genotype.from_edges(
        [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
         ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        [2, 3, 4, 5],
        [("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
         ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
        [2, 3, 4, 5],
    ),
    # Xu et al., PC-DARTS, searched on ImageNet (its genotypes.py: PC_DARTS_image).
    "PC_DARTS_IMAGENET": Genotype.from_edges(
        [("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("skip_connect", 1),
         ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("dil_conv_5x5", 4)],
        [2, 3, 4, 5],
        [("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("max_pool_3x3", 1),
         ("sep_conv_3x3", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 3)],
        [2, 3, 4, 5],
    ),
    # Chen et al., P-DARTS (its genotypes.py: PDARTS).
    "PDARTS": Genotype.from_edges(
        [("skip_connect", 0), ("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_5x5", 4)],
        [2, 3, 4, 5],
        [("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
         ("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 3)],
        [2, 3, 4, 5],
    ),
    # StacNAS, CIFAR-10 cells read from the paper's figures 3 and 4.
    "STACNAS_CIFAR10": Genotype.from_edges(
        [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 2), ("skip_connect", 0),
         ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 2), ("sep_conv_3x3", 0)],
        [2, 3, 4, 5],
        [("skip_connect", 1), ("max_pool_3x3", 0), ("dil_conv_5x5", 2), ("avg_pool_3x3", 0),
         ("dil_conv_5x5", 3), ("avg_pool_3x3", 0), ("dil_conv_5x5", 3), ("sep_conv_5x5", 0)],
        [2, 3, 4, 5],
    ),
}


def published_name(genotype: Genotype) -> str | None:
    """The name `genotype` is published under (`PUBLISHED`), or None."""
    return next((name for name, published in PUBLISHED.items() if published == genotype), None)


def resolve(spec: str, flag: str = "--genotype") -> Genotype:
    """A genotype from a published name, a JSON or DARTS-text file, or DARTS or JSON text."""
    spec = spec.strip()
    if spec in PUBLISHED:
        return PUBLISHED[spec]
    if spec.startswith("Genotype("):
        return Genotype.from_darts(spec, source=flag)
    if spec.startswith("{"):
        return Genotype.from_json(spec, source=flag)
    if os.path.isfile(spec):
        source = f"{flag} file {spec}"
        try:
            with open(spec, encoding="utf-8") as f:
                text = f.read(MAX_TEXT + 1)
        except UnicodeDecodeError as e:
            raise ValueError(f"{source} is not text (a genotype is JSON or DARTS text).") from e
        if text.lstrip().startswith("Genotype("):
            return Genotype.from_darts(text, source=source)
        return Genotype.from_json(text, source=source)
    raise ValueError(
        f"{flag}: {spec!r} is neither a published genotype ({', '.join(sorted(PUBLISHED))}), "
        "an existing genotype file (JSON or DARTS text) nor DARTS text 'Genotype(...)'."
    )
