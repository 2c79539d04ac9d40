"""MMCoA (Zhou et al. 2024): multimodal contrastive adversarial training, and its text-only ablation.

``L = lambda_img * sym(I(x'), T(t)) + lambda_txt * sym(I(x), T(t'))`` where ``sym`` is CLIP's symmetric
InfoNCE (image -> text plus text -> image CE), x' are PGD images (maximising zero-shot CE against all class
prompts, as in the reference), t the clean class-prompt captions and t' their text-attacked versions.
Defaults lambda = 0.5 / 0.5, PGD L-inf 1/255, step 1/255, 10 steps, one word changed.

Differences from the reference code, on purpose: class-aware targets by default (``--targets instance``
gives the reference's ``arange(B)``), each distinct caption is attacked once per batch, and no gradient
from the attacks reaches the update.
"""

from __future__ import annotations

from typing import Any

from ..pairs import symmetric_contrastive_loss
from .base import LossTerms, Objective, TrainBatch


class MMCoA(Objective):
    name = "mmcoa"
    needs_image_attack = True
    needs_text_attack = True

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        captions = self.captions(batch.labels)
        out: dict[str, Any] = {"captions": captions}
        if self.options.lambda_img > 0:
            out["images"] = self.adversarial_images(batch)
        if self.options.lambda_txt > 0:
            out["adv_texts"] = self.adversarial_captions(captions)
        return out

    @property
    def global_loss(self) -> bool:
        """True when the loss is the whole global batch's on every rank (``--gather-with-grad``)."""
        dist = self.ctx.dist
        return bool(self.options.gather_with_grad and dist is not None and dist.enabled)

    @property
    def contrastive_targets(self) -> str:
        """``--targets``: class-aware (default) or the reference's ``arange(B)`` instance targets."""
        return self.options.targets

    def _contrastive(self, images: Any, texts: list[str], captions: Any) -> Any:
        image_features = self.model.encode_image(images, normalize=True)
        text_features = self.encode_captions(texts)
        if self.global_loss:  # negatives from every rank (mmrobust.training.gather)
            from ..gather import global_contrastive_loss

            return global_contrastive_loss(image_features, text_features, captions.texts, captions.index,
                                           self.model.logit_scale, self.contrastive_targets, self.ctx.dist)
        return symmetric_contrastive_loss(
            image_features, text_features, captions.index, self.model.logit_scale, self.contrastive_targets
        )

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        captions = adversarial["captions"]
        total = 0.0
        parts: dict[str, float] = {}
        if self.options.lambda_img > 0:
            image_term = self._contrastive(adversarial["images"], captions.texts, captions)
            total = total + self.options.lambda_img * image_term
            parts["contrastive_adv_image"] = float(image_term.detach())
        if self.options.lambda_txt > 0:
            text_term = self._contrastive(batch.images, adversarial["adv_texts"], captions)
            total = total + self.options.lambda_txt * text_term
            parts["contrastive_adv_text"] = float(text_term.detach())
        return LossTerms(total, parts)  # type: ignore[arg-type]


class TextAdversarialTraining(MMCoA):
    """Text-only adversarial training: ``sym(I(x), T(t'))`` at weight 1 (MMCoA's text term alone)."""

    name = "text-at"
    needs_image_attack = False

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        captions = self.captions(batch.labels)
        return {"captions": captions, "adv_texts": self.adversarial_captions(captions)}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        captions = adversarial["captions"]
        term = self._contrastive(batch.images, adversarial["adv_texts"], captions)
        return LossTerms(term, {"contrastive_adv_text": float(term.detach())})
