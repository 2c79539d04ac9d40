"""What Co-Attack and SGA share: a caption attack (text recipe + goal) and an image attack in one eps-ball.

Options (:mod:`.options`): the budget (eps, norm), steps and step size ``alpha`` (each attack's published
default), the caption budget (text_words, text_candidates, mlm) and ``text_attack`` — the recipe (default
``bert-attack`` when ``mlm`` is given, else the offline ``embed-sub``). Each subclass fixes its text goal.
"""

from __future__ import annotations

from typing import Any

from ..image.eval_attacks import threat_model_description
from ..text.attacker import TextAttacker
from .base import RetrievalAttack
from .text import CaptionLog, caption_attacker


class MultimodalRetrievalAttack(RetrievalAttack):
    modality = "multimodal"
    #: the goal of the caption attack, as published
    text_goal = "abstract"

    def __init__(self, options: Any) -> None:
        self.options = options
        self.image = {"eps": options.eps, "norm": options.norm, "steps": options.steps}
        self.recipe = options.text_attack
        self.log = CaptionLog()

    def step_size(self) -> float:
        return self.options.alpha

    def attacker(self) -> TextAttacker:
        return caption_attacker(self.ctx, self.recipe, self.options, self.text_goal)

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {**super().describe(), **threat_model_description(o.norm, o.eps), "steps": o.steps,
                "step_size": self.step_size(), "text_attack": self.recipe, "text_goal": self.text_goal,
                "text_words": o.text_words, "text_candidates": o.text_candidates, "examples": self.log.examples}

    def threat_model(self) -> dict[str, Any]:
        return {"norm": self.options.norm, "eps": self.options.eps}
