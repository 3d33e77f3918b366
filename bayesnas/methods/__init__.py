"""The methods: one module per way of running a search (or a re-training), each a run kind.

- :mod:`~bayesnas.methods.search`: natural-gradient search over a space of
  ``bayesnas.models`` (shirakawa2018, saito2018, pdas2019; ``alternate=True`` is pdas2019
  alg. 1's alternating cell search);
- :mod:`~bayesnas.methods.retrain`: an exported cell genotype trained from scratch;
- :mod:`~bayesnas.methods.inpainting`: pdas2019 §4.2's CAE search, re-training and baselines;
- :mod:`~bayesnas.methods.vinnas`: vinnas2020's variational search and re-training;
- :mod:`~bayesnas.methods.nes`: nes2019's search under a resource budget and re-training;
- :mod:`~bayesnas.methods.study`: several configurations × seeds, run resumably.

They build on :mod:`bayesnas.runs` (run directories, the resumable loop, seeds) and on the
core (sites, guides, optimizers, losses).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["KINDS", "Method", "method"]

#: kind -> (module, config class, run function): imported on first use, so that reading a
#: registry entry never loads every method.
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "search": ("bayesnas.methods.search", "SearchConfig", "run_search"),
    "retrain": ("bayesnas.methods.retrain", "RetrainConfig", "run_retrain"),
    "inpainting": ("bayesnas.methods.inpainting", "InpaintingConfig", "run_inpainting"),
    "vinnas": ("bayesnas.methods.vinnas", "VinnasConfig", "run_vinnas"),
    "nes": ("bayesnas.methods.nes", "NesConfig", "run_nes"),
}
KINDS = tuple(_REGISTRY)


@dataclass(frozen=True)
class Method:
    """One run kind: its configuration class and its entry point
    ``run(config | None, *, out, resume=False, progress=True) -> results``."""

    kind: str
    config: type
    run: Callable[..., dict[str, Any]]


def method(kind: str) -> Method:
    """The method registered under ``kind`` (a run directory's ``config.json["kind"]``)."""
    if kind not in _REGISTRY:
        raise ValueError(f"Unknown run kind {kind!r}. Known kinds: {', '.join(KINDS)}.")
    module, config, run = _REGISTRY[kind]
    loaded = importlib.import_module(module)
    return Method(kind, getattr(loaded, config), getattr(loaded, run))
