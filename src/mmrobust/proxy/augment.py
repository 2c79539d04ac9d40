"""Batch augmentation without torchvision: random resized crop and horizontal flip in one ``grid_sample``.

Why one affine warp per batch: per-image PIL transforms would cost more than the CNN step on a CPU; a
single ``affine_grid`` + ``grid_sample`` call draws a different crop/scale/flip for every image. Randomness
comes from a caller-owned ``torch.Generator``, so a seeded (and resumed) build draws the same crops.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def random_resized_crop_flip(
    images: torch.Tensor, generator: torch.Generator, config: dict[str, Any] | None
) -> torch.Tensor:
    """Float images N x 3 x H x W -> the same shape, each a random crop (area fraction in
    ``config["crop_scale"]``, aspect in ``config["ratio"]``) resized back to H x W, flipped with p = 0.5."""
    if not config:
        return images
    n = images.shape[0]
    lo, hi = config.get("crop_scale", [1.0, 1.0])
    rlo, rhi = config.get("ratio", [1.0, 1.0])

    def uniform(a: float, b: float) -> torch.Tensor:
        return a + (b - a) * torch.rand(n, generator=generator)

    scale = uniform(lo, hi)
    log_ratio = uniform(math.log(rlo), math.log(rhi))
    ratio = log_ratio.exp()
    width = (scale * ratio).sqrt().clamp(max=1.0)  # fractions of the full side
    height = (scale / ratio).sqrt().clamp(max=1.0)
    # centre offsets keep the crop inside the image ([-1, 1] normalised coordinates)
    tx = (2 * torch.rand(n, generator=generator) - 1) * (1 - width)
    ty = (2 * torch.rand(n, generator=generator) - 1) * (1 - height)
    flip = torch.ones(n)
    if config.get("flip", False):
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = height
    theta[:, 1, 2] = ty
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
