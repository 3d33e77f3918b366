"""Analytic KL(Normal ‖ LogUniform): Molchanov et al. (2017), eq. 14, used by vinnas2020.

With ``α = σ²/μ²`` the KL divergence of ``N(μ, σ²)`` from the improper log-uniform prior
depends on ``α`` only, up to an additive constant. Molchanov et al. fit

    −KL ≈ k₁·sigmoid(k₂ + k₃·log α) − ½·log(1 + 1/α) + C,   C = −k₁,
    k₁ = 0.63576, k₂ = 1.8732, k₃ = 1.48695,

(their eq. 14; vinnas2020 quotes it in §IV-B, below eq. 7, where the leading minus of
−KL is dropped in the text). ``C = −k₁`` makes KL → 0 as α → ∞, which is the weight
being pure noise and hence prunable. Because the true KL is only defined up to a constant
for an improper prior, only its dependence on α matters for optimisation.

Registered with :func:`torch.distributions.kl.register_kl` for ``(Normal, LogUniform)``.
Pyro's ``dist.Normal`` subclasses ``torch.distributions.Normal`` and torch dispatches KL
by ``issubclass``, so Pyro's ``TraceMeanField_ELBO`` (which calls
``kl_divergence(guide_fn, model_fn)``) finds it. ``.to_event(n)`` on both sides is
handled by Pyro's own ``(Independent, Independent)`` rule, which strips the shared
reinterpreted dims, calls this KL on the base distributions and sums those dims.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import Normal, register_kl

from bayesnas.distributions.log_uniform import LogUniform

K1, K2, K3 = 0.63576, 1.8732, 1.48695

#: log α is clipped to this range (as in Molchanov et al.'s reference code): below −10 the
#: weight is essentially deterministic and the KL's only remaining pull, −½·log α, would
#: keep shrinking σ without bound; above +10 the KL is within 3e-5 of its limit 0.
LOG_ALPHA_MIN, LOG_ALPHA_MAX = -10.0, 10.0

#: added to μ² inside the log so that log α stays finite at μ = 0.
EPS = 1e-8


def log_alpha(loc: torch.Tensor, log_sigma2: torch.Tensor, *, clip: bool = True) -> torch.Tensor:
    """``log α = log σ² − log(μ² + ε)``, computed from ``log σ²`` so it never divides by σ.

    With ``clip`` (the default) it is clamped to ``[LOG_ALPHA_MIN, LOG_ALPHA_MAX]``.
    """
    out = log_sigma2 - torch.log(loc * loc + EPS)
    return out.clamp(LOG_ALPHA_MIN, LOG_ALPHA_MAX) if clip else out


def kl_from_log_alpha(log_alpha: torch.Tensor) -> torch.Tensor:
    """Molchanov et al. (2017) eq. 14: ``−(k₁·σ(k₂ + k₃·log α) − ½·log(1 + 1/α) − k₁)``.

    ``½·log(1 + 1/α) = ½·softplus(−log α)`` is evaluated as a softplus, which neither
    overflows for very negative log α nor loses precision for large ones.
    """
    return K1 - K1 * torch.sigmoid(K2 + K3 * log_alpha) + 0.5 * F.softplus(-log_alpha)


def kl_normal_log_uniform(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Elementwise approximate ``KL(N(loc, scale²) ‖ LogUniform)``, clipped log α (see module)."""
    return kl_from_log_alpha(log_alpha(loc, 2.0 * torch.log(scale)))


@register_kl(Normal, LogUniform)
def _kl_normal_log_uniform(p: Normal, q: LogUniform) -> torch.Tensor:
    kl = kl_normal_log_uniform(p.loc, p.scale)
    shape = torch.broadcast_shapes(kl.shape, q.batch_shape)
    return kl.expand(shape)
