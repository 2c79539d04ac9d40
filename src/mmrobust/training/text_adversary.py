"""The training-time text attack: perturb the distinct captions of a batch against the current text encoder.

Uses the evaluation toolkit's text recipes (``embed-sub`` offline by default, ``bert-attack`` with a masked
LM, ``typo``) with a label-free goal (``--text-goal``; default the reference's ``embedding-kl``: push the caption's
embedding away from the clean one), using no label and no image. ``--mlm`` gives BERT-Attack its masked LM
(a local folder works offline).

The captions are class prompts (:mod:`.pairs`), so the validity options mean what they mean in evaluation:
``--protect-classnames`` keeps each caption's own class words and forbids introducing another class's name
(the training dataset's classes), ``--min-similarity`` is the MiniLM sentence-cosine constraint and
``--text-chunk`` the batched search's chunk (cost only). Either way every attacked caption is checked for
the other class names it now contains (:class:`~mmrobust.attacks.text.classnames.CollisionCheck`), and the
trainer sums :meth:`RecipeTextAdversary.take_counts` per epoch: an unprotected attack that merges classes
(Zhou et al. 2024's BERT-Attack may turn "a photo of a seven" into "a photo of a four") shows in the report.

The attacker is built once per training run, so the masked LM's candidates are cached across steps and
epochs (they do not depend on the weights being trained), and ``adversary.cost`` sums what the text
attack cost over the run (text-encoder calls, masked-LM forwards, texts scored, seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import ConfigError
from ..models.base import VisionLanguageModel
from .config import TrainConfig
from .objectives.base import TextAdversary

if TYPE_CHECKING:  # the text-attack package is imported only when a run needs it
    from ..attacks.text.attacker import TextAttacker
    from ..attacks.text.classnames import CollisionCheck
    from ..attacks.text.cost import AttackCost

#: per-step counts of the caption attack, summed over an epoch by the trainer (never averaged per image)
TEXT_COUNTS = ("captions_attacked", "captions_changed", "class_name_collisions")


def build_text_adversary(
    config: TrainConfig, model: VisionLanguageModel, classes: Sequence[str], class_prompts: Sequence[Sequence[str]],
) -> TextAdversary:
    """``adversary(texts) -> perturbed texts`` for ``config.text_attack`` on ``model`` (which keeps training).

    ``classes`` are the training dataset's class names and ``class_prompts[c]`` class c's prompts (the
    captions are among them): the class-name guard and the collision count need each caption's own class.
    """
    try:
        from ..attacks.text.classnames import ClassNameConstraint, CollisionCheck, prompt_classes
        from ..attacks.text.recipes import build_text_attack
    except ImportError as exc:  # the text-attack package is optional at import time
        raise ConfigError(f"--method {config.method} needs the text attacks, which are unavailable: {exc}") from None
    own_class = prompt_classes(class_prompts)
    guard = [ClassNameConstraint(classes, own_class)] if config.protect_classnames else []
    attacker = build_text_attack(
        config.text_attack, model, max_words=config.text_words, candidates=config.text_candidates,
        mlm=config.mlm, goal=config.text_goal, seed=config.seed, chunk_size=config.text_chunk,
        min_similarity=config.min_similarity, extra_constraints=guard,
    )
    return RecipeTextAdversary(attacker, CollisionCheck(classes), own_class)


class RecipeTextAdversary:
    """``adversary(texts) -> perturbed texts`` around one :class:`TextAttacker` kept for the whole run."""

    def __init__(self, attacker: "TextAttacker", check: "CollisionCheck", own_class: Mapping[str, int]) -> None:
        self.attacker = attacker
        self.check = check
        self.own_class = dict(own_class)
        self._counts = dict.fromkeys(TEXT_COUNTS, 0)

    def __call__(self, texts: Sequence[str]) -> list[str]:
        results = self.attacker.attack(list(texts))
        for r in results:
            self._counts["captions_attacked"] += 1
            self._counts["captions_changed"] += int(r.n_changed > 0)
            self._counts["class_name_collisions"] += int(bool(self.check(r.original, r.perturbed,
                                                                         self.own_class.get(r.original))))
        return [r.perturbed for r in results]

    def take_counts(self) -> dict[str, float]:
        """The counts since the last call (the trainer adds them to the step's numbers), then zero."""
        counts = {k: float(v) for k, v in self._counts.items()}
        self._counts = dict.fromkeys(TEXT_COUNTS, 0)
        return counts

    @property
    def cost(self) -> "AttackCost":
        return self.attacker.total_cost

    def describe(self) -> dict[str, Any]:
        return self.attacker.describe()
