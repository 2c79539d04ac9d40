"""Caption attacks for retrieval: every recipe of the text-attack registry (``bert-attack``, ``embed-sub``,
``typo``) applied to each caption against its own image.

The goal is :class:`~mmrobust.attacks.text.goals.PairSimilarityGoal` (lower the caption's cosine to its
own image), SGA's image-guided text objective; the search, constraints and budget (``--text-words``,
``--text-candidates``, ``--mlm``) are the text attacks' own, reached through their public entry points
(:func:`~mmrobust.attacks.text.recipes.build_text_attack`, :meth:`TextAttacker.attack`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..text.attacker import TextAttacker
from ..text.recipe_specs import RECIPE_SPECS
from ..text.recipes import build_text_attack
from .options import CaptionOptions
from .base import (RetrievalAttack, RetrievalBatch, RetrievalContext, RetrievalOutcome, batch_owner, encode_images,
                   flatten, regroup)

#: changed captions shown in the report per attack
EXAMPLES = 10


class CaptionLog:
    """Keeps a few changed captions for the report (the counts travel per batch in ``extra``, so resume keeps them)."""

    def __init__(self) -> None:
        self.examples: list[dict[str, Any]] = []

    def add(self, results: Sequence[Any]) -> dict[str, float]:
        """Record ``results``; return this batch's counts."""
        changed = [r for r in results if r.n_changed]
        for r in changed[: max(0, EXAMPLES - len(self.examples))]:
            self.examples.append({"original": r.original, "adversarial": r.perturbed})
        return {"captions_attacked": float(len(results)), "captions_changed": float(len(changed)),
                "words_changed": float(sum(r.n_changed for r in changed)),
                "text_queries": float(sum(r.queries for r in results))}


def caption_attacker(ctx: RetrievalContext, recipe: str, options: Any, goal: str) -> TextAttacker:
    """A text attacker on the crafting model, built once per (recipe, budget, goal) and run; seeded by the run."""
    key = ("retrieval-caption-attacker", recipe, options.text_words, options.text_candidates, options.mlm, goal, ctx.seed)
    if key not in ctx.shared:
        ctx.shared[key] = build_text_attack(recipe, ctx.model, max_words=options.text_words,
                                            candidates=options.text_candidates, mlm=options.mlm, goal=goal,
                                            seed=ctx.seed)
    return ctx.shared[key]


def attack_captions(attacker: TextAttacker, captions: list[list[str]], image_features: torch.Tensor | None,
                    log: CaptionLog) -> tuple[list[list[str]], dict[str, float]]:
    """Adversarial captions (same grouping) and the batch's counts; ``image_features``: one row per *image*."""
    flat = flatten(captions)
    per_caption = None if image_features is None else image_features[batch_owner(captions).to(image_features.device)]
    results = attacker.attack(flat, image_features=per_caption)
    counts = log.add(results)
    return regroup([r.perturbed for r in results], captions), counts


class CaptionAttack(RetrievalAttack):
    """Captions attacked against their own (clean) image; images left clean."""

    modality = "text"
    goal = "pair-similarity"

    def __init__(self, recipe: str, options: CaptionOptions) -> None:
        self.name = recipe
        self.recipe = recipe
        self.options = options
        self.log = CaptionLog()

    def attack_batch(self, batch: RetrievalBatch) -> RetrievalOutcome:
        attacker = caption_attacker(self.ctx, self.recipe, self.options, self.goal)
        features = encode_images(self.ctx.model, batch.images)
        adv, counts = attack_captions(attacker, batch.captions, features, self.log)
        return RetrievalOutcome(adv_captions=adv, extra=counts)

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {**super().describe(), "text_attack": self.recipe, "text_goal": self.goal, "text_words": o.text_words,
                "text_candidates": o.text_candidates, "mlm": o.mlm if RECIPE_SPECS[self.recipe].needs_mlm else None,
                "examples": self.log.examples}


def make_caption_attack(options: CaptionOptions, recipe: str) -> RetrievalAttack:
    """Any text recipe of :data:`~..text.recipe_specs.RECIPE_SPECS` as a caption attack."""
    return CaptionAttack(recipe, options)
