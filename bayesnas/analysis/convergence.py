"""Is the search converging, and to what? Decidedness, entropy, and the collapse warning.

:func:`convergence_stats` is what a run logs each epoch (``metrics.jsonl``);
:func:`convergence_curve` turns a history of posteriors into the curves the report plots;
:func:`collapse_report` detects the failure mode of weight-sharing searches where the
posterior mass drifts to parameter-free ops (skip, pooling, zero) on most edges.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bayesnas.analysis.posterior import as_posterior, stack_probs

__all__ = [
    "DECIDED",
    "PARAMETER_FREE",
    "CollapseReport",
    "CollapseWarning",
    "collapse_report",
    "check_collapse",
    "convergence_curve",
    "convergence_stats",
]

DECIDED = 0.9
"""A variable is decided once its most likely value has probability >= 0.9."""

PARAMETER_FREE = re.compile(r"skip|identity|zero|none|pool", re.IGNORECASE)
"""Op labels taken as parameter-free unless told otherwise (skip/identity, zero/none, pooling)."""


def convergence_stats(posterior: Any, *, decided: float = DECIDED) -> dict[str, Any]:
    """One snapshot: total entropy, mean max-probability (overall and per site), the number of
    undecided variables (max probability < ``decided``) and Σθ of the Bernoulli sites."""
    post = as_posterior(posterior)
    pmax = stack_probs(post)
    out: dict[str, Any] = {
        "entropy": post.entropy(),
        "mean_max_prob": float(pmax.mean()),
        "mean_max_prob_per_site": {m.name: float(m.max_prob().mean()) for m in post},
        "undecided": int((pmax < decided).sum()),
        "num_variables": post.num_variables,
    }
    active = post.expected_active()
    if active is not None:
        out["expected_active_bits"] = active
    return out


def convergence_curve(
    history: Iterable[tuple[float, Any]], *, decided: float = DECIDED
) -> dict[str, list[Any]]:
    """Curves over training from ``(iteration or epoch, posterior)`` pairs: ``step``,
    ``entropy``, ``mean_max_prob``, ``undecided`` and ``expected_active_bits`` (when defined)."""
    curves: dict[str, list[Any]] = {"step": []}
    for step, posterior in history:
        stats = convergence_stats(posterior, decided=decided)
        curves["step"].append(step)
        for key, value in stats.items():
            if key != "mean_max_prob_per_site":
                curves.setdefault(key, []).append(value)
    return curves


class CollapseWarning(UserWarning):
    """The posterior prefers parameter-free ops on most edges."""


@dataclass(frozen=True)
class CollapseReport:
    """How far each edge's mass has drifted to parameter-free ops.

    Attributes:
        fired: more than ``most`` of the edges drifted further than ``threshold``.
        fraction: the fraction of edges that did.
        edges: ``(site, flat index, parameter-free mass, drift)`` for every edge that offers
            both kinds of op; drift = (mass − u) / (1 − u), u the uniform share of the
            parameter-free ops: 0 at the uniform prior, 1 with all mass on them.
        message: one line for the report (empty when not fired).
    """

    fired: bool
    fraction: float
    threshold: float
    most: float
    edges: list[tuple[str, int, float, float]] = field(default_factory=list)
    message: str = ""


def collapse_report(
    posterior: Any,
    *,
    parameter_free: Sequence[str] | Callable[[str], bool] | None = None,
    threshold: float = 0.5,
    most: float = 0.5,
) -> CollapseReport:
    """Measure, edge by edge, the drift of the posterior mass to parameter-free ops.

    Only variables whose values include both a parameter-free and a parametric op count as
    edges. ``parameter_free`` names those labels (or decides per label); by default labels
    matching :data:`PARAMETER_FREE`. Drift is measured from the uniform distribution, where
    the search starts, so an undecided posterior never reads as collapsed however many of
    its ops are parameter-free. The report fires when the drift exceeds ``threshold`` on more
    than a fraction ``most`` of the edges.
    """
    for name, v in (("threshold", threshold), ("most", most)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"`{name}` must lie in [0, 1), but got {name}={v}.")
    if parameter_free is None:
        is_free = lambda label: bool(PARAMETER_FREE.search(label))  # noqa: E731
    elif callable(parameter_free):
        is_free = parameter_free
    else:
        names = {str(x) for x in parameter_free}
        is_free = lambda label: label in names  # noqa: E731
    edges: list[tuple[str, int, float, float]] = []
    for m in as_posterior(posterior):
        free = [j for j, label in enumerate(m.labels) if is_free(label)]
        if not free or len(free) == len(m.labels):
            continue
        uniform = len(free) / len(m.labels)
        mass = m.flat_probs()[:, free].sum(-1)
        drift = (mass - uniform) / (1 - uniform)
        edges.extend((m.name, i, float(p), float(d))
                     for i, (p, d) in enumerate(zip(mass.tolist(), drift.tolist(), strict=True)))
    if not edges:
        return CollapseReport(False, 0.0, threshold, most)
    collapsed = sum(d > threshold for *_, d in edges)
    fraction = collapsed / len(edges)
    fired = fraction > most
    message = (
        f"Possible collapse: on {collapsed} of {len(edges)} edges ({fraction:.0%}) the posterior "
        f"moved more than {threshold:.0%} of the way from uniform to all its mass on parameter-free "
        "ops (skip/pool/zero). In a cell search this is the known failure of weight sharing; in a "
        "layer- or unit-selection space it may be the intended pruning: compare the error with a "
        "fixed network."
        if fired else ""
    )
    return CollapseReport(fired, fraction, threshold, most, edges, message)


def check_collapse(posterior: Any, **kwargs: Any) -> CollapseReport:
    """:func:`collapse_report`, and a :class:`CollapseWarning` when it fires."""
    report = collapse_report(posterior, **kwargs)
    if report.fired:
        warnings.warn(report.message, CollapseWarning, stacklevel=2)
    return report
