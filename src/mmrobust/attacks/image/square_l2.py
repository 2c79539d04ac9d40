"""Square Attack under L2 (Andriushchenko et al., ECCV 2020, Algorithm 3), written from the paper.

The L2 version moves mass instead of flipping signs: the perturbation is a sum of "pseudo-Gaussian" square
blobs (energy decaying as 1/r^2 from the centre, the two halves of opposite sign). Each iteration picks two
random windows of the current side length, empties the second, and puts a fresh random-sign blob in the
first, scaled so the perturbation keeps (at most) the budget it had in both windows plus whatever budget is
still unused; the whole perturbation is then rescaled onto the eps-sphere and the change is kept if the
margin loss went down. Like the L-inf version it never looks at gradients.
"""

from __future__ import annotations

import math

import torch

from .square import Square, square_fraction, window_mask
from .streams import ExampleStreams


def pseudo_gaussian(rows: int, cols: int) -> torch.Tensor:
    """A ``rows x cols`` blob of nested rectangles around the centre, the k-th adding 1/(k+1)^2; unit L2 norm."""
    blob = torch.zeros(rows, cols)
    top, left = rows // 2, cols // 2
    for k in range(max(rows // 2 + 1, cols // 2 + 1)):
        blob[max(top - k, 0) : min(top + k + 1, rows), max(left - k, 0) : min(left + k + 1, cols)] += 1.0 / (k + 1) ** 2
    return blob / blob.norm().clamp_min(1e-12)


def square_blob(side: int, transpose: bool) -> torch.Tensor:
    """Two pseudo-Gaussian halves of opposite sign (the paper's update shape), optionally transposed."""
    half = side // 2
    blob = torch.cat([pseudo_gaussian(half, side), -pseudo_gaussian(side - half, side)]) if half else pseudo_gaussian(side, side)
    blob = blob / blob.norm().clamp_min(1e-12)
    return blob.t() if transpose else blob


class SquareL2(Square):
    """``SquareL2(classifier, eps, n_queries=1000)(images, labels)``: the L2 random-search attack.

    Shares the L-inf class's restarts, query accounting, targets and margin loss; only the initial
    perturbation and the proposal differ (see the module docstring). ``eps`` is the raw L2 radius.
    """

    def _check_norm(self) -> None:
        if self.norm != "L2":
            raise ValueError("SquareL2 is the L2 attack; use Square for linf")

    def _onto_sphere(self, images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (images + delta / norms * self.eps).clamp(0, 1)

    def _initial(self, images: torch.Tensor, streams: ExampleStreams, restart: int) -> torch.Tensor:
        """A grid of random-sign blobs of side h/5 (the paper's initialisation), on the eps-sphere; the signs of
        each example come from its own stream."""
        _, c, h, w = images.shape
        side = max(h // 5, 1)
        rows, cols = h // side, w // side
        signs = torch.where(streams.uniform((rows, cols, c), "l2-init", restart, device=images.device) < 0.5,
                            -1.0, 1.0)
        delta = torch.zeros_like(images)
        top0, left0 = (h - side * rows) // 2, (w - side * cols) // 2
        blob = square_blob(side, False).to(images)
        for i in range(rows):
            for j in range(cols):
                top, left = top0 + i * side, left0 + j * side
                delta[:, :, top : top + side, left : left + side] += blob * signs[:, i, j, :, None, None]
        return self._onto_sphere(images, delta)

    def _propose(self, images: torch.Tensor, adv: torch.Tensor, iteration: int, streams: ExampleStreams,
                 restart: int) -> torch.Tensor:
        """Empty window 2, put a fresh blob in window 1 with the mass of both plus the unused budget; windows,
        blob orientation and signs drawn per example from its own stream (vectorised over examples)."""
        n, c, h, w = images.shape
        side = max(int(round(math.sqrt(square_fraction(self.p_init, iteration, self.n_queries) * h * w))), 3)
        side = min(side + (side % 2 == 0), h, w)
        u = streams.uniform((5 + c,), "l2-window", restart, iteration, device=images.device)
        top1, left1 = (u[:, 0] * (h - side)).long(), (u[:, 1] * (w - side)).long()
        mask1, mask2 = window_mask(u[:, 0], u[:, 1], side, h, w), window_mask(u[:, 2], u[:, 3], side, h, w)
        signs = torch.where(u[:, 5:] < 0.5, -1.0, 1.0)[:, :, None, None]
        delta = adv - images
        both = (mask1 | mask2)[:, None].to(delta.dtype)
        in_windows = (delta * both).pow(2).sum(dim=(2, 3), keepdim=True)  # per channel
        unused = (self.eps ** 2 - delta.pow(2).sum(dim=(1, 2, 3), keepdim=True)).clamp_min(0) / c
        index = _window_index(top1, left1, side)
        old = delta.permute(0, 2, 3, 1)[index].permute(0, 3, 1, 2)
        old = old / old.pow(2).sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-10)
        blob = square_blob(side, False).to(images)
        shape = torch.where((u[:, 4] > 0.5)[:, None, None, None], blob.t(), blob)
        update = shape * signs + old
        update = update / update.pow(2).sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        delta = delta * (~mask2)[:, None]
        delta.permute(0, 2, 3, 1)[index] = (update * (unused + in_windows).sqrt()).permute(0, 2, 3, 1)
        return self._onto_sphere(images, delta)


def _window_index(top: torch.Tensor, left: torch.Tensor, side: int) -> tuple[torch.Tensor, ...]:
    """Advanced-indexing tuple selecting each example's ``side`` x ``side`` window of an N x H x W x C tensor."""
    offsets = torch.arange(side, device=top.device)
    examples = torch.arange(top.shape[0], device=top.device)[:, None, None]
    return examples, (top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]
