"""The figures of a search: what the posterior over architectures looks like, and how it got there.

Every function takes what :func:`~bayesnas.analysis.posterior.as_posterior` accepts (a
:class:`~bayesnas.analysis.posterior.Posterior`, a guide, a ``posterior.json`` summary), or a
history of ``(iteration, posterior)`` pairs, writes one PNG atomically and returns its path.
They read only the discrete view of :mod:`bayesnas.analysis.marginals`, so they hold for every
guide family.

- :func:`plot_theta_histograms` — shirakawa2018 fig. 4: are the bits decided? θ piles up near 0
  and 1 once they are; other families show each variable's probability of its most likely value.
- :func:`plot_trajectories` — shirakawa2018 fig. 2: θ of each bit over training beside Σθ, the
  expected number of active bits (layers, units); does the search settle, and where?
- :func:`plot_entropy` — the total entropy and the number of undecided variables over training.
- :func:`plot_cell` — the cell as a graph: one arc per op and edge, as thick as its probability
  (or its positive SNR μ/σ², vinnas2020), the most likely op named on each edge.
- :func:`plot_heatmap` — op x edge table of probabilities (or positive SNR), one panel per label set.
- :func:`plot_tradeoff` — saito2018 fig. 1: weight usage rate against test error, one curve per method.
- :func:`plot_learning_curves` — training loss and validation / test error per epoch of a run.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state),
so they render headless and never disturb an interactive session. Large posteriors stay
readable: trajectories are subsampled, cell diagrams and heat-maps keep the most uncertain
variables and say so in their titles.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from matplotlib.ticker import MaxNLocator

from bayesnas.analysis.convergence import DECIDED, convergence_curve
from bayesnas.analysis.marginals import BernoulliMarginal, NormalStrengthMarginal, SiteMarginal
from bayesnas.analysis.posterior import Posterior, as_posterior
from bayesnas.runs import atomic_write_bytes

__all__ = [
    "plot_cell",
    "plot_entropy",
    "plot_heatmap",
    "plot_learning_curves",
    "plot_theta_histograms",
    "plot_tradeoff",
    "plot_trajectories",
]

_DPI = 100
_MAX_PANELS = 32  # histogram panels; beyond, the first ones are drawn and the title says so
_MAX_ARCS = 8  # arcs per cell edge: the most heavily weighted values (gaussian-integer has many)
_ANNOTATE = (20, 12)  # heat-map cells get numbers up to this many rows x columns
_CHAIN_WRAP = 12  # chain edges (variables without `edges`) per row of the cell diagram
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7}
_SHELF = 14.0  # width (in layers) of a row of the cell diagram; smaller graphs sit side by side


# -- helpers ---------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(min(width, 24.0), min(height, 30.0)), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _history(history: Iterable[tuple[float, Any]]) -> list[tuple[float, Posterior]]:
    out = [(step, as_posterior(p)) for step, p in history]
    if not out:
        raise ValueError("The history is empty: it needs at least one (step, posterior) pair.")
    return out


def _is_bits(m: SiteMarginal) -> bool:
    return isinstance(m, BernoulliMarginal)


def _theta_label(m: SiteMarginal) -> str:
    return "θ = P(m = 1)" if m.labels == ("0", "1") else f"θ = P({m.labels[1]})"


def _index_label(m: SiteMarginal, i: int) -> str:
    if not m.shape:
        return m.name
    return f"{m.name}[{','.join(str(int(j)) for j in np.unravel_index(i, m.shape))}]"


def _endpoints(m: SiteMarginal, i: int) -> tuple[str, str]:
    """The variable's edge, or the chain edge ``site:i -> site:i+1`` when the site has none
    (a chain breaks every 12 variables, its last node marked ``→``, so long chains wrap)."""
    if m.edges is not None:
        return m.edges[i]
    wrap = (i + 1) % _CHAIN_WRAP == 0 and i + 1 < m.num_variables
    return f"{m.name}:{i}", f"{m.name}:{i + 1}" + (" →" if wrap else "")


def _most_uncertain(pmax: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` (at least 1) lowest max-probabilities, in their original order."""
    k = max(1, k)
    if len(pmax) <= k:
        return np.arange(len(pmax))
    return np.sort(np.argsort(pmax, kind="stable")[:k])


def _weights(m: SiteMarginal, weight: str) -> tuple[np.ndarray, str]:
    """``(num_variables, V)`` weights of a site's values, and what they are."""
    if weight == "snr" and isinstance(m, NormalStrengthMarginal):
        return m.snr.clamp_min(0).reshape(m.num_variables, -1).numpy(), "snr"
    return m.flat_probs().numpy(), "prob"


# -- shirakawa2018 fig. 4 ----------------------------------------------------------------------
def plot_theta_histograms(posterior: Any, path: str | os.PathLike, *, bins: int = 20) -> Path:
    """Histograms of θ per site (per layer), as shirakawa2018 fig. 4.

    Bernoulli families show θ = P(m = 1) of every bit on [0, 1], one panel per site, and one per
    leading row of a 2-D site with at most 8 rows (e.g. activation bits ``(layers, units)``).
    Other families show each variable's probability of its most likely value.
    """
    post = as_posterior(posterior)
    panels: list[tuple[str, np.ndarray, str]] = []
    for m in post:
        if _is_bits(m):
            theta = m.theta.numpy()
            rows = list(theta) if theta.ndim == 2 and theta.shape[0] <= 8 else [theta]
            for r, t in enumerate(rows):
                title = f"{m.name}[{r}]" if len(rows) > 1 else m.name
                panels.append((title, t.reshape(-1), _theta_label(m)))
        else:
            panels.append((f"{m.name} ({m.family})", m.max_prob().numpy().reshape(-1),
                           "P(most likely value)"))
    total = len(panels)
    panels = panels[:_MAX_PANELS]
    ncols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(3.2 * ncols, 2.6 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax, (title, x, xlabel) in zip(axes, panels, strict=False):
        ax.hist(x, bins=bins, range=(0.0, 1.0), color="tab:blue", edgecolor="white", linewidth=0.4)
        ax.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlim(0.0, 1.0)
        # Two lines: a long site name (cell.reduce.n4.inputs) would run into the next panel.
        ax.set_title(f"{title}\n{x.size} variables, mean {x.mean():.2f}", fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("count", fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # no 0.5 counts on small sites
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    more = f" (first {len(panels)} of {total} panels)" if total > len(panels) else ""
    fig.suptitle(f"Posterior marginals per site{more}")
    return _save(fig, path)


# -- shirakawa2018 fig. 2 ----------------------------------------------------------------------
def _probability_of(post: Posterior, name: str, targets: np.ndarray) -> np.ndarray:
    """P(variable = target value) per variable of site ``name`` in one snapshot (NaN if absent)."""
    m = post.marginals.get(name)
    if m is None or m.num_variables != len(targets):
        return np.full(len(targets), np.nan)
    match = np.asarray(m.values)[None, :] == targets[:, None]
    return (m.flat_probs().numpy() * match).sum(-1)


def plot_trajectories(history: Iterable[tuple[float, Any]], path: str | os.PathLike, *,
                      max_lines: int = 64) -> Path:
    """θ of each bit over training, beside Σθ, as shirakawa2018 fig. 2.

    Left: one line per bit of the Bernoulli sites (θ), and for other families the probability
    of each variable's final most likely value; at most ``max_lines`` lines, evenly chosen.
    Right: Σθ, the expected number of active bits, or the mean max-probability without bits.
    """
    hist = _history(history)
    steps = np.asarray([s for s, _ in hist], dtype=float)
    final = hist[-1][1]
    columns, colors, names = [], [], []
    for c, m in enumerate(final):
        targets = np.ones(m.num_variables) if _is_bits(m) else np.asarray(m.values)[m.mode_index().numpy()]
        targets = targets.reshape(-1)
        columns.append(np.stack([_probability_of(p, m.name, targets) for _, p in hist]))
        colors += [f"C{c % 10}"] * m.num_variables
        names.append(m.name)
    traj = np.concatenate(columns, axis=1)
    n = traj.shape[1]
    chosen = np.unique(np.linspace(0, n - 1, min(n, max(1, max_lines))).round().astype(int))
    bits = [_is_bits(m) for m in final]
    ylabel = "θ = P(m = 1)" if all(bits) else "θ or P(final most likely value)" if any(bits) \
        else "P(final most likely value)"

    fig = _figure(11, 4)
    left, right = fig.subplots(1, 2)
    marker = "o" if len(steps) == 1 else None
    for j in chosen:
        left.plot(steps, traj[:, j], color=colors[j], linewidth=0.7, alpha=0.6, marker=marker, markersize=3)
    if len(names) > 1:
        # Colours repeat every 10 sites: each entry names every site of its colour.
        for c in range(min(len(names), 10)):
            same = names[c::10]
            label = ", ".join(same[:3]) + (f" (+{len(same) - 3})" if len(same) > 3 else "")
            left.plot([], [], color=f"C{c}", label=label)
        left.legend(fontsize=7 if len(names) <= 10 else 6, loc="best")
    sub = f" ({len(chosen)} of {n} variables, evenly spaced)" if len(chosen) < n else ""
    left.set_title(f"Trajectories{sub}", fontsize=10)
    left.set(xlabel="iteration", ylabel=ylabel, ylim=(-0.02, 1.02))

    if any(bits):
        active = [p.expected_active() for _, p in hist]
        y = np.asarray([np.nan if a is None else a for a in active], dtype=float)
        right.set(ylabel="Σθ (expected active bits)", title="Sum of the Bernoulli parameters")
    else:
        y = np.asarray([np.mean(np.concatenate([m.max_prob().numpy().reshape(-1) for m in p]))
                        for _, p in hist])
        right.set(ylabel="mean max probability", title="Mean max probability", ylim=(0, 1.02))
    right.plot(steps, y, color="tab:red", marker="o" if len(steps) <= 50 else None, markersize=3)
    right.set_xlabel("iteration")
    return _save(fig, path)


def plot_entropy(history: Iterable[tuple[float, Any]], path: str | os.PathLike) -> Path:
    """Total entropy (nats) over training and, on a twin axis, the undecided variables
    (max probability < 0.9): the convergence curves of :func:`convergence_curve`."""
    curve = convergence_curve(_history(history))
    steps = curve["step"]
    marker = "o" if len(steps) <= 50 else None
    fig = _figure(7, 4)
    ax = fig.subplots()
    (h1,) = ax.plot(steps, curve["entropy"], color="tab:blue", marker=marker, markersize=3,
                    label="entropy")
    ax.set(xlabel="iteration", ylabel="entropy (nats)")
    twin = ax.twinx()
    (h2,) = twin.plot(steps, curve["undecided"], color="tab:orange", marker=marker, markersize=3,
                      label=f"undecided (max prob < {DECIDED})")
    total = max(curve["num_variables"])
    twin.set(ylabel=f"undecided variables (of {total})", ylim=(0, 1.02 * total))
    fig.legend(handles=[h1, h2], fontsize=8, loc="outside lower center", ncols=2)
    ax.set_title("Posterior entropy and undecided variables")
    return _save(fig, path)


# -- cell diagram ----------------------------------------------------------------------------------
def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering (sources at 0); cycles stop growing after ``len(nodes)`` rounds."""
    layer = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):
        changed = False
        for s, t in edges:
            if s != t and layer[t] < layer[s] + 1:
                layer[t], changed = layer[s] + 1, True
        if not changed:
            break
    return layer


def _layout(
    edges: list[tuple[str, str]],
) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """Node positions: each connected graph layered left to right, the graphs packed in rows.

    A graph deeper than a row (a 31-layer chain) is folded into consecutive rows; the first
    column of each continuation row is repeated at the end of the row before as a *ghost*
    node, so edges into it stay on their row. Returns ``(positions, ghost positions)``."""
    nodes = list(dict.fromkeys(n for e in edges for n in e))
    layer = _layers(nodes, edges)
    root = {n: n for n in nodes}

    def find(n: str) -> str:
        while root[n] != n:
            n = root[n]
        return n

    for s, t in edges:
        root[find(s)] = find(t)
    graphs: dict[str, list[str]] = {}
    for n in nodes:
        graphs.setdefault(find(n), []).append(n)
    pieces: list[dict[int, list[str]]] = []
    fold = int(_SHELF)
    for graph in graphs.values():
        first = min(layer[n] for n in graph)
        cols: dict[int, list[str]] = {}
        for n in graph:
            cols.setdefault(layer[n] - first, []).append(n)
        for start in range(0, max(cols) + 1, fold):
            # One column of overlap: the next row's first column ends this row as ghosts.
            piece = {x - start: c for x, c in cols.items() if start <= x <= start + fold}
            if piece:
                pieces.append(piece)
    pos: dict[str, tuple[float, float]] = {}
    ghosts: dict[str, tuple[float, float]] = {}
    x0 = top = 0.0
    rows = 0
    for cols in pieces:
        width, height = max(cols) + 1, max(len(c) for c in cols.values())
        if x0 and x0 + width > _SHELF:  # start a new row of graphs
            x0, top, rows = 0.0, top - rows - 0.3, 0
        for x, col in cols.items():
            for k, n in enumerate(col):
                if x == fold:
                    ghosts[n] = (x0 + x, top - k - (height - len(col)) / 2)
                else:
                    pos[n] = (x0 + x, top - k - (height - len(col)) / 2)
        x0, rows = x0 + width + 0.4, max(rows, height)
    return pos, {n: xy for n, xy in ghosts.items() if n in pos}


def plot_cell(posterior: Any, path: str | os.PathLike, *, weight: str = "prob", max_edges: int = 48) -> Path:
    """The architecture as a graph: each value of a variable is an arc between its two nodes.

    Arcs are as wide as the value's probability (``weight="prob"``) or, for the normal family,
    its positive SNR μ/σ² clipped at 0 and normalised per edge (``weight="snr"``, vinnas2020
    alg. 1; other families fall back to probabilities). Each edge names its most likely value.
    Variables without ``edges`` form a chain per site. Beyond ``max_edges`` variables, the most
    uncertain ones are drawn. At most 8 arcs per edge, the heaviest.
    """
    if weight not in ("prob", "snr"):
        raise ValueError(f"`weight` must be 'prob' or 'snr', but got weight={weight!r}.")
    post = as_posterior(posterior)
    variables = [(m, i) for m in post for i in range(m.num_variables)]
    pmax = np.concatenate([m.max_prob().numpy().reshape(-1) for m in post])
    variables = [variables[k] for k in _most_uncertain(pmax, max_edges)]
    ends = [_endpoints(m, i) for m, i in variables]
    pos, ghosts = _layout(ends)
    xs, ys = (np.asarray(v) for v in zip(*pos.values(), *ghosts.values(), strict=True))

    def ends_xy(s: str, t: str) -> tuple[tuple[float, float], tuple[float, float]]:
        # An edge into a folded row's first node ends at its ghost on the source's row.
        if t in ghosts and pos[t][1] != pos[s][1]:
            return pos[s], ghosts[t]
        return pos[s], pos[t]

    label_colors = {lab: f"C{c % 10}" for c, lab in enumerate(dict.fromkeys(
        lab for m in post for lab in m.labels))}

    fig = _figure(max(6.0, 1.5 * (xs.max() + 1) + 1.5), max(3.5, 1.0 * (1 - ys.min()) + 1))
    ax = fig.subplots()
    cache = {m.name: _weights(m, weight) for m in post}
    seen: dict[tuple[str, str], int] = {}
    for (m, i), (s, t) in zip(variables, ends, strict=True):
        w, kind = cache[m.name]
        w = w[i]
        norm = w / w.max() if kind == "snr" and w.max() > 0 else w
        top = np.sort(np.argsort(-norm, kind="stable")[:_MAX_ARCS])
        offset = 0.5 * seen.get((s, t), 0)
        seen[(s, t)] = seen.get((s, t), 0) + 1
        rads = np.linspace(-0.3, 0.3, len(top)) if len(top) > 1 else np.zeros(1)
        for j, rad in zip(top, rads, strict=True):
            ax.add_patch(FancyArrowPatch(
                *ends_xy(s, t), connectionstyle=f"arc3,rad={rad + offset:.3f}", arrowstyle="-|>",
                mutation_scale=6, shrinkA=9, shrinkB=9, linewidth=0.3 + 4.0 * float(norm[j]),
                color=label_colors[m.labels[j]], alpha=0.35 + 0.6 * float(norm[j])))
        best = int(np.argmax(w))
        shown = f"{w[best]:.2f}" if kind == "prob" else f"SNR {w[best]:.2g}"
        text = f"{m.labels[best]} ({shown})"
        (x0, y0), (x1, y1) = ends_xy(s, t)
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12 + offset / 2, text, ha="center", fontsize=7,
                in_layout=False, bbox=_LABEL_BOX)
    ax.scatter(xs, ys, s=160, color="white", edgecolors="black", zorder=3)
    for node, (x, y) in [*pos.items(), *((f"{n} ↵", xy) for n, xy in ghosts.items())]:
        ax.text(x, y - 0.22, node, ha="center", va="top", fontsize=7, in_layout=False)
    ax.set_xlim(-0.4, xs.max() + 0.4)
    ax.set_ylim(ys.min() - 0.5, 0.4)
    ax.set_axis_off()
    if len(label_colors) <= 12:
        for lab, color in label_colors.items():
            ax.plot([], [], color=color, linewidth=2, label=lab)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    what = "positive SNR μ/σ² (normal sites, per edge)" if weight == "snr" else "probability"
    n = len(variables)
    sub = f" ({n} of {len(pmax)} variables, most uncertain)" if n < len(pmax) else ""
    ax.set_title(f"Cell: arc width = {what}{sub}", fontsize=10)
    return _save(fig, path)


# -- heat-map ----------------------------------------------------------------------------------
def plot_heatmap(posterior: Any, path: str | os.PathLike, *, value: str = "prob", max_rows: int = 64) -> Path:
    """Op x edge heat-map: one row per variable, one column per value, one panel per label set.

    ``value="prob"`` shows the marginal probabilities; ``value="snr"`` the positive SNR μ/σ²
    (clipped at 0) of normal sites (vinnas2020 §IV-C), other sites keep probabilities. Beyond
    ``max_rows`` rows a panel keeps the most uncertain variables.
    """
    if value not in ("prob", "snr"):
        raise ValueError(f"`value` must be 'prob' or 'snr', but got value={value!r}.")
    groups: dict[tuple[tuple[str, ...], str], list[SiteMarginal]] = {}
    for m in as_posterior(posterior):
        groups.setdefault((m.labels, _weights(m, value)[1]), []).append(m)

    panels = []
    for (labels, kind), sites in groups.items():
        grid = np.concatenate([_weights(m, value)[0] for m in sites])
        pmax = np.concatenate([m.max_prob().numpy().reshape(-1) for m in sites])
        names = []
        for m in sites:
            for i in range(m.num_variables):
                if m.edges is None:
                    names.append(_index_label(m, i))
                else:
                    edge = "→".join(m.edges[i])
                    names.append(edge if len(sites) == 1 else f"{m.name}: {edge}")
        keep = _most_uncertain(pmax, max_rows)
        sub = f" ({len(keep)} of {len(pmax)} rows, most uncertain)" if len(keep) < len(pmax) else ""
        # Many sites share a label set (10 op sites of the cell space): name the first and last.
        named = ", ".join(m.name for m in sites) if len(sites) <= 3 else \
            f"{sites[0].name} … {sites[-1].name} ({len(sites)} sites)"
        title = named + sub
        panels.append((labels, kind, grid[keep], [names[k] for k in keep], title))

    ncols = max(len(p[0]) for p in panels)
    fig = _figure(max(6.0, 0.5 * min(ncols, 40) + 3.5), sum(0.2 * len(p[3]) + 1.3 for p in panels))
    axes = fig.subplots(len(panels), 1, squeeze=False,
                        height_ratios=[len(p[3]) + 4 for p in panels])[:, 0]
    for ax, (labels, kind, grid, names, title) in zip(axes, panels, strict=True):
        vmax = 1.0 if kind == "prob" else max(float(grid.max()), 1e-12)
        im = ax.imshow(grid, aspect="auto", interpolation="nearest", vmin=0.0, vmax=vmax,
                       cmap="viridis" if kind == "prob" else "magma")
        step = max(1, math.ceil(len(labels) / 30))
        ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=6 if len(names) > 24 else 7)
        if grid.shape[0] <= _ANNOTATE[0] and grid.shape[1] <= _ANNOTATE[1]:
            for (r, c), v in np.ndenumerate(grid):
                ax.text(c, r, f"{v:.2f}" if kind == "prob" else f"{v:.2g}", ha="center", va="center",
                        fontsize=7, color="white" if v < 0.6 * vmax else "black", in_layout=False)
        fig.colorbar(im, ax=ax, label="P(value)" if kind == "prob" else "positive SNR μ/σ²")
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


# -- saito2018 fig. 1 --------------------------------------------------------------------------
def _error(points: Sequence[Mapping[str, Any]], key: str) -> np.ndarray | None:
    """``(2, n)`` lower/upper error bars (a number or a ``(low, high)`` pair per point), or None."""
    if not any(p.get(key) is not None for p in points):
        return None
    out = np.zeros((2, len(points)))
    for k, p in enumerate(points):
        e = p.get(key)
        if e is not None:
            out[:, k] = np.broadcast_to(np.asarray(e, dtype=float), (2,))
    return out


def plot_tradeoff(points: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                  x_label: str = "weight usage rate", y_label: str = "test error") -> Path:
    """Complexity against error, one marker+line series per method, as saito2018 fig. 1.

    ``points`` are dicts ``{"label", "x", "y"}`` with optional ``"x_err"``, ``"y_err"`` (a
    number, or a ``(below, above)`` pair such as the 25%/75% quantiles) and ``"annotation"``
    (e.g. the penalty ε0), written beside the point.
    """
    if not points:
        raise ValueError("`points` is empty: plot_tradeoff needs at least one {label, x, y} point.")
    series: dict[str, list[Mapping[str, Any]]] = {}
    for p in points:
        missing = [k for k in ("label", "x", "y") if k not in p]
        if missing:
            raise ValueError(f"Every trade-off point needs 'label', 'x' and 'y', but {dict(p)} lacks "
                             f"{missing}.")
        series.setdefault(str(p["label"]), []).append(p)
    fig = _figure(6.5, 4.5)
    ax = fig.subplots()
    for label, pts in series.items():
        pts = sorted(pts, key=lambda p: float(p["x"]))
        x = [float(p["x"]) for p in pts]
        y = [float(p["y"]) for p in pts]
        ax.errorbar(x, y, xerr=_error(pts, "x_err"), yerr=_error(pts, "y_err"), marker="o", markersize=4,
                    capsize=3, linewidth=1.2, label=label)
        for p in pts:
            if p.get("annotation") is not None:
                ax.annotate(str(p["annotation"]), (float(p["x"]), float(p["y"])), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
    ax.set(xlabel=x_label, ylabel=y_label, title=f"{y_label} vs {x_label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


# -- a run's curves --------------------------------------------------------------------------
def plot_learning_curves(metrics: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Training loss (left) and validation / test error of the most likely architecture
    (right) per epoch, from the rows of a run's ``metrics.jsonl``. The loss is ``train_loss``,
    or ``train_mse`` where a run logs that instead (the inpainting search); the error panel is
    left out when no row has an error."""
    rows = [r for r in metrics if "epoch" in r]
    if not rows:
        raise ValueError("`metrics` holds no row with an 'epoch': plot_learning_curves needs a run's "
                         "metrics.jsonl rows.")
    epochs = [r["epoch"] for r in rows]
    loss_key = next((k for k in ("train_loss", "train_mse") if any(k in r for r in rows)), "train_loss")
    has_error = any(r.get(k) is not None for r in rows for k in ("val_error", "test_error"))
    fig = _figure(10.0 if has_error else 5.5, 3.8)
    loss_ax, err_ax = fig.subplots(1, 2) if has_error else (fig.subplots(), None)
    loss_ax.plot(epochs, [r.get(loss_key, math.nan) for r in rows], marker=".", color="C0")
    what = "MSE" if loss_key == "train_mse" else "loss"
    loss_ax.set(xlabel="epoch", ylabel=f"training {what} (mean over sampled architectures)",
                title=f"training {what}")
    loss_ax.grid(alpha=0.3)
    if err_ax is None:
        return _save(fig, path)
    for key, color in (("val_error", "C1"), ("test_error", "C2")):
        values = [math.nan if r.get(key) is None else r[key] for r in rows]
        if not all(math.isnan(v) for v in values):
            err_ax.plot(epochs, values, marker=".", color=color, label=key.replace("_", " "))
    err_ax.set(xlabel="epoch", ylabel="error", title="error of the most likely architecture")
    if err_ax.get_legend_handles_labels()[0]:
        err_ax.legend(fontsize=8)
    err_ax.grid(alpha=0.3)
    return _save(fig, path)
