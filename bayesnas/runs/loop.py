"""A resumable loop over epochs: the skeleton every phase of a run shares."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bayesnas.runs.files import MetricsLog, load_checkpoint, save_checkpoint


def run_epochs(
    phase: Path,
    total: int,
    run_epoch: Callable[[int], dict[str, Any]],
    state: Callable[[], dict[str, Any]],
    load: Callable[[dict[str, Any]], None],
    *,
    progress: bool,
    desc: str,
    history: Any = None,
    posterior: Any = None,
    main: bool = True,
    loss_key: str = "loss",
    after_log: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Epochs ``[start, total)`` of ``run_epoch(epoch) -> metrics row``, logged to
    ``phase/metrics.jsonl`` and checkpointed atomically (``phase/checkpoint.pt``: ``state()`` and
    the epoch) after each; a checkpoint found in ``phase`` is ``load``-ed and continued, and the
    logs are cut back to it, so a killed run resumes exactly. A row needs a finite
    ``row[loss_key]``. With ``history`` (a :class:`~bayesnas.analysis.history.PosteriorHistory`),
    ``posterior``'s snapshot at the start (epoch 0) and after every epoch is appended to it (a
    row then needs an ``"iteration"``). ``after_log(row)`` runs once the row is logged and before
    the checkpoint (e.g. TensorBoard, whose events past a checkpoint are purged on resume).
    ``main=False`` (a data-parallel rank other than 0) trains alike but writes nothing: it only
    reads the checkpoint to resume.

    Every method's epochs go through this loop; its order (logs first, checkpoint last) is what
    makes a run killed at any point resume to the uninterrupted run's numbers.
    """
    ckpt = phase / "checkpoint.pt"
    log = MetricsLog(phase / "metrics.jsonl")
    start = 0
    if ckpt.exists():
        saved = load_checkpoint(ckpt)
        load(saved)
        start = int(saved["epoch"])
    if not main:
        for epoch in range(start, total):
            run_epoch(epoch)
        return
    log.truncate_after(start)
    if history is not None:
        # A resumed run's history is cut back to its checkpoint; a fresh one starts at epoch 0.
        history.truncate_after(start if start > 0 else -1)
        if start == 0:
            history.append_posterior(epoch=0, iteration=0, posterior=posterior)
    for epoch in tqdm(range(start, total), total=total, initial=start, disable=not progress, desc=desc,
                      leave=False):
        begin = time.perf_counter()
        row = run_epoch(epoch)
        if not math.isfinite(row[loss_key]):
            raise FloatingPointError(
                f"The training loss became {row[loss_key]} in epoch {epoch + 1} of {desc}.")
        row = {"epoch": epoch + 1, **row, "seconds": time.perf_counter() - begin}
        log.append(row)  # the logs first: a run killed in between cuts them back on resume
        if history is not None:
            history.append_posterior(epoch=epoch + 1, iteration=row["iteration"], posterior=posterior)
        if after_log is not None:
            after_log(row)
        save_checkpoint(ckpt, {**state(), "epoch": epoch + 1})
