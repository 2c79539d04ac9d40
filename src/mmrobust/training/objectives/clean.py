"""Clean fine-tuning: CE of the zero-shot logits (image vs all class prompts) against the label.

The reference's ``adv_train: False`` branch; the baseline that shows what fine-tuning alone does.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from .base import LossTerms, Objective, TrainBatch


class CleanFineTune(Objective):
    name = "clean"

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        logits = self.zero_shot_logits(batch.images, self.class_embeddings(grad=True))
        loss = F.cross_entropy(logits, batch.labels)
        return LossTerms(loss, {"ce_clean": float(loss.detach())})
