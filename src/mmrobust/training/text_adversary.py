"""The training-time text attack: perturb the distinct captions of a batch against the current text encoder.

Uses the evaluation toolkit's text recipes (``embed-sub`` offline by default, ``bert-attack`` with a masked
LM, ``typo``) with a label-free goal (``--text-goal``; default the reference's ``embedding-kl``: push the caption's
embedding away from the clean one), using no label and no image. ``--mlm`` gives BERT-Attack its masked LM
(a local folder works offline).
"""

from __future__ import annotations

from typing import Sequence

from ..errors import ConfigError
from ..models.base import VisionLanguageModel
from .config import TrainConfig
from .objectives.base import TextAdversary


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

    def adversary(texts: Sequence[str]) -> list[str]:
        results = attacker.attack(list(texts))
        return [result.perturbed for result in results]

    return adversary
