"""TeCoA (Mao et al., ICLR 2023): CE of the zero-shot logits on PGD images against the class prompts.

``L = CE(s * cos(f_I(x + delta*), f_T(t_c))_c, y)``, ``delta*`` maximising the same CE in the L-inf ball.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from .base import LossTerms, Objective, TrainBatch


class TeCoA(Objective):
    name = "tecoa"
    needs_image_attack = True

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        return {"images": self.adversarial_images(batch)}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        logits = self.zero_shot_logits(adversarial["images"], self.class_embeddings(grad=True))
        loss = F.cross_entropy(logits, batch.labels)
        return LossTerms(loss, {"ce_adv": float(loss.detach())})
