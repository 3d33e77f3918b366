"""Ranking-based utility of shirakawa2018 eq. (8)."""

from __future__ import annotations

import math

import torch


def ranking_utility(losses: torch.Tensor) -> torch.Tensor:
    """u_i = +1 for the best ⌈λ/4⌉ losses, −1 for the worst ⌈λ/4⌉, 0 otherwise.

    shirakawa2018 eq. (8) (also saito2018 §3, pdas2019 §2). Tied losses share: each member of
    a group of equal losses gets the mean of the utilities of the ranks the group occupies, so
    the update does not depend on the order in which equal samples happened to be drawn
    (λ = 2 with equal losses gives u = (0, 0): no information, no move).

    Args:
        losses: shape ``(λ,)``, λ ≥ 2; lower is better.
    """
    if losses.dim() != 1:
        raise ValueError(f"`losses` must be a vector of λ values, but got shape {tuple(losses.shape)}.")
    lam = losses.shape[0]
    if lam < 2:
        raise ValueError(f"The ranking utility needs λ >= 2 samples, but got λ={lam}.")
    if not bool(torch.isfinite(losses).all()):
        raise ValueError(f"Losses must be finite to be ranked, but got {losses.tolist()}.")
    k = math.ceil(lam / 4)
    by_rank = torch.zeros(lam, dtype=losses.dtype, device=losses.device)
    by_rank[:k] = 1.0
    by_rank[lam - k :] = -1.0
    sorted_losses, order = torch.sort(losses.detach(), stable=True)
    # Average the rank utilities over each group of tied losses.
    _, group, counts = torch.unique_consecutive(sorted_losses, return_inverse=True, return_counts=True)
    group_sum = torch.zeros(len(counts), dtype=losses.dtype, device=losses.device)
    group_sum.index_add_(0, group, by_rank)
    shared = (group_sum / counts.to(losses.dtype))[group]
    utility = torch.empty_like(shared)
    utility[order] = shared
    return utility


def baseline_difference_utility(losses: torch.Tensor, baseline: torch.Tensor | float, *,
                                sigma: float) -> torch.Tensor:
    """u_i = −(L_i − L_0)/σ: the NES utility of nes2019 eqs. (6)–(7).

    ``losses`` are L(⌊H + n_i⌋) of the M perturbed architectures, ``baseline`` L(H) of the
    unperturbed one (ΔL_i = L_i − L_0, eq. 6), σ the perturbation's standard deviation in grid
    steps. Minus, because a utility is higher for better (lower-loss) samples; /σ, because
    with it the natural-gradient step of the Gaussian mean, μ + (η/M) Σ u_i n_i
    (:class:`bayesnas.optim.GaussianNaturalGradient`), is nes2019's H − αG,
    G = (1/(σM)) Σ ΔL_i n_i (eqs. 7, 9), with η = α.
    """
    if losses.dim() != 1 or losses.shape[0] < 1:
        raise ValueError(f"`losses` must be a vector of M >= 1 values, but got shape {tuple(losses.shape)}.")
    finite = isinstance(sigma, int | float) and not isinstance(sigma, bool) and math.isfinite(sigma)
    if not (finite and sigma > 0):
        raise ValueError(f"`sigma` must be a positive finite number, but got sigma={sigma!r}.")
    baseline = torch.as_tensor(baseline, dtype=losses.dtype, device=losses.device)
    if not bool(torch.isfinite(losses).all() and torch.isfinite(baseline).all()):
        raise ValueError(f"Losses must be finite, but got {losses.tolist()} (baseline {baseline.tolist()}).")
    return -(losses.detach() - baseline.detach()) / sigma
