"""PSNR and SSIM (Wang et al. 2004) against closed forms and a direct, unoptimised SSIM."""

import math

import pytest
import torch

from bayesnas.analysis.image_quality import psnr, ssim


def test_psnr_is_the_closed_form_on_a_known_mse():
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64) * 0.8
    for c in (0.1, 0.05, 0.2):
        torch.testing.assert_close(psnr(x + c, x), torch.full((3,), 10 * math.log10(1 / c**2), dtype=x.dtype))
    torch.testing.assert_close(psnr(x * 255 + 10, x * 255, data_range=255.0),
                               torch.full((3,), 10 * math.log10(255**2 / 100), dtype=x.dtype))


def test_ssim_of_an_image_with_itself_is_one_and_symmetric_and_below_one_for_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    y = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    torch.testing.assert_close(ssim(x, x), torch.ones(4))
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    assert bool((ssim(x, y) < 0.99).all())
    assert bool((ssim(x, (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)) > ssim(x, y)).all())


def test_ssim_of_two_constant_images_is_the_luminance_term():
    a, b = 0.3, 0.7
    x, y = torch.full((1, 1, 12, 12), a), torch.full((1, 1, 12, 12), b)
    c1 = 0.01**2  # (K1 L)²; the variances are 0, so the contrast-structure term is C2 / C2 = 1
    torch.testing.assert_close(ssim(x, y), torch.tensor([(2 * a * b + c1) / (a * a + b * b + c1)]))


def _direct_ssim(x, y, size=11, sigma=1.5):
    """Wang et al. (2004) eq. (13) window by window, with the Gaussian weights of eq. (14)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    w = torch.outer(g, g) / torch.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return torch.stack(values).mean()


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_the_direct_definition(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 2, 14, 15, generator=g, dtype=torch.float64)
    y = (0.6 * x + 0.4 * torch.rand(x.shape, generator=g, dtype=torch.float64))
    expected = torch.stack([torch.stack([_direct_ssim(x[n, c], y[n, c]) for c in range(2)]).mean()
                            for n in range(2)])
    torch.testing.assert_close(ssim(x, y), expected, rtol=1e-9, atol=1e-9)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match=r"same shape \(N, C, H, W\)"):
        psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
