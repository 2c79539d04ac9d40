"""The shape of a fine-tuning objective, and the pieces several objectives share.

A training step has two phases, and the trainer runs them in this order:

1. :meth:`Objective.adversarial_inputs` crafts adversarial images and/or captions against the current model;
2. the trainer clears every parameter gradient, then :meth:`Objective.loss` computes the loss that is
   back-propagated.

Why two phases: the reference implementations call ``backward()`` inside PGD after ``zero_grad()``, so the
parameter gradients of all attack steps leak into the update. Clearing gradients *between* the phases makes
the update depend on the loss alone, whatever an attack does internally.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from ...attacks.image.pgd import PGD
from ...models.zeroshot import PromptEmbeddingCache, ZeroShotClassifier, encode_class_prompts
from ...models.base import VisionLanguageModel
from ..config import TrainConfig
from ..methods import get_method
from ..pairs import CaptionBatch, class_captions


@dataclass
class TrainBatch:
    """One (local) training batch: pixels in [0, 1], labels, and the generator for this step's attack noise."""

    images: torch.Tensor
    labels: torch.Tensor
    generator: torch.Generator | None = None


@dataclass
class LossTerms:
    """The loss to back-propagate and its named parts (floats, for the log)."""

    loss: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)


#: ``text_attacker(texts) -> adversarial texts`` (same length and order)
TextAdversary = Callable[[Sequence[str]], list[str]]


@dataclass
class ObjectiveContext:
    """What an objective may use; built once per run by the trainer."""

    model: VisionLanguageModel
    classes: Sequence[str]
    class_prompts: Sequence[Sequence[str]]
    caption_template: str
    config: TrainConfig
    trains_text: bool
    original: VisionLanguageModel | None = None
    text_adversary: TextAdversary | None = None
    #: the data-parallel job (``mmrobust.utils.distributed.DistributedContext``); None = one process
    dist: Any = None


class Objective(ABC):
    """One defense method's training loss. Subclasses set the class flags and implement two methods."""

    name: str = "abstract"
    #: needs a frozen copy of the model as it was before fine-tuning (FARE, PMG-AFT)
    needs_original: bool = False
    #: attacks the captions (text-side adversarial training)
    needs_text_attack: bool = False
    #: crafts adversarial images with PGD
    needs_image_attack: bool = False
    #: the released code's ``torch.optim.Adam(weight_decay=...)`` (L2 through the moments) instead of AdamW
    coupled_weight_decay: bool = False

    @classmethod
    def make_optimizer(cls, parameters: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
        """AdamW (decoupled decay), or the released code's ``Adam(weight_decay=...)`` when
        :attr:`coupled_weight_decay`; a released variant with another optimiser overrides this."""
        optimizer_cls = torch.optim.Adam if cls.coupled_weight_decay else torch.optim.AdamW
        return optimizer_cls(parameters, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.adam_eps,
                             weight_decay=cfg.weight_decay)

    def __init__(self, ctx: ObjectiveContext) -> None:
        if self.needs_original and ctx.original is None:
            raise RuntimeError(f"{self.name} needs the frozen original model")
        self.ctx = ctx
        self.config = ctx.config
        #: the method's own hyperparameters (:mod:`mmrobust.training.method_options`; None if it has none)
        self.options: Any = get_method(ctx.config.method).make_options(ctx.config.method_options)
        self._cache = PromptEmbeddingCache()

    # ------------------------------------------------------------------ the two phases
    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        """Phase 1: adversarial examples for this batch (no parameter gradient may survive this phase)."""
        return {}

    @abstractmethod
    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        """Phase 2: the loss on clean and adversarial inputs."""

    def describe(self) -> dict[str, Any]:
        return {"method": self.name}

    # ------------------------------------------------------------------ shared pieces
    @property
    def model(self) -> VisionLanguageModel:
        return self.ctx.model

    def class_embeddings(self, grad: bool) -> torch.Tensor:
        """C x D normalised class-prompt embeddings; differentiable only when asked and the text side trains.

        A frozen text side is encoded once (cached); a trained one is re-encoded every step, since any
        cache would be stale after the next update.
        """
        if self.ctx.trains_text:
            return encode_class_prompts(self.model, self.ctx.class_prompts, grad=grad)
        return self._cache.get(self.model, self.ctx.class_prompts)

    def zero_shot_logits(self, images: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
        features = self.model.encode_image(images, normalize=True)
        return self.model.logit_scale * features @ class_embeddings.t()

    def attack_classifier(self) -> ZeroShotClassifier:
        """The zero-shot classifier the training PGD attacks: current weights, all class prompts, fixed text."""
        return ZeroShotClassifier(self.model, self.class_embeddings(grad=False).detach(), self.ctx.classes)

    def pgd(self, classifier: Any, generator: torch.Generator | None, loss: Any = "ce") -> PGD:
        cfg = self.config
        return PGD(classifier, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps, norm="Linf",
                   random_start=cfg.attack_random_start, loss=loss, generator=generator, precision=cfg.precision)

    def adversarial_images(self, batch: TrainBatch) -> torch.Tensor:
        """PGD maximising zero-shot CE against all class prompts (TeCoA's and MMCoA's training attack)."""
        return self.pgd(self.attack_classifier(), batch.generator)(batch.images, batch.labels)

    def captions(self, labels: torch.Tensor) -> CaptionBatch:
        return class_captions(labels, self.ctx.classes, self.ctx.caption_template)

    def adversarial_captions(self, captions: CaptionBatch) -> list[str]:
        """Each distinct caption attacked once against the current text encoder (not once per image)."""
        if self.ctx.text_adversary is None:
            raise RuntimeError(f"{self.name} needs a text attack but none was built")
        return list(self.ctx.text_adversary(captions.texts))

    def encode_captions(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(list(texts), normalize=True)


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) between the softmaxes of two logit tensors, averaged over the batch."""
    log_p = F.log_softmax(p_logits, dim=1)
    log_q = F.log_softmax(q_logits, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
