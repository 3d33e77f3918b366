"""Building a ground-truth table (:mod:`bayesnas.bench`) as a run: resumable, parallel over
cores, with a progress bar.

The run directory holds ``config.json``, one file per trained entry
(``entries/<index>_seed<seed>.json``, written atomically when that training ends, so a killed
build loses at most the trainings in flight and ``--resume`` trains only what is missing),
then ``table.json`` and ``results.json`` (the table's size and spread). A build of the whole
table also writes the committed copy, ``bayesnas/bench/tables/NAME.json``, keeping the entries
appended to it before (:func:`append_architectures`: architectures outside a sampled table's
sample, trained on demand because a search returned them).

Every entry trains on one thread with its own seed, so its errors do not depend on ``jobs``
or on the order in which entries finish.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from bayesnas import __version__
from bayesnas.bench.spec import architecture_key, get_table_spec
from bayesnas.bench.table import Table, summarise_entries, table_path
from bayesnas.bench.train import train_alone
from bayesnas.runs import RunConfig, start_run_dir, write_json
from bayesnas.runs.checks import check_integers
from bayesnas.runs.files import read_json

__all__ = ["BenchConfig", "BenchRun", "append_architectures", "train_architecture", "train_entry"]


@dataclass
class BenchConfig(RunConfig):
    """``table``: a name of :func:`bayesnas.bench.table_specs`. ``limit``: only the first
    ``limit`` architectures (a smoke build; never committed). The dataset, seeds and protocol
    are the table's own (its spec), not options."""

    table: str = "input-groups"
    limit: int | None = None

    kind: ClassVar[str] = "bench"

    def validate(self) -> None:
        get_table_spec(self.table)
        super().validate()
        check_integers(self, {"limit": 1}, optional=True)


def train_entry(table: str, index: int, seed: int, path: str, *, progress: bool = False) -> dict[str, Any]:
    """Train entry ``index`` of ``table`` with ``seed`` and write it to ``path`` (atomically);
    module-level so that a process pool can run it."""
    arch = get_table_spec(table).architectures()[index]
    row = {"index": index, **train_architecture(table, arch, seed)}
    write_json(path, row)
    return row


def train_architecture(table: str, arch: dict[str, Any], seed: int, *, progress: bool = False
                       ) -> dict[str, Any]:
    """One row of ``table``: ``arch`` trained alone under its protocol with ``seed``."""
    return {"seed": seed, "architecture": arch, **train_alone(get_table_spec(table), arch, seed)}


def append_architectures(table: str, archs: list[dict[str, Any]], *, jobs: int = 1,
                         progress: bool = False, save: bool = True) -> Table:
    """The committed table ``table`` with every architecture of ``archs`` it lacks trained alone
    (its protocol, each of its seeds) and appended, marked ``"appended": true``; saved in place
    (``save=False``: only returned, e.g. for a smoke run).

    For a sampled table (NAS-Bench-201 cells): an architecture a search returns must be looked
    up, and it may lie outside the sample. Appended entries never enter the table's statistics
    (:class:`~bayesnas.bench.table.Table`)."""
    from bayesnas.methods.study import run_all

    current, spec = Table.named(table), get_table_spec(table)
    missing = list({architecture_key(a): a for a in archs if current.entry(a) is None}.values())
    if not missing:
        return current
    rows = run_all([(table, a, s) for a in missing for s in spec.seeds], jobs=jobs, progress=progress,
                   desc=f"bench {table}: appending", task=train_architecture)
    added = [{**e, "appended": True} for e in summarise_entries(rows, spec.seeds)]
    metadata = {**current.metadata, "appended": len(current.entries) - len(current) + len(added)}
    grown = Table(metadata, current.entries + added)
    if save:
        grown.save(table_path(table))
    return grown


class BenchRun:
    """Builds ``config.table`` into ``out``: ``BenchRun(config, out, jobs=2).run(resume=...)``."""

    def __init__(self, config: BenchConfig, out: str | Path, *, jobs: int = 1) -> None:
        config.validate()
        self.config, self.out, self.jobs = config, Path(out), jobs
        self.spec = get_table_spec(config.table)
        # The config's dataset field is the table's (what `bayesnas report` and `compare` show).
        self.config.dataset = self.spec.protocol.dataset

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        from bayesnas.methods.study import run_all

        start_run_dir(self.out, self.config, resume=resume)
        (self.out / "entries").mkdir(exist_ok=True)
        archs = self.spec.architectures()
        indices = range(len(archs) if self.config.limit is None else min(self.config.limit, len(archs)))
        paths = {(i, s): self.out / "entries" / f"{i}_seed{s}.json" for i in indices for s in self.spec.seeds}
        todo = [(self.config.table, i, s, str(p)) for (i, s), p in paths.items() if not p.exists()]
        run_all(todo, jobs=self.jobs, progress=progress, desc=f"bench {self.config.table}", task=train_entry)
        rows = [read_json(p) for p in paths.values()]
        # Wall time from the entries themselves, so that a resumed build counts its first part.
        written = [p.stat().st_mtime for p in paths.values()]
        wall = max(written) - min(written) + min(rows, key=lambda r: r["seconds"])["seconds"]
        # A build that trained nothing (a finished one, resumed) keeps the jobs its trainings ran with.
        previous = self.out / "table.json"
        jobs = self.jobs
        if not todo and previous.exists():
            jobs = Table.load(previous).metadata.get("jobs", jobs)
        table = Table(self._metadata(rows, wall, jobs), summarise_entries(rows, self.spec.seeds))
        table.save(self.out / "table.json")
        complete = len(table) == len(archs)
        if complete:
            committed = table_path(self.spec.name)
            before = Table.load(committed).entries if committed.exists() else []
            appended = [e for e in before if e.get("appended")]
            committed.parent.mkdir(parents=True, exist_ok=True)
            Table({**table.metadata, **({"appended": len(appended)} if appended else {})},
                  table.entries + appended).save(committed)
        results = {"table": self.spec.name, "entries": len(table), "architectures": len(archs),
                   "complete": complete, **table.spread()}
        write_json(self.out / "results.json", results)
        return results

    def _metadata(self, rows: list[dict[str, Any]], wall: float, jobs: int) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": spec.name,
            "description": spec.description,
            "command": f"bayesnas bench build {spec.name}",
            "space": spec.space,
            "space_options": dict(spec.space_options),
            "protocol": {**spec.protocol.to_dict(), "optimizer": "Adam", "threads": 1,
                         "splits": "bayesnas.data.load_dataset(seed=0): stratified test 20 %, "
                                   "validation val_fraction of the rest"},
            "seeds": list(spec.seeds),
            "why_the_errors_spread": spec.why,
            "architectures": len(spec.architectures()),
            "trainings": len(rows),
            "training_seconds": sum(r["seconds"] for r in rows),
            "wall_seconds": wall,  # first entry started to last entry written (pauses included)
            "jobs": jobs,
            "bayesnas_version": __version__,
            "torch_version": torch.__version__,
            "python_version": sys.version.split()[0],
            "machine": platform.machine(),
        }
