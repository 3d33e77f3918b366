"""The chosen cells of a cell space, drawn as DARTS draws its genotypes: the ENAS micro space
(pdas2019, ``space="pdas"``) and the VINNAS space (vinnas2020, ``space="vinnas"``).

One panel per cell kind (pdas: normal and reduce; VINNAS: the kinds of its layout, e.g. only
reduce for layout M). The states sit on a line in the order a cell
computes them — ``c_{k-2}``, ``c_{k-1}``, ``n0`` .. ``n{B-1}``, then the output ``c_{k}`` —
and every node input is an arc from the state it reads to the node, named by its op: the
first input of a node arcs above the line, the second below, so a node that reads one state
twice still shows two arcs. Arcs are as high as they are long, so they nest instead of running
through the boxes between their ends. Dashed arcs bring the cell's output states into
``c_{k}``: the unused nodes in pdas, every state in VINNAS (its cell concatenates all of them,
vinnas2020 §III).

With ``probabilities`` (:func:`choice_probabilities` reads them from a run's posterior) each
arc also gives P(input) and P(op) of its choice, and is as thick as their product: how sure
the search is of that edge. A VINNAS genotype has no such probabilities: with ``strengths``
(:func:`vinnas_strengths` reads them from the run's Normal α sites) each arc gives its op's
positive SNR μ/σ² (vinnas2020 §IV-C) and its mixing weight softmax(μ) on that edge, and is as
thick as the weight. :func:`draw_genotype` returns the figure (for tests and notebooks),
:func:`plot_genotype` writes it as a PNG like every figure of :mod:`bayesnas.analysis.plots`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from bayesnas.analysis.plots import _LABEL_BOX, _figure, _save
from bayesnas.analysis.posterior import as_posterior
from bayesnas.nn import vinnas_cells
from bayesnas.nn.cell_network import CELL_KINDS, Node, decode_genotype, input_labels, unused_nodes
from bayesnas.nn.cell_ops import OPS
from bayesnas.nn.vinnas_ops import OPS as VINNAS_OPS
from bayesnas.nn.vinnas_ops import ZERO_INDEX

__all__ = ["SPACES", "choice_probabilities", "draw_genotype", "plot_genotype", "vinnas_strengths"]

Probabilities = Mapping[str, Sequence[Mapping[str, Sequence[float]]]]
#: ``{kind: [{"snr": [s, s], "weights": [w, w]}, ...]}``: per state, its two kept ops' numbers.
Strengths = Mapping[str, Sequence[Mapping[str, Sequence[float]]]]

_SPACING = 2.2  # data units between consecutive states on the line
_BOX = (1.3, 0.5)  # width, height of a state's box
_RISE = (0.75, 0.55)  # arc height: first value for neighbours, plus the second per state skipped
_INCH = 0.62  # inches per data unit (the axes keep an equal aspect, so arcs stay round)
_FILL = {"input": "#dbe9f6", "node": "#fdf3d0", "output": "#d9f0d3"}


@dataclass(frozen=True)
class _Space:
    """What the drawing needs to know of a cell space: its op palette, how its JSON genotypes
    decode (and which kinds they hold), and which states make a cell's output."""

    name: str
    ops: tuple[str, ...]
    unit: str  # what the space calls a computed state, as its error messages do

    @property
    def colors(self) -> dict[str, str]:
        # Each space gets the whole colour cycle: pdas has 5 ops, VINNAS 9 kept ones (tab10 has 10).
        return {op: f"C{k}" for k, op in enumerate(self.ops)}

    def decode(self, genotype: Mapping[str, Any]) -> dict[str, list[Node]]:
        """Decoded cells by kind, in drawing order; ``ValueError`` naming the broken rule."""
        if self.name == "pdas":
            nodes = decode_genotype(genotype)
            return {kind: nodes[kind] for kind in CELL_KINDS}
        # A VINNAS layout holds only some kinds (M: one reduction cell), so the genotype's own
        # kinds are drawn, provided they are kinds at all and every cell has the same states.
        allowed = list(vinnas_cells.KIND_OF.values())
        got = sorted(genotype) if isinstance(genotype, Mapping) else type(genotype).__name__
        if not isinstance(genotype, Mapping) or not genotype or any(k not in allowed for k in genotype):
            raise ValueError(f"A VINNAS genotype maps a non-empty subset of {allowed} (the cell kinds of "
                             f"its layout) to lists of states, but got {got}.")
        kinds = [k for k in allowed if k in genotype]
        first = genotype[kinds[0]]
        states = len(first) if isinstance(first, Sequence) and first else None
        nodes = vinnas_cells.decode_genotype(genotype, kinds=kinds, num_states=states)
        return {kind: nodes[kind] for kind in kinds}

    def outputs(self, nodes: Sequence[Node]) -> list[int]:
        """The states concatenated into ``c_{k}``: pdas the unused nodes (pdas2019), VINNAS all
        states (vinnas2020 §III, ``VinnasCell.forward``)."""
        return unused_nodes(nodes) if self.name == "pdas" else list(range(len(nodes)))


#: The cell spaces :func:`draw_genotype` draws, by its ``space`` argument.
SPACES = {"pdas": _Space("pdas", tuple(OPS), "node"),
          "vinnas": _Space("vinnas", vinnas_cells.KEPT_OPS, "state")}


def _space(space: str) -> _Space:
    if space not in SPACES:
        raise ValueError(f"`space` must be one of {list(SPACES)}, but got space={space!r}.")
    return SPACES[space]


def vinnas_strengths(genotype: Mapping[str, Any], posterior: Any, *,
                     zero_clip: float = 0.0) -> dict[str, list[dict[str, list[float]]]]:
    """SNR and mixing weight of every kept op of a VINNAS ``genotype`` under the run's posterior.

    ``posterior`` is anything :func:`~bayesnas.analysis.posterior.as_posterior` takes (a
    VINNAS run's ``posterior.json``), whose ``cell.<kind>.alpha`` sites hold α ~ N(μ, σ²) of
    shape ``(E, K)``, one row per edge. For the op ``o`` kept on edge ``(source, n_i)``: its
    positive SNR ``μ_o/σ_o²`` (the selection score of vinnas2020 §IV-C) and its mixing weight
    ``softmax(μ)_o`` over the edge's K ops at the posterior mean, the zero op's μ clamped to
    ``zero_clip`` as the search mixes them (``VinnasSearchSpace.mixing_weights``, default 0).
    Returns the genotype's shape with numbers: ``{kind: [{"snr": [s, s], "weights": [w, w]}]}``.
    Raises ``KeyError`` for a posterior without the α site of a kind, ``ValueError`` for a site
    that is not one (not Normal, or not one row per edge of the cell).
    """
    nodes = SPACES["vinnas"].decode(genotype)
    post = as_posterior(posterior)
    out: dict[str, list[dict[str, list[float]]]] = {}
    for kind, cell in nodes.items():
        site = f"cell.{kind}.alpha"
        m = post[site]
        names = vinnas_cells.edge_names(len(cell))
        mu, sigma = getattr(m, "mu", None), getattr(m, "sigma", None)
        if mu is None or sigma is None or tuple(mu.shape) != (len(names), len(VINNAS_OPS)):
            shape = None if mu is None else tuple(mu.shape)
            raise ValueError(f"Site {site!r} should hold Normal strengths α of shape (E, K) = "
                             f"({len(names)}, {len(VINNAS_OPS)}) for a cell of {len(cell)} states, but "
                             f"has μ of shape {shape} ({m.family} family): not a VINNAS posterior.")
        # Rows by the site's own edge names where it has them: the order is the space's business.
        rows = list(m.edges) if m.edges is not None else names
        labels = list(m.labels) if len(m.labels) == len(VINNAS_OPS) else list(VINNAS_OPS)
        clipped = mu.clone()
        clipped[:, ZERO_INDEX] = clipped[:, ZERO_INDEX].clamp(max=zero_clip)
        weights, snr = torch.softmax(clipped, dim=-1), mu / sigma**2
        out[kind] = []
        for i, (inputs, ops) in enumerate(cell):
            entry: dict[str, list[float]] = {"snr": [], "weights": []}
            for a, op in zip(inputs, ops, strict=True):
                edge = (vinnas_cells.state_labels(i)[a], f"n{i}")
                if edge not in rows:
                    raise ValueError(f"Site {site!r} has no edge {edge} (its edges: {rows}).")
                e, k = rows.index(edge), labels.index(op)
                entry["snr"].append(float(snr[e, k]))
                entry["weights"].append(float(weights[e, k]))
            out[kind].append(entry)
    return out


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


def _check_numbers(numbers: Mapping[str, Any], nodes: Mapping[str, Sequence[Node]], space: _Space) -> None:
    """``numbers`` (pdas: probabilities, VINNAS: strengths) must have the genotype's shape."""
    arg, keys, helper = (("probabilities", ("inputs", "ops"), "choice_probabilities") if space.name == "pdas"
                         else ("strengths", ("snr", "weights"), "vinnas_strengths"))
    unit = space.unit
    for kind in nodes:
        entries = numbers.get(kind) if isinstance(numbers, Mapping) else None
        if not isinstance(entries, Sequence) or len(entries) != len(nodes[kind]):
            shape = ", ".join(f"'{k}': [x, x]" for k in keys)
            raise ValueError(f"`{arg}` must give the {len(nodes[kind])} {unit}s of the {kind} cell "
                             f"as [{{{shape}}}, ...] (see {helper}), but got {entries!r}.")
        for i, entry in enumerate(entries):
            for key in keys:
                values = entry.get(key) if isinstance(entry, Mapping) else None
                # Probabilities and mixing weights lie in [0, 1]; an SNR is any finite number.
                bounded = key != "snr"
                ok = isinstance(values, Sequence) and len(values) == 2 and all(
                    isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p)
                    and (not bounded or 0.0 <= p <= 1.0) for p in values)
                if not ok:
                    what = "probabilities in [0, 1]" if key in ("inputs", "ops") else (
                        "weights in [0, 1]" if bounded else "finite numbers")
                    raise ValueError(f"`{arg}` of {unit} {i} of the {kind} cell need {key!r}: two "
                                     f"{what}, but got {values!r}.")


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


def _panel(ax: Axes, kind: str, nodes: Sequence[Node],
           numbers: Sequence[Mapping[str, Sequence[float]]] | None, most_nodes: int, space: _Space) -> None:
    """One cell kind; ``most_nodes`` is the most nodes of any kind, so that the panels align.
    ``numbers`` are the kind's probabilities (pdas) or strengths (VINNAS), if any."""
    labels = [*input_labels(len(nodes)), "c_{k}"]
    xs = [_SPACING * k for k in range(len(labels))]
    fills = ["input", "input", *["node"] * len(nodes), "output"]
    boxes = [_state(ax, x, label, fill) for x, label, fill in zip(xs, labels, fills, strict=True)]
    colors = space.colors
    joint = 1.0
    for i, (inputs, ops) in enumerate(nodes):
        for j, (a, op) in enumerate(zip(inputs, ops, strict=True)):
            if numbers is None:
                sure, text = 1.0, op
            elif space.name == "pdas":
                p_in, p_op = numbers[i]["inputs"][j], numbers[i]["ops"][j]
                joint *= p_in * p_op
                sure, text = p_in * p_op, f"{op}\nin {p_in:.2f} · op {p_op:.2f}"
            else:
                # VINNAS has no probability of a choice: the weight the search mixed the op with
                # on its edge says how much it mattered, the SNR why it was (or was not) kept.
                snr, weight = numbers[i]["snr"][j], numbers[i]["weights"][j]
                sure, text = weight, f"{op}\nSNR {snr:.3g} · w {weight:.2f}"
            # With numbers an edge is as thick and opaque as the search is sure of it.
            lw, alpha = (0.8 + 2.7 * sure, 0.45 + 0.55 * sure) if numbers is not None else (1.6, 0.9)
            y = _arc(ax, boxes[a], boxes[i + 2], xs[a], xs[i + 2], 1 if j == 0 else -1,
                     arrowstyle="-|>", mutation_scale=10, color=colors[op], linewidth=lw, alpha=alpha)
            ax.text((xs[a] + xs[i + 2]) / 2, y, text, ha="center", va="center", fontsize=7,
                    color="black", bbox=_LABEL_BOX, zorder=5, gid=f"edge:{kind}.n{i}.{j}")
    outputs = space.outputs(nodes)
    for u in outputs:
        _arc(ax, boxes[u + 2], boxes[-1], xs[u + 2], xs[-1], -1, arrowstyle="-|>", mutation_scale=10,
             color="grey", linewidth=1.0, linestyle="--")
    top = _half_height(most_nodes)
    ax.set_xlim(-_BOX[0], _SPACING * (most_nodes + 2) + _BOX[0])
    ax.set_ylim(-top, top)
    ax.set_aspect("equal")
    ax.set_axis_off()
    title = f"{kind} cell: c_{{k}} = concat({', '.join(f'n{u}' for u in outputs)})"
    # A joint probability only exists for pdas' categorical choices; VINNAS' α are not choices.
    if numbers is not None and space.name == "pdas":
        title += f"; P(these {4 * len(nodes)} choices) = {joint:.3g}"
    ax.set_title(title, fontsize=10)


def draw_genotype(genotype: Mapping[str, Any], *, probabilities: Probabilities | None = None,
                  space: str = "pdas", strengths: Strengths | None = None,
                  title: str | None = None) -> Figure:
    """The figure of :func:`plot_genotype`, not saved (its texts name the states and ops)."""
    sp = _space(space)
    nodes = sp.decode(genotype)  # raises ValueError naming what is wrong
    # Each space has its own numbers: refusing the other's keeps a caller from mixing them up.
    numbers, other, other_name = ((probabilities, strengths, "strengths") if sp.name == "pdas"
                                  else (strengths, probabilities, "probabilities"))
    if other is not None:
        raise ValueError(f"`{other_name}` belong to the other cell space, not to space={space!r}: "
                         "pdas arcs take `probabilities` (choice_probabilities), VINNAS arcs "
                         "`strengths` (vinnas_strengths).")
    if numbers is not None:
        _check_numbers(numbers, nodes, sp)
    kinds = list(nodes)
    most = max(len(nodes[kind]) for kind in kinds)
    fig = _figure(_INCH * (_SPACING * (most + 2) + 2 * _BOX[0]) + 0.5,
                  len(kinds) * (_INCH * 2 * _half_height(most) + 0.4) + (0.4 if len(kinds) == 1 else 0.0))
    axes = fig.subplots(len(kinds), 1, squeeze=False)[:, 0]
    for ax, kind in zip(axes, kinds, strict=True):
        _panel(ax, kind, nodes[kind], None if numbers is None else numbers[kind], most, sp)
    used = sorted({op for kind in kinds for _, ops in nodes[kind] for op in ops}, key=sp.ops.index)
    colors = sp.colors
    for op in used:
        axes[0].plot([], [], color=colors[op], linewidth=2, label=op)
    axes[0].plot([], [], color="grey", linestyle="--", label="into the output")
    fig.legend(fontsize=8, loc="outside lower center", ncols=math.ceil((len(used) + 1) / 2))
    if numbers is None:
        sub = ""
    elif sp.name == "pdas":
        sub = "; arcs: op, P(input), P(op), width ∝ their product"
    else:
        # On its own line: a layout-M figure (one cell of 2 states) is too narrow for one.
        sub = "\narcs: op, SNR μ/σ², mixing weight w = softmax(μ), width ∝ w"
    fig.suptitle(f"{title or 'Chosen cells'} (first input above, second below){sub}", fontsize=10)
    return fig


def plot_genotype(genotype: Mapping[str, Any], path: str | os.PathLike, *,
                  probabilities: Probabilities | None = None, space: str = "pdas",
                  strengths: Strengths | None = None, title: str | None = None) -> Path:
    """Draw a JSON genotype of a cell space to a PNG at ``path``.

    ``space="pdas"`` (default): the ENAS micro space of pdas2019 (``RUN_DIR/genotype.json``),
    both cell kinds; ``probabilities`` has the genotype's shape with numbers for names,
    ``{"normal": [{"inputs": [P, P], "ops": [P, P]}, ...], "reduce": [...]}``
    (:func:`choice_probabilities` makes it from a posterior). ``space="vinnas"``: a VINNAS
    genotype (``genotype_snr.json`` / ``genotype_magnitude.json``), only the kinds it holds;
    ``strengths`` ``{kind: [{"snr": [s, s], "weights": [w, w]}, ...]}`` (:func:`vinnas_strengths`,
    vinnas2020 §IV-C). ``title`` replaces "Chosen cells" at the top (e.g. the selection rule).
    A malformed genotype or numbers raise ``ValueError`` before anything is written.
    """
    return _save(draw_genotype(genotype, probabilities=probabilities, space=space, strengths=strengths,
                               title=title), path)
