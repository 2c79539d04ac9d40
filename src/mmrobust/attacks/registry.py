"""Attack names users type -> :class:`~mmrobust.attacks.protocol.EvalAttack` factories, imported lazily.

Each entry is ``"module:function"``; the function takes the parsed options dict and returns an
:class:`EvalAttack`. Lazy import keeps ``mmrobust eval`` (clean) free of attack dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .protocol import EvalAttack

#: name -> ("module:factory", modality, one-line description)
ATTACKS: dict[str, tuple[str, str, str]] = {
    "pgd": ("mmrobust.attacks.image.eval_attacks:make_pgd", "image", "projected gradient descent (Linf or L2)"),
    "fgsm": ("mmrobust.attacks.image.eval_attacks:make_fgsm", "image", "one-step PGD without random start"),
    "apgd-ce": ("mmrobust.attacks.image.eval_attacks:make_apgd_ce", "image", "AutoAttack's APGD on cross-entropy"),
    "apgd-t": ("mmrobust.attacks.image.eval_attacks:make_apgd_t", "image", "AutoAttack's targeted APGD on DLR"),
    "apgd": ("mmrobust.attacks.image.eval_attacks:make_apgd", "image", "APGD-CE then APGD-T (worst case)"),
    "square": ("mmrobust.attacks.image.eval_attacks:make_square", "image", "black-box Square attack"),
    "bert-attack": ("mmrobust.attacks.text.eval_attacks:make_bert_attack", "text",
                    "BERT-Attack word substitution with a masked LM"),
    "embed-sub": ("mmrobust.attacks.text.eval_attacks:make_embed_sub", "text",
                  "word substitution from word-embedding neighbours (offline)"),
    "typo": ("mmrobust.attacks.text.eval_attacks:make_typo", "text", "character edits (swap, drop, insert, keyboard)"),
    "sep": ("mmrobust.attacks.multimodal.eval_attacks:make_separate", "multimodal",
            "text attack on prompts + PGD against clean prompts (the study's)"),
    "co-attack": ("mmrobust.attacks.multimodal.eval_attacks:make_co_attack", "multimodal",
                  "PGD against the adversarial prompts (Co-Attack)"),
}


def parse_attack_list(text: str | None) -> list[str]:
    """``"pgd,apgd"`` -> ``["pgd", "apgd"]``, refusing unknown names with the list of known ones."""
    if text is None or not text.strip():
        return []
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack {', '.join(unknown)!s}; known: {', '.join(ATTACKS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"attack listed twice in {text!r}")
    return names


def build_attack(name: str, options: dict[str, Any]) -> EvalAttack:
    """Instantiate the attack ``name`` with the parsed CLI options."""
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
    module_name, _, function = ATTACKS[name][0].partition(":")
    return getattr(importlib.import_module(module_name), function)(options)


def list_attacks() -> list[dict[str, str]]:
    return [{"name": n, "modality": m, "description": d} for n, (_, m, d) in ATTACKS.items()]
