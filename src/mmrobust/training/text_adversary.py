"""The training-time text attack: perturb the distinct captions of a batch against the current text encoder.

Uses the evaluation toolkit's text recipes (``embed-sub`` offline by default, ``bert-attack`` with a masked
LM, ``typo``) with a label-free goal (``--text-goal``; default the reference's ``embedding-kl``: push the caption's
embedding away from the clean one), using no label and no image. ``--mlm`` gives BERT-Attack its masked LM
(a local folder works offline).

The attacker is built once per training run, so the masked LM's candidates are cached across steps and
epochs (they do not depend on the weights being trained), and ``adversary.cost`` sums what the text
attack cost over the run (text-encoder calls, masked-LM forwards, texts scored, seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..errors import ConfigError
from ..models.base import VisionLanguageModel
from .config import TrainConfig
from .objectives.base import TextAdversary

if TYPE_CHECKING:  # the text-attack package is imported only when a run needs it
    from ..attacks.text.attacker import TextAttacker
    from ..attacks.text.cost import AttackCost


def build_text_adversary(config: TrainConfig, model: VisionLanguageModel) -> TextAdversary:
    """``adversary(texts) -> perturbed texts`` for ``config.text_attack`` on ``model`` (which keeps training)."""
    try:
        from ..attacks.text.recipes import build_text_attack
    except ImportError as exc:  # the text-attack package is optional at import time
        raise ConfigError(f"--method {config.method} needs the text attacks, which are unavailable: {exc}") from None
    attacker = build_text_attack(
        config.text_attack, model, max_words=config.text_words, candidates=config.text_candidates,
        mlm=config.mlm, goal=config.text_goal, seed=config.seed,
    )
    return RecipeTextAdversary(attacker)


class RecipeTextAdversary:
    """``adversary(texts) -> perturbed texts`` around one :class:`TextAttacker` kept for the whole run."""

    def __init__(self, attacker: "TextAttacker") -> None:
        self.attacker = attacker

    def __call__(self, texts: Sequence[str]) -> list[str]:
        return [result.perturbed for result in self.attacker.attack(list(texts))]

    @property
    def cost(self) -> "AttackCost":
        return self.attacker.total_cost
