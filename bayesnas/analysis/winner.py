"""Which op wins its edge when op strengths are Normal (vinnas2020's α ~ N(μ, σ²))."""

from __future__ import annotations

import math

import torch

__all__ = ["winner_probabilities", "two_normal_winner_probability"]


@torch.no_grad()
def winner_probabilities(
    mu: torch.Tensor,
    sigma: torch.Tensor,
    *,
    num_samples: int = 20_000,
    generator: torch.Generator,
    chunk: int = 2_000,
) -> torch.Tensor:
    """Monte-Carlo P(α_k is the largest of its edge), α_k ~ N(μ_k, σ_k²) independent.

    ``mu`` and ``sigma`` have shape ``(*edges, K)``; the result has the same shape and sums to
    1 over K. The standard error of each entry is at most 0.5/√num_samples. Draws are made
    ``chunk`` at a time on the CPU from ``generator`` to bound memory and stay reproducible.
    """
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be >= 1, but got num_samples={num_samples}.")
    mu = torch.as_tensor(mu, dtype=torch.float64).cpu()
    sigma = torch.as_tensor(sigma, dtype=torch.float64).cpu()
    counts = torch.zeros(mu.shape, dtype=torch.float64)
    done = 0
    while done < num_samples:
        n = min(chunk, num_samples - done)
        eps = torch.randn((n, *mu.shape), generator=generator, dtype=torch.float64)
        winner = (mu + sigma * eps).argmax(-1)
        counts += torch.nn.functional.one_hot(winner, mu.shape[-1]).sum(0)
        done += n
    return counts / num_samples


def two_normal_winner_probability(mu1: float, sigma1: float, mu2: float, sigma2: float) -> float:
    """Closed form P(X₁ > X₂) = Φ((μ₁ − μ₂)/√(σ₁² + σ₂²)) for independent Normals."""
    z = (mu1 - mu2) / math.sqrt(sigma1**2 + sigma2**2)
    return 0.5 * math.erfc(-z / math.sqrt(2.0))
