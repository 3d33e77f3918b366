"""Cutout (DeVries & Taylor 2017), the regularizer pdas2019 §4.1 applies to the weights' data."""

from __future__ import annotations

import torch


def cutout(x: torch.Tensor, size: int, *, generator: torch.Generator) -> torch.Tensor:
    """Images ``x`` (N, C, H, W) with one ``size`` × ``size`` square per image set to 0 (the
    mean of standardised data), centred at a pixel drawn uniformly from ``generator`` and
    clipped at the borders, as in DeVries & Taylor's reference code. Returns a new tensor."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"`size` must be an integer >= 1, but got size={size!r}.")
    if x.dim() != 4:
        raise ValueError(f"cutout takes images (N, C, H, W), but got shape {tuple(x.shape)}.")
    n, _, h, w = x.shape
    cy = torch.randint(h, (n,), generator=generator, device=generator.device)
    cx = torch.randint(w, (n,), generator=generator, device=generator.device)

    def band(centre: torch.Tensor, length: int) -> torch.Tensor:  # (n, length) inside the square
        pos = torch.arange(length, device=centre.device)
        start = (centre - size // 2).clamp(0, length)[:, None]
        stop = (centre - size // 2 + size).clamp(0, length)[:, None]
        return (pos >= start) & (pos < stop)

    square = band(cy, h)[:, :, None] & band(cx, w)[:, None, :]
    return x.masked_fill(square[:, None].to(x.device), 0.0)
