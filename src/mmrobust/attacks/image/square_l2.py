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

from .base import random_uniform
from .square import Square, square_fraction


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

    def _sign(self, n: int, c: int, like: torch.Tensor) -> torch.Tensor:
        return self._random_sign((n, c, 1, 1), like)

    def _onto_sphere(self, images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (images + delta / norms * self.eps).clamp(0, 1)

    def _initial(self, images: torch.Tensor) -> torch.Tensor:
        """A grid of random-sign blobs of side h/5 (the paper's initialisation), on the eps-sphere."""
        n, c, h, w = images.shape
        side = max(h // 5, 1)
        delta = torch.zeros_like(images)
        top0, left0 = (h - side * (h // side)) // 2, (w - side * (w // side)) // 2
        blob = square_blob(side, False).to(images)
        for i in range(h // side):
            for j in range(w // side):
                top, left = top0 + i * side, left0 + j * side
                delta[:, :, top : top + side, left : left + side] += blob * self._sign(n, c, images)
        return self._onto_sphere(images, delta)

    def _propose(self, images: torch.Tensor, adv: torch.Tensor, iteration: int) -> torch.Tensor:
        """Empty window 2, put a fresh blob in window 1 with the mass of both plus the unused budget."""
        n, c, h, w = images.shape
        side = max(int(round(math.sqrt(square_fraction(self.p_init, iteration, self.n_queries) * h * w))), 3)
        side = min(side + (side % 2 == 0), h, w)
        (t1, l1), (t2, l2) = [(self._randint(h - side, images), self._randint(w - side, images)) for _ in range(2)]
        delta = adv - images
        win1 = (slice(None), slice(None), slice(t1, t1 + side), slice(l1, l1 + side))
        win2 = (slice(None), slice(None), slice(t2, t2 + side), slice(l2, l2 + side))
        both = torch.zeros_like(delta)
        both[win1], both[win2] = 1.0, 1.0
        in_windows = (delta * both).pow(2).sum(dim=(2, 3), keepdim=True)  # per channel
        unused = (self.eps ** 2 - delta.pow(2).sum(dim=(1, 2, 3), keepdim=True)).clamp_min(0) / c
        old = delta[win1] / delta[win1].pow(2).sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-10)
        transpose = bool(random_uniform((1,), self.generator, images).item() > 0.5)
        update = square_blob(side, transpose).to(images) * self._sign(n, c, images) + old
        update = update / update.pow(2).sum(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        delta[win2] = 0.0
        delta[win1] = update * (unused + in_windows).sqrt()
        return self._onto_sphere(images, delta)
