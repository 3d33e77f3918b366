"""Does a committed table still hold? Re-train random entries and compare with the record."""

from __future__ import annotations

from typing import Any

import torch

from bayesnas.bench.spec import get_table_spec
from bayesnas.bench.table import Table
from bayesnas.bench.train import train_alone

__all__ = ["recheck_entries"]


def recheck_entries(name: str, *, entries: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """Re-train ``entries`` entries of the committed table ``name``'s sample (drawn with ``seed``, each
    with one of its recorded training seeds) and compare their errors with the record: one
    row per entry with ``recorded``, ``retrained`` and ``exact`` (equal to the last bit)."""
    table, spec = Table.named(name), get_table_spec(name)
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(table), generator=generator)[:entries].tolist()
    rows = []
    for i in picks:
        entry = table.sample[i]
        k = int(torch.randint(len(entry["seeds"]), (1,), generator=generator))
        recorded = {"val_error": entry["val_errors"][k], "test_error": entry["test_errors"][k]}
        again = train_alone(spec, entry["architecture"], entry["seeds"][k])
        retrained = {key: again[key] for key in recorded}
        rows.append({"architecture": entry["architecture"], "seed": entry["seeds"][k], "recorded": recorded,
                     "retrained": retrained, "exact": retrained == recorded})
    return rows
