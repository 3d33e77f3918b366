"""Studies: several configurations (arms) × several seeds, run resumably, summarised as mean ± std.

The papers report every number as a mean (and deviation) over repeated trials; a study does the
same with :func:`bayesnas.methods.run`. Each run lives in ``OUT/<arm>/seed<k>/``; a
finished run (``results.json``) is never run again and a killed one resumes from its checkpoint,
so re-running the same command after a crash completes the study. The experiment scripts in
``experiments/`` are studies with a results table and figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import multiprocessing
import os
import re
import shlex
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bayesnas.methods import run_resumably
from bayesnas.methods.search import SearchConfig
from bayesnas.runs import RunConfig, atomic_write_text

__all__ = [
    "Arm",
    "arm_options",
    "available_cpus",
    "base_config",
    "command_line",
    "cpu_threads",
    "default_jobs",
    "gap_and_standard_error",
    "separated",
    "results_dir",
    "run_all",
    "run_study",
    "study_parser",
    "write_markdown",
]


@dataclass(frozen=True)
class Arm:
    """One configuration of a study (any run config: a search, a NES run, ...); its
    ``config.seed`` is replaced by each seed in turn."""

    label: str
    config: RunConfig

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.label).strip("_") or "arm"


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def available_cpus() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def cpu_threads(threads: int, *, device: str) -> Iterator[None]:
    """Run with ``threads`` torch threads on the CPU (the small default networks run fastest on
    one) and give the caller's setting back afterwards (tests call scripts in-process)."""
    before = torch.get_num_threads()
    if str(device).startswith("cpu"):
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_study(
    arms: Sequence[Arm],
    *,
    seeds: Sequence[int],
    out: str | Path,
    progress: bool = True,
    jobs: int = 1,
) -> dict[str, list[Path]]:
    """Run every arm with every seed (skipping finished runs); ``label -> run directories``.

    ``jobs > 1`` runs that many runs at once, each in its own process with
    ``available_cpus() // jobs`` threads: the small networks of the CPU experiments keep a core
    busy with Python overhead rather than arithmetic, so runs side by side finish sooner than
    runs one after another with every core each. A run's result does not depend on the order
    in which runs finish; on the CPU it repeats exactly for the same ``jobs`` (the number of
    threads can change the last bits of a float sum, and so the ranking of two close losses).
    """
    labels = [a.label for a in arms]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Arm labels must be distinct, but got {labels}.")
    slugs = [a.slug for a in arms]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"Arm labels must stay distinct as directory names, but got {slugs}.")
    if not seeds:
        raise ValueError("A study needs at least one seed, but got none.")
    out = Path(out)
    dirs: dict[str, list[Path]] = {a.label: [] for a in arms}
    runs = []
    for arm in arms:
        for seed in seeds:
            run_dir = out / arm.slug / f"seed{seed}"
            runs.append((dataclasses.replace(arm.config, seed=seed), run_dir))
            dirs[arm.label].append(run_dir)
    run_all(runs, jobs=jobs, progress=progress)
    return dirs


def run_all(runs: Sequence[tuple[Any, ...]], *, jobs: int = 1, progress: bool = True,
            desc: str = "study", task: Callable[..., Any] = run_resumably) -> list[Any]:
    """``task(*run, progress=False)`` for every run, ``jobs`` at a time (see :func:`run_study`);
    the results in the order of ``runs``. The default task, :func:`bayesnas.methods.run_resumably`, takes
    ``(config, run_dir)``; with ``jobs > 1`` a task must be importable by name (a module-level
    function of a package, not of a script)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be an integer >= 1, but got jobs={jobs!r}.")

    def name(run: tuple[Any, ...]) -> str:
        run_dir = next((Path(a) for a in run if isinstance(a, str | os.PathLike)), None)
        return "" if run_dir is None else f"{run_dir.parent.name}, {run_dir.name}"

    results: list[Any] = [None] * len(runs)
    bar = tqdm(total=len(runs), disable=not progress, desc=desc)
    if jobs == 1:
        for i, run in enumerate(runs):
            bar.set_postfix_str(name(run))
            results[i] = task(*run, progress=False)
            bar.update()
    else:
        # "spawn": a forked child of a process that has used torch's thread pools can hang.
        context = multiprocessing.get_context("spawn")
        threads = max(1, available_cpus() // jobs)
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_set_threads,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(functools.partial(task, progress=False), *run): i
                       for i, run in enumerate(runs)}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()  # re-raises a run's error here
                bar.set_postfix_str(f"{name(runs[i])} done")
                bar.update()
    bar.close()
    return results


def study_parser(
    name: str, description: str, *, epochs: int, dataset: str = "mnist5k"
) -> argparse.ArgumentParser:
    """The options every experiment script takes (the issue's contract)."""
    p = argparse.ArgumentParser(prog=name, description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default=dataset, help="see `bayesnas datasets`")
    p.add_argument("--data-dir", default=None, help="where torchvision datasets live")
    p.add_argument("--download", action="store_true", help="let torchvision download the data")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ..., n-1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--stochastic-samples", type=int, default=100,
                   help="architectures averaged in the stochastic prediction (model average)")
    p.add_argument("--smoke", action="store_true", help="a tiny version that runs in seconds")
    p.add_argument("--out", default=f"runs/experiments/{name}", help="run directories")
    p.add_argument("--results", default=None,
                   help=f"where the table and figures go (default experiments/results/{name}; "
                        "with --smoke, OUT/results)")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs at once, each in its own process (default: one per CPU core on the "
                        "CPU, 1 on a GPU)")
    p.add_argument("--no-progress", action="store_true")
    return p


def default_jobs(args: argparse.Namespace) -> int:
    """``--jobs`` as given, else one run per core on the CPU and one at a time on a GPU."""
    if args.jobs is not None:
        return args.jobs
    if args.smoke:  # seconds of work: not worth starting processes
        return 1
    return available_cpus() if str(args.device).startswith("cpu") else 1


def results_dir(args: argparse.Namespace, name: str) -> Path:
    if args.results:
        return Path(args.results)
    return Path(args.out) / "results" if args.smoke else Path("experiments/results") / name


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that produced a result, as typed."""
    argv = list(sys.argv if argv is None else argv)
    return " ".join(shlex.quote(a) for a in ["python", *argv])


def gap_and_standard_error(higher: Sequence[float], lower: Sequence[float]) -> tuple[float, float]:
    """mean(higher) − mean(lower) over the seeds, and the standard error of that gap (NaN with
    fewer than two seeds a side). A claim "A beats B" holds on a run when the gap in A's favour
    is at least :data:`SEPARATION` standard errors, not for any difference of the means."""
    gap = statistics.fmean(higher) - statistics.fmean(lower)
    if len(higher) < 2 or len(lower) < 2:
        return gap, float("nan")
    return gap, (statistics.variance(higher) / len(higher) + statistics.variance(lower) / len(lower)) ** 0.5


# A claim "A beats B" counts as reproduced when A's gap is at least this many standard errors:
# beyond the seed-to-seed noise, though with three seeds still far from a significance test.
SEPARATION = 2.0


def separated(gap: float, standard_error: float) -> bool:
    """Whether ``gap`` is at least :data:`SEPARATION` standard errors (never, with NaN)."""
    return gap >= SEPARATION * standard_error


def write_markdown(path: str | Path, sections: Sequence[str]) -> Path:
    """Write a results page atomically from Markdown sections."""
    path = Path(path)
    atomic_write_text(path, "\n\n".join(s.strip("\n") for s in sections) + "\n")
    return path


def base_config(args: argparse.Namespace, **fields: Any) -> SearchConfig:
    """A :class:`SearchConfig` from the common options and the script's own fields."""
    common = dict(dataset=args.dataset, data_dir=args.data_dir, download=args.download,
                  epochs=args.epochs, device=args.device,
                  stochastic_samples=4 if args.smoke else args.stochastic_samples)
    common.update(fields)
    return SearchConfig(**common)


def arm_options(config: SearchConfig, **changes: Any) -> SearchConfig:
    """A copy of ``config`` with ``changes``; ``space_options`` entries merge."""
    options = {**config.space_options, **changes.pop("space_options", {})}
    return dataclasses.replace(config, space_options=options, **changes)
