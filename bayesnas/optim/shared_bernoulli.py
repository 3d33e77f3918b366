"""Natural gradient for Bernoulli rates shared by groups of units (shirakawa2018 §III).

In shirakawa2018's "Adaptation of Stochastic Network" the U dropout-mask bits m_l1..m_lU of
hidden layer l are i.i.d. Bernoulli(θ_l): one rate per layer. In expectation parameters this
is an exponential family with sufficient statistic T(M_l) = (1/U) Σᵢ m_li, so

    ∇̃θ_l ln p_θ(M) = (1/U) Σᵢ m_li − θ_l,        F(θ_l) = U / (θ_l(1 − θ_l)),

and the natural gradient of the score-function surrogate is θ(1 − θ)/U ⊙ ∇θ surrogate. An
independent bit is the case U = 1, so one optimizer steps the paper's whole mixed θ ∈ R^{2L−1}
(L − 1 layer bits with U = 1, L unit rates with U = width) with one d, one η and one
adaptive step size. Its maths is in :mod:`bayesnas.optim.functional`
(:func:`~bayesnas.optim.functional.shared_bernoulli_natural_gradient`,
:func:`~bayesnas.optim.functional.shared_bernoulli_fisher_sqrt_image`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bayesnas.optim import functional as F
from bayesnas.optim._base import ParamsT, check_int
from bayesnas.optim.bernoulli import BernoulliNaturalGradient

__all__ = ["SharedBernoulliNaturalGradient"]


def _sizes(value: Any, num_params: int) -> tuple[int, ...]:
    """``group_size`` of a param group, one int per parameter (validated)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        sizes = tuple(value)
        if len(sizes) != num_params:
            raise ValueError(
                "`group_size` given as a sequence needs one size per θ tensor of the group, "
                f"but got {len(sizes)} sizes for {num_params} tensors: group_size={list(sizes)!r}."
            )
        for u in sizes:
            if isinstance(u, bool) or not isinstance(u, int) or u < 1:
                raise ValueError(
                    f"`group_size` must hold integers >= 1, but got group_size={list(sizes)!r}."
                )
        return sizes
    check_int("group_size", value, 1)
    return (value,) * num_params


def _group_size(group: dict[str, Any], index: int) -> int:
    """U of the group's parameter at ``index`` (``group_size`` is validated by :func:`_sizes`)."""
    value = group["group_size"]
    return value if isinstance(value, int) else value[index]


def _with_default(params: ParamsT, name: str, value: Any) -> ParamsT:
    """``params`` as param groups in which option ``name`` defaults to ``value``.

    A group's own value wins; the caller's dicts are copied, not changed. A tensor or an empty
    iterable is passed through for ``torch.optim.Optimizer`` to reject.
    """
    if isinstance(params, torch.Tensor):
        return params
    groups = list(params)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    out = []
    for group in groups:
        group = dict(group)
        group.setdefault(name, value)
        out.append(group)
    return out


class SharedBernoulliNaturalGradient(BernoulliNaturalGradient):
    """Stochastic natural gradient for Bernoulli rates θ ∈ [0, 1] each shared by U units.

        θ ← clip(θ − η θ(1 − θ)/U ⊙ ∇θ surrogate, [1/d, 1 − 1/d])
          = clip(θ + η((1/λ) Σᵢ uᵢ((1/U) Σⱼ mᵢⱼ − θ) − ε c θ(1 − θ)/U), [1/d, 1 − 1/d])

    (shirakawa2018 §III; the penalty term is saito2018 eq. (7) preconditioned the same way).

    **d.** shirakawa2018 §2 sets the clipping range [1/d, 1 − 1/d] and η = 1/d (saito2018 §4)
    with d the dimension of θ; for independent bits that is also the number of bits of M. For
    the mixed problem of §III the paper states "the problem dimension is d = 2L − 1 = 19 and
    the range of search space is [1/d, 1 − 1/d]^d" (the BO baseline, which searches the same
    θ as AdaptiveNet). So d counts *θ entries* (rates), not the LU + L − 1 = 10,249 bits of M:
    the default d is the number of elements of the group's θ tensors. Put the layer bits
    (``group_size`` 1) and the unit rates (``group_size`` U) in one param group, as
    :class:`bayesnas.guides.GuideList` does, to get the paper's d = 2L − 1; or pass ``dim``.
    Counting bits instead would clip θ at 1/10,249 and step η = 1/10,249, far below the
    paper's range, though a rate averages U bits and so moves with U times less noise.

    **Adaptive η** (pdas2019 app. C) extends exactly: T = (1/U) Σⱼ mⱼ has Cov[T] = F(θ)⁻¹, so
    Tr(F Cov[Δθ]) = (Σu²/λ²) d is unchanged (:func:`~bayesnas.optim.functional.fisher_trace`)
    and the F^{1/2}-image gains the factor √U
    (:func:`~bayesnas.optim.functional.shared_bernoulli_fisher_sqrt_image`).

    Args:
        params: the θ tensors (or param-group dicts); θ has the *group* shape.
        group_size: U, the number of units sharing each rate: one int for every tensor of the
            group, or a sequence with one int per tensor (1 for plain bits). Keyword-only and
            required (may be set per param group).
        lr, dim, theta_min, adaptive, alpha, lr_min, lr_max, num_samples: as for
            :class:`~bayesnas.optim.BernoulliNaturalGradient`, with d the number of θ entries.
    """

    family = "shared-bernoulli"

    def __init__(
        self,
        params: ParamsT,
        *,
        group_size: int | Sequence[int],
        lr: float | None = None,
        dim: int | None = None,
        theta_min: float | None = None,
        adaptive: bool = False,
        alpha: float = 1.5,
        lr_min: float = 0.0,
        lr_max: float | None = None,
        num_samples: int = 2,
    ) -> None:
        if isinstance(group_size, Sequence) and not isinstance(group_size, str):
            group_size = tuple(group_size)
        # group_size is this family's per-group option: it enters every group before the
        # parent validates them, and the defaults for groups added later.
        super().__init__(
            _with_default(params, "group_size", group_size), lr=lr, dim=dim, theta_min=theta_min,
            adaptive=adaptive, alpha=alpha, lr_min=lr_min, lr_max=lr_max, num_samples=num_samples,
        )
        self.defaults["group_size"] = group_size

    def _check_family_options(self, group: dict[str, Any]) -> None:
        _sizes(group["group_size"], len(group["params"]))
        super()._check_family_options(group)  # dim and theta_min: d counts θ entries (rates)

    def _natural_gradient(
        self, theta: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        return F.shared_bernoulli_natural_gradient(theta, grad, _group_size(group, index))

    def _fisher_sqrt_image(
        self, theta: torch.Tensor, delta: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        return F.shared_bernoulli_fisher_sqrt_image(theta, delta, _group_size(group, index))
