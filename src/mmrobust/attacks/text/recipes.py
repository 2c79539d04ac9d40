"""Recipes: the published/built-in text attacks as a few lines wiring goal, transformation, constraints
and search. Recombine the parts directly for anything else (see :class:`~.attacker.TextAttacker`).

=============  ==========================================================================================
``bert-attack`` BERT-Attack as written (Li et al. 2020): masked-LM top-k (k=10, logit >= 0.3) at each
                word's own position, stop words and ``##`` pieces filtered, greedy by [UNK]-importance, at
                most N words, embedding-KL goal. It corrects the released code (see
                ``bert-attack-released`` and :mod:`.released_bert_attack` for every difference).
``bert-attack-released`` the study's released ``BertAttack`` reproduced prompt for prompt (candidates one
                token to the left, no [SEP], decode round trip, perplexity-ranked multi-piece words)
``embed-sub``   the same search with nearest neighbours in a word-embedding table (no extra model)
``typo``        the same search with seeded one-character edits (swap, drop, insert, keyboard)
=============  ==========================================================================================
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from ...errors import ConfigError
from ...models.base import VisionLanguageModel
from .attacker import DEFAULT_CHUNK, TextAttacker
from .constraints import Constraint, MinWordLengthConstraint, default_word_constraints
from .goals import Goal, make_goal
from .mlm import MaskedLanguageModel
from .recipe_specs import RECIPE_NAMES as RECIPES, RECIPE_SPECS
from .search import GreedyWordImportanceSearch
from .transformations import CharacterEditSwap, EmbeddingNeighbourSwap, MaskedLMSwap

#: the study's masked LM (needs network or a local copy)
DEFAULT_MLM = "bert-base-uncased"


def validate_budget(max_words: int, candidates: int) -> None:
    """A budget of 0 words would silently evaluate the clean model under an attack's name: refuse it."""
    if int(max_words) < 1:
        raise ConfigError(f"text attack: words to change must be >= 1 (got {max_words}); 0 would be no attack")
    if int(candidates) < 1:
        raise ConfigError(f"text attack: candidates per word must be >= 1 (got {candidates})")


def build_text_attack(
    recipe: str,
    model: VisionLanguageModel,
    *,
    max_words: int = 1,
    candidates: int = 10,
    mlm: "str | MaskedLanguageModel | None" = None,
    goal: "str | Goal" = "embedding-kl",
    seed: int = 0,
    mlm_threshold: float = 0.3,
    chunk_size: int = DEFAULT_CHUNK,
    min_similarity: float | None = None,
    extra_constraints: Sequence[Constraint] = (),
) -> TextAttacker:
    """A ready :class:`TextAttacker` for ``recipe`` against ``model``.

    ``goal`` is a name ("embedding-kl" = the study's, "embedding-cos", "pair-similarity") or a
    :class:`~.goals.Goal` such as :class:`~.goals.ZeroShotMarginGoal`. ``mlm`` (bert-attack only) is a
    hub id, a local folder or an already loaded :class:`~.mlm.MaskedLanguageModel`; default
    ``bert-base-uncased``. ``chunk_size`` texts are searched together (1 = one at a time, same results).
    ``min_similarity`` (off by default, as in the study) rejects candidates whose MiniLM sentence cosine
    to the original is lower; ``extra_constraints`` (e.g. :class:`~.classnames.ClassNameConstraint`) are
    checked after the recipe's own.
    """
    recipe = recipe.lower().strip()
    if recipe not in RECIPES:
        raise ConfigError(f"unknown text-attack recipe {recipe!r}; known: {', '.join(RECIPES)}")
    validate_budget(max_words, candidates)
    if RECIPE_SPECS[recipe].attacker:  # a recipe with its own search and goal (bert-attack-released)
        module, _, function = RECIPE_SPECS[recipe].attacker.partition(":")
        return getattr(importlib.import_module(module), function)(
            model, max_words=max_words, candidates=candidates, mlm=mlm, goal=goal, seed=seed,
            mlm_threshold=mlm_threshold, chunk_size=chunk_size, min_similarity=min_similarity,
            extra_constraints=extra_constraints)
    spec = RECIPE_SPECS[recipe]
    transformation = _named(spec.transformation)(model, candidates=candidates, mlm=mlm, seed=seed,
                                                 mlm_threshold=mlm_threshold)
    constraints = default_word_constraints() + (list(_named(spec.constraints)()) if spec.constraints else [])
    options: dict = {"max_words": int(max_words), "candidates": int(candidates)}
    if spec.seeded:
        options["seed"] = int(seed)
    constraints += list(extra_constraints)
    if min_similarity is not None:
        from .similarity import SemanticSimilarityConstraint

        constraints.append(SemanticSimilarityConstraint(min_similarity, device=model.device))
    search = _named(spec.search)(max_words)
    return TextAttacker(model, make_goal(goal, model), transformation, constraints, search, recipe=recipe,
                        options=options, chunk_size=chunk_size)


def _named(target: str) -> Any:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


# ------------------------------------------------------------------ the parts named in recipe_specs
def masked_lm_swap(model: VisionLanguageModel, *, candidates: int, mlm: Any, mlm_threshold: float, **_: Any):
    loaded = mlm if isinstance(mlm, MaskedLanguageModel) else MaskedLanguageModel.load(mlm or DEFAULT_MLM, model.device)
    return MaskedLMSwap(loaded, k=candidates, threshold=mlm_threshold)


def embedding_swap(model: VisionLanguageModel, *, candidates: int, **_: Any):
    return EmbeddingNeighbourSwap.from_model(model, k=candidates)


def character_swap(model: VisionLanguageModel, *, candidates: int, seed: int, **_: Any):
    return CharacterEditSwap(k=candidates, seed=seed)


def words_of_three_letters() -> list[Constraint]:
    """Character edits only on words of 3+ letters (an edited 2-letter word is another word, not a typo)."""
    return [MinWordLengthConstraint(3)]


def greedy_word_importance(max_words: int) -> GreedyWordImportanceSearch:
    """BERT-Attack's search: words by importance, greedily, at most ``max_words`` changed."""
    return GreedyWordImportanceSearch(max_words=max_words)
