"""Typed options of the retrieval attacks (see :mod:`mmrobust.attacks.options` for the rules and units).

Defaults that differ from classification, each for a reason: the APGD target count is AutoAttack's 9 (the
"classes" of retrieval are the split's images: all other 999 would be 999 runs); Co-Attack's step is the
published ``1.25 * eps / steps`` and SGA's the published ``eps / 4`` (0.5/255 at 2/255), not the shared PGD
rule, because both attacks are reproduced as published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..options import DEFAULT_STEPS, AttackOptions, BudgetOptions, PGDOptions
from ..text.recipe_specs import default_recipe

#: AutoAttack's number of target classes, used for the split's images
DEFAULT_TARGET_IMAGES = 9
#: Co-Attack's published step factor (step = factor * eps / steps) and caption-term weight
CO_ATTACK_STEP_FACTOR = 1.25
CO_ATTACK_WEIGHT = 3.0
SGA_SCALES = (0.5, 0.75, 1.25, 1.5)


@dataclass(frozen=True)
class CaptionOptions(AttackOptions):
    """The caption attack's budget: words changed per caption, candidates per word, masked LM (bert-attack)."""

    text_words: int = 1
    text_candidates: int = 10
    mlm: str | None = None


@dataclass(frozen=True)
class RetrievalPGDOptions(PGDOptions):
    """``targeted``: pull each image towards the captions of each of its ``target_classes`` most similar wrong
    images in turn (the classification scheme; default 9 images, not the whole split)."""

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        values = super()._resolve(values)
        if values["targeted"] and values["target_classes"] is None:
            values["target_classes"] = DEFAULT_TARGET_IMAGES
        return values


@dataclass(frozen=True)
class RetrievalAPGDOptions(BudgetOptions):
    steps: int = DEFAULT_STEPS
    restarts: int = 1
    target_classes: int | None = None

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        if values["target_classes"] is None:
            values["target_classes"] = DEFAULT_TARGET_IMAGES
        return values


@dataclass(frozen=True)
class _MultimodalOptions(BudgetOptions, CaptionOptions):
    steps: int = DEFAULT_STEPS
    alpha: float | None = None
    text_attack: str | None = None

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        if values["text_attack"] is None:
            values["text_attack"] = default_recipe(values["mlm"])
        return values


@dataclass(frozen=True)
class CoAttackOptions(_MultimodalOptions):
    co_attack_weight: float = CO_ATTACK_WEIGHT
    co_attack_text_goal: str = "embedding-kl"

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        values = super()._resolve(values)
        if values["alpha"] is None:
            values["alpha"] = CO_ATTACK_STEP_FACTOR * values["eps"] / values["steps"]
        return values


@dataclass(frozen=True)
class SGAOptions(_MultimodalOptions):
    sga_scales: tuple[float, ...] = SGA_SCALES

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        values = super()._resolve(values)
        if values["alpha"] is None:
            values["alpha"] = values["eps"] / 4
        return values
