"""Square Attack (Andriushchenko et al., ECCV 2020), L-inf: a score-based black-box attack.

Written from the paper's algorithm: start from vertical stripes of +-eps, then repeatedly pick a random
square window (side shrinking on the paper's schedule), set it to a random +-eps value per channel and
keep the change if the margin loss went down. It never looks at gradients, so it is the control that
tells a robust model from a gradient-masked one: if Square beats PGD, the white-box numbers are wrong.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...errors import ConfigError
from .base import Classifier, ImageAttack, check_positive, check_steps
from .losses import margin_loss
from .streams import ExampleStreams

#: (fraction of the query budget in 1/10000, divisor of p_init) — the paper's halving schedule
_P_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
               (8000, 256))


def square_fraction(p_init: float, iteration: int, n_queries: int) -> float:
    """Fraction of the pixels the square covers at ``iteration`` (rescaled to a 10 000 query budget)."""
    it = int(iteration / max(n_queries, 1) * 10000)
    for bound, divisor in _P_SCHEDULE:
        if it <= bound:
            return p_init / divisor
    return p_init / 512


class Square(ImageAttack):
    """``Square(classifier, eps, n_queries=1000)(images, labels)``: L-inf random-search attack.

    L-inf only; :class:`~.square_l2.SquareL2` is the L2 version (:func:`square_attack` picks by norm).
    One query = one forward pass per example.
    ``queries_used`` after a call holds the mean number of queries per example.
    """

    def __init__(
        self,
        classifier: Classifier,
        eps: float,
        n_queries: int = 1000,
        norm: str = "Linf",
        p_init: float = 0.05,
        targeted: bool = False,
        restarts: int = 1,
        generator: torch.Generator | None = None,
        precision: str = "fp32",
    ) -> None:
        super().__init__(classifier, eps, norm, targeted, generator, precision)
        self._check_norm()
        self.n_queries = check_steps(n_queries, "n_queries")
        self.restarts = check_steps(restarts, "restarts")
        self.p_init = check_positive("p_init", p_init)
        self.queries_used = 0.0

    def _check_norm(self) -> None:
        if self.norm != "Linf":
            raise ConfigError("Square is the linf attack; SquareL2 (square_attack(..., norm='l2')) is the L2 one")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "n_queries": self.n_queries, "p_init": self.p_init, "restarts": self.restarts,
                "loss": "margin", "proposals": "per example (own window and signs from its own random stream)"}

    @torch.no_grad()
    def _run(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
             streams: ExampleStreams) -> torch.Tensor:
        targets = self._resolve_targets(images, labels, targets)
        best = images.clone()
        done = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        queries = torch.zeros(images.shape[0], device=images.device)
        for restart in range(self.restarts):
            todo = (~done).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            t = None if targets is None else targets[todo]
            adv, success, used = self._one_run(images[todo], labels[todo], t, streams.subset(todo), restart)
            take = success if restart else torch.ones_like(success)
            best[todo[take]] = adv[take]
            done[todo[success]] = True
            queries[todo] += used
        self.queries_used = float(queries.mean()) if queries.numel() else 0.0
        return best

    def _margin(self, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        """Minimised; < 0 means success."""
        return -margin_loss(self._logits(x), labels, targets)

    def _initial(self, images: torch.Tensor, streams: ExampleStreams, restart: int) -> torch.Tensor:
        """Vertical stripes of +-eps (the paper's L-inf initialisation), per example from its own stream."""
        _, c, _, w = images.shape
        signs = torch.where(streams.uniform((c, 1, w), "stripes", restart, device=images.device) < 0.5, -1.0, 1.0)
        return (images + signs * self.eps).clamp(0, 1)

    def _propose(self, images: torch.Tensor, adv: torch.Tensor, iteration: int, streams: ExampleStreams,
                 restart: int) -> torch.Tensor:
        """One random square window per example set to +-eps per channel.

        Each example draws its own window position and signs, so its search path does not depend on which
        other examples are still being attacked (AutoAttack shares one window per batch).
        """
        _, c, h, w = images.shape
        p = square_fraction(self.p_init, iteration, self.n_queries)
        side = min(max(int(round(math.sqrt(p * h * w))), 1), h - 1 if h > 1 else 1)
        u = streams.uniform((2 + c,), "window", restart, iteration, device=images.device)
        mask = window_mask(u[:, 0], u[:, 1], side, h, w)
        window = torch.where(u[:, 2:] < 0.5, -self.eps, self.eps)[:, :, None, None]
        return (images + torch.where(mask[:, None], window, adv - images)).clamp(0, 1)

    def _one_run(self, images, labels, targets, streams: ExampleStreams, restart: int):
        """Random search: keep a proposal when it lowers the margin, until success or the query budget."""
        adv = self._initial(images, streams, restart)
        margin = self._margin(adv, labels, targets)
        used = torch.ones(images.shape[0], device=images.device)
        for i in range(self.n_queries - 1):
            active = (margin >= 0).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            candidate = self._propose(images[active], adv[active], i, streams.subset(active), restart)
            new_margin = self._margin(candidate, labels[active], None if targets is None else targets[active])
            used[active] += 1
            better = new_margin < margin[active]
            adv[active[better]] = candidate[better]
            margin[active[better]] = new_margin[better]
        return adv, margin < 0, used


def window_mask(u_top: torch.Tensor, u_left: torch.Tensor, side: int, h: int, w: int) -> torch.Tensor:
    """Per example an H x W boolean mask of a ``side`` x ``side`` window whose corner is drawn from uniforms
    ``u_top``/``u_left`` (positions 0 .. h - side - 1, as the paper's randint)."""
    top = (u_top * (h - side)).long()
    left = (u_left * (w - side)).long()
    rows = torch.arange(h, device=u_top.device)[None, :]
    cols = torch.arange(w, device=u_top.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
    return in_rows[:, :, None] & in_cols[:, None, :]


def square_attack(classifier: Classifier, eps: float, norm: str = "Linf", **kwargs: Any) -> Square:
    """The Square attack for ``norm``: :class:`Square` (L-inf) or :class:`~.square_l2.SquareL2`."""
    from .base import normalize_norm

    if normalize_norm(norm) == "L2":
        from .square_l2 import SquareL2

        return SquareL2(classifier, eps, norm="L2", **kwargs)
    return Square(classifier, eps, norm="Linf", **kwargs)
