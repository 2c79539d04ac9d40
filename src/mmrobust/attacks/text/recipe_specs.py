"""The text-recipe registry: every word-substitution recipe is one :class:`RecipeSpec` line.

A recipe wires a transformation (where candidate words come from) into the shared goal / constraints /
greedy search of :mod:`.recipes`. Adding a recipe = one ``transformation`` builder in :mod:`.recipes` (or a
module of its own) + one line here; ``--text-attack`` choices, the option validation and the contract tests
follow. Constraints that apply to every recipe (e.g. ``--protect-classnames``, ``--min-similarity``) belong in
:func:`.constraints.default_word_constraints` and the text options (:class:`~..options.TextOptions`).
This module imports nothing heavy, so listing recipes loads no model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecipeSpec:
    name: str
    #: ``"module:function"``: ``function(model, candidates=..., mlm=..., seed=...) -> (transformation, extra constraints)``
    transformation: str
    description: str
    #: needs a masked language model (``--mlm``; the hub's bert-base-uncased by default)
    needs_mlm: bool = False
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
    RecipeSpec("typo", f"{_T}:character_swap", "seeded one-character edits (swap, drop, insert, keyboard)"),
)}

RECIPE_NAMES: tuple[str, ...] = tuple(RECIPE_SPECS)


def default_recipe(mlm: str | None) -> str:
    """The one rule for an unspecified recipe: BERT-Attack when a masked LM is given, else offline embed-sub."""
    return "bert-attack" if mlm else "embed-sub"
