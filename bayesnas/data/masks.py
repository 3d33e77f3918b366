"""The three inpainting masks of pdas2019 §4.2 (after Suganuma et al. 2018; Yeh et al. 2017).

- ``center``: a central square block of half the image side (a quarter of the pixels);
- ``pixel``: 80 % of all the pixels masked at random;
- ``half``: a randomly selected vertical or horizontal half of the image.

A mask is drawn per image, from a ``torch.Generator`` (pdas2019: "The mask was randomly
generated for each training mini-batch and each test image"), and is shared by the image's
channels. :func:`apply_mask` sets the masked pixels to 0.
"""

from __future__ import annotations

import torch

MASKS = ("center", "pixel", "half")
PIXEL_FRACTION = 0.8

__all__ = ["MASKS", "PIXEL_FRACTION", "apply_mask", "make_masks"]


def make_masks(
    kind: str, num: int, height: int, width: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``num`` boolean masks ``(num, 1, H, W)``, ``True`` where a pixel is missing.

    ``center``: rows and columns [⌊H/4⌋, ⌊H/4⌋ + ⌊H/2⌋) (exactly a quarter of the pixels for
    even sides). ``pixel``: exactly round(0.8·H·W) pixels per image, chosen uniformly.
    ``half``: the top, bottom, left or right half, each with probability 1/4 (vertical or
    horizontal, then which half), ⌊H/2⌋ rows or ⌊W/2⌋ columns.
    """
    if kind not in MASKS:
        raise ValueError(f"`kind` must be one of {MASKS}, but got kind={kind!r}.")
    for name, value in (("num", num), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "num" else 2):
            low = 0 if name == "num" else 2
            raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")
    masks = torch.zeros(num, 1, height, width, dtype=torch.bool)
    if kind == "center":
        top, left = height // 4, width // 4
        masks[..., top : top + height // 2, left : left + width // 2] = True
    elif kind == "pixel":
        k = round(PIXEL_FRACTION * height * width)
        scores = torch.rand(num, height * width, generator=generator)
        idx = scores.argsort(dim=1)[:, :k]  # k distinct pixels per image, uniformly
        masks.view(num, -1).scatter_(1, idx, True)
    else:
        which = torch.randint(0, 4, (num,), generator=generator).tolist()
        for n, w in enumerate(which):
            if w == 0:
                masks[n, :, : height // 2] = True
            elif w == 1:
                masks[n, :, height - height // 2 :] = True
            elif w == 2:
                masks[n, :, :, : width // 2] = True
            else:
                masks[n, :, :, width - width // 2 :] = True
    return masks


def apply_mask(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``images`` (N, C, H, W) with the pixels where ``masks`` (N, 1, H, W) is true set to 0."""
    return images.masked_fill(masks.to(images.device), 0.0)
