"""Run diagnostics: is the posterior a search reports evidence, or an artefact?

A search's posterior is only worth reporting if it moved while the networks it sampled were
learning. Each check here looks at one way that fails, on what every search run already has
(its per-epoch ``metrics.jsonl`` rows, its final posterior and credible set), and returns a
:class:`Diagnostic`: whether it fired, one line that names the numbers, and the numbers.

- :func:`decided_at_chance` — most of the posterior's entropy was gone while the training loss
  was still at chance (ln C for C classes): the choice was made on initialisation artefacts,
  not on accuracy (``make demo`` before issue 18: every bit decided by epoch 27, loss at
  chance until epoch 26).
- :func:`posterior_unmoved` — the final entropy is still ≥ 95 % of the initial one: the search
  learnt nothing about the architecture, and its "mode" is a coin toss.
- :func:`at_clip_bound` — variables whose θ sits where the optimizer's projection stops it
  (θ_min of shirakawa2018 §2.2 / pdas2019 app. B): their probability, and so p(mode), is the
  bound, not evidence.
- :func:`credible_set_ties` — architectures of the credible set with exactly equal
  probability: their ranks are arbitrary.
- :func:`parameter_free_drift` — posterior mass drifting to parameter-free ops on most
  multi-op edges (:func:`~bayesnas.analysis.convergence.collapse_report`); a two-valued
  skip/keep bit is left out, since pruning layers or units is what those spaces are for.

:func:`diagnose` runs them all into the ``diagnostics`` object of ``results.json``
(:func:`diagnose_logged` for NES and VINNAS runs, from their posterior history);
:func:`warning_lines` is what a run warns of at its end (:func:`warn_diagnostics`) and the
report shows at its top.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bayesnas.analysis.convergence import PARAMETER_FREE, collapse_report
from bayesnas.analysis.posterior import Posterior, as_posterior

__all__ = [
    "CHANCE_TOLERANCE",
    "DECIDED_FRACTION",
    "UNMOVED_FRACTION",
    "Diagnostic",
    "DiagnosticWarning",
    "at_clip_bound",
    "clipped_sites",
    "credible_set_ties",
    "decided_at_chance",
    "diagnose",
    "diagnose_logged",
    "is_parameter_free",
    "parameter_free_drift",
    "posterior_unmoved",
    "warn_diagnostics",
    "warning_lines",
]

CHANCE_TOLERANCE = 0.05
"""A training loss ≥ (1 − 0.05)·ln C is at chance (C classes)."""

DECIDED_FRACTION = 0.5
""":func:`decided_at_chance` fires when this fraction of the initial entropy was gone at chance."""

UNMOVED_FRACTION = 0.95
""":func:`posterior_unmoved` fires when the final entropy is ≥ this fraction of the initial one."""


@dataclass(frozen=True)
class Diagnostic:
    """One check of a run.

    Attributes:
        name: the check (``decided_at_chance``, ``posterior_unmoved``, ...).
        fired: the failure it looks for is there.
        message: one line, with the numbers: the warning when fired, else what was checked.
        values: the numbers behind the message (JSON-ready).
    """

    name: str
    fired: bool
    message: str
    values: dict[str, Any] = field(default_factory=dict)


def decided_at_chance(
    history: Sequence[Mapping[str, Any]],
    *,
    num_classes: int,
    initial_entropy: float,
    tolerance: float = CHANCE_TOLERANCE,
    fraction: float = DECIDED_FRACTION,
) -> Diagnostic:
    """Fires when, at the last epoch whose training loss was at chance, at least ``fraction``
    of the posterior's initial entropy was already gone. ``history``: the run's per-epoch rows
    (``epoch``, ``train_loss``, ``entropy``; ``undecided`` and ``num_variables`` if logged). A
    history without ``train_loss`` is judged by ``val_error`` against 1 − 1/C instead."""
    chance = math.log(num_classes)
    # A run that logs no training loss of its networks alone (VINNAS: its loss holds the KL
    # terms) is at chance by its validation error: ≥ (1 − tolerance)·(1 − 1/C).
    by_loss = any(r.get("train_loss") is not None for r in history)
    key, level = ("train_loss", chance) if by_loss else ("val_error", 1 - 1 / num_classes)
    measure = "training loss" if by_loss else "validation error"
    rows = [r for r in history if r.get(key) is not None and r.get("entropy") is not None]
    at_chance = [r for r in rows if r[key] >= (1 - tolerance) * level]
    values: dict[str, Any] = {"chance_loss": chance, "tolerance": tolerance, "fraction": fraction,
                              "initial_entropy": initial_entropy, "epochs_at_chance": len(at_chance),
                              "measure": key}
    if not by_loss:
        values["chance_error"] = level
    if not rows or initial_entropy <= 0:
        return Diagnostic("decided_at_chance", False, "No training loss or entropy to check.", values)
    if not at_chance:
        return Diagnostic("decided_at_chance", False,
                          f"The {measure} was below chance ({_chance(by_loss, num_classes, level)}) "
                          "from the first logged epoch.", values)
    last = at_chance[-1]
    gone = 1 - last["entropy"] / initial_entropy
    values.update(last_epoch_at_chance=last["epoch"], loss=last[key], entropy_gone=gone)
    decided = ""
    if last.get("undecided") is not None and last.get("num_variables"):
        n = last["num_variables"]
        values["decided"] = n - last["undecided"]
        decided = f", {n - last['undecided']} of {n} variables decided"
    fired = gone >= fraction
    never = len(at_chance) == len(rows)
    when = (f"the {measure} never left chance" if never
            else f"up to epoch {last['epoch']} the {measure} was at chance")
    if fired:
        message = (f"The posterior was decided while the networks were at chance: {when} "
                   f"({last[key]:.3f} vs {_chance(by_loss, num_classes, level)}), and by then "
                   f"{gone:.0%} of its initial entropy was gone{decided}. The choice reflects "
                   "initialisation, not accuracy.")
    else:
        message = (f"At the last epoch at chance ({last['epoch']}) {gone:.0%} of the initial entropy "
                   f"was gone (fires at {fraction:.0%}).")
    return Diagnostic("decided_at_chance", fired, message, values)


def _chance(by_loss: bool, num_classes: int, level: float) -> str:
    return f"ln {num_classes} = {level:.3f}" if by_loss else f"1 − 1/{num_classes} = {level:.3f}"


def posterior_unmoved(*, initial_entropy: float, final_entropy: float,
                      threshold: float = UNMOVED_FRACTION) -> Diagnostic:
    """Fires when the final entropy is still ≥ ``threshold`` × the initial one."""
    values = {"initial_entropy": initial_entropy, "final_entropy": final_entropy, "threshold": threshold}
    if initial_entropy <= 0:
        return Diagnostic("posterior_unmoved", False, "The initial posterior has no entropy to lose.", values)
    kept = final_entropy / initial_entropy
    values["entropy_kept"] = kept
    if kept >= threshold:
        return Diagnostic("posterior_unmoved", True,
                          f"The posterior did not move: its entropy ended at {kept:.1%} of the initial "
                          f"{initial_entropy:.2f} nats. The mode is no better founded than a random draw.",
                          values)
    return Diagnostic("posterior_unmoved", False,
                      f"The entropy fell to {kept:.1%} of its initial value (fires at ≥ {threshold:.0%}).",
                      values)


def at_clip_bound(at_bound: Mapping[str, Any], *, mode_probability: float) -> Diagnostic:
    """Fires when any variable sits at its clip bound. ``at_bound``: site → a boolean per
    variable (from the architecture optimizers' ``at_bound()``); ``mode_probability``: the
    p(mode) the run reports."""
    flat = {name: [bool(b) for b in _flat(mask)] for name, mask in at_bound.items()}
    counts = {name: (sum(bits), len(bits)) for name, bits in flat.items()}
    clipped = sum(c for c, _ in counts.values())
    total = sum(n for _, n in counts.values())
    values = {"clipped": clipped, "variables": total, "mode_probability": mode_probability,
              "per_site": {name: c for name, (c, _) in counts.items()}}
    if not clipped:
        return Diagnostic("at_clip_bound", False, f"None of the {total} variables sits at its clip bound.",
                          values)
    if clipped == total:
        message = (f"All {total} variables sit at the clip bound of θ: p(mode) = {mode_probability:.3g} is "
                   "the product of the bounds, not evidence.")
    else:
        message = (f"{clipped} of {total} variables sit at the clip bound of θ: their probabilities (factors "
                   f"of p(mode) = {mode_probability:.3g}) are set by the bound, not by evidence.")
    return Diagnostic("at_clip_bound", True, message, values)


def credible_set_ties(credible: Sequence[Any], *, rel_tol: float = 1e-9) -> Diagnostic:
    """Fires when two or more ranks of the credible set have the same probability (up to
    ``rel_tol`` in log-probability): their order is arbitrary."""
    logp = [_log_probability(c) for c in credible]
    tied: list[list[int]] = []
    for i, lp in enumerate(logp):
        if i and math.isclose(lp, logp[i - 1], rel_tol=rel_tol, abs_tol=1e-12):
            if tied and tied[-1][-1] == i:
                tied[-1].append(i + 1)
            else:
                tied.append([i, i + 1])
    values = {"ranks": len(logp), "tied_ranks": tied}
    if not tied:
        return Diagnostic("credible_set_ties", False,
                          f"The {len(logp)} ranks of the credible set are distinct.", values)
    groups = ", ".join(f"{g[0]}–{g[-1]}" for g in tied)
    return Diagnostic("credible_set_ties", True,
                      f"Ranks {groups} of the credible set have exactly equal probability: their order is "
                      "arbitrary, not a ranking.", values)


def is_parameter_free(label: str) -> bool:
    """An op label matching :data:`~bayesnas.analysis.convergence.PARAMETER_FREE`, except the
    layer types of pdas2019's autoencoder: all convolutions, whatever their names say ("+skip")."""
    from bayesnas.nn.cae import LAYER_TYPES

    return label not in LAYER_TYPES and bool(PARAMETER_FREE.search(label))


def parameter_free_drift(posterior: Any, *, parameter_free: Any = None) -> Diagnostic:
    """:func:`~bayesnas.analysis.convergence.collapse_report` on the multi-op variables only:
    a Bernoulli skip/keep bit pruned to "skip" is what a layer- or unit-selection space is for."""
    post = as_posterior(posterior)
    if parameter_free is None:
        parameter_free = is_parameter_free
    free = parameter_free if callable(parameter_free) else (lambda label: label in set(parameter_free))
    multi = [m for m in post if len(m.labels) > 2]
    if not multi:
        return Diagnostic("parameter_free_drift", False, "No multi-op choice offers a parameter-free op.",
                          {"edges": 0})
    report = collapse_report(Posterior(multi), parameter_free=free)
    values = {"edges": len(report.edges), "fraction": report.fraction, "threshold": report.threshold}
    if report.fired:
        return Diagnostic("parameter_free_drift", True, report.message, values)
    if not report.edges:
        return Diagnostic("parameter_free_drift", False, "No multi-op choice offers a parameter-free op.",
                          values)
    return Diagnostic("parameter_free_drift", False,
                      f"No collapse: {report.fraction:.0%} of the {len(report.edges)} edges that offer a "
                      f"parameter-free op moved more than {report.threshold:.0%} of the way from uniform "
                      f"to all their mass on such ops (fires above {report.most:.0%} of them).", values)


def diagnose(
    *,
    history: Sequence[Mapping[str, Any]],
    posterior: Any,
    credible: Sequence[Any],
    num_classes: int | None,
    initial_entropy: float,
    at_bound: Mapping[str, Any] | None = None,
    parameter_free: Any = None,
) -> dict[str, Any]:
    """Every check, as ``results.json``'s ``diagnostics``: ``{"fired": [names], "checks":
    {name: {"fired", "message", **values}}}``. ``num_classes=None`` (not a classifier) skips
    the chance check; ``at_bound=None`` (no clipped optimizer) skips the clip-bound check."""
    post = as_posterior(posterior)
    checks: list[Diagnostic] = []
    if num_classes is not None and num_classes > 1:
        checks.append(decided_at_chance(history, num_classes=num_classes, initial_entropy=initial_entropy))
    checks.append(posterior_unmoved(initial_entropy=initial_entropy, final_entropy=post.entropy()))
    if at_bound is not None and credible:
        checks.append(at_clip_bound(at_bound, mode_probability=float(_probability(credible[0]))))
    if credible:
        checks.append(credible_set_ties(credible))
    checks.append(parameter_free_drift(post, parameter_free=parameter_free))
    return {
        "fired": [d.name for d in checks if d.fired],
        "checks": {d.name: {"fired": d.fired, "message": d.message, **d.values} for d in checks},
    }


def diagnose_logged(
    metrics: Sequence[Mapping[str, Any]],
    snapshots: Sequence[tuple[int, Posterior]],
    *,
    num_classes: int | None,
    loss_key: str | None,
    posterior: Any = None,
    credible_set_size: int = 10,
) -> dict[str, Any]:
    """:func:`diagnose` of a run that logs no entropy in its metrics (NES, VINNAS), from its
    posterior history: ``snapshots`` are ``(epoch, Posterior)`` from epoch 0 (the start) on
    (:meth:`~bayesnas.analysis.history.PosteriorHistory.posteriors` ``by="epoch"``); each
    metrics row gets its epoch's entropy, and ``row[loss_key]`` as its training loss (``None``:
    the run logs none of its networks alone, and the chance check reads ``val_error``).
    ``posterior``: the one the run reports (default: the last snapshot)."""
    if not snapshots:
        raise ValueError("diagnose_logged needs the posterior history, but got no snapshot.")
    entropy = {epoch: p.entropy() for epoch, p in snapshots}
    rows = [{"epoch": r["epoch"], "entropy": entropy.get(r["epoch"]), "val_error": r.get("val_error"),
             "train_loss": r.get(loss_key) if loss_key else None} for r in metrics]
    final = as_posterior(posterior) if posterior is not None else snapshots[-1][1]
    return diagnose(history=rows, posterior=final, credible=final.credible_set(k=credible_set_size),
                    num_classes=num_classes, initial_entropy=snapshots[0][1].entropy())


def warning_lines(diagnostics: Mapping[str, Any] | None) -> list[str]:
    """One line per fired check of a ``diagnostics`` object (none for ``None``)."""
    if not diagnostics:
        return []
    checks = diagnostics.get("checks", {})
    return [f"{name}: {checks[name]['message']}" for name in diagnostics.get("fired", []) if name in checks]


def clipped_sites(guide: Any, optimizers: Sequence[Any]) -> dict[str, Any]:
    """Site → which of its variables sit at the clip bound, from the architecture optimizers'
    ``at_bound()`` (families without a bound, and guides without θ, give none)."""
    masks: dict[Any, Any] = {}
    for opt in optimizers:
        masks.update(getattr(opt, "at_bound", dict)())
    out = {}
    for g in getattr(guide, "guides", [guide]):
        for name, theta in zip(getattr(g, "site_names", ()), getattr(g, "thetas", ()), strict=False):
            if theta in masks:
                out[name] = masks[theta]
    return out


class DiagnosticWarning(UserWarning):
    """A run diagnostic fired: the posterior the run reports may not be evidence."""


def warn_diagnostics(diagnostics: Mapping[str, Any] | None) -> None:
    """A :class:`DiagnosticWarning` per fired check (what a run does at its end)."""
    for line in warning_lines(diagnostics):
        warnings.warn(line, DiagnosticWarning, stacklevel=2)


def _flat(mask: Any) -> list[Any]:
    if hasattr(mask, "reshape"):
        return mask.reshape(-1).tolist()
    out: list[Any] = []
    for x in mask:
        out.extend(_flat(x) if isinstance(x, list | tuple) else [x])
    return out


def _log_probability(member: Any) -> float:
    # credible_set() gives the exact log-probability; a file written before it existed, p only.
    fields = member if isinstance(member, Mapping) else vars(member)
    if fields.get("log_probability") is not None:
        return float(fields["log_probability"])
    p = float(fields["probability"])
    return math.log(p) if p > 0 else -math.inf


def _probability(member: Any) -> float:
    return float(member["probability"] if isinstance(member, Mapping) else member.probability)
