"""Studies: several configurations (arms) × several seeds, run resumably, summarised as mean ± std.

The papers report every number as a mean (and deviation) over repeated trials; a study does the
same with :func:`~bayesnas.runner.run_search`. Each run lives in ``OUT/<arm>/seed<k>/``; a
finished run (``results.json``) is never run again and a killed one resumes from its checkpoint,
so re-running the same command after a crash completes the study. The experiment scripts in
``experiments/`` are studies with a results table and figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bayesnas.runner import SearchConfig, run_search
from bayesnas.runs import atomic_write_text, read_json

__all__ = [
    "Arm",
    "arm_options",
    "base_config",
    "command_line",
    "results_dir",
    "run_study",
    "study_parser",
    "write_markdown",
]


@dataclass(frozen=True)
class Arm:
    """One configuration of a study; its ``config.seed`` is replaced by each seed in turn."""

    label: str
    config: SearchConfig

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.label).strip("_") or "arm"


def _run_one(config: SearchConfig, run_dir: Path, progress: bool) -> None:
    if (run_dir / "results.json").exists():
        saved = read_json(run_dir / "config.json")
        if saved != dataclasses.asdict(config):
            raise ValueError(
                f"{run_dir} holds a finished run with another configuration; remove it or choose "
                "another --out (a study never mixes configurations under one name)."
            )
        return
    if (run_dir / "checkpoint.pt").exists():
        if read_json(run_dir / "config.json") != dataclasses.asdict(config):
            raise ValueError(f"{run_dir} holds an unfinished run with another configuration; remove it.")
        run_search(out=run_dir, resume=True, progress=progress)
    else:
        run_search(config, out=run_dir, progress=progress)


def run_study(
    arms: Sequence[Arm], *, seeds: Sequence[int], out: str | Path, progress: bool = True
) -> dict[str, list[Path]]:
    """Run every arm with every seed (skipping finished runs); ``label -> run directories``."""
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
    jobs = [(a, s) for a in arms for s in seeds]
    bar = tqdm(jobs, disable=not progress, desc="study")
    for arm, seed in bar:
        bar.set_postfix_str(f"{arm.label}, seed {seed}")
        run_dir = out / arm.slug / f"seed{seed}"
        _run_one(dataclasses.replace(arm.config, seed=seed), run_dir, progress=False)
        dirs[arm.label].append(run_dir)
    return dirs


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
    p.add_argument("--no-progress", action="store_true")
    return p


def results_dir(args: argparse.Namespace, name: str) -> Path:
    if args.results:
        return Path(args.results)
    return Path(args.out) / "results" if args.smoke else Path("experiments/results") / name


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that produced a result, as typed."""
    argv = list(sys.argv if argv is None else argv)
    return " ".join(shlex.quote(a) for a in ["python", *argv])


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
