"""Named bundles of attacks and option values (``--preset``), instead of bundles redefined per command.

A preset names attacks and option values in Python-API units (fractions for eps/alpha); flags the user
gives override them (:func:`resolve`). Adding a preset = one :class:`Preset` line in :data:`PRESETS`; the
contract tests resolve and build every preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from .registry import ATTACKS, check_values_used, parse_attack_list


@dataclass(frozen=True)
class Preset:
    name: str
    attacks: tuple[str, ...]
    values: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    #: one line the CLI prints when the preset is used (what it needs, what it assumes)
    note: str | None = None
    #: a fixed zero-shot temperature the protocol evaluates at (None: the model's learned one; --logit-scale wins)
    logit_scale: float | None = None


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("study", ("pgd", "bert-attack", "sep"),
           {"norm": "linf", "eps": 1 / 255, "steps": 100, "alpha": 1 / 255, "text_words": 1,
            "text_attack": "bert-attack"},
           "the study's test protocol (Zhou et al. 2024): L-inf 1/255, PGD-100 step 1/255, one-word BERT-Attack "
           "on the class prompts, sep",
           note="bert-attack loads bert-base-uncased from the hub; offline, give --mlm FOLDER (a local copy)"),
    Preset("autoattack", ("apgd-ce", "apgd-t", "square"),
           {"steps": 100, "square_queries": 5000, "restarts": 1},
           "AutoAttack's standard version (Croce & Hein 2020): APGD-CE, APGD-T (100 steps, every other class), "
           "Square (5000 queries) at the chosen eps"),
    Preset("study-released", ("pgd", "bert-attack-released", "sep", "co-attack-kl"),
           {"norm": "linf", "eps": 1 / 255, "steps": 100, "alpha": 1 / 255, "text_words": 1,
            "text_attack": "bert-attack-released"},
           "the study's released test.py (ElleZWQ/MMCoA): fixed temperature 100 (100*cos), PGD-100 step 1/255 from "
           "a uniform start, the released BERT-Attack on the class prompts; modes 1-3 (pgd, bert-attack-released, "
           "sep) and mode 4 (co-attack-kl) as it would run without its enum bug",
           note="bert-attack-released needs a masked LM: --mlm FOLDER offline (bert-base-uncased in the study)",
           logit_scale=100.0),
    Preset("quick", ("pgd", "embed-sub", "sep"), {"steps": 10},
           "a fast look at every modality: PGD-10, offline one-word embed-sub, sep"),
)}


def get_preset(name: str) -> Preset:
    preset = PRESETS.get(str(name).strip().lower())
    if preset is None:
        raise ConfigError(f"unknown --preset {name!r}; known: {', '.join(PRESETS)}")
    return preset


def resolve(preset: str | None, attacks: Any, given: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """(attack names, option values): the user's ``attacks`` and non-None ``given`` values override the preset's.

    Values the user set that no selected attack reads are refused; a preset's unused values are dropped.
    """
    chosen = get_preset(preset) if preset else None
    names = parse_attack_list(attacks) if attacks is not None else list(chosen.attacks if chosen else ())
    user = {k: v for k, v in given.items() if v is not None}
    check_values_used(names, user)
    values = dict(chosen.values) if chosen else {}
    values.update(user)
    read = {f for n in names for f in ATTACKS[n].fields}
    return names, {k: v for k, v in values.items() if k in read}
