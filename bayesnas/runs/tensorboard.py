"""Optional TensorBoard logging of a run's per-epoch metrics (``--tensorboard``, off by default).

The same numbers as ``metrics.jsonl`` go to ``RUN_DIR/tensorboard`` as scalars (nested
mappings become ``group/key`` tags), plus one histogram per arch site of the probability of
each variable's most likely value (θ itself for Bernoulli sites), so the posterior can be
watched concentrating while the search runs: ``tensorboard --logdir RUN_DIR/tensorboard``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from bayesnas.analysis.posterior import Posterior
from bayesnas.families import get_family

__all__ = ["TensorBoardLog"]


def _scalars(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in row.items():
        tag = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_scalars(value, tag + "/"))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int | float) and math.isfinite(value):
            out[tag] = float(value)
    return out


class TensorBoardLog:
    """Writes scalars and posterior histograms with ``torch.utils.tensorboard.SummaryWriter``."""

    def __init__(self, log_dir: str | os.PathLike, *, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # tensorboard is an optional dependency
            raise ImportError(
                "TensorBoard logging needs the `tensorboard` package: pip install tensorboard "
                "(or pip install 'bayesnas[tensorboard]')."
            ) from err
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log(self, row: Mapping[str, Any], posterior: Posterior, *, step: int) -> None:
        for tag, value in _scalars({k: v for k, v in row.items() if k not in ("theta", "epoch")}).items():
            self.writer.add_scalar(tag, value, global_step=step)
        for m in posterior:
            stats = m.parameter_stats()
            values = stats["theta"] if get_family(m.family).binary else m.max_prob()
            self.writer.add_histogram(f"posterior/{m.name}", values.float(), global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
