"""The attack registry: every attack is one :class:`~.spec.AttackSpec` line below.

Adding an attack = one module (an :class:`~.protocol.EvalAttack` builder taking the attack's options) + one
line here (a text recipe is one line in :mod:`.text.recipe_specs`: its attack entries are generated); its options are a dataclass in :mod:`.options` (reuse one, or subclass with the new fields). The
CLI's ``--attack`` help, ``mmrobust attacks``, the studies' choices, the sanity checks (``white_box``) and the
contract tests pick the new line up by themselves. Bundles of attacks are presets (:mod:`.presets`).

Extension points being built on this registry (one module + one line each): retrieval attacks for ``--task retrieval`` (a new modality value), and run-wide
options such as ``--ensemble``/``--precision`` that belong to the evaluation run, not to an attack.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError
from .options import (APGDOptions, APGDTOptions, FGSMOptions, Mode4Options, MultimodalOptions, PGDOptions,
                      SquareOptions, TextOptions, flag)
from .protocol import EvalAttack
from .spec import AttackSpec
from .text.recipe_specs import RECIPE_SPECS

_IMAGE = "mmrobust.attacks.image.eval_attacks"
_TEXT = "mmrobust.attacks.text.eval_attacks"
_MULTI = "mmrobust.attacks.multimodal.eval_attacks"

SPECS: tuple[AttackSpec, ...] = (
    AttackSpec("pgd", "image", True, PGDOptions, f"{_IMAGE}:make_pgd", "projected gradient descent (Linf or L2)"),
    AttackSpec("fgsm", "image", True, FGSMOptions, f"{_IMAGE}:make_fgsm", "one-step PGD without random start"),
    AttackSpec("apgd-ce", "image", True, APGDOptions, f"{_IMAGE}:make_apgd_ce", "AutoAttack's APGD on cross-entropy"),
    AttackSpec("apgd-dlr", "image", True, APGDOptions, f"{_IMAGE}:make_apgd_dlr",
               "AutoAttack's untargeted APGD on the DLR loss (needs >= 3 classes)"),
    AttackSpec("apgd-t", "image", True, APGDTOptions, f"{_IMAGE}:make_apgd_t",
               "AutoAttack's targeted APGD on DLR (every other class in turn)"),
    AttackSpec("apgd", "image", True, APGDTOptions, f"{_IMAGE}:make_apgd", "APGD-CE then APGD-T (worst case)"),
    AttackSpec("square", "image", False, SquareOptions, f"{_IMAGE}:make_square", "black-box Square attack (Linf, or L2 with --norm l2)"),
    *(AttackSpec(r.name, "text", False, TextOptions, f"{_TEXT}:make_recipe_attack", r.description, recipe=r.name)
      for r in RECIPE_SPECS.values()),  # every text recipe is an attack on the class prompts
    AttackSpec("sep", "multimodal", True, MultimodalOptions, f"{_MULTI}:make_separate",
               "adversarial prompts + PGD on the CE of the clean prompts; images scored on the adversarial prompts "
               "(the study's mode 3)"),
    AttackSpec("co-attack", "multimodal", True, MultimodalOptions, f"{_MULTI}:make_co_attack",
               "adversarial prompts + PGD on the CE of the adversarial prompts, best iterate "
               "(classification form of Co-Attack)"),
    AttackSpec("co-attack-kl", "multimodal", True, Mode4Options, f"{_MULTI}:make_co_attack_kl",
               "adversarial prompts + PGD maximising KL(clean||adv image embedding) + 3 KL(adv class "
               "prompt||adv image), label-free, last iterate (the study's mode 4)"),
)

#: name -> spec, in the order above
ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in SPECS}
#: key of a run's values holding one attack's own values ({attack: {field: value}}; a preset's ``per_attack``)
PER_ATTACK = "per_attack"


def get_attack_spec(name: str) -> AttackSpec:
    spec = ATTACKS.get(str(name).strip().lower())
    if spec is None:
        raise ConfigError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
    return spec


def names_of(modality: str) -> list[str]:
    return [s.name for s in SPECS if s.modality == modality]


def parse_attack_list(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"pgd,apgd"`` -> ``["pgd", "apgd"]``; unknown, repeated or empty entries are one ConfigError."""
    return parse_names(text, ATTACKS, "attack")


def parse_names(text: str | list[str] | tuple[str, ...] | None, table: Mapping[str, AttackSpec], kind: str) -> list[str]:
    """Names from ``table`` (this registry, or the retrieval one) as typed after ``--attack``."""
    if text is None:
        return []
    parts = [str(p).strip().lower() for p in (text.split(",") if isinstance(text, str) else text)]
    if not parts or any(not p for p in parts):
        raise ConfigError(f"--attack {','.join(parts)!r} has an empty entry; known: {', '.join(table)}")
    unknown = [n for n in parts if n not in table]
    if unknown:
        raise ConfigError(f"unknown {kind} {', '.join(unknown)}; known: {', '.join(table)}")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"attack listed twice in {','.join(parts)!r}")
    return parts


def check_values_used(names: list[str], given: Mapping[str, Any], table: Mapping[str, AttackSpec] = ATTACKS) -> None:
    """A value the user set that none of the selected attacks reads is a mistake, not a silent no-op."""
    read = {f for n in names for f in table[n].fields}
    unused = [k for k, v in given.items() if v is not None and v is not False and k not in read]
    if unused:
        selected = ", ".join(names) if names else "none (give --attack or --preset)"
        raise ConfigError(f"{', '.join(flag(k) for k in unused)} applies to none of the selected attacks ({selected})")


def values_read_by(names: list[str], values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the values some selected attack reads: for programs that pass one fixed set of options (studies)."""
    read = {f for n in names for f in ATTACKS[n].fields}
    return {k: v for k, v in values.items() if k in read}


def build_attacks(names: list[str], values: Mapping[str, Any]) -> list[EvalAttack]:
    """The named attacks, each with its own validated options taken from ``values`` (and its
    ``values[PER_ATTACK][name]``, which win for that attack only)."""
    scoped = values.get(PER_ATTACK) or {}
    return [ATTACKS[name].make({**values, **scoped.get(name, {})}) for name in names]


def list_attacks() -> list[dict[str, Any]]:
    return [{"name": s.name, "modality": s.modality, "white_box": s.white_box, "description": s.description,
             "options": list(s.fields)} for s in SPECS]


def build_attack(name: str, values: Mapping[str, Any]) -> EvalAttack:
    """One attack by name, its options taken from ``values`` (field names of its options class)."""
    return get_attack_spec(name).make(values)
