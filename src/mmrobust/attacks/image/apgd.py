"""Auto-PGD (Croce & Hein, ICML 2020): PGD whose step size adapts itself, used by AutoAttack.

Written from the paper's algorithm (Alg. 1 and §3): per-example step size starting at 2*eps, momentum 0.75,
checkpoints w_j = ceil(p_j * N) with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06);
at a checkpoint the step is halved and the iterate restarted from the best point so far when either
(1) the loss rose in fewer than rho = 75 % of the steps since the last checkpoint, or (2) neither the step
nor the best loss changed since it. Why our own code instead of a library: the attacks must speak the
model interface (pixels in [0, 1], zero-shot classifier with fixed text embeddings), take gradients w.r.t.
the perturbation only, use a torch.Generator for resumable determinism, and not pull in torchattacks
(which pins an old ``requests``) or autoattack (not on PyPI).

APGD-T (``targeted=True`` without explicit targets) runs the targeted DLR loss against each of the
``n_target_classes`` highest-scoring wrong classes in turn, on the examples that are still robust.
"""

from __future__ import annotations

import math
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


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations (1-based, <= steps) at which APGD may halve its step size."""
    fractions = [0.0, 0.22]
    while fractions[-1] < 1:
        fractions.append(fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06))
    points = sorted({int(math.ceil(p * steps - 1e-9)) for p in fractions[1:] if p <= 1})
    return [w for w in points if 0 < w <= steps]


def target_rank_limit(n_target_classes: int | None, n_classes: int) -> int:
    """How many wrong classes a targeted attack tries: all other classes, or at most ``n_target_classes``."""
    return n_classes - 1 if n_target_classes is None else min(n_target_classes, n_classes - 1)


class APGD(ImageAttack):
    """``APGD(classifier, eps, steps=100, norm="Linf", loss="ce")(images, labels)``.

    ``loss``: "ce" (APGD-CE) or "dlr" (untargeted DLR); targeted mode always uses the targeted DLR loss
    unless a callable is given. ``restarts`` re-runs from new random starts on the still-robust examples.
    The result keeps, per example, the first misclassified iterate found, else the highest-loss one.
    """

    def __init__(
        self,
        classifier: Classifier,
        eps: float,
        steps: int = 100,
        norm: str = "Linf",
        loss: str | Callable = "ce",
        targeted: bool = False,
        n_target_classes: int | None = None,
        restarts: int = 1,
        rho: float = 0.75,
        momentum: float = 0.75,
        random_start: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(classifier, eps, norm, targeted, generator)
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts, "restarts")
        #: None = every other class of the task (APGD-T's targets; AutoAttack's 9 on 10-class CIFAR-10)
        self.n_target_classes = None if n_target_classes is None else check_steps(n_target_classes, "n_target_classes")
        self.rho = check_positive("rho", rho)
        self.momentum = check_positive("momentum", momentum)
        self.random_start = bool(random_start)
        self.loss_spec = "dlr" if targeted and isinstance(loss, str) else loss
        self.loss_fn = resolve_loss(self.loss_spec)
        self.checkpoints = apgd_checkpoints(self.steps)

    def describe(self) -> dict[str, Any]:
        out = {
            **super().describe(),
            "steps": self.steps,
            "restarts": self.restarts,
            "loss": loss_name(self.loss_spec),
            "rho": self.rho,
            "momentum": self.momentum,
            "initial_step": "2 * eps",
            "checkpoints": self.checkpoints,
            "random_start": self.random_start,
        }
        if self.targeted:
            out["n_target_classes"] = self.n_target_classes
        return out

    # ------------------------------------------------------------------ driver
    def _run(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        n = images.shape[0]
        adv = images.clone()
        done = torch.zeros(n, dtype=torch.bool, device=images.device)  # successfully attacked
        filled = torch.zeros(n, dtype=torch.bool, device=images.device)  # adv holds some run's result
        if not self.targeted:
            self._attempt(images, labels, None, False, adv, done, filled)
        elif targets is not None:
            self._attempt(images, labels, targets, True, adv, done, filled)
        else:
            with torch.no_grad():
                ranked = self._logits(images).argsort(dim=1, descending=True)
            for rank in range(1, target_rank_limit(self.n_target_classes, ranked.shape[1]) + 1):
                self._attempt(images, labels, ranked[:, rank], False, adv, done, filled)
        return adv

    def _attempt(self, images, labels, targets, hit_target, adv, done, filled) -> None:
        """``restarts`` runs on the examples not yet ``done``, updating ``adv``/``done``/``filled`` in place.

        A success replaces the stored result; otherwise the first run's highest-loss iterate is kept.
        """
        for _ in range(self.restarts):
            todo = (~done).nonzero().squeeze(1)
            if todo.numel() == 0:
                return
            t = None if targets is None else targets[todo]
            run_adv, success = self._one_run(images[todo], labels[todo], t, hit_target)
            take = success | ~filled[todo]
            adv[todo[take]] = run_adv[take]
            filled[todo] = True
            done[todo[success]] = True

    # ------------------------------------------------------------------ one run
    def _loss_and_grad(self, images, delta, labels, targets, hit_target):
        delta = delta.detach().requires_grad_(True)
        logits = self._logits(images + delta)
        losses = self.loss_fn(logits, labels, targets)
        (grad,) = torch.autograd.grad(losses.sum(), delta)
        with torch.no_grad():
            pred = logits.argmax(dim=1)
            success = pred == targets if hit_target else pred != labels
        return losses.detach(), grad.detach(), success

    def _step(self, images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return clip_to_box(images, project(delta, self.eps, self.norm))

    def _one_run(self, images, labels, targets, hit_target):
        n = images.shape[0]
        view = (-1,) + (1,) * (images.dim() - 1)
        delta = random_start(images, self.eps, self.norm, self.generator) if self.random_start else torch.zeros_like(images)
        loss, grad, success = self._loss_and_grad(images, delta, labels, targets, hit_target)
        found = torch.where(success.view(view), delta, torch.zeros_like(delta))
        found_mask = success.clone()
        best_delta, best_loss, best_grad = delta.clone(), loss.clone(), grad.clone()
        step = torch.full((n,), 2.0 * self.eps, device=images.device)
        prev_delta = delta.clone()
        prev_loss = loss.clone()
        increases = torch.zeros(n, device=images.device)
        last_checkpoint, step_at_checkpoint, best_at_checkpoint = 0, step.clone(), best_loss.clone()
        checkpoints = set(self.checkpoints)
        for k in range(self.steps):
            with torch.no_grad():
                z = self._step(images, delta + step.view(view) * steepest_ascent(grad, self.norm))
                if k == 0:
                    new_delta = z
                else:
                    a = self.momentum
                    new_delta = self._step(images, delta + a * (z - delta) + (1 - a) * (delta - prev_delta))
                prev_delta, delta = delta, new_delta
            loss, grad, success = self._loss_and_grad(images, delta, labels, targets, hit_target)
            with torch.no_grad():
                newly = success & ~found_mask
                found[newly] = delta[newly]
                found_mask |= newly
                increases += (loss > prev_loss).float()
                prev_loss = loss
                improved = loss > best_loss
                best_delta[improved] = delta[improved]
                best_grad[improved] = grad[improved]
                best_loss = torch.where(improved, loss, best_loss)
                if (k + 1) in checkpoints:
                    span = (k + 1) - last_checkpoint
                    oscillating = increases < self.rho * span
                    stalled = (step == step_at_checkpoint) & (best_loss == best_at_checkpoint)
                    reduce = oscillating | stalled
                    step_at_checkpoint, best_at_checkpoint = step.clone(), best_loss.clone()
                    step = torch.where(reduce, step / 2, step)
                    delta[reduce] = best_delta[reduce]
                    grad[reduce] = best_grad[reduce]
                    increases.zero_()
                    last_checkpoint = k + 1
        out = torch.where(found_mask.view(view), found, best_delta)
        return (images + out).detach(), found_mask
