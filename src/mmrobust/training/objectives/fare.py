"""FARE (Schlarmann et al., ICML 2024): unsupervised embedding-space adversarial fine-tuning.

``L = E_x || phi(x + delta*) - phi_0(x) ||_2^2`` on *unnormalised* image embeddings, summed over dimensions
and averaged over the batch; ``phi_0`` is the frozen original image encoder and ``delta*`` maximises the same
distance (PGD with an embedding loss). No labels and no text are used, so the text tower stays untouched
and zero-shot behaviour is preserved as far as the image embeddings stay close to the original ones.
"""

from __future__ import annotations

from typing import Any

import torch

from ...attacks.image.base import ImageEmbedder
from .base import LossTerms, Objective, TrainBatch


def squared_distance(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example squared L2 distance."""
    return (features - targets).pow(2).sum(dim=1)


class FARE(Objective):
    name = "fare"
    needs_image_attack = True
    needs_original = True

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        with torch.no_grad():
            reference = self.ctx.original.encode_image(batch.images, normalize=False)

        def embedding_loss(features: torch.Tensor, index: torch.Tensor, _targets: Any) -> torch.Tensor:
            return squared_distance(features, reference[index])

        index = torch.arange(batch.images.shape[0], device=batch.images.device)
        adv = self.pgd(ImageEmbedder(self.model), batch.generator, loss=embedding_loss)(batch.images, index)
        return {"images": adv, "reference": reference}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        features = self.model.encode_image(adversarial["images"], normalize=False)
        loss = squared_distance(features, adversarial["reference"]).mean()
        return LossTerms(loss, {"l2_adv": float(loss.detach())})
