"""Architecture sites: architectural decisions declared as named ``pyro.sample`` sites.

A search space is a Pyro model. Each architectural decision ("is layer 7 on", "which op on
edge 3") is a ``pyro.sample`` site marked ``infer={"arch": True, "family": NAME}``, declared with
the function of its family (:mod:`bayesnas.families`; re-exported here: :func:`bernoulli`,
:func:`shared_bernoulli`, :func:`categorical`, :func:`normal_strength`, :func:`integer`).
Every arch site value has a leading *architecture dimension* of size S, the number of
architectures evaluated together in one batched pass: the search loss opens
``pyro.plate("arch", S)`` around the model and the guide, so a model written once serves λ
search samples, S = 100 stochastic-prediction samples and the single fixed network (S = 1) alike.

An architecture is a plain mapping ``site name -> value`` (ints, or nested lists of ints for
vector sites; the op strengths α of a "normal" site as nested lists of floats, or one op
index per edge); it round-trips through JSON and replays into the model with
:func:`fixed_architecture` (``poutine.condition``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from bayesnas.families import SiteSpec, family_of_site, get_family
from bayesnas.families.bernoulli import bernoulli
from bayesnas.families.categorical import categorical
from bayesnas.families.gaussian_integer import integer
from bayesnas.families.normal_strength import normal_strength
from bayesnas.families.shared_bernoulli import shared_bernoulli
from bayesnas.handlers.improper_placeholder import improper_placeholder
from bayesnas.integer_grid import IntegerGrid

ARCH_PLATE = "arch"
Architecture = dict[str, Any]

__all__ = [
    "ARCH_PLATE",
    "Architecture",
    "SiteSpec",
    "arch_plate",
    "bernoulli",
    "categorical",
    "shared_bernoulli",
    "normal_strength",
    "integer",
    "IntegerGrid",
    "discover_sites",
    "fixed_architecture",
    "architecture_to_tensors",
    "tensors_to_architecture",
    "classification_likelihood",
    "regression_likelihood",
]


def arch_plate(size: int) -> pyro.plate:
    """The plate over the S architectures evaluated together (always ``dim=-1``)."""
    return pyro.plate(ARCH_PLATE, size, dim=-1)


def discover_sites(model: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, SiteSpec]:
    """Run ``model(*args, **kwargs)`` once (S = 1) and describe every arch site it declares,
    each by its registered family (:mod:`bayesnas.families`)."""
    # The placeholder sits outside the plate so it sees the plate-broadcast shape (1, *shape).
    with poutine.block(), poutine.trace() as tracer, improper_placeholder(), arch_plate(1):
        model(*args, **kwargs)
    specs: dict[str, SiteSpec] = {}
    for name, node in tracer.trace.nodes.items():
        if node["type"] != "sample" or not node["infer"].get("arch"):
            continue
        specs[name] = family_of_site(name, node["fn"], node["infer"]).spec(name, node["fn"], node["infer"])
    return specs


def architecture_to_tensors(
    arch: Mapping[str, Any],
    specs: Mapping[str, SiteSpec],
    *,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Turn a plain architecture into tensors with a leading architecture dim of size 1, each
    value checked by its site's family."""
    unknown = sorted(set(arch) - set(specs))
    if unknown:
        raise KeyError(f"Unknown arch sites {unknown}. Known sites: {sorted(specs)}.")
    missing = sorted(set(specs) - set(arch))
    if missing:
        raise KeyError(f"The architecture gives no value for the arch sites {missing}.")
    return {name: get_family(spec.family).value(spec, arch[name], device).unsqueeze(0)
            for name, spec in specs.items()}


def tensors_to_architecture(values: Mapping[str, torch.Tensor]) -> Architecture:
    """Plain ``name -> int | float | nested list`` mapping from tensors of one architecture.

    Integer-valued tensors (bits, indices) become ints; a floating tensor with fractional
    entries (the op strengths α of a "normal" site, e.g. a ``NormalGuide``'s mode μ) keeps its
    floats, which truncating to ints would silently destroy.
    """
    out: Architecture = {}
    for name, v in values.items():
        v = torch.as_tensor(v).detach().cpu()
        fractional = v.is_floating_point() and not bool((v == v.round()).all())
        out[name] = v.tolist() if fractional else v.long().tolist()
    return out


def fixed_architecture(
    model: Callable[..., Any],
    arch: Mapping[str, Any],
    specs: Mapping[str, SiteSpec],
    *,
    device: torch.device | str | None = None,
) -> Callable[..., Any]:
    """The model with every arch site conditioned on ``arch`` (run it inside ``arch_plate(1)``)."""
    return poutine.condition(model, data=architecture_to_tensors(arch, specs, device=device))


def classification_likelihood(logits: torch.Tensor, y: torch.Tensor | None) -> None:
    """Declare ``y ~ Categorical(logits)`` over the N data of every architecture.

    ``logits`` has shape ``(S, N, C)`` (or ``(S, n, C)`` with ``y`` of shape ``(S, n)``). The
    site is only declared when labels are given, so prediction (``y=None``) draws nothing.
    """
    if y is not None:
        pyro.sample("obs", dist.Categorical(logits=logits).to_event(1), obs=y)


def regression_likelihood(pred: torch.Tensor, target: torch.Tensor | None) -> None:
    """Declare ``target ~ Normal(pred, σ = 1/√2)`` over every element of every architecture.

    ``pred`` has shape ``(S, N, ...)``; ``target`` ``(N, ...)`` (shared by the S architectures)
    or ``(S, N, ...)``. Everything but the arch dimension is the event, so
    :func:`bayesnas.infer.losses.per_architecture_loss`, which divides −log p by the event's
    number of elements, is the per-architecture mean squared error plus a constant:
    (y − μ)²/(2σ²) + log σ + ½ log 2π = (y − μ)² + ½ log π with σ² = ½. Ranking the
    architectures by it is ranking by the MSE loss of pdas2019 §4.2 ("Training Detail").
    The site is only declared when a target is given.
    """
    if target is not None:
        scale = torch.full((), 2.0**-0.5, dtype=pred.dtype, device=pred.device)
        obs = target.expand_as(pred) if target.dim() < pred.dim() else target
        pyro.sample("obs", dist.Normal(pred, scale).to_event(pred.dim() - 1), obs=obs)
