"""Continuous op strengths α with the log-uniform prior (vinnas2020 eq. 4): one relevance per
op of every edge, searched by SVI with a mean-field Normal guide (eq. 5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyro
import torch

from bayesnas.distributions import LogUniform
from bayesnas.families.base import (
    Family,
    FamilyOptions,
    SiteSpec,
    base_distribution,
    check_shape,
    guide_field,
    labels_and_edges,
    site_infer,
)

__all__ = ["NormalOptions", "NormalStrengthFamily", "draw_normal", "normal_strength"]


def normal_strength(
    name: str,
    shape: Sequence[int] | int,
    *,
    labels: Sequence[str] | None = None,
    edges: Sequence[tuple[str, str]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare continuous op strengths α with the improper log-uniform prior (vinnas2020 eq. 4).

    ``shape`` is ``(*edges, K)``: one relevance α^{i,j}_k per op k of every edge (i, j), with
    ``p(α) ∝ 1/|α|`` elementwise. Returns a float tensor of shape ``(S, *shape)``. ``labels``
    names the K ops; ``edges`` places each edge (``prod(shape[:-1])`` of them, flattened
    order) on a graph, for the cell diagrams.

    The prior is improper and cannot be sampled, so a guide must provide the site
    (:class:`bayesnas.guides.NormalGuide`, a mean-field Normal, vinnas2020 eq. 5), or the site
    is conditioned on a value (:func:`bayesnas.sites.fixed_architecture`);
    :func:`bayesnas.sites.discover_sites` values it with ones (every op at full strength)
    while it looks at the model. With ``TraceMeanField_ELBO`` the KL(Normal ‖ LogUniform) term
    is the analytic approximation registered in :mod:`bayesnas.distributions.kl` (the γ₂ term
    of vinnas2020 eq. 8).
    """
    shape = check_shape(shape)
    if not shape or shape[-1] < 2:
        raise ValueError(
            f"Op strengths need shape (*edges, K) with K >= 2 ops in the last dimension, but got "
            f"shape={shape} for {name!r}."
        )
    names = None if labels is None else tuple(str(c) for c in labels)
    if names is not None and len(names) != shape[-1]:
        raise ValueError(
            f"Site {name!r} has K={shape[-1]} ops (the last dimension of its shape), so `labels` "
            f"needs {shape[-1]} names, but got {len(names)}: {list(names)}."
        )
    # The variables of the analysis are the edges (each picks one of K ops), so `edges` is
    # checked against shape[:-1], not against the number of α entries.
    infer = site_infer(NormalStrengthFamily.name, **labels_and_edges(name, shape[:-1], names, edges),
                       device=None if device is None else str(device))  # for discover_sites' placeholder
    return pyro.sample(name, LogUniform(shape).to_event(len(shape)), infer=infer)


def draw_normal(fn: torch.distributions.Distribution, shape: torch.Size,
                generator: torch.Generator) -> torch.Tensor:
    """loc + scale·ε with ε ~ N(0, 1) from ``generator``."""
    base = base_distribution(fn)
    loc, scale = (t.expand(shape) for t in (base.loc, base.scale))
    eps = torch.randn(shape, generator=generator, dtype=loc.dtype, device=generator.device)
    value = loc + scale * eps.to(loc.device)
    # Pyro's own semantics: a draw of a reparameterizable distribution keeps its graph (an
    # rsample, as SVI needs), one marked ``has_rsample_(False)`` is a constant (a score-
    # function estimator's sample, as NES needs: nes2019 eq. 7).
    return value if fn.has_rsample else value.detach()


@dataclass(frozen=True, kw_only=True)
class NormalOptions(FamilyOptions):
    """The mean-field Normal guide's initialisation (:class:`bayesnas.guides.NormalGuide`) and
    Adam's learning rate ``lr`` (vinnas2020 §V-A)."""

    init_loc: float | None = guide_field(None)
    init_loc_std: float | None = guide_field(None)
    init_log_sigma2: float | None = guide_field(None)
    lr: float | None = None


class NormalStrengthFamily(Family):
    name: ClassVar[str] = "normal"
    guide_class = "bayesnas.guides.normal:NormalGuide"
    marginal_class = "bayesnas.analysis.marginals:NormalStrengthMarginal"
    options = NormalOptions
    draws = {torch.distributions.Normal: draw_normal}
    legacy_distributions = (LogUniform,)

    def spec(self, name: str, fn: torch.distributions.Distribution, infer: Mapping[str, Any]) -> SiteSpec:
        shape = tuple(fn.event_shape)
        if not isinstance(base_distribution(fn), LogUniform) or len(shape) < 1 or shape[-1] < 2:
            raise TypeError(
                f"Op-strength arch site {name!r} needs a LogUniform with event shape (*edges, K), K >= 2, "
                f"but got {type(base_distribution(fn)).__name__} with {shape}; declare it with "
                "bayesnas.sites.normal_strength."
            )
        return SiteSpec(name, self.name, shape, shape[-1], infer.get("choices"), infer.get("edges"))

    def value(self, spec: SiteSpec, given: Any, device: torch.device | str | None) -> torch.Tensor:
        """α of shape ``(*edges, K)``, or one op index per edge, shape ``(*edges,)`` (e.g.
        ``Posterior.mode()`` or the SNR selection of vinnas2020 alg. 1, line 21), which becomes
        one-hot α: the chosen op at strength 1, the others off."""
        value = torch.as_tensor(given, device=device)
        k = int(spec.num_categories or spec.shape[-1])
        if tuple(value.shape) == spec.shape:
            return value.to(torch.get_default_dtype())
        if tuple(value.shape) == spec.shape[:-1]:
            if value.is_floating_point() and not bool((value == value.round()).all()):
                raise ValueError(
                    f"Op-strength site {spec.name!r} takes α of shape {spec.shape} or one op index per "
                    f"edge, but got non-integer indices {given}."
                )
            index = value.long()
            if not bool(((index >= 0) & (index < k)).all()):
                raise ValueError(f"Op-strength site {spec.name!r} takes op indices in [0, {k}), "
                                 f"but got {given}.")
            return torch.nn.functional.one_hot(index, k).to(torch.get_default_dtype())
        raise ValueError(
            f"Arch site {spec.name!r} has shape {spec.shape} (α) or {spec.shape[:-1]} (op indices), but "
            f"the architecture gives a value of shape {tuple(value.shape)}."
        )
