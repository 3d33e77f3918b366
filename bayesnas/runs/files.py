"""Run directories: atomic writes, checkpoints loaded without unpickling code, metrics logs,
exported architectures."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def _atomic_replace(path: str | os.PathLike, write: Any, mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash never leaves a half-written file."""
    _atomic_replace(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (figures, reports)."""
    _atomic_replace(path, lambda f: f.write(data), "wb")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Atomically ``torch.save`` a dict of tensors, numbers, strings and nested containers."""
    _atomic_replace(path, lambda f: torch.save(dict(state), f), "wb")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: no pickled code is ever executed."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint at {path}: nothing to resume.")
    return torch.load(path, map_location=map_location, weights_only=True)


class MetricsLog:
    """Per-epoch metrics as JSON lines; on resume, lines after the checkpointed epoch are cut."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def truncate_after(self, epoch: int) -> None:
        rows = [r for r in self.read() if r.get("epoch", 0) <= epoch]
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def append(self, row: Mapping[str, Any]) -> None:
        # Rewritten whole (small file) so that the log is never left with a partial line.
        rows = [*self.read(), dict(row)]
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def training_seconds(run_dir: str | os.PathLike) -> float:
    """The training time of a run (or of one phase of it): the sum of the ``seconds`` of its
    checkpointed rows in ``metrics.jsonl`` (a resumed run's lost chunk is not counted)."""
    return float(sum(row.get("seconds", 0.0) for row in MetricsLog(Path(run_dir) / "metrics.jsonl").read()))


def save_architecture(arch: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write an architecture (a plain ``site name -> value`` mapping) as JSON, atomically."""
    atomic_write_text(path, json.dumps(dict(arch), indent=2, sort_keys=True) + "\n")


def load_architecture(path: str | os.PathLike) -> dict[str, Any]:
    """Read an architecture written by :func:`save_architecture`."""
    return read_json(path)
