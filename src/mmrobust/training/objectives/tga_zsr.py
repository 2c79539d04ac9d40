"""TGA-ZSR (Yu, Zhang & Xu, NeurIPS 2024, "Text-Guided Attention is All You Need for Zero-Shot Robustness in
Vision-Language Models"): TeCoA plus two terms on text-guided attention maps.

Followed: ``zhyblue424/TGA-ZSR`` — ``TGA-ZSR.py`` (``train``, lines ~313-347, and ``criterion``, ~467-483) and
``attention_map.py`` (``attention_map``, ``atten_methods == 'text'``, lines 4-23); defaults from its README /
``parse_option`` (``--Alpha 0.08``, ``--Beta 0.05``, ``--Distance_metric l2``).

Text-guided attention of model ``f`` on image ``x`` for class ``y`` (paper Sec. 3.2; ``attention_map``)::

    F = f_img(x)            (1+P) x D: CLS and patch tokens after ln_post and proj (the joint space)
    F = F / ||F||_2 over the token axis     (the code's ``image_features.norm(dim=1)`` on a B x (1+P) x D tensor:
                                             each channel is normalised across the tokens, CLS included)
    a = F[1:] @ t_y         P scores, t_y the unit text embedding of the true class prompt (no gradient)
    a = (a - min a) / (max a - min a)       min-max over the patches
    A(x) = bilinear(a reshaped sqrt(P) x sqrt(P), to the model's input size)  flattened

Loss (``criterion``; paper Eq. 9 local attention refinement, Eq. 12 global attention constraint, Eq. 13)::

    L = CE(s * cos(f(x_adv), t)_c, y)                         TeCoA, x_adv = TeCoA's PGD on the same CE
      + alpha * d(A_f(x_adv), A_f0(x))                        refinement: the fine-tuned model's attention on
                                                              the adversarial image vs the frozen original's
                                                              attention on the clean image ("loss_AM1")
      + beta  * d(A_f(x),     A_f0(x))                        constraint: the fine-tuned model's clean attention
                                                              kept at the frozen one's ("loss_AM2")

with ``d`` = mean over the batch of the per-image L2 norm (``l2``, default), of ``1 - cos`` (``cos``), or the
element-wise mean absolute difference (``l1``). The frozen model is the pre-trained one (``frozen_model =
copy.deepcopy(model)`` before training). Both terms are 0 when ``x_adv == x`` and ``f == f0``.

Departures: the min-max denominator is clamped at 1e-12 (the code divides by zero on a constant map); the
text embedding is the run's class embedding (every ``--templates`` prompt averaged, as for TeCoA here) rather
than the code's single "This is a photo of a {}"; the logits use the model's temperature like every
objective here; maps are interpolated to the model's input size (the code's ``args.image_size``, 224 = its
ViT-B/32 input). The PGD budget is the run's ``--eps/--alpha/--steps`` (the code trains with 1/255, step
1/255, 2 steps). On mmrobust's CNN towers the "patches" are the last feature map (see
:meth:`~mmrobust.models.towers.conv_net.ConvImageTower.forward_spatial`) and the pooled token is their mean.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ...models.base import VisionLanguageModel
from .base import LossTerms, Objective, TrainBatch


def text_guided_attention(pooled: torch.Tensor, spatial: torch.Tensor, text: torch.Tensor, size: int) -> torch.Tensor:
    """TGA-ZSR's attention map, flattened: B x (size * size) in [0, 1].

    ``pooled`` B x D and ``spatial`` B x P x D are the projected image tokens (P a square number), ``text`` the
    B x D unit text embeddings of each image's class."""
    tokens = torch.cat([pooled.unsqueeze(1), spatial], dim=1)
    tokens = tokens / tokens.norm(dim=1, keepdim=True)  # across tokens, as the reference code does
    scores = tokens[:, 1:] @ text.unsqueeze(-1)  # B x P x 1
    low = scores.amin(dim=1, keepdim=True)
    high = scores.amax(dim=1, keepdim=True)
    scores = (scores - low) / (high - low).clamp_min(1e-12)
    side = math.isqrt(scores.shape[1])
    if side * side != scores.shape[1]:
        raise ValueError(f"text-guided attention needs a square token grid, got {scores.shape[1]} tokens")
    grid = scores.reshape(scores.shape[0], side, side, 1).permute(0, 3, 1, 2)
    return F.interpolate(grid, size=(size, size), mode="bilinear").reshape(scores.shape[0], -1)


def attention_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """TGA-ZSR's ``criterion`` distances between B x M attention maps (a scalar)."""
    if metric == "l2":
        return (a - b).norm(p=2, dim=1).mean()
    if metric == "cos":
        return (1 - F.cosine_similarity(a, b, dim=1, eps=1e-8)).mean()
    if metric == "l1":
        return (a - b).abs().mean()
    raise ValueError(f"unknown attention distance {metric!r}")


class TGAZSR(Objective):
    name = "tga-zsr"
    needs_image_attack = True
    needs_original = True

    def _attention(self, model: VisionLanguageModel, images: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, spatial = model.encode_image_and_spatial(images)
        return pooled, text_guided_attention(pooled, spatial, text, model.image_size)

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        adv = self.adversarial_images(batch)
        text = self.class_embeddings(grad=False).detach()[batch.labels]
        with torch.no_grad():
            _, clean_original = self._attention(self.ctx.original, batch.images, text)
        return {"images": adv, "text": text, "clean_original": clean_original}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        opts = self.options
        text, clean_original = adversarial["text"], adversarial["clean_original"]
        adv_pooled, adv_attention = self._attention(self.model, adversarial["images"], text)
        logits = self.model.logit_scale * F.normalize(adv_pooled, dim=-1) @ self.class_embeddings(grad=True).t()
        ce = F.cross_entropy(logits, batch.labels)
        _, clean_attention = self._attention(self.model, batch.images, text)
        refinement = attention_distance(adv_attention, clean_original, opts.tga_distance)
        constraint = attention_distance(clean_attention, clean_original, opts.tga_distance)
        loss = ce + opts.tga_alpha * refinement + opts.tga_beta * constraint
        return LossTerms(loss, {"ce_adv": float(ce.detach()), "attention_refinement": float(refinement.detach()),
                                "attention_constraint": float(constraint.detach())})
