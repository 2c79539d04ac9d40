"""The text-recipe registry: every word-substitution recipe is one :class:`RecipeSpec` line.

A recipe names TextAttack's four parts (Morris et al. 2020): the goal is the run's (``--text-goal``); the
``transformation`` (where candidate words come from), the recipe's own ``constraints`` (on top of the shared
ones) and the ``search`` are builders named here. Adding a recipe = its builders in :mod:`.recipes` (or a
module of its own) + one line here; ``--text-attack`` choices, the ``--attack`` entries of classification and
retrieval (:mod:`..registry`, :mod:`..retrieval.registry`), the option validation and the contract tests
follow. Constraints that apply to every recipe (e.g. ``--protect-classnames``, ``--min-similarity``) belong in
:func:`.constraints.default_word_constraints` and the text options (:class:`~..options.TextOptions`).
This module imports nothing heavy, so listing recipes loads no model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecipeSpec:
    name: str
    #: ``"module:function"``: ``function(model, candidates=..., mlm=..., seed=..., mlm_threshold=...) -> transformation``
    transformation: str
    description: str
    #: needs a masked language model (``--mlm``; the hub's bert-base-uncased by default)
    needs_mlm: bool = False
    #: ``"module:function"``: ``function() -> [constraint, ...]``, the recipe's own (after the shared word ones)
    constraints: str = ""
    #: ``"module:function"``: ``function(max_words) -> search``
    search: str = "mmrobust.attacks.text.recipes:greedy_word_importance"
    #: its candidates are drawn at random: the seed is part of what it computes (recorded in its options)
    seeded: bool = False
    #: ``"module:function"`` building the whole attacker, for a recipe that is not the shared goal/search
    #: recombined (``bert-attack-released``); ``transformation`` is then unused
    attacker: str = ""


_T = "mmrobust.attacks.text.recipes"

RECIPE_SPECS: dict[str, RecipeSpec] = {s.name: s for s in (
    RecipeSpec("bert-attack", f"{_T}:masked_lm_swap",
               "BERT-Attack as written (Li et al. 2020): masked-LM top-k (k=10, logit >= 0.3) at each word's "
               "own position, greedy by [UNK]-importance",
               needs_mlm=True),
    RecipeSpec("bert-attack-released", "", "BERT-Attack as the study's released code runs it (candidates read one "
               "token to the left, no [SEP], decode round trip, perplexity-ranked pieces): reproduces its prompts",
               needs_mlm=True, attacker="mmrobust.attacks.text.released_bert_attack:build_released_attacker"),
    RecipeSpec("embed-sub", f"{_T}:embedding_swap", "nearest neighbours in the model's word-embedding table (offline)"),
    RecipeSpec("typo", f"{_T}:character_swap", "seeded one-character edits (swap, drop, insert, keyboard)",
               constraints=f"{_T}:words_of_three_letters", seeded=True),
)}

RECIPE_NAMES: tuple[str, ...] = tuple(RECIPE_SPECS)


def default_recipe(mlm: str | None) -> str:
    """The one rule for an unspecified recipe: BERT-Attack when a masked LM is given, else offline embed-sub."""
    return "bert-attack" if mlm else "embed-sub"
