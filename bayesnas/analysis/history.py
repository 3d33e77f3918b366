"""The posterior over training: ``posterior_history.jsonl``, one snapshot per epoch."""

from __future__ import annotations

from typing import Any

from bayesnas.analysis.posterior import Posterior, as_posterior
from bayesnas.runs import MetricsLog

__all__ = ["HISTORY_FILE", "PosteriorHistory"]

HISTORY_FILE = "posterior_history.jsonl"


class PosteriorHistory(MetricsLog):
    """A JSON-lines log of ``{"epoch", "iteration", "posterior"}`` rows, written atomically.

    ``posterior`` is the guide's ``summary()``, so every family the analysis knows is kept
    in full; :meth:`posteriors` gives ``(iteration, Posterior)`` pairs for the curves and plots.
    On resume, :meth:`truncate_after` drops the snapshots after the checkpointed epoch.
    """

    def append_posterior(self, *, epoch: int, iteration: int, posterior: Any) -> None:
        summary = as_posterior(posterior).to_summary()
        self.append({"epoch": epoch, "iteration": iteration, "posterior": summary})

    def posteriors(self, *, by: str = "iteration") -> list[tuple[int, Posterior]]:
        """``(iteration or epoch, Posterior)`` pairs in order."""
        if by not in ("iteration", "epoch"):
            raise ValueError(f"`by` must be 'iteration' or 'epoch', but got by={by!r}.")
        return [(int(r[by]), Posterior.from_summary(r["posterior"])) for r in self.read()]
