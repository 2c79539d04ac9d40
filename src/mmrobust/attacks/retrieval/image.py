"""Image-only retrieval attacks: ``pgd`` and ``apgd`` (away from the image's own captions; ``pgd --targeted``
and ``apgd-t`` towards the captions of the most similar wrong images).

The pixel attacks are mmrobust's PGD/APGD unchanged, run on a :class:`~.base.CaptionSetClassifier`
whose classes are the split's images (each one its caption set). Same defaults as classification
(10 steps, the shared step-size rule, best iterate kept); captions stay clean. Each image's random
starts come from its own stream (:meth:`~.base.RetrievalAttack.streams`), as in classification.
"""

from __future__ import annotations

from typing import Any, Callable

from ..image.apgd import APGD
from ..image.base import ImageAttack
from ..image.eval_attacks import APGDEnsemble, threat_model_description
from ..image.pgd import PGD
from ..image.targeted import EachTarget
from .base import CaptionSetClassifier, RetrievalAttack, RetrievalBatch, RetrievalContext, RetrievalOutcome, caption_set_embeddings
from .options import RetrievalAPGDOptions, RetrievalPGDOptions

Builder = Callable[[CaptionSetClassifier], ImageAttack]


class CaptionSetImageAttack(RetrievalAttack):
    modality = "image"

    def __init__(self, name: str, build: Builder, options: Any, parameters: dict[str, Any]) -> None:
        self.name = name
        self.options = options
        self._build = build
        self.parameters = parameters

    def prepare(self, ctx: RetrievalContext) -> None:
        super().prepare(ctx)
        self.classifier = CaptionSetClassifier(ctx.model, caption_set_embeddings(ctx))

    def attack_batch(self, batch: RetrievalBatch) -> RetrievalOutcome:
        attack = self._build(self.classifier)
        labels = batch.image_index.to(batch.images.device)
        return RetrievalOutcome(adv_images=attack(batch.images, labels, streams=self.streams(batch)))

    def describe(self) -> dict[str, Any]:
        targeted = self.parameters.get("targeted")
        return {**super().describe(), **threat_model_description(self.options.norm, self.options.eps), **self.parameters,
                "objective": "cross-entropy over the split's caption sets (own set = true class)"
                             + ("; targeted at the most similar wrong images" if targeted else "")}

    def threat_model(self) -> dict[str, Any]:
        return {"norm": self.options.norm, "eps": self.options.eps}


def make_pgd(o: RetrievalPGDOptions) -> RetrievalAttack:
    def pgd(clf: CaptionSetClassifier) -> ImageAttack:
        return PGD(clf, o.eps, o.alpha, o.steps, o.norm, random_start=True, restarts=o.restarts,
                   targeted=o.targeted, loss="ce", track_best=True)

    def each_target(clf: CaptionSetClassifier) -> ImageAttack:
        return EachTarget(lambda: pgd(clf), clf, o.eps, o.norm, o.target_classes)

    return CaptionSetImageAttack("pgd", each_target if o.targeted else pgd, o,
                                 {"steps": o.steps, "alpha": o.alpha, "restarts": o.restarts, "targeted": o.targeted,
                                  "target_images": o.target_classes})


def make_apgd(o: RetrievalAPGDOptions) -> RetrievalAttack:
    return CaptionSetImageAttack(
        "apgd",
        lambda clf: APGDEnsemble(clf, o.eps, o.steps, o.norm, o.restarts, o.target_classes),
        o, {"steps": o.steps, "restarts": o.restarts, "target_images": o.target_classes})


def make_apgd_t(o: RetrievalAPGDOptions) -> RetrievalAttack:
    return CaptionSetImageAttack(
        "apgd-t",
        lambda clf: APGD(clf, o.eps, o.steps, o.norm, targeted=True, n_target_classes=o.target_classes,
                         restarts=o.restarts),
        o, {"steps": o.steps, "restarts": o.restarts, "target_images": o.target_classes, "targeted": True})
