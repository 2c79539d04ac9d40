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
from .streams import ExampleStreams


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
        precision: str = "fp32",
    ) -> None:
        super().__init__(classifier, eps, norm, targeted, generator, precision)
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
    def _run(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
             streams: ExampleStreams) -> torch.Tensor:
        n = images.shape[0]
        adv = images.clone()
        done = torch.zeros(n, dtype=torch.bool, device=images.device)  # successfully attacked
        filled = torch.zeros(n, dtype=torch.bool, device=images.device)  # adv holds some run's result
        state = (adv, done, filled)
        if not self.targeted:
            self._attempt(images, labels, None, False, state, streams, "untargeted")
        elif targets is not None:
            self._attempt(images, labels, targets, True, state, streams, "targets")
        else:
            with torch.no_grad():
                ranked = self._logits(images).argsort(dim=1, descending=True)
            for rank in range(1, target_rank_limit(self.n_target_classes, ranked.shape[1]) + 1):
                self._attempt(images, labels, ranked[:, rank], False, state, streams, f"rank{rank}")
        return adv

    def _attempt(self, images, labels, targets, hit_target, state, streams: ExampleStreams, run: str) -> None:
        """``restarts`` runs on the examples not yet ``done``, updating ``state`` = (adv, done, filled) in place.

        A success replaces the stored result; otherwise the first run's highest-loss iterate is kept. Each run
        starts from the examples' own streams under (``run``, restart), so no example depends on the others.
        """
        adv, done, filled = state
        for restart in range(self.restarts):
            todo = (~done).nonzero().squeeze(1)
            if todo.numel() == 0:
                return
            t = None if targets is None else targets[todo]
            run_adv, success = self._one_run(images[todo], labels[todo], t, hit_target, streams.subset(todo),
                                              (run, restart))
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

    def _one_run(self, images, labels, targets, hit_target, streams: ExampleStreams, label: tuple):
        """One APGD run: (adversarial images, per-example success).

        An example is retired as soon as it is misclassified (or hits its target): its result, the first such
        iterate, is then fixed. Every quantity APGD keeps (step size, loss counters, best point, momentum) is
        per example, so the examples still standing run exactly as they would with the retired ones present —
        the same result at a fraction of the cost when many break early (AutoAttack keeps iterating on them).
        """
        view = (-1,) + (1,) * (images.dim() - 1)
        if self.random_start:
            delta = random_start(images, self.eps, self.norm, streams, *label)
        else:
            delta = torch.zeros_like(images)
        loss, grad, success = self._loss_and_grad(images, delta, labels, targets, hit_target)
        out = delta.clone()  # per example: the first successful iterate, else (filled at the end) the best one
        found_mask = success.clone()
        rows = (~success).nonzero().squeeze(1)
        s = {"images": images, "labels": labels, "delta": delta, "loss": loss, "grad": grad}
        if targets is not None:
            s["targets"] = targets
        s = {key: value[rows] for key, value in s.items()}
        s.update(best_delta=s["delta"].clone(), best_loss=s["loss"].clone(), best_grad=s["grad"].clone(),
                 prev_delta=s["delta"].clone(), prev_loss=s["loss"].clone(),
                 step=torch.full((rows.numel(),), 2.0 * self.eps, device=images.device),
                 increases=torch.zeros(rows.numel(), device=images.device))
        s.update(step_at_checkpoint=s["step"].clone(), best_at_checkpoint=s["best_loss"].clone())
        last_checkpoint, checkpoints = 0, set(self.checkpoints)
        for k in range(self.steps):
            if rows.numel() == 0:
                break
            with torch.no_grad():
                delta = s["delta"]
                z = self._step(s["images"], delta + s["step"].view(view) * steepest_ascent(s["grad"], self.norm))
                if k > 0:
                    a = self.momentum
                    z = self._step(s["images"], delta + a * (z - delta) + (1 - a) * (delta - s["prev_delta"]))
                s["prev_delta"], s["delta"] = delta, z
            loss, grad, success = self._loss_and_grad(s["images"], s["delta"], s["labels"], s.get("targets"),
                                                      hit_target)
            with torch.no_grad():
                out[rows[success]] = s["delta"][success]  # before a checkpoint may move the iterate
                found_mask[rows[success]] = True
                s["grad"] = grad
                s["increases"] += (loss > s["prev_loss"]).float()
                s["prev_loss"] = loss
                improved = loss > s["best_loss"]
                s["best_delta"][improved] = s["delta"][improved]
                s["best_grad"][improved] = grad[improved]
                s["best_loss"] = torch.where(improved, loss, s["best_loss"])
                if (k + 1) in checkpoints:
                    oscillating = s["increases"] < self.rho * ((k + 1) - last_checkpoint)
                    stalled = (s["step"] == s["step_at_checkpoint"]) & (s["best_loss"] == s["best_at_checkpoint"])
                    reduce = oscillating | stalled
                    s["step_at_checkpoint"], s["best_at_checkpoint"] = s["step"].clone(), s["best_loss"].clone()
                    s["step"] = torch.where(reduce, s["step"] / 2, s["step"])
                    s["delta"][reduce] = s["best_delta"][reduce]
                    s["grad"][reduce] = s["best_grad"][reduce]
                    s["increases"].zero_()
                    last_checkpoint = k + 1
                if success.any():  # retire the examples that just broke
                    keep = ~success
                    s = {key: value[keep] for key, value in s.items()}
                    rows = rows[keep]
        out[rows] = s["best_delta"]
        return (images + out).detach(), found_mask
