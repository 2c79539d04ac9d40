"""The retrieval attack registry (``mmrobust eval --task retrieval --attack ...``): one
:class:`~mmrobust.attacks.spec.AttackSpec` line per attack, like the classification registry.

Text entries are generated from the text-recipe registry
(:data:`~mmrobust.attacks.text.recipe_specs.RECIPE_NAMES`), so every recipe is a retrieval attack too.
Adding an attack = one module (a builder taking its typed options, returning a
:class:`~.base.RetrievalAttack`) + one line here.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..spec import AttackSpec
from ..text.recipe_specs import RECIPE_NAMES
from .base import RetrievalAttack
from .options import CaptionOptions, CoAttackOptions, RetrievalAPGDOptions, RetrievalPGDOptions, SGAOptions

_R = "mmrobust.attacks.retrieval"

SPECS: tuple[AttackSpec, ...] = (
    AttackSpec("pgd", "image", True, RetrievalPGDOptions, f"{_R}.image:make_pgd",
               "PGD pushing each image away from its own captions (--targeted: towards the nearest wrong image's)"),
    AttackSpec("apgd", "image", True, RetrievalAPGDOptions, f"{_R}.image:make_apgd",
               "APGD-CE then APGD-T over the split's caption sets"),
    AttackSpec("apgd-t", "image", True, RetrievalAPGDOptions, f"{_R}.image:make_apgd_t",
               "targeted APGD (DLR) towards the most similar wrong caption sets"),
    *(AttackSpec(recipe, "text", False, CaptionOptions, f"{_R}.text:make_caption_attack",
                 f"{recipe} on each caption against its own image", recipe=recipe) for recipe in RECIPE_NAMES),
    AttackSpec("co-attack", "multimodal", True, CoAttackOptions, f"{_R}.co_attack:make_co_attack",
               "Co-Attack: caption first, then image away from adversarial caption and clean image"),
    AttackSpec("sga", "multimodal", True, SGAOptions, f"{_R}.sga:make_sga",
               "SGA: set-level, multi-scale, text->image->text guidance (transfer attack)"),
)

#: name -> spec
RETRIEVAL_ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in SPECS}


def parse_retrieval_attacks(text: str | list[str] | None) -> list[str]:
    """``"pgd,sga"`` -> ``["pgd", "sga"]``; unknown, empty or repeated entries are one ConfigError."""
    from ..registry import parse_names

    return parse_names(text, RETRIEVAL_ATTACKS, "retrieval attack")


def build_retrieval_attacks(names: list[str], values: Mapping[str, Any]) -> list[RetrievalAttack]:
    """The named attacks with validated options; a value none of them reads is an error, not a no-op."""
    from ..registry import check_values_used

    check_values_used(names, values, RETRIEVAL_ATTACKS)
    return [RETRIEVAL_ATTACKS[name].make(values) for name in names]


def list_retrieval_attacks() -> list[dict[str, Any]]:
    return [{"name": s.name, "modality": s.modality, "white_box": s.white_box, "description": s.description,
             "options": list(s.fields)} for s in SPECS]
