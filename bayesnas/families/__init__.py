"""Site families: one module per kind of architectural decision, and their registry.

=================  =============================  =====================  ==========================
family             declared with                  guide                  optimizer
=================  =============================  =====================  ==========================
bernoulli          :func:`bernoulli`              BernoulliGuide         BernoulliNaturalGradient
shared-bernoulli   :func:`shared_bernoulli`       SharedBernoulliGuide   SharedBernoulliNaturalGradient
categorical        :func:`categorical`            CategoricalGuide       CategoricalNaturalGradient
normal             :func:`normal_strength`        NormalGuide            Adam (SVI, vinnas2020)
gaussian-integer   :func:`integer`                GaussianGuide          GaussianNaturalGradient
fixed              (a guide only: a point mass)   FixedGuide             none
=================  =============================  =====================  ==========================

Everything that depends on a site's family — discovering sites, checking an architecture,
seeded draws, building the default guide and its optimizers, reading the posterior — asks the
registry, so a new family is one module that subclasses :class:`Family` and calls
:func:`register_family`; an unknown family is an error, never a silent default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from bayesnas.families.base import (
    Family,
    FamilyOptions,
    NaturalGradientOptions,
    SiteSpec,
    base_distribution,
    check_shape,
    labels_and_edges,
    site_infer,
)

__all__ = [
    "Family",
    "FamilyOptions",
    "NaturalGradientOptions",
    "SiteSpec",
    "base_distribution",
    "check_shape",
    "draw_seeded",
    "families",
    "family_of_site",
    "get_family",
    "labels_and_edges",
    "register_family",
    "site_infer",
    "unregister_family",
]

_REGISTRY: dict[str, Family] = {}
_DRAWS: dict[type, Callable[..., torch.Tensor]] = {}


def register_family(family: Family | type[Family]) -> Family:
    """Add a family (an instance or a :class:`Family` subclass) to the registry; returns it.

    Its ``draws`` join the seeded sampler's table: a distribution another family already draws
    must be drawn by the same function."""
    family = family() if isinstance(family, type) else family
    if not family.name:
        raise ValueError(f"A family needs a name, but {type(family).__name__}.name is empty.")
    if family.name in _REGISTRY and type(_REGISTRY[family.name]) is not type(family):
        raise ValueError(f"A family named {family.name!r} is registered already "
                         f"({type(_REGISTRY[family.name]).__name__}).")
    for cls, draw in family.draws.items():
        if _DRAWS.get(cls, draw) is not draw:
            raise ValueError(f"Family {family.name!r} draws {cls.__name__} with another function than the "
                             f"registered one; reuse it.")
    _REGISTRY[family.name] = family
    _DRAWS.update(family.draws)
    return family


def unregister_family(name: str) -> None:
    """Remove a family registered by :func:`register_family` (e.g. one a test defined); its
    draws stay registered only while another family still declares them."""
    removed = _REGISTRY.pop(name)
    for cls in removed.draws:
        if not any(cls in f.draws for f in _REGISTRY.values()):
            _DRAWS.pop(cls, None)


def get_family(name: str) -> Family:
    """The registered family called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown site family {name!r}. Registered families: "
                         f"{', '.join(_REGISTRY)}.") from None


def families() -> list[Family]:
    """Every registered family, in registration order (the order of a default guide's parts)."""
    return list(_REGISTRY.values())


def family_of_site(name: str, fn: torch.distributions.Distribution, infer: Mapping[str, Any]) -> Family:
    """The family of a traced arch site: its ``infer["family"]``, or for a site declared
    without one, the family whose ``legacy_distributions`` its distribution is."""
    if "family" in infer:
        return get_family(infer["family"])
    base = base_distribution(fn)
    for family in _REGISTRY.values():
        if isinstance(base, family.legacy_distributions):
            return family
    raise TypeError(
        f"Arch site {name!r} has an unsupported distribution {type(base).__name__}; declare it with "
        "bayesnas.sites.bernoulli, shared_bernoulli, categorical, normal_strength or integer, or with "
        "a registered family (infer={'arch': True, 'family': NAME})."
    )


def draw_seeded(name: str, fn: torch.distributions.Distribution, generator: torch.Generator) -> torch.Tensor:
    """A draw of ``fn`` (broadcast to its batch and event shape) from ``generator`` alone, by
    the function a registered family declared for its distribution."""
    base = base_distribution(fn)
    for cls in type(base).__mro__:
        if cls in _DRAWS:
            return _DRAWS[cls](fn, fn.batch_shape + fn.event_shape, generator)
    raise TypeError(
        f"Arch site {name!r} is drawn from {type(base).__name__}, which no registered family draws "
        f"from a seeded generator (drawn: {', '.join(c.__name__ for c in _DRAWS)}). Drawing it from "
        "the global RNG would break exact resume; register a family whose `draws` covers it."
    )


def _register_builtins() -> None:
    from bayesnas.families.bernoulli import BernoulliFamily
    from bayesnas.families.categorical import CategoricalFamily
    from bayesnas.families.fixed import FixedFamily
    from bayesnas.families.gaussian_integer import GaussianIntegerFamily
    from bayesnas.families.normal_strength import NormalStrengthFamily
    from bayesnas.families.shared_bernoulli import SharedBernoulliFamily

    # The order of a default guide's parts (and so of its parameters): keep it.
    for family in (BernoulliFamily, SharedBernoulliFamily, CategoricalFamily, NormalStrengthFamily,
                   GaussianIntegerFamily, FixedFamily):
        register_family(family)


_register_builtins()
