"""The chosen cells of the ENAS micro space (pdas2019), drawn as DARTS draws its genotypes.

One panel per cell kind (normal, reduce). The states sit on a line in the order a cell
computes them — ``c_{k-2}``, ``c_{k-1}``, ``n0`` .. ``n{B-1}``, then the output ``c_{k}`` —
and every node input is an arc from the state it reads to the node, named by its op: the
first input of a node arcs above the line, the second below, so a node that reads one state
twice still shows two arcs. Arcs are as high as they are long, so they nest instead of running
through the boxes between their ends. Dashed arcs bring the unused nodes into ``c_{k}``.

With ``probabilities`` (:func:`choice_probabilities` reads them from a run's posterior) each
arc also gives P(input) and P(op) of its choice, and is as thick as their product: how sure
the search is of that edge. :func:`draw_genotype` returns the figure (for tests and notebooks),
:func:`plot_genotype` writes it as a PNG like every figure of :mod:`bayesnas.analysis.plots`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from bayesnas.analysis.plots import _LABEL_BOX, _figure, _save
from bayesnas.analysis.posterior import as_posterior
from bayesnas.nn.cell_network import CELL_KINDS, Node, decode_genotype, input_labels, unused_nodes
from bayesnas.nn.cell_ops import OPS

__all__ = ["choice_probabilities", "draw_genotype", "plot_genotype"]

Probabilities = Mapping[str, Sequence[Mapping[str, Sequence[float]]]]

_SPACING = 2.2  # data units between consecutive states on the line
_BOX = (1.3, 0.5)  # width, height of a state's box
_RISE = (0.75, 0.55)  # arc height: first value for neighbours, plus the second per state skipped
_INCH = 0.62  # inches per data unit (the axes keep an equal aspect, so arcs stay round)
_COLORS = {op: f"C{k}" for k, op in enumerate(OPS)}
_FILL = {"input": "#dbe9f6", "node": "#fdf3d0", "output": "#d9f0d3"}


def choice_probabilities(
    genotype: Mapping[str, Any], posterior: Any
) -> dict[str, list[dict[str, list[float]]]]:
    """P of each choice of ``genotype`` under the marginals of the cell space's sites.

    ``posterior`` is anything :func:`~bayesnas.analysis.posterior.as_posterior` takes (a run's
    ``posterior.json``). Returns the genotype's shape with numbers instead of names:
    ``{"normal": [{"inputs": [P, P], "ops": [P, P]}, ...], "reduce": [...]}``. Raises
    ``KeyError`` when the posterior lacks a site of the genotype (not a cell-space run).
    """
    # Imported here: bayesnas.models loads every search space, which the analysis needs not.
    from bayesnas.models.cell_space import site_names

    nodes = decode_genotype(genotype)
    post = as_posterior(posterior)
    out: dict[str, list[dict[str, list[float]]]] = {}
    for kind in CELL_KINDS:
        out[kind] = []
        for i, (inputs, ops) in enumerate(nodes[kind]):
            entry = {}
            for key, site, chosen in zip(("inputs", "ops"), site_names(kind, i),
                                         ([input_labels(i)[a] for a in inputs], ops), strict=True):
                m = post[site]
                probs = m.flat_probs()
                if probs.shape[0] != 2:
                    raise ValueError(f"Site {site!r} should hold the 2 choices of a node, but has "
                                     f"{probs.shape[0]} variables: not a cell-space posterior.")
                # Labels, not indices: the sites label inputs by state name and ops by op name.
                entry[key] = [float(probs[j, m.labels.index(label)]) for j, label in enumerate(chosen)]
            out[kind].append(entry)
    return out


def _check_probabilities(probabilities: Probabilities, nodes: Mapping[str, Sequence[Node]]) -> None:
    for kind in CELL_KINDS:
        entries = probabilities.get(kind) if isinstance(probabilities, Mapping) else None
        if not isinstance(entries, Sequence) or len(entries) != len(nodes[kind]):
            raise ValueError(f"`probabilities` must give the {len(nodes[kind])} nodes of the {kind} cell "
                             "as [{'inputs': [P, P], 'ops': [P, P]}, ...] (see choice_probabilities), "
                             f"but got {entries!r}.")
        for i, entry in enumerate(entries):
            for key in ("inputs", "ops"):
                values = entry.get(key) if isinstance(entry, Mapping) else None
                ok = isinstance(values, Sequence) and len(values) == 2 and all(
                    isinstance(p, int | float) and 0.0 <= p <= 1.0 for p in values)
                if not ok:
                    raise ValueError(f"`probabilities` of node {i} of the {kind} cell need {key!r}: two "
                                     f"probabilities in [0, 1], but got {values!r}.")


def _half_height(most_nodes: int) -> float:
    """Half the height of a panel: room for the longest arc, c_{k-2} to the last node."""
    return _RISE[0] + _RISE[1] * most_nodes + 0.4


def _state(ax: Axes, x: float, label: str, fill: str) -> FancyBboxPatch:
    w, h = _BOX
    box = FancyBboxPatch((x - w / 2, -h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                         facecolor=_FILL[fill], edgecolor="black", linewidth=0.9, zorder=3)
    ax.add_patch(box)
    ax.text(x, 0.0, label, ha="center", va="center", fontsize=9, zorder=4, gid=f"state:{label}")
    return box


def _arc(ax: Axes, a: FancyBboxPatch, b: FancyBboxPatch, xa: float, xb: float, side: int,
         **style: Any) -> float:
    """An arc from state box ``a`` to box ``b`` above (``side=1``) or below (-1) the line;
    returns the height of its apex."""
    span = round(abs(xb - xa) / _SPACING)
    height = _RISE[0] + _RISE[1] * (span - 1)
    # arc3 puts the control point rad · length off the chord, the apex half as far; a
    # left-to-right arc with positive rad bends downwards.
    rad = -side * 2 * height / abs(xb - xa)
    ax.add_patch(FancyArrowPatch((xa, 0.0), (xb, 0.0), connectionstyle=f"arc3,rad={rad:.4f}",
                                 patchA=a, patchB=b, shrinkA=1, shrinkB=1, zorder=2, **style))
    return side * height


def _panel(ax: Axes, kind: str, nodes: Sequence[Node], probs: Sequence[Mapping[str, Sequence[float]]] | None,
           most_nodes: int) -> None:
    """One cell kind; ``most_nodes`` is the most nodes of any kind, so that both panels align."""
    labels = [*input_labels(len(nodes)), "c_{k}"]
    xs = [_SPACING * k for k in range(len(labels))]
    fills = ["input", "input", *["node"] * len(nodes), "output"]
    boxes = [_state(ax, x, label, fill) for x, label, fill in zip(xs, labels, fills, strict=True)]
    joint = 1.0
    for i, (inputs, ops) in enumerate(nodes):
        for j, (a, op) in enumerate(zip(inputs, ops, strict=True)):
            p_in, p_op = (probs[i]["inputs"][j], probs[i]["ops"][j]) if probs is not None else (1.0, 1.0)
            joint *= p_in * p_op
            # With probabilities an edge is as thick and opaque as the search is sure of it.
            sure = p_in * p_op
            lw, alpha = (0.8 + 2.7 * sure, 0.45 + 0.55 * sure) if probs is not None else (1.6, 0.9)
            y = _arc(ax, boxes[a], boxes[i + 2], xs[a], xs[i + 2], 1 if j == 0 else -1,
                     arrowstyle="-|>", mutation_scale=10, color=_COLORS[op], linewidth=lw, alpha=alpha)
            text = op if probs is None else f"{op}\nin {p_in:.2f} · op {p_op:.2f}"
            ax.text((xs[a] + xs[i + 2]) / 2, y, text, ha="center", va="center", fontsize=7,
                    color="black", bbox=_LABEL_BOX, zorder=5, gid=f"edge:{kind}.n{i}.{j}")
    for u in unused_nodes(nodes):
        _arc(ax, boxes[u + 2], boxes[-1], xs[u + 2], xs[-1], -1, arrowstyle="-|>", mutation_scale=10,
             color="grey", linewidth=1.0, linestyle="--")
    top = _half_height(most_nodes)
    ax.set_xlim(-_BOX[0], _SPACING * (most_nodes + 2) + _BOX[0])
    ax.set_ylim(-top, top)
    ax.set_aspect("equal")
    ax.set_axis_off()
    output = ", ".join(f"n{u}" for u in unused_nodes(nodes))
    title = f"{kind} cell: c_{{k}} = concat({output})"
    if probs is not None:
        title += f"; P(these {4 * len(nodes)} choices) = {joint:.3g}"
    ax.set_title(title, fontsize=10)


def draw_genotype(genotype: Mapping[str, Any], *, probabilities: Probabilities | None = None) -> Figure:
    """The figure of :func:`plot_genotype`, not saved (its texts name the states and ops)."""
    nodes = decode_genotype(genotype)  # raises ValueError naming what is wrong
    if probabilities is not None:
        _check_probabilities(probabilities, nodes)
    most = max(len(nodes[kind]) for kind in CELL_KINDS)
    fig = _figure(_INCH * (_SPACING * (most + 2) + 2 * _BOX[0]) + 0.5,
                  len(CELL_KINDS) * (_INCH * 2 * _half_height(most) + 0.4))
    axes = fig.subplots(len(CELL_KINDS), 1, squeeze=False)[:, 0]
    for ax, kind in zip(axes, CELL_KINDS, strict=True):
        _panel(ax, kind, nodes[kind], None if probabilities is None else probabilities[kind], most)
    used = sorted({op for kind in CELL_KINDS for _, ops in nodes[kind] for op in ops}, key=OPS.index)
    for op in used:
        axes[0].plot([], [], color=_COLORS[op], linewidth=2, label=op)
    axes[0].plot([], [], color="grey", linestyle="--", label="into the output")
    fig.legend(fontsize=8, loc="outside lower center", ncols=math.ceil((len(used) + 1) / 2))
    sub = "; arcs: op, P(input), P(op), width ∝ their product" if probabilities is not None else ""
    fig.suptitle(f"Chosen cells (first input above, second below){sub}", fontsize=10)
    return fig


def plot_genotype(genotype: Mapping[str, Any], path: str | os.PathLike, *,
                  probabilities: Probabilities | None = None) -> Path:
    """Draw a JSON genotype of the cell space (``RUN_DIR/genotype.json``) to a PNG at ``path``.

    ``probabilities`` has the genotype's shape with numbers for names,
    ``{"normal": [{"inputs": [P, P], "ops": [P, P]}, ...], "reduce": [...]}``
    (:func:`choice_probabilities` makes it from a posterior). A malformed genotype or
    probabilities raise ``ValueError`` before anything is written.
    """
    return _save(draw_genotype(genotype, probabilities=probabilities), path)
