"""What the multimodal evaluation attacks share: adversarial class prompts + a PGD image attack.

They differ only in what the PGD maximises: the cross-entropy of the clean classifier (``sep``, the
study's adv mode 3: image and text attacked independently), that of the adversarial-prompt classifier
(``co-attack``: the image perturbation is optimised against the perturbed text embeddings, so both
perturbations cooperate), or the study's mode-4 embedding objective (``co-attack-kl``, see
:mod:`.embedding_kl`). Either way the adversarial images are scored against the adversarial prompts.

Options: :class:`~mmrobust.attacks.options.MultimodalOptions` — the PGD budget (eps, norm, steps, alpha,
restarts), the text options, and ``text_attack`` — the text recipe (default ``bert-attack`` when ``mlm`` is
given, else the offline ``embed-sub``).
"""

from __future__ import annotations

from typing import Any

import torch

from ...models.zeroshot import check_finite_logits
from ...models.zeroshot import ZeroShotClassifier
from ..image.eval_attacks import threat_model_description
from ..image.pgd import PGD
from ..image.streams import ExampleStreams
from ..protocol import AttackContext, BatchOutcome, EvalAttack
from ..text.prompt_attack import ClassPromptAttack
from ..options import MultimodalOptions


class MultimodalEvalAttack(EvalAttack):
    """Adversarial prompts (once per run) plus per-batch PGD; subclasses pick the PGD's classifier."""

    modality = "multimodal"
    #: keep the best PGD iterate (True when PGD attacks the classifier that scores the result)
    track_best = False
    #: which prompts the PGD attacks, for the report
    pgd_against = "abstract"

    def __init__(self, options: MultimodalOptions) -> None:
        self.options = options.validated()
        self.prompt_attack = ClassPromptAttack(self.options.text_attack, self.options)

    def prepare(self, ctx: AttackContext) -> None:
        super().prepare(ctx)
        self.prompt_attack.prepare(ctx)

    def pgd_target(self) -> ZeroShotClassifier:
        """The classifier whose cross-entropy PGD maximises."""
        raise NotImplementedError

    def perturb_images(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The adversarial images of one batch (PGD on the cross-entropy of :meth:`pgd_target`)."""
        o = self.options
        pgd = PGD(self.pgd_target(), o.eps, o.alpha, o.steps, o.norm, random_start=True,
                  restarts=o.restarts, loss="ce", track_best=self.track_best, precision=o.precision)
        return pgd(images, labels, streams=self.example_streams(images.shape[0]))

    def example_streams(self, n: int) -> ExampleStreams:
        """Random streams of the ``n`` images of this call, keyed by (seed, dataset index, attack name)."""
        return ExampleStreams.for_examples(self.ctx.seed, self.batch_example_ids(n), self.name)

    def attack_batch(self, images: torch.Tensor, labels: torch.Tensor) -> BatchOutcome:
        adv = self.perturb_images(images, labels)
        with torch.no_grad():
            logits = self.prompt_attack.classifier(adv)
        check_finite_logits(logits, f"{self.name} adversarial images")
        return BatchOutcome(correct=(logits.argmax(dim=1) == labels.to(logits.device)).cpu(), adv_images=adv)

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {
            "name": self.name,
            "modality": self.modality,
            **threat_model_description(o.norm, o.eps),
            "steps": o.steps, "alpha": o.alpha, "restarts": o.restarts, "precision": o.precision,
            "pgd_against": self.pgd_against,
            **self.prompt_attack.describe(),
        }

    def threat_model(self) -> dict[str, Any]:
        return {"norm": self.options.norm, "eps": self.options.eps}

    def state_dict(self) -> dict[str, Any]:
        return self.prompt_attack.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prompt_attack.load_state_dict(state)
