"""``benchmark --preset a,b,c``: one evaluation protocol per preset, every one on the same images.

Why: a model's rank can change with the protocol (TeCoA's APGD-CE + APGD-DLR, RobustVLM's APGD-CE + APGD-T,
TGA-ZSR's autocast PGD-100, the study's PGD + BERT-Attack); comparing protocols is only fair on the same images,
so every protocol of a cell runs on one sample: ``--n-samples`` when given, else the smallest sample a chosen
preset fixes (robustvlm: 1000), else every image; the seed is the run's. Flags apply to every protocol whose
attacks read them (``--steps 2`` shortens all of them) and are refused only when no protocol reads them.
"""

from __future__ import annotations

import dataclasses

from ..attacks.options import flag
from ..attacks.presets import get_preset, parse_presets
from ..attacks.registry import ATTACKS
from ..errors import ConfigError
from ..eval.run import EvalConfig


def protocol_names(config: EvalConfig) -> list[str]:
    """The presets of ``--preset a,b,c`` when there are several (one preset is an ordinary benchmark: [])."""
    names = parse_presets(config.preset) if config.preset else []
    return names if len(names) > 1 else []


def shared_sample_size(config: EvalConfig, names: list[str]) -> int | None:
    """The one sample size of every protocol (see the module docstring)."""
    if config.n_samples is not None:
        return config.n_samples
    fixed = [get_preset(name).n_samples for name in names if get_preset(name).n_samples is not None]
    return min(fixed) if fixed else None


def protocol_configs(config: EvalConfig) -> dict[str, EvalConfig]:
    """preset -> its evaluation config (validated), on the shared sample; the user's flags override each."""
    names = protocol_names(config)
    if config.attacks is not None:
        raise ConfigError("--attack replaces a preset's attacks: with several --preset protocols give no --attack")
    n = shared_sample_size(config, names)
    given = {k: v for k, v in config.attack_values().items() if v is not None and v is not False}
    used: set[str] = set()
    out = {}
    for name in names:
        read = {f for attack in get_preset(name).attacks for f in ATTACKS[attack].fields}
        unread = {k: (False if isinstance(v, bool) else None) for k, v in given.items() if k not in read}
        used |= set(given) - set(unread)
        out[name] = dataclasses.replace(config, preset=name, n_samples=n, **unread).validate()
    unused = sorted(set(given) - used)
    if unused:
        raise ConfigError(f"{', '.join(flag(k) for k in unused)} applies to none of the presets' attacks "
                          f"({', '.join(names)})")
    return out
