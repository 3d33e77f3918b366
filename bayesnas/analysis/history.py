"""The posterior over training: ``posterior_history.jsonl``, one snapshot per epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bayesnas.analysis.posterior import Posterior, as_posterior
from bayesnas.runs import atomic_write_text

__all__ = ["HISTORY_FILE", "PosteriorHistory"]

HISTORY_FILE = "posterior_history.jsonl"


class PosteriorHistory:
    """Append-only log of ``{"epoch", "iteration", "posterior"}`` rows, written atomically.

    ``posterior`` is the guide's ``summary()``, so every family the analysis knows is kept
    in full; :meth:`read` gives ``(iteration, Posterior)`` pairs for the curves and plots.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _write(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def append(self, *, epoch: int, iteration: int, posterior: Any) -> None:
        summary = as_posterior(posterior).to_summary()
        self._write([*self.rows(), {"epoch": epoch, "iteration": iteration, "posterior": summary}])

    def truncate_after(self, epoch: int) -> None:
        """Drop the snapshots after ``epoch`` (a resumed run rewrites them)."""
        if self.path.exists():
            self._write([r for r in self.rows() if r["epoch"] <= epoch])

    def read(self, *, by: str = "iteration") -> list[tuple[int, Posterior]]:
        """``(iteration or epoch, Posterior)`` pairs in order."""
        if by not in ("iteration", "epoch"):
            raise ValueError(f"`by` must be 'iteration' or 'epoch', but got by={by!r}.")
        return [(int(r[by]), Posterior.from_summary(r["posterior"])) for r in self.rows()]
