"""Projected gradient descent (Madry et al. 2018), L-inf and L2, with random start and restarts; FGSM.

``PGD(classifier, eps=4/255, alpha=1/255, steps=10)(images, labels) -> adversarial images``.
The classifier is any images -> logits callable; with a ZeroShotClassifier the class-prompt embeddings
are fixed, so one step costs one image forward and one backward, never a text re-encode.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .base import (
    Classifier,
    ImageAttack,
    check_positive,
    check_steps,
    clip_to_box,
    project,
    random_start,
    steepest_ascent,
)
from .losses import loss_name, resolve_loss
from .streams import ExampleStreams


class PGD(ImageAttack):
    """PGD on the pixels, gradients w.r.t. the perturbation only (no parameter ``.grad`` is touched).

    ``restarts`` > 1 repeats the attack from fresh random starts and keeps, per example, the first result
    that succeeds (a misclassification, or the target class when targeted). ``track_best=True`` also keeps
    a successful iterate found mid-way even if a later step undoes it (what evaluation wants; training
    wants the last iterate, the default). ``loss`` is "ce", "dlr", "margin"/"cw" or a callable (see
    :func:`~mmrobust.attacks.image.losses.resolve_loss`).
    """

    def __init__(
        self,
        classifier: Classifier,
        eps: float,
        alpha: float,
        steps: int,
        norm: str = "Linf",
        random_start: bool = True,
        restarts: int = 1,
        targeted: bool = False,
        loss: str | Callable = "ce",
        generator: torch.Generator | None = None,
        track_best: bool = False,
        precision: str = "fp32",
    ) -> None:
        super().__init__(classifier, eps, norm, targeted, generator, precision)
        self.alpha = check_positive("alpha", alpha)
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts, "restarts")
        self.random_start = bool(random_start)
        self.loss_spec = loss
        self.loss_fn = resolve_loss(loss)
        self.track_best = bool(track_best)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "alpha": self.alpha,
            "steps": self.steps,
            "restarts": self.restarts,
            "random_start": self.random_start,
            "loss": loss_name(self.loss_spec),
            "track_best": self.track_best,
        }

    def _run(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
             streams: ExampleStreams) -> torch.Tensor:
        targets = self._resolve_targets(images, labels, targets)
        best = images.clone()
        done = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        for restart in range(self.restarts):
            todo = (~done).nonzero().squeeze(1) if restart else None
            if todo is not None and todo.numel() == 0:
                break
            x = images if todo is None else images[todo]
            y = labels if todo is None else labels[todo]
            t = None if targets is None else (targets if todo is None else targets[todo])
            adv, success = self._one_run(x, y, t, streams if todo is None else streams.subset(todo), restart)
            if todo is None:
                best, done = adv, success
            else:
                replace = todo[success]
                best[replace] = adv[success]
                done[replace] = True
        return best

    def _one_run(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None, streams: ExampleStreams,
        restart: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One PGD run from one start (restart number ``restart``): (adversarial images, per-example success)."""
        if self.random_start:
            delta = random_start(images, self.eps, self.norm, streams, restart)
        else:
            delta = torch.zeros_like(images)
        found = images.clone()
        found_mask = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        for _ in range(self.steps):
            delta.requires_grad_(True)
            logits = self._logits(images + delta)
            if self.track_best:
                success = self._success(logits.detach(), labels, targets) & ~found_mask
                found[success] = (images + delta).detach()[success]
                found_mask |= success
            loss = self.loss_fn(logits, labels, targets).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = delta + self.alpha * steepest_ascent(grad, self.norm)
                delta = clip_to_box(images, project(delta, self.eps, self.norm))
        adv = (images + delta).detach()
        if self.restarts == 1 and not self.track_best:
            return adv, torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)  # not needed: save a forward
        with torch.no_grad():
            success = self._success(self._logits(adv), labels, targets)
        if self.track_best:
            adv = torch.where(found_mask.view(-1, 1, 1, 1) & ~success.view(-1, 1, 1, 1), found, adv)
            success = success | found_mask
        return adv, success


class FGSM(PGD):
    """Fast gradient sign method: one PGD step of size eps from the clean image (L2: one normalised step)."""

    def __init__(
        self,
        classifier: Classifier,
        eps: float,
        norm: str = "Linf",
        targeted: bool = False,
        loss: str | Callable = "ce",
        generator: torch.Generator | None = None,
        precision: str = "fp32",
    ) -> None:
        super().__init__(classifier, eps, alpha=eps, steps=1, norm=norm, random_start=False, restarts=1,
                         targeted=targeted, loss=loss, generator=generator, precision=precision)
