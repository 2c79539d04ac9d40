"""The study's defenses *as released* (ElleZWQ/MMCoA), departures from the paper included, on purpose.

Why this exists: the numbers in Zhou et al. (2024) came from the released code, not from the paper's
equations. mmrobust's ``mmcoa`` / ``tecoa`` follow the equations; these variants reproduce what the code does,
so a user can tell which of the study's findings rest on a departure (``docs/released-vs-paper.md``).

The departures reproduced here (``MMCoA.py`` and ``attacks.py`` of the released repository):

* **The attack-gradient leak.** The training loop calls ``optimizer.zero_grad()`` *before* the PGD attack, and
  ``attack_pgd`` calls ``loss.backward()`` at every step, so every step's zero-shot CE gradient w.r.t. the model
  parameters piles up in ``.grad`` and is applied by ``optimizer.step()`` together with the loss. The update is
  therefore that of ``loss + sum_t CE(f(x_t), y)`` over the attack iterates ``x_0 .. x_{T-1}`` (the inputs of
  each attack step, before its update), each term unweighted. Here that sum is written as an explicit term,
  ``leak``, computed on the recorded iterates: the same gradient, while the attack itself still takes
  gradients w.r.t. the perturbation only.
* **Instance targets.** ``ground_truth = arange(B)`` whatever the labels (``--targets instance``).
* **Coupled L2 weight decay.** ``torch.optim.Adam(..., weight_decay=0.2)`` adds ``wd * theta`` to the gradient
  (L2 regularisation through Adam's moments), unlike AdamW's decoupled decay (:attr:`coupled_weight_decay`).
* **The released PGD.** Uniform start in ``[-eps, eps]``, clipped to the pixel box, ``steps`` sign steps,
  no early stop, no best-iterate selection.

Not reproduced (no reference value here to test against): the released logit scale is never clamped; mmrobust
never clamps it during fine-tuning either, so nothing differs there.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import LossTerms, TrainBatch
from .mmcoa import MMCoA
from .tecoa import TeCoA


def released_pgd_iterates(objective: Any, batch: TrainBatch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(final adversarial images, the T attack iterates) of the released ``attack_pgd`` (L-inf, uniform start).

    The CE is the zero-shot CE against all class prompts under the current weights, as released; gradients are
    taken w.r.t. the perturbation alone (the leak is added back as an explicit loss term, see the module doc).
    """
    cfg = objective.config
    images = batch.images.detach()
    eps, alpha = float(cfg.eps), float(cfg.alpha)
    noise = torch.rand(images.shape, generator=batch.generator, device="cpu").to(images.device, images.dtype)
    delta = (noise * 2 - 1) * eps
    delta = (images + delta).clamp(0, 1) - images
    class_embeddings = objective.class_embeddings(grad=False).detach()
    iterates: list[torch.Tensor] = []
    for _ in range(int(cfg.steps)):
        current = (images + delta).detach()
        iterates.append(current)
        delta = delta.detach().requires_grad_(True)
        logits = objective.zero_shot_logits(images + delta, class_embeddings)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, batch.labels), delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        delta = (images + delta).clamp(0, 1) - images
    return (images + delta).detach(), iterates


def leak_term(objective: Any, batch: TrainBatch, iterates: list[torch.Tensor]) -> torch.Tensor:
    """``sum_t CE(f(x_t), y)``: what the released attack's ``backward()`` calls leave in the parameter grads."""
    class_embeddings = objective.class_embeddings(grad=True)
    total = torch.zeros((), device=batch.images.device)
    for x in iterates:
        total = total + F.cross_entropy(objective.zero_shot_logits(x, class_embeddings), batch.labels)
    return total


def with_leak(objective: Any, batch: TrainBatch, terms: LossTerms, iterates: list[torch.Tensor]) -> LossTerms:
    """The objective's loss plus the leak term, which is logged as ``attack_gradient_leak``."""
    if not iterates:
        return terms
    leak = leak_term(objective, batch, iterates)
    return LossTerms(terms.loss + leak, dict(terms.parts, attack_gradient_leak=float(leak.detach())))


class ReleasedMMCoA(MMCoA):
    """``MMCoA.py`` as released: MMCoA's two contrastive terms on ``arange(B)`` targets + the attack leak."""

    name = "mmcoa-released"
    coupled_weight_decay = True

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        captions = self.captions(batch.labels)
        out: dict[str, Any] = {"captions": captions, "iterates": []}
        if self.options.lambda_img > 0:
            out["images"], out["iterates"] = released_pgd_iterates(self, batch)
        if self.options.lambda_txt > 0:
            out["adv_texts"] = self.adversarial_captions(captions)
        return out

    @property
    def contrastive_targets(self) -> str:
        return "instance"  # ground_truth = arange(B) (MMCoA.py l.365), whatever --targets says

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        return with_leak(self, batch, super().loss(batch, adversarial), adversarial["iterates"])


class ReleasedTeCoA(TeCoA):
    """TeCoA as the study's code trains it: the released PGD and its attack-gradient leak, coupled-L2 Adam."""

    name = "tecoa-released"
    coupled_weight_decay = True

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        images, iterates = released_pgd_iterates(self, batch)
        return {"images": images, "iterates": iterates}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        return with_leak(self, batch, super().loss(batch, adversarial), adversarial["iterates"])
