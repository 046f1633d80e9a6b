"""Mixing augmentations, batch operations on the device after the shifts and flips: cutout
(DeVries and Taylor 2017) blanks a square of each image; mixup (Zhang et al. 2018) blends each
image with another of the batch; cutmix (Yun et al. 2019) pastes a box of another image in.

`mix` returns the images, the labels of the images mixed in, and each image's share of its own
label; the loss is then lam * CE(out, y) + (1 - lam) * CE(out, y_other), which is cross-entropy
against the mixed soft label. Every random draw comes from the run's generator.
"""

from __future__ import annotations

import torch

MIXES = ("none", "cutout", "mixup", "cutmix")
# Side of cutout's square when a run sets none: half the 32x32 input on CIFAR-10 (DeVries and
# Taylor's 16), a quarter on the padded 28x28 digits and garments.
CUTOUT_PIXELS = {"mnist": 8, "fashion_mnist": 8, "cifar10": 16}


def _boxes(n: int, h: int, w: int, side_h: torch.Tensor, side_w: torch.Tensor, g: torch.Generator):
    """A box of the given sides per image, its centre uniform over the image, clipped at the edges:
    a (n, h, w) mask that is True inside."""
    dev = side_h.device
    cy = torch.randint(0, h, (n,), device=dev, generator=g)
    cx = torch.randint(0, w, (n,), device=dev, generator=g)
    top, left = (cy - side_h // 2).clamp(0, h), (cx - side_w // 2).clamp(0, w)
    bottom, right = (cy + (side_h + 1) // 2).clamp(0, h), (cx + (side_w + 1) // 2).clamp(0, w)
    rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
    inside_r = (rows[None] >= top[:, None]) & (rows[None] < bottom[:, None])
    inside_c = (cols[None] >= left[:, None]) & (cols[None] < right[:, None])
    return inside_r[:, :, None] & inside_c[:, None, :]


def cutout(x: torch.Tensor, side: int, fill: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image with a side x side square (centre anywhere, clipped at the edges) set to `fill`
    (the dataset's black, as shifts pad with)."""
    n, _, h, w = x.shape
    sides = torch.full((n,), side, device=x.device)
    mask = _boxes(n, h, w, sides, sides, g)[:, None]
    return torch.where(mask, fill.view(1, -1, 1, 1).to(x.dtype), x)


def mix(x: torch.Tensor, y: torch.Tensor, kind: str, alpha: float, g: torch.Generator, *,
        cutout_side: int = 0, fill: torch.Tensor | None = None):
    """(images, other labels, own share lam per image) for mixing `kind`; lam is 1 for cutout."""
    n, _, h, w = x.shape
    if kind == "cutout":
        return cutout(x, cutout_side, fill, g), y, torch.ones(n, device=x.device)
    perm = torch.randperm(n, device=x.device, generator=g)
    # One share per image, Beta(alpha, alpha) from two Gamma draws of the run's generator
    # (torch.distributions takes no generator).
    a = torch._standard_gamma(torch.full((n,), alpha, device=x.device), generator=g)
    b = torch._standard_gamma(torch.full((n,), alpha, device=x.device), generator=g)
    share = a / (a + b)
    if kind == "mixup":
        s = share.view(-1, 1, 1, 1).to(x.dtype)
        return s * x + (1 - s) * x[perm], y[perm], share
    if kind == "cutmix":
        side_h = (h * (1 - share).sqrt()).long()
        side_w = (w * (1 - share).sqrt()).long()
        mask = _boxes(n, h, w, side_h, side_w, g)
        own = 1 - mask.flatten(1).float().mean(1)  # the share actually kept, after clipping
        return torch.where(mask[:, None], x[perm], x), y[perm], own
    raise ValueError(f"unknown mix {kind!r}; valid: {', '.join(MIXES)}")
