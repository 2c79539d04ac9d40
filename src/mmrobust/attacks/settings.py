"""The user's attack, text and retrieval settings: the option groups of ``mmrobust eval`` / ``benchmark``.

Why separate from each attack's options class (:mod:`.options`): a run's settings are what the user typed,
``None`` meaning "the attack's own default" — so a value that no selected attack reads can be refused
(:func:`mmrobust.attacks.registry.check_values_used`) — while an attack's options class holds the validated,
resolved values it runs with. Each setting is declared once here, with its flag and help; the CLI generates
its flags from these fields (:func:`mmrobust.cli.options.flags`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..options.fields import BUDGET, option
from .options import TEXT_GOALS
from .text.recipe_specs import RECIPE_NAMES


def _attack_help() -> str:
    from .registry import SPECS

    parts = [f"{s.name} ({s.modality}{'' if s.white_box else ', black-box'})" for s in SPECS]
    return "Comma-separated attacks, every one on every batch: " + ", ".join(parts) + "."


def _preset_help() -> str:
    from .presets import PRESETS

    return ("Named bundle of attacks and options; flags override it (benchmark: a comma list, one column group per "
            "protocol on the same images). ") + "; ".join(
        f"{p.name}: {p.description}" for p in PRESETS.values()) + "."


@dataclass(kw_only=True)
class TextSettings:
    """Text options of every command that perturbs text (eval, benchmark, train, every study, the demo):
    one meaning each (issue 12). ``None`` = the text attack's default (:class:`.options.TextOptions`)."""

    text_attack: str | None = option(
        None, f"Text recipe for every text perturbation this command makes (the text part of sep/co-attack, "
              f"training captions, a study's text column): {', '.join(RECIPE_NAMES)}. "
              "Default: bert-attack with --mlm, else embed-sub (offline).")
    mlm: str | None = option(None, "Masked LM for bert-attack: a hub id, or a local folder (needed offline).")
    text_words: int | None = option(None, "Words changed per text (default 1).")
    text_candidates: int | None = option(None, "Substitution candidates per word (default 10).")
    text_goal: str | None = option(
        None, f"What the text attack maximises: {', '.join(TEXT_GOALS)}. Default embedding-kl (the study's, "
              "label-free). zero-shot-margin needs labelled images: evaluation only; training keeps embedding-kl.")
    protect_classnames: bool = option(
        False, "Text attacks on class prompts never change a prompt's own class words nor introduce another "
               "class's name (reports count such collisions either way).")
    min_similarity: float | None = option(
        None, "Reject substitutions whose sentence cosine (offline MiniLM) to the original prompt is below this "
              "(TextAttack's USE constraint; default off, as in the study).")
    text_chunk: int | None = option(
        None, "Prompts searched together by the batched text search (default 128; 1 = one at a time; same "
              "prompts either way, fewer model calls with more).")


@dataclass(kw_only=True)
class AttackSettings:
    """Image/text attack selection and options of an evaluation. Units: fractions of [0, 1] (``eps=4/255``)."""

    attacks: str | list[str] | None = option(None, _attack_help(), flag="--attack", short="-a", param="attack")
    preset: str | None = option(None, _preset_help())
    norm: str | None = option(None, "Threat model of image attacks: linf (default) or l2.")
    eps: float | None = option(
        None, "Image budget K: K/255 under --norm linf (e.g. 4 = 4/255, or a fraction 4/255), the raw radius "
              "under l2. Default: the study's 1/255 (linf) or 0.5 (l2), printed.", unit=BUDGET)
    steps: int | None = option(None, "Attack iterations (default 10).")
    alpha: float | None = option(
        None, "PGD step size, same units as --eps (default: min(eps, max(eps/4, 1/255)); l2: eps/4).", unit=BUDGET)
    restarts: int | None = option(None, "Random restarts of PGD/APGD/Square (per-example worst kept; default 1).")
    square_queries: int | None = option(None, "Query budget of Square (default 1000).")
    targeted: bool = option(False, "PGD/FGSM/Square: attack each other class in turn, as APGD-T does.")
    target_classes: int | None = option(
        None, "Targeted attacks: at most N wrong classes (default: all other classes).")
    text_goal_images: int | None = option(
        None, "zero-shot-margin: clean images per class the attacker may look at (default 8).")
    kl_text_weight: float | None = option(
        None, "co-attack-kl: weight of the adversarial-text KL term (default 3, the study's).")


@dataclass(kw_only=True)
class RetrievalSettings:
    """Options only the retrieval attacks read (``--task retrieval``; :mod:`.retrieval.options`)."""

    co_attack_weight: float | None = option(
        None, "Retrieval co-attack: weight of its caption term (default 3, the published).")
    co_attack_text_goal: str | None = option(
        None, "Retrieval co-attack's caption goal: embedding-kl (published: away from the clean caption, "
              "image-free) or pair-similarity (away from its own image, as the caption-only attacks).")
    sga_scales: str | tuple[float, ...] | None = option(
        None, "Retrieval SGA: image scales of its augmentation set, comma-separated (default 0.5,0.75,1.25,1.5).")


#: every setting an evaluation's attacks may read (the values :func:`.presets.resolve` checks)
def setting_names() -> tuple[str, ...]:
    groups = (AttackSettings, TextSettings, RetrievalSettings)
    return tuple(f.name for g in groups for f in fields(g) if f.name not in ("attacks", "preset"))
