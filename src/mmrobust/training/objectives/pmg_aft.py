"""PMG-AFT (Wang et al., CVPR 2024): TeCoA plus guidance from the frozen pre-trained model.

``L = CE(z_adv, y) + alpha * KL(p_adv || p_orig(x_adv)) + beta * KL(p_adv || p_clean)``, where z are zero-shot
logits of the model being trained, ``p_orig`` the frozen original model's prediction on the *same*
adversarial image and ``p_clean`` the trained model's prediction on the clean image.

Deviations from the reference code, on purpose: KL is averaged over the batch (the reference sums, so its
weight grows with the batch size) and the logits use the model's temperature like every other objective
here (the reference uses plain cosines and ImageNet normalisation). alpha = beta = 1 as in the code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...models.zeroshot import encode_class_prompts
from .base import LossTerms, Objective, ObjectiveContext, TrainBatch, kl_divergence


class PMGAFT(Objective):
    name = "pmg-aft"
    needs_image_attack = True
    needs_original = True

    def __init__(self, ctx: ObjectiveContext) -> None:
        super().__init__(ctx)
        with torch.no_grad():
            self._original_classes = encode_class_prompts(ctx.original, ctx.class_prompts).detach()

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        adv = self.adversarial_images(batch)
        with torch.no_grad():
            original = self.ctx.original
            features = original.encode_image(adv, normalize=True)
            original_logits = original.logit_scale * features @ self._original_classes.t()
        return {"images": adv, "original_logits": original_logits}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        classes = self.class_embeddings(grad=True)
        adv_logits = self.zero_shot_logits(adversarial["images"], classes)
        clean_logits = self.zero_shot_logits(batch.images, classes)
        ce = F.cross_entropy(adv_logits, batch.labels)
        kl_original = kl_divergence(adv_logits, adversarial["original_logits"])
        kl_clean = kl_divergence(adv_logits, clean_logits)
        loss = ce + self.options.pmg_alpha * kl_original + self.options.pmg_beta * kl_clean
        return LossTerms(loss, {"ce_adv": float(ce.detach()), "kl_original": float(kl_original.detach()),
                                "kl_clean": float(kl_clean.detach())})
