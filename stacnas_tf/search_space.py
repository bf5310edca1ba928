"""The DARTS cell search space and StacNAS's operator groups, as plain data.

A cell has two inputs (the outputs of the two previous cells) and `num_nodes`
intermediate nodes; node `i` receives one edge from every earlier state, so a
4-node cell has 2 + 3 + 4 + 5 = 14 edges. Edges are numbered in that order
(node 0's edges from inputs 0 and 1 first), exactly as in DARTS.

StacNAS searches in two stages:
  * stage 1: on every edge, `none` plus one representative of each group;
  * stage 2: on every edge, `none` plus all members of the group whose
    representative won that edge in stage 1.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Iterable, Sequence

from absl import logging

from stacnas_tf import files

NONE = "none"
SKIP = "skip_connect"

PRIMITIVES = (
    NONE,
    "max_pool_3x3",
    "avg_pool_3x3",
    SKIP,
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

# The DARTS reference's other ops: NASNet's and AmoebaNet's cells use them, so
# final networks build them; a search may add them to its groups.
EXTRA_OPS = ("sep_conv_7x7", "conv_7x1_1x7")
OPS = PRIMITIVES + EXTRA_OPS

@dataclasses.dataclass(frozen=True)
class OpSpec:
    """What a built-in op computes, as data: its `kind` (`none`, `skip`, `pool`,
    `sep_conv`, `dil_conv`, `conv_7x1_1x7`), kernel size, dilation and, for
    pools, `max` or `avg`. `ops` and `batched_ops` build layers from it."""

    kind: str
    kernel_size: int = 1
    dilation: int = 1
    pool: str = ""

    @property
    def parameter_free(self) -> bool:
        """No weights at stride 1: `none`, skip connections and pools."""
        return self.kind in ("none", "skip", "pool")


OP_TABLE = {
    NONE: OpSpec("none"),
    "max_pool_3x3": OpSpec("pool", 3, pool="max"),
    "avg_pool_3x3": OpSpec("pool", 3, pool="avg"),
    SKIP: OpSpec("skip"),
    "sep_conv_3x3": OpSpec("sep_conv", 3),
    "sep_conv_5x5": OpSpec("sep_conv", 5),
    "sep_conv_7x7": OpSpec("sep_conv", 7),
    "dil_conv_3x3": OpSpec("dil_conv", 3, dilation=2),
    "dil_conv_5x5": OpSpec("dil_conv", 5, dilation=2),
    "conv_7x1_1x7": OpSpec("conv_7x1_1x7", 7),
}
assert set(OP_TABLE) == set(OPS), "every built-in op needs its OpSpec"

# The paper's groups (section 2.3.2): ops whose outputs correlate share a group.
PAPER_GROUPS = (
    (SKIP,),
    ("max_pool_3x3", "avg_pool_3x3"),
    ("sep_conv_3x3", "sep_conv_5x5"),
    ("dil_conv_3x3", "dil_conv_5x5"),
)

# Candidates of one edge, `none` first.
EdgeCandidates = tuple[str, ...]
# Candidates of the 14 edges of one cell.
CellCandidates = tuple[EdgeCandidates, ...]


def num_edges(num_nodes: int) -> int:
    """Number of edges of a cell with `num_nodes` intermediate nodes."""
    return sum(2 + node for node in range(num_nodes))


def nodes_for_edges(count: int) -> int:
    """The intermediate nodes of a cell with `count` edges (14 edges: 4 nodes)."""
    nodes = 0
    while num_edges(nodes) < count:
        nodes += 1
    if num_edges(nodes) != count:
        raise ValueError(f"{count} edges make no cell: a cell of n nodes has 2 + 3 + ... + "
                         "(n + 1) edges.")
    return nodes


def edge_endpoints(num_nodes: int) -> list[tuple[int, int]]:
    """(input state, node) for every edge, in DARTS order; node ids start at 2."""
    return [(source, node + 2) for node in range(num_nodes) for source in range(2 + node)]


def reduction_positions(num_cells: int) -> frozenset[int]:
    """Indices of the reduction cells: at 1/3 and 2/3 of the depth, as in DARTS."""
    return frozenset({num_cells // 3, 2 * num_cells // 3})


@dataclasses.dataclass(frozen=True)
class CustomOp:
    """A candidate op added by the user (`stacnas_tf.register_op`).

    `factory(channels, stride, name)` returns a Keras layer mapping
    [batch, H, W, channels] to [batch, H / stride, W / stride, channels].
    """

    name: str
    factory: Callable


# The user's ops by name. Process-wide, as Keras's own registry of serializable
# objects: a genotype, a config or a .keras file names an op, and whatever
# reads it must find the same op under that name.
_CUSTOM_OPS: dict[str, CustomOp] = {}


def add_custom_op(op: CustomOp) -> None:
    """Registers `op`; a name registered again is replaced, as Keras's registry
    does (a notebook cell run twice). The checks that need Keras are
    `ops.register_op`'s."""
    if not isinstance(op.name, str) or not op.name.isidentifier():
        raise ValueError(f"register_op: expected an op name like 'se_conv_3x3', got {op.name!r}.")
    if op.name in OPS:
        raise ValueError(f"register_op: {op.name!r} is a built-in op; choose another name.")
    _CUSTOM_OPS[op.name] = op


def remove_custom_op(name: str) -> None:
    _CUSTOM_OPS.pop(name, None)


def custom_op(name: str) -> CustomOp | None:
    """The registered op `name`, or None for a built-in (or unknown) name."""
    return _CUSTOM_OPS.get(name)


def op_names() -> tuple[str, ...]:
    """Every op a cell may hold: the built-in ones, then the registered ones."""
    return OPS + tuple(_CUSTOM_OPS)


def check_ops(ops: Iterable[str], where: str) -> None:
    known = op_names()
    unknown = list(dict.fromkeys(op for op in ops if op not in known))  # each name once
    if unknown:
        raise ValueError(
            f"{where}: unknown op name(s) {unknown}; expected one of {list(known)} (add others "
            "with stacnas_tf.register_op before using them)."
        )


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Operator groups and cell shape of a StacNAS search.

    Attributes:
      groups: disjoint groups of non-`none` ops; the first member of each group
        is its stage-1 representative.
      num_nodes: intermediate nodes per cell.
    """

    groups: tuple[tuple[str, ...], ...] = PAPER_GROUPS
    num_nodes: int = 4

    def __post_init__(self):
        check_groups_shape(self.groups)
        groups = tuple(tuple(group) for group in self.groups)
        object.__setattr__(self, "groups", groups)
        if not groups or any(not group for group in groups):
            raise ValueError(f"groups: expected non-empty groups, got {groups}.")
        members = [op for group in groups for op in group]
        check_ops(members, "groups")
        if NONE in members:
            raise ValueError("groups: `none` is added to every edge; do not list it.")
        if len(set(members)) != len(members):
            raise ValueError(f"groups: an op appears twice in {groups}; groups must be disjoint.")
        if self.num_nodes < 1:
            raise ValueError(f"num_nodes: expected a positive count, got {self.num_nodes}.")

    @property
    def num_edges(self) -> int:
        return num_edges(self.num_nodes)

    @property
    def representatives(self) -> tuple[str, ...]:
        return tuple(group[0] for group in self.groups)

    def group_of(self, op: str) -> tuple[str, ...]:
        for group in self.groups:
            if op in group:
                return group
        raise ValueError(f"op {op!r} belongs to no group of {self.groups}.")

    def stage1_candidates(self) -> CellCandidates:
        """Every edge: `none` plus one representative per group."""
        edge = (NONE,) + self.representatives
        return tuple(edge for _ in range(self.num_edges))

    def full_candidates(self) -> CellCandidates:
        """Every edge: `none` plus every op of every group (plain DARTS)."""
        edge = (NONE,) + tuple(op for group in self.groups for op in group)
        return tuple(edge for _ in range(self.num_edges))

    def activate(self, winners: Sequence[str]) -> CellCandidates:
        """Stage-2 candidates: each edge gets `none` + the group of its stage-1 winner."""
        if len(winners) != self.num_edges:
            raise ValueError(f"expected {self.num_edges} winners, got {len(winners)}.")
        return tuple((NONE,) + self.group_of(op) for op in winners)

    def to_dict(self) -> dict:
        return {"groups": [list(g) for g in self.groups], "num_nodes": self.num_nodes}

    @classmethod
    def from_dict(cls, value: dict) -> "SearchSpace":
        return cls(groups=tuple(tuple(g) for g in value["groups"]), num_nodes=value.get("num_nodes", 4))


def check_groups_shape(groups) -> None:
    """Refuses groups that are not a list of lists of names: a bare string would
    otherwise be read as groups of its letters."""
    if not isinstance(groups, (list, tuple)) or not all(
            isinstance(group, (list, tuple)) and all(isinstance(op, str) for op in group)
            for group in groups):
        raise ValueError(f"groups: expected a list of groups, each a list of op names (such as "
                         f"[['skip_connect'], ['max_pool_3x3', 'avg_pool_3x3']]), got {groups!r}."[:400])


def load_groups(path: str) -> tuple[tuple[str, ...], ...]:
    """Reads a groups file: JSON `{"groups": [["skip_connect"], ["max_pool_3x3", ...], ...]}`."""
    expected = ('expected JSON {"groups": [["skip_connect"], ["max_pool_3x3", "avg_pool_3x3"], '
                "...]}")
    files.require_file(path, "--groups", "a groups file")
    try:
        with open(path) as f:
            value = json.loads(f.read(1_000_001), parse_constant=float)
    except FileNotFoundError as e:
        raise ValueError(f"--groups: file {path} does not exist.") from e
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as e:
        raise ValueError(f"--groups: {path} is not a groups file; {expected} "
                         f"({type(e).__name__}).") from e
    groups = value.get("groups") if isinstance(value, dict) else None
    if (not isinstance(groups, list) or len(groups) > len(op_names())
            or not all(isinstance(g, list) and all(isinstance(op, str) for op in g) for g in groups)):
        raise ValueError(f"--groups: {path} is not a groups file; {expected} (lists of op names).")
    groups = tuple(tuple(group) for group in groups)
    try:
        SearchSpace(groups=groups)  # validates names and disjointness
    except ValueError as e:
        raise ValueError(f"--groups: {path}: {e}") from e
    left_out = [op for op in PRIMITIVES if op != NONE and not any(op in g for g in groups)]
    if left_out:
        logging.warning("--groups: %s leaves out %s of the DARTS ops: they are not searched.",
                        path, ", ".join(left_out))
    return groups


@dataclasses.dataclass(frozen=True)
class StageSpace:
    """Candidates on every edge of a supernet for one search stage.

    `cells` holds one `CellCandidates` per set of architecture logits: with
    shared logits (the paper's default) two sets, (normal, reduce), used by all
    cells of that type; with `per_cell` one set per cell (the paper's enlarged
    space), each cell with its own logits.
    """

    cells: tuple[CellCandidates, ...]
    per_cell: bool = False

    def __post_init__(self):
        object.__setattr__(self, "cells", tuple(_freeze(c) for c in self.cells))
        if not self.per_cell and len(self.cells) != 2:
            raise ValueError(f"shared logits need (normal, reduce) candidates, got {len(self.cells)} sets.")
        for cell in self.cells:
            for edge in cell:
                check_ops(edge, "candidates")
                if len(set(edge)) != len(edge):
                    raise ValueError(f"candidates: an op appears twice on one edge: {edge}.")
                if edge[0] != NONE or len(edge) < 2:
                    raise ValueError(f"candidates: each edge must start with `none` and hold an op: {edge}.")

    @classmethod
    def shared(cls, normal: CellCandidates, reduce: CellCandidates) -> "StageSpace":
        return cls(cells=(normal, reduce), per_cell=False)

    def set_names(self, num_cells: int) -> tuple[str, ...]:
        if not self.per_cell:
            return ("normal", "reduce")
        reductions = reduction_positions(num_cells)
        return tuple(f"cell_{k}_{'reduce' if k in reductions else 'normal'}" for k in range(num_cells))

    def set_of_cell(self, cell: int, reduction: bool) -> int:
        if self.per_cell:
            return cell
        return 1 if reduction else 0

    def to_dict(self) -> dict:
        return {"per_cell": self.per_cell, "cells": [[list(e) for e in c] for c in self.cells]}

    @classmethod
    def from_dict(cls, value: dict) -> "StageSpace":
        return cls(cells=value["cells"], per_cell=value["per_cell"])


def _freeze(cell) -> CellCandidates:
    return tuple(tuple(edge) for edge in cell)


def stage1_space(space: SearchSpace, num_cells: int, per_cell: bool) -> StageSpace:
    cell = space.stage1_candidates()
    return StageSpace(cells=(cell,) * (num_cells if per_cell else 2), per_cell=per_cell)


def map_cell_index(cell: int, num_cells: int, source_num_cells: int) -> int:
    """Maps a cell of a `num_cells` network onto the cell of the same type at the
    same relative position of a `source_num_cells` network (per-cell stage 2)."""
    target_red = sorted(reduction_positions(num_cells))
    source_red = sorted(reduction_positions(source_num_cells))
    if cell in target_red:
        return source_red[target_red.index(cell)]

    def segments(n, reds):
        bounds = [-1] + list(reds) + [n]
        return [[k for k in range(lo + 1, hi) if k not in reds] for lo, hi in zip(bounds, bounds[1:])]

    target_segments = segments(num_cells, target_red)
    source_segments = segments(source_num_cells, source_red)
    for seg_index, segment in enumerate(target_segments):
        if cell in segment:
            source = source_segments[seg_index] or [k for s in source_segments for k in s]
            position = segment.index(cell) / len(segment)
            return source[min(int(position * len(source)), len(source) - 1)]
    raise ValueError(f"cell {cell} out of range for {num_cells} cells.")


def stage2_space(
    space: SearchSpace,
    winners: Sequence[Sequence[str]],
    num_cells: int,
    source_num_cells: int,
    per_cell: bool,
) -> StageSpace:
    """Stage-2 candidates from the stage-1 winners of each logit set.

    `winners[s][e]` is the strongest non-`none` op of edge `e` in logit set `s`
    (normal, reduce when shared; one set per stage-1 cell otherwise).
    """
    cells = [space.activate(w) for w in winners]
    if not per_cell:
        return StageSpace.shared(cells[0], cells[1])
    mapped = tuple(cells[map_cell_index(k, num_cells, source_num_cells)] for k in range(num_cells))
    return StageSpace(cells=mapped, per_cell=True)
