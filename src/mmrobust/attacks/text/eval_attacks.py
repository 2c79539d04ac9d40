"""Text attacks in an evaluation run: adversarial class prompts, clean images.

Every text recipe (:mod:`.recipe_specs`: ``bert-attack``, ``embed-sub``, ``typo``, ...) perturbs the class prompts once (see
:mod:`.prompt_attack`) and classify every batch of clean images against them — the study's "text attack"
mode (adv 2). The report block lists every original -> adversarial prompt with the changed words marked
``[[like this]]``, the words changed and the queries spent.
"""

from __future__ import annotations

from typing import Any

import torch

from ..options import TextOptions
from ..protocol import AttackContext, BatchOutcome, EvalAttack
from .prompt_attack import ClassPromptAttack


class TextPromptEvalAttack(EvalAttack):
    """Clean images scored against adversarial class prompts."""

    modality = "text"

    def __init__(self, name: str, recipe: str, options: TextOptions) -> None:
        self.name = name
        self.prompt_attack = ClassPromptAttack(recipe, options)

    def prepare(self, ctx: AttackContext) -> None:
        super().prepare(ctx)
        self.prompt_attack.prepare(ctx)

    @torch.no_grad()
    def attack_batch(self, images: torch.Tensor, labels: torch.Tensor) -> BatchOutcome:
        classifier = self.prompt_attack.classifier
        logits = classifier(images.to(self.ctx.device))
        correct = (logits.argmax(dim=-1).cpu() == labels.cpu())
        return BatchOutcome(correct=correct)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.prompt_attack.describe()}

    def state_dict(self) -> dict[str, Any]:
        return self.prompt_attack.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prompt_attack.load_state_dict(state)


def make_recipe_attack(options: TextOptions, recipe: str) -> EvalAttack:
    """Any text recipe of :data:`~.recipe_specs.RECIPE_SPECS` as an attack on the class prompts."""
    return TextPromptEvalAttack(recipe, recipe, options)
