"""Weight the KL terms of selected latent sites by γ: the γ₁ / γ₂ of vinnas2020 eq. 7–8.

vinnas2020 (§IV-B, eq. 8) scales the KL of the weights by γ₁ and that of the op strengths α
by γ₂, both ramped up from 0 (alg. 1, lines 2 and 19). ``pyro.infer.TraceMeanField_ELBO``
computes each latent site's analytic term as ``scale_and_mask(KL(guide ‖ model),
scale=guide_site["scale"], mask=guide_site["mask"])``: it reads the scale and the mask of the
*guide* trace. So this handler must wrap the guide for the analytic KL to be weighted. Where
no analytic KL exists the ELBO falls back on ``log p(z)`` (model scale) − ``log q(z)``
(guide scale); wrap the model too, with the same ``scales``, and that fallback is weighted
alike.

Pyro refuses a scale of 0 (``poutine.scale`` asks for ``scale > 0``), so a site whose γ is 0
is masked instead (``msg["mask"] = False``): ``scale_and_mask`` then returns zeros, which drops
the term exactly, while the site is still sampled (the network still sees a draw of q).

Only latent sites are touched: γ weights a prior / KL term, never a likelihood (scale an
observed site with ``poutine.scale``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message

Scales = Mapping[str, float] | Callable[[str], float | None]


def _check_gamma(name: str, gamma: float) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not (
        gamma >= 0 and math.isfinite(gamma)
    ):
        raise ValueError(f"The scale γ of site {name!r} must be a finite number >= 0, but got {gamma!r}.")
    return float(gamma)


class ScaleSitesMessenger(Messenger):
    """Multiplies the ``scale`` of selected latent sample sites by γ; masks them where γ = 0.

    ``Message`` fields used: ``type`` (only ``"sample"``), ``name`` (the selection key),
    ``is_observed`` (observed sites are left alone); ``scale`` is multiplied by γ when γ > 0,
    ``mask`` is set to ``False`` when γ = 0 (and ``scale`` left as is).

    :param scales: site name → γ, or a function of the name returning γ or ``None`` (site not
        selected). Called at every site each time the function runs, so a function that reads
        the current γ of a schedule is honoured without rebuilding the handler.
    """

    def __init__(self, scales: Scales) -> None:
        if not (callable(scales) or isinstance(scales, Mapping)):
            raise TypeError(
                f"`scales` must be a mapping site name → γ or a function of the name, but got {scales!r}."
            )
        if isinstance(scales, Mapping):
            for name, gamma in scales.items():
                _check_gamma(name, gamma)
        super().__init__()
        self.scales = scales

    def gamma(self, name: str) -> float | None:
        """γ of the site ``name``, or ``None`` when it is not selected."""
        gamma = self.scales.get(name) if isinstance(self.scales, Mapping) else self.scales(name)
        return None if gamma is None else _check_gamma(name, gamma)

    def _pyro_sample(self, msg: Message) -> None:
        if msg["is_observed"]:
            return
        gamma = self.gamma(msg["name"])
        if gamma is None:
            return
        if gamma == 0.0:
            msg["mask"] = False  # Pyro forbids scale 0; a False mask zeroes the term exactly
        else:
            msg["scale"] = gamma * msg["scale"]


def scale_sites(fn=None, *, scales: Scales):
    """Handler: the latent sites selected by ``scales`` have their log-density / KL weighted by γ.

    For vinnas2020 eq. 8 under ``TraceMeanField_ELBO`` wrap the guide (the analytic KL reads
    the guide's scale and mask), e.g. ``scale_sites(guide, scales=lambda n: γ₂ if n in arch
    else γ₁)``; wrapping the model as well keeps the non-analytic fallback consistent.
    """
    msngr = ScaleSitesMessenger(scales)
    return msngr(fn) if fn is not None else msngr
