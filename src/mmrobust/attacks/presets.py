"""Named bundles of attacks and option values (``--preset``), instead of bundles redefined per command.

A preset names attacks and option values in Python-API units (fractions for eps/alpha); flags the user
gives override them (:func:`resolve`). Adding a preset = one :class:`Preset` line in :data:`PRESETS`; the
contract tests resolve and build every preset.

Where the published protocols come from (read in the reference repositories; commit, file:line):

* ``tecoa`` (Mao et al., ICLR 2023, "Understanding Zero-Shot Adversarial Robustness for Large-Scale Models";
  cvlab-columbia/ZSRobust4FoundationModel@1243db6): ``finetuning.py:747-748`` builds
  ``AutoAttack(..., version='standard')`` and then overrides ``adversary.attacks_to_run`` with
  ``['apgd-ce', 'apgd-dlr']`` (``finetuning.py:739``, ``:887``); TGA-ZSR copies it (zhyblue424/TGA-ZSR@663fe57
  ``attacks.py:105-115``, ``TGA-ZSR.py:391``). ``version='standard'`` ran ``set_version`` in the constructor
  (fra31/auto-attack@a392200 ``autoattack.py:69-70``), which sets APGD's restarts to 1 under L-inf
  (``autoattack.py:309``); APGD runs ``n_iter=100`` (``autoattack.py:33``) and the list is a cascade on the
  still-robust images (``autoattack.py:155-191``). Two-class sets drop apgd-dlr there (``finetuning.py:888-889``);
  here apgd-dlr refuses fewer than 3 classes. eps 1/255: the paper's budget (the README trains at
  ``--train_eps 1``, README.md:66; ``finetuning.py:70``'s ``--test_eps`` default is 2). The reference evaluates inside
  ``torch.cuda.amp.autocast()`` (``finetuning.py:924``); this preset keeps fp32 (add ``--precision amp`` for it).
* ``robustvlm`` (Schlarmann et al., ICML 2024, FARE; chs20/RobustVLM@7de10ee): zero-shot evaluation
  ``CLIP_benchmark/clip_benchmark/metrics/zeroshot_classification.py:129-135``: ``AutoAttack(version='custom',
  attacks_to_run=('apgd-ce', 'apgd-t'))`` (apgd-ce alone on two classes), logits ``100 * cos`` (``:118``);
  ``CLIP_benchmark/clip_benchmark/cli.py:32``: AMP off by default "as we don't want amp for attacks";
  ``cli.py:62``: 100 iterations; ``CLIP_benchmark/bash/run_benchmark_adv.sh:6,8``: ``EPS=2``, ``SAMPLES=1000`` per
  dataset. APGD-T attacks the 9 top classes, 1 restart (``autoattack/autopgd_base.py:596``,
  ``autoattack/autoattack.py:47``). With ``version='custom'`` ``set_version`` never runs, so APGD-CE keeps the
  constructor's 5 restarts (``autoattack/autoattack.py:34``): ``per_attack`` gives APGD-CE 5 restarts and APGD-T 1
  (``--restarts N`` sets both).
* ``tga-zsr`` (Yu et al., NeurIPS 2024, "Text-Guided Attention is All You Need for Zero-Shot Robustness in
  Vision-Language Models"; zhyblue424/TGA-ZSR@663fe57): ``TGA-ZSR.py:48-50``: ``--test_eps 1``,
  ``--test_numsteps 100``, ``--test_stepsize 1`` (divided by 255 at ``:118,120``); ``:82``: ``--attack pgd`` by
  default; ``attacks.py:63-103``: PGD from a uniform start in the ball (``:67``), CE, sign steps; the whole
  validation, attack included, runs inside ``torch.cuda.amp.autocast()`` (``TGA-ZSR.py:9``, ``:418``), i.e. fp16:
  ``precision="amp"`` (fp16 autocast on CUDA, bf16 elsewhere; the dtype lands in the report's
  ``autocast_dtype``). Not reproduced: its PGD keeps the last iterate; ours keeps each image's first
  misclassified (else highest-loss) iterate, never weaker. (Its ``--attack autoattack`` path would fail as
  written: ``TGA-ZSR.py:439-440`` passes ``args`` positionally into ``attacks_to_run`` of ``attacks.py:105-106``
  and then the keyword too, a TypeError; PGD-100 is the protocol it runs.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from .registry import ATTACKS, PER_ATTACK, check_values_used, parse_attack_list


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
    #: images per dataset the protocol evaluates (None: all; --n-samples wins)
    n_samples: int | None = None
    #: values for one attack only (attack -> {field: value}), where a protocol sets two attacks' shared option
    #: apart (robustvlm: APGD-CE 5 restarts, APGD-T 1); a flag the user gives still sets it for every attack
    per_attack: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


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
    Preset("tecoa", ("apgd-ce", "apgd-dlr"), {"norm": "linf", "eps": 1 / 255, "steps": 100, "restarts": 1},
           "TeCoA's AutoAttack (Mao et al. 2023; ZSRobust4FoundationModel finetuning.py:747-748, also TGA-ZSR "
           "attacks.py:114-115): APGD-CE then APGD-DLR, 100 steps, 1 restart, L-inf 1/255 (DLR needs >= 3 classes)"),
    Preset("robustvlm", ("apgd-ce", "apgd-t"),
           {"norm": "linf", "eps": 2 / 255, "steps": 100, "restarts": 1, "target_classes": 9, "precision": "fp32"},
           "RobustVLM's zero-shot protocol (Schlarmann et al. 2024; CLIP_benchmark zeroshot_classification.py:129, "
           "run_benchmark_adv.sh): APGD-CE (5 restarts) + APGD-T (9 targets), 100 steps, L-inf 2/255, fp32 (AMP off), "
           "100*cos, 1000 images per dataset",
           logit_scale=100.0, n_samples=1000, per_attack={"apgd-ce": {"restarts": 5}}),
    Preset("tga-zsr", ("pgd",),
           {"norm": "linf", "eps": 1 / 255, "steps": 100, "alpha": 1 / 255, "restarts": 1, "precision": "amp"},
           "TGA-ZSR's test attack (Yu et al. 2024; TGA-ZSR.py:48-50, attacks.py:63): PGD-100 step 1/255 from a "
           "uniform start at L-inf 1/255, inside autocast (fp16 on CUDA, bf16 elsewhere; recorded)",
           note="tga-zsr attacks in autocast as its code does (fp16 on CUDA, bf16 elsewhere); --precision fp32 "
                "for full precision"),
)}


def get_preset(name: str) -> Preset:
    preset = PRESETS.get(str(name).strip().lower())
    if preset is None:
        several = " (several presets: benchmark --preset a,b,c)" if "," in str(name) else ""
        raise ConfigError(f"unknown --preset {name!r}; known: {', '.join(PRESETS)}{several}")
    return preset


def parse_presets(text: str) -> list[str]:
    """``"study,tecoa"`` -> ``["study", "tecoa"]`` (``benchmark --preset``: one protocol each); unknown, empty
    or repeated entries are one ConfigError."""
    names = [part.strip().lower() for part in str(text).split(",")]
    if any(not n for n in names):
        raise ConfigError(f"--preset {text!r} has an empty entry; known: {', '.join(PRESETS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"a preset is listed twice in --preset {text!r}")
    return [get_preset(n).name for n in names]


def resolve(preset: str | None, attacks: Any, given: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """(attack names, option values): the user's ``attacks`` and non-None ``given`` values override the preset's.

    Values the user set that no selected attack reads are refused; a preset's unused values are dropped. A
    preset's :attr:`Preset.per_attack` values the user did not override travel under :data:`PER_ATTACK`
    (:func:`~.registry.build_attacks` applies them to their attack only; reports record them).
    """
    chosen = get_preset(preset) if preset else None
    names = parse_attack_list(attacks) if attacks is not None else list(chosen.attacks if chosen else ())
    user = {k: v for k, v in given.items() if v is not None}
    check_values_used(names, user)
    values = dict(chosen.values) if chosen else {}
    values.update(user)
    read = {f for n in names for f in ATTACKS[n].fields}
    out = {k: v for k, v in values.items() if k in read}
    scoped = {n: {k: v for k, v in over.items() if k not in user and k in ATTACKS[n].fields}
              for n, over in (chosen.per_attack.items() if chosen and attacks is None else ()) if n in names}
    if any(scoped.values()):
        out[PER_ATTACK] = {n: dict(over) for n, over in scoped.items() if over}
    return names, out
