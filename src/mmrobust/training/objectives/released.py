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

Checked against the released code's own output: ``tests/test_released_golden_step.py`` runs one trainer step of
``mmcoa-released`` and compares it with one step of ``MMCoA.py``'s loop, which ``bench/released_golden_step.py``
runs on a seeded random OpenAI-format CLIP. The PGD start, the adversarial images and the captions are equal, and
the gradients and the Adam update agree to float tolerance.

Not reproduced (no reference value here to test against): the released logit scale is never clamped; mmrobust
never clamps it during fine-tuning either, so nothing differs there.

PMG-AFT's own script (``PMG_AFT.py`` of serendipity1122/Pre-trained-Model-Guided-Fine-Tuning-for-Zero-Shot-
Adversarial-Robustness, commit ``a53fdd8``), which the study ran as its PMG-AFT baseline, departs from its paper in
the same way and more (:class:`ReleasedPMGAFT`): ImageNet mean/std instead of CLIP's (l.119-134,
``clip_img_preprocessing``), temperature-free logits (l.659-667: ``multiGPU_CLIP`` returns plain cosines, in the
attack and the loss), both KL terms as ``KLDivLoss(reduction="sum")(log_softmax(adv), softmax(other))``
(l.215, l.736-737) = ``KL(p_other || p_adv)`` summed over the batch (so their weight grows with it; the first
commit ``4baf55d`` had the arguments the other way round), the same attack-gradient leak (``optimizer.zero_grad()``
at l.703 before ``attack_pgd``, whose steps call ``backward()``), and ``SGD(momentum=0.9, weight_decay=0)`` on
the image tower (l.204, its argparse defaults). Not reproduced: its fp16 ``autocast`` + ``GradScaler``
(l.711) and its cosine schedule with 1000 warm-up steps (the trainer's schedule is used).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from .base import LossTerms, ObjectiveContext, TrainBatch, kl_divergence
from .mmcoa import MMCoA
from .pmg_aft import PMGAFT
from .tecoa import TeCoA

#: the ImageNet statistics PMG_AFT.py normalises with (l.119-120), instead of CLIP's
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def pixel_statistics(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, std) a model normalises its pixels with (through wrappers such as the visual prompt)."""
    while not hasattr(model, "pixel_mean") and hasattr(model, "base"):
        model = model.base
    return model.pixel_mean, model.pixel_std


class ImageNetPixels:
    """Pixels that a model's own normalisation turns into ``(x - imagenet_mean) / imagenet_std``.

    The map is affine per channel, so it commutes with the model's resize (interpolation weights sum to one):
    the tower sees exactly what PMG_AFT.py's ``clip_img_preprocessing`` (upsample, then ImageNet normalise)
    feeds it, while the attack and the threat model stay in [0, 1] pixel space. The ImageNet statistics are
    placed on a device once (every attack step calls this).
    """

    def __init__(self) -> None:
        self._statistics: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def statistics(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (device, dtype)
        if key not in self._statistics:
            self._statistics[key] = tuple(torch.tensor(v, device=device, dtype=dtype).view(1, 3, 1, 1)
                                          for v in (IMAGENET_MEAN, IMAGENET_STD))
        return self._statistics[key]

    def __call__(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        mean, std = pixel_statistics(model)
        imagenet_mean, imagenet_std = self.statistics(images.device, images.dtype)
        return (images - imagenet_mean) / imagenet_std * std + mean

    def cosine_logits(self, model: Any, images: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
        """PMG_AFT.py's zero-shot logits: plain cosines (no temperature) on ImageNet-normalised pixels."""
        features = model.encode_image(self(model, images), normalize=True)
        return features @ class_embeddings.t()


class ReleasedPMGAFT(PMGAFT):
    """PMG-AFT as its released script trains it (see the module doc): ImageNet normalisation, cosine logits in
    the attack, the loss and the leak, batch-summed KL terms, SGD with momentum. ``pmg_alpha`` / ``pmg_beta``
    weight the two KL terms (1 and 1 in the script, unweighted)."""

    name = "pmg-aft-released"

    @classmethod
    def make_optimizer(cls, parameters: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
        """``torch.optim.SGD(lr, momentum=0.9, weight_decay=0)`` (PMG_AFT.py l.204, its argparse defaults);
        ``--weight-decay`` and the Adam settings do not apply to it."""
        return torch.optim.SGD(parameters, lr=cfg.lr, momentum=0.9, weight_decay=0.0)

    def __init__(self, ctx: ObjectiveContext) -> None:
        super().__init__(ctx)
        self._imagenet = ImageNetPixels()

    def zero_shot_logits(self, images: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
        return self._imagenet.cosine_logits(self.model, images, class_embeddings)

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        images, iterates = released_pgd_iterates(self, batch)
        with torch.no_grad():
            original_logits = self._imagenet.cosine_logits(self.ctx.original, images, self._original_classes)
        return {"images": images, "iterates": iterates, "original_logits": original_logits}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        classes = self.class_embeddings(grad=True)
        adv_logits = self.zero_shot_logits(adversarial["images"], classes)
        clean_logits = self.zero_shot_logits(batch.images, classes)
        n = adv_logits.shape[0]  # KLDivLoss(reduction="sum"): the batch mean times the batch size
        ce = F.cross_entropy(adv_logits, batch.labels)
        kl_original = kl_divergence(adversarial["original_logits"], adv_logits) * n  # KL(p_orig || p_adv)
        kl_clean = kl_divergence(clean_logits, adv_logits) * n  # KL(p_clean || p_adv), gradient through both
        loss = ce + self.options.pmg_alpha * kl_original + self.options.pmg_beta * kl_clean
        terms = LossTerms(loss, {"ce_adv": float(ce.detach()), "kl_original": float(kl_original.detach()),
                                 "kl_clean": float(kl_clean.detach())})
        return with_leak(self, batch, terms, adversarial["iterates"])
