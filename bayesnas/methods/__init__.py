"""The methods: one module per way of running a search (or a re-training), each a run kind.

- :mod:`~bayesnas.methods.search`: natural-gradient search over a space of
  ``bayesnas.models`` (shirakawa2018, saito2018, pdas2019; ``alternate=True`` is pdas2019
  alg. 1's alternating cell search);
- :mod:`~bayesnas.methods.retrain`: an exported cell genotype trained from scratch;
- :mod:`~bayesnas.methods.inpainting`: pdas2019 §4.2's CAE search, re-training and baselines;
- :mod:`~bayesnas.methods.vinnas`: vinnas2020's variational search and re-training;
- :mod:`~bayesnas.methods.nes`: nes2019's search under a resource budget and re-training;
- :mod:`~bayesnas.methods.bench`: a ground-truth table built (every architecture trained alone);
- :mod:`~bayesnas.methods.study`: several configurations × seeds, run resumably.

They build on :mod:`bayesnas.runs` (run directories, the resumable loop, seeds) and on the
core (sites, guides, optimizers, losses).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayesnas.runs.config import RunConfig, config_to_run, read_config, run_kind
from bayesnas.runs.files import read_json

__all__ = ["KINDS", "Method", "method", "run", "run_resumably"]

#: kind -> (module, config class, run class, file that shows a run has started): imported on
#: first use, so that reading a registry entry never loads every method. A search or a
#: re-training can resume once it wrote its first checkpoint; the phased methods (inpainting,
#: VINNAS, NES) keep a checkpoint per phase and resume from their config.json.
_REGISTRY: dict[str, tuple[str, str, str, str]] = {
    "search": ("bayesnas.methods.search", "SearchConfig", "SearchRun", "checkpoint.pt"),
    "retrain": ("bayesnas.methods.retrain", "RetrainConfig", "RetrainRun", "checkpoint.pt"),
    "inpainting": ("bayesnas.methods.inpainting", "InpaintingConfig", "InpaintingRun", "config.json"),
    "vinnas": ("bayesnas.methods.vinnas", "VinnasConfig", "VinnasRun", "config.json"),
    "nes": ("bayesnas.methods.nes", "NesConfig", "NesRun", "config.json"),
    "bench": ("bayesnas.methods.bench", "BenchConfig", "BenchRun", "config.json"),
}
KINDS = tuple(_REGISTRY)


@dataclass(frozen=True)
class Method:
    """One run kind: its configuration class, the class that runs it
    (``Run(config, out, **extras).run(resume=..., progress=...) -> results``) and the file whose
    presence means a run of it has started and can resume."""

    kind: str
    config: type[RunConfig]
    runner: Callable[..., Any]
    started_by: str


def method(kind: str) -> Method:
    """The method registered under ``kind`` (a run directory's ``config.json["kind"]``)."""
    if kind not in _REGISTRY:
        raise ValueError(f"Unknown run kind {kind!r}. Known kinds: {', '.join(KINDS)}.")
    module, config, runner, started_by = _REGISTRY[kind]
    loaded = importlib.import_module(module)
    return Method(kind, getattr(loaded, config), getattr(loaded, runner), started_by)


def run(
    config: RunConfig | None = None,
    *,
    out: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    kind: str | None = None,
    **extras: Any,
) -> dict[str, Any]:
    """Run ``config`` into ``out``, or with ``resume=True`` continue the run in ``out`` from its
    own ``config.json`` (the directory is the whole truth); returns the results. The method is
    ``config.kind``, ``kind``, or the resumed directory's. ``extras`` go to the method's run
    class (e.g. ``data=`` in-memory data)."""
    out = Path(out)
    if kind is None:
        kind = config.kind if config is not None else run_kind(read_json(out / "config.json"))
    m = method(kind)
    config = config_to_run(m.config, config, out=out, resume=resume, what=f"a {kind!r} run")
    return m.runner(config, out, **extras).run(resume=resume, progress=progress)


def run_resumably(config: RunConfig, run_dir: str | os.PathLike, *, progress: bool = False,
                  **extras: Any) -> dict[str, Any]:
    """``config`` run into ``run_dir`` for a study: a finished run is read back, a killed one
    resumed, a new one started; returns the results. A directory holding a run of another
    configuration is refused (a study never mixes configurations under one name)."""
    run_dir = Path(run_dir)
    m = method(config.kind)
    finished = (run_dir / "results.json").exists()
    started = finished or (run_dir / m.started_by).exists()
    # Through the config class, so that a run written before a field existed reads with its default.
    if started and read_config(run_dir, type(config)).to_dict() != config.to_dict():
        state = "a finished" if finished else "an unfinished"
        raise ValueError(f"{run_dir} holds {state} run with another configuration; remove it or choose "
                         "another --out (a study never mixes configurations under one name).")
    if finished:
        return read_json(run_dir / "results.json")
    if started:
        return run(out=run_dir, resume=True, progress=progress, kind=config.kind, **extras)
    return run(config, out=run_dir, progress=progress, **extras)
