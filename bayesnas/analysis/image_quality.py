"""Image restoration measures of pdas2019 §4.2 "Dataset and Evaluation Measure": PSNR and SSIM.

Both take batches ``(N, C, H, W)`` with values in [0, ``data_range``] and return one value per
image ``(N,)``; a higher value is a better restoration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim"]


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"Both image batches must have the same shape (N, C, H, W), but got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}.")


def psnr(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image: 10 log10(data_range² / MSE) dB (``inf`` when equal)."""
    _check(x, y)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).to(x.dtype)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004, eq. 13): the mean over the valid
    positions of every channel of

        ((2 μx μy + C1)(2 σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2)),

    C1 = (K1 L)², C2 = (K2 L)², with local statistics under an 11×11 Gaussian window of σ = 1.5
    (the paper's settings; K1 = 0.01, K2 = 0.03, L = ``data_range``). Images smaller than the
    window use a window of their smaller side (so 8×8 digits can be scored).
    """
    _check(x, y)
    _, c, h, w = x.shape
    dtype = x.dtype
    size = min(window_size, h, w)
    x, y = x.double(), y.double()
    g = _gaussian_window(size, sigma, x.dtype, x.device)
    # Separable Gaussian filter, per channel (depthwise), over the valid positions only.
    gh = g.view(1, 1, size, 1).expand(c, 1, size, 1)
    gw = g.view(1, 1, 1, size).expand(c, 1, 1, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gh, groups=c), gw, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1).to(dtype)
