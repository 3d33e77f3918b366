"""A built ground-truth table: read it, look an architecture up, and say where an error stands.

The file (``bayesnas/bench/tables/NAME.json``, written by ``bayesnas bench build NAME``) is
``{"metadata": {...}, "entries": [...]}``: the metadata names the command, protocol, seeds,
library and torch versions and wall time; each entry holds an ``architecture``, its errors
per seed (``val_errors``, ``test_errors``) and their means, its training seconds and costs.

A table of a space too large to train whole holds a seeded uniform sample of it; architectures a
search returned outside the sample are trained on demand under the same protocol and appended
(:func:`bayesnas.methods.bench.append_architectures`), marked ``"appended": true``. They can be
looked up (:meth:`Table.entry`) but stay out of every statistic of the table (best, percentile,
spread, the draws of random search), which describe the uniform sample alone.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bayesnas.bench.spec import architecture_key
from bayesnas.runs.files import read_json, write_json

__all__ = ["TABLES_DIR", "Table", "summarise_entries", "table_path"]

#: Where the committed tables live (package data).
TABLES_DIR = Path(__file__).resolve().parent / "tables"


def table_path(name: str) -> Path:
    return TABLES_DIR / f"{name}.json"


def summarise_entries(rows: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """One entry per architecture from per-seed rows (``architecture``, ``seed``, errors, ...):
    the per-seed errors in ``seeds`` order and their means; seconds averaged; costs kept."""
    by_key: dict[str, dict[int, Mapping[str, Any]]] = {}
    archs: dict[str, Any] = {}
    for row in rows:
        key = architecture_key(row["architecture"])
        archs.setdefault(key, row["architecture"])
        by_key.setdefault(key, {})[row["seed"]] = row
    entries = []
    for key, per_seed in by_key.items():
        runs = [per_seed[s] for s in seeds if s in per_seed]
        entry: dict[str, Any] = {"architecture": archs[key], "seeds": [s for s in seeds if s in per_seed]}
        for split in ("val", "test"):
            values = [r[f"{split}_error"] for r in runs]
            entry[f"{split}_errors"] = values
            entry[f"{split}_error"] = sum(values) / len(values)
        entry["seconds"] = sum(r["seconds"] for r in runs) / len(runs)
        for cost in ("params", "macs"):
            if cost in runs[0]:
                entry[cost] = runs[0][cost]
        entries.append(entry)
    return entries


class Table:
    """A built table: ``metadata`` and ``entries`` (see the module docstring)."""

    def __init__(self, metadata: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> None:
        self.metadata = dict(metadata)
        self.entries = [dict(e) for e in entries]
        #: the table's own architectures (its enumeration or uniform sample), without the appended.
        self.sample = [e for e in self.entries if not e.get("appended")]
        self._by_key = {architecture_key(e["architecture"]): e for e in self.entries}

    @classmethod
    def load(cls, path: str | os.PathLike) -> Table:
        data = read_json(path)
        return cls(data["metadata"], data["entries"])

    @classmethod
    def named(cls, name: str) -> Table:
        """The committed table ``name``; an error that says how to build it when it is missing."""
        path = table_path(name)
        if not path.exists():
            raise FileNotFoundError(f"No table {name!r} at {path}: build it with "
                                    f"`bayesnas bench build {name}`.")
        return cls.load(path)

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {"metadata": self.metadata, "entries": self.entries})

    def __len__(self) -> int:
        """The size of the table's own sample (appended entries not counted)."""
        return len(self.sample)

    def entry(self, arch: Mapping[str, Any]) -> dict[str, Any] | None:
        """The entry of ``arch`` (``None`` when the table does not hold it)."""
        return self._by_key.get(architecture_key(arch))

    def best(self, by: str = "test_error") -> dict[str, Any]:
        return min(self.sample, key=lambda e: e[by])

    def errors(self, by: str = "test_error") -> list[float]:
        return sorted(e[by] for e in self.sample)

    def percentile(self, error: float, by: str = "test_error") -> float:
        """The fraction of the table's sample at least as good as ``error`` (0: best, 1: worst)."""
        return sum(e[by] <= error for e in self.sample) / len(self.sample)

    def spread(self) -> dict[str, Any]:
        """The best and the median entry by test error, and how many standard errors apart
        they are (the standard error over the best's and the median's per-seed errors)."""
        ranked = sorted(self.sample, key=lambda e: e["test_error"])
        best, median = ranked[0], ranked[len(ranked) // 2]
        se = math.sqrt(sum(_variance(e["test_errors"]) / len(e["test_errors"]) for e in (best, median)))
        gap = median["test_error"] - best["test_error"]
        return {"best": best["test_error"], "median": median["test_error"], "gap": gap,
                "standard_error": se, "gap_in_standard_errors": gap / se if se > 0 else math.inf,
                "best_architecture": best["architecture"]}


def _variance(values: Sequence[float]) -> float:
    return statistics.variance(values) if len(values) > 1 else 0.0
