"""CLI options declared once and shared by the commands that take them (``@with_options(GROUP, ...)``).

Why: the same option used to be re-declared per command (five studies x ~20 options) and drifted —
``--text-attack`` meant three things. An option here has one flag, one type, one help text and one meaning
wherever it appears; its choices come from the registries.

Units: the CLI is the only place that reads K/255. ``--eps K`` / ``--alpha K`` mean K/255 under L-inf (the
literature's units) and the raw radius under L2; :func:`pixels` turns them into the fractions of [0, 1]
every Python API takes.

Adding an option shared by several commands (e.g. ``--precision``, ``--compile``, ``--ensemble``): one :class:`Shared` line in the right group (or a new
group), then read it from ``**shared`` in the commands that list the group.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import typer

from ..attacks.options import TEXT_GOALS
from ..attacks.presets import PRESETS
from ..attacks.registry import SPECS
from ..attacks.text.recipe_specs import RECIPE_NAMES
from ..errors import ConfigError


@dataclass(frozen=True)
class Shared:
    """One declared option: parameter name, Python type, and its ``typer.Option``."""

    name: str
    annotation: Any
    info: Any


def with_options(*groups: Sequence[Shared], exclude: Sequence[str] = ()) -> Callable:
    """Add the groups' options to a command; the command receives them in ``**shared``."""

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        extra = [o for group in groups for o in group if o.name not in exclude]
        params = own + [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.info,
                                          annotation=o.annotation) for o in extra]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            return func(**kwargs)

        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**getattr(func, "__annotations__", {}), **{o.name: o.annotation for o in extra}}
        return wrapper

    return decorate


def pixels(value: float | None, norm: str | None, option: str = "--eps") -> float | None:
    """``--eps K`` -> K/255 (L-inf) or K (L2); None stays None (the attack's default)."""
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{option} must be a positive number, got {value}")
    linf = (norm or "linf").strip().lower() in ("linf", "inf", "l_inf")
    if linf and value > 255:
        raise ConfigError(f"{option} {value:g} is absurd: under L-inf K means K/255 and 255 is the whole range")
    return value / 255.0 if linf else float(value)


def _attack_help() -> str:
    parts = [f"{s.name} ({s.modality}{'' if s.white_box else ', black-box'})" for s in SPECS]
    return "Comma-separated attacks, every one on every batch: " + ", ".join(parts) + "."


def _preset_help() -> str:
    return "Named bundle of attacks and options; flags override it. " + "; ".join(
        f"{p.name}: {p.description}" for p in PRESETS.values()) + "."


#: data and run options of zero-shot evaluations: eval (one dataset) and benchmark (one cell per dataset)
RUN = (
    Shared("data_root", Optional[str], typer.Option(None, "--data-root", help="Folder holding the dataset files.")),
    Shared("split", Optional[str], typer.Option(
        None, "--split", help="Dataset split (default: the dataset's test split).")),
    Shared("n_samples", Optional[int], typer.Option(
        None, "--n-samples", "-n", help="Evaluate a fixed random subset of N images (per dataset).")),
    Shared("n_classes", Optional[int], typer.Option(
        None, "--n-classes", help="K-way task on a fixed (seeded) subset of K classes and their images.")),
    Shared("batch_size", int, typer.Option(64, "--batch-size", "-b", help="Images per batch.")),
    Shared("device", Optional[str], typer.Option(
        None, "--device", help="cpu, cuda, cuda:N or mps (default: best available).")),
    Shared("seed", int, typer.Option(0, "--seed", help="Seed for sub-sampling and any randomness; recorded.")),
    Shared("templates", Optional[str], typer.Option(
        None, "--templates", help="Prompt templates: default (dataset's), study, clip, clip-cifar, digits, or a file "
                                  "(one per line, {} or {c} for the class name).")),
    Shared("classnames", Optional[str], typer.Option(
        None, "--classnames", help="File of class names replacing the dataset's: one per line, line i = label i; "
                                   "the count must match the dataset's classes.")),
    Shared("logit_scale", Optional[float], typer.Option(
        None, "--logit-scale", help="Fix the temperature (the study evaluates at 100); default: the model's.")),
    Shared("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bars.")),
    Shared("resume", bool, typer.Option(
        True, "--resume/--no-resume", help="Continue an interrupted attack run from <output>.state.json.")),
    Shared("no_sanity", bool, typer.Option(
        False, "--no-sanity", help="Skip the robustness sanity checks (report says so).")),
    Shared("ensemble", str, typer.Option(
        "cascade", "--ensemble",
        help="cascade: each attack only on images no earlier attack broke (as AutoAttack; per-attack numbers "
             "cumulative); each: every attack on every clean-correct image (standalone numbers). Same worst case.")),
    Shared("compile", bool, typer.Option(False, "--compile", help="torch.compile the model's towers (off by default).")),
    Shared("save_examples", int, typer.Option(0, "--save-examples", min=0, help="Keep the first K attacked images per attack (PNGs, top-3 before/after, prompt diffs) beside the report, for `mmrobust report`.")),
)

#: text options: eval, train, every study and the demo (issue 12: one meaning each)
TEXT = (
    Shared("text_attack", Optional[str], typer.Option(
        None, "--text-attack",
        help=f"Text recipe for every text perturbation this command makes (the text part of sep/co-attack, "
             f"training captions, a study's text column): {', '.join(RECIPE_NAMES)}. "
             "Default: bert-attack with --mlm, else embed-sub (offline).")),
    Shared("mlm", Optional[str], typer.Option(
        None, "--mlm", help="Masked LM for bert-attack: a hub id, or a local folder (needed offline).")),
    Shared("text_words", Optional[int], typer.Option(None, "--text-words", help="Words changed per text (default 1).")),
    Shared("text_candidates", Optional[int], typer.Option(
        None, "--text-candidates", help="Substitution candidates per word (default 10).")),
    Shared("text_goal", Optional[str], typer.Option(
        None, "--text-goal",
        help=f"What the text attack maximises: {', '.join(TEXT_GOALS)}. Default embedding-kl (the study's, "
             "label-free). zero-shot-margin needs labelled images: evaluation only; training keeps embedding-kl.")),
)

#: validity and cost options of the text attacks on class prompts and training captions (eval, train, studies, demo)
PROMPT = (
    Shared("protect_classnames", bool, typer.Option(
        False, "--protect-classnames",
        help="Text attacks on class prompts never change a prompt's own class words nor introduce another class's "
             "name (reports count such collisions either way).")),
    Shared("min_similarity", Optional[float], typer.Option(
        None, "--min-similarity",
        help="Reject substitutions whose sentence cosine (offline MiniLM) to the original prompt is below this "
             "(TextAttack's USE constraint; default off, as in the study).")),
    Shared("text_chunk", Optional[int], typer.Option(
        None, "--text-chunk",
        help="Prompts searched together by the batched text search (default 128; 1 = one at a time; "
             "same prompts either way, fewer model calls with more).")),
)

#: image/text attack options of an evaluation run
ATTACK = (
    Shared("attack", Optional[str], typer.Option(None, "--attack", "-a", help=_attack_help())),
    Shared("preset", Optional[str], typer.Option(None, "--preset", help=_preset_help())),
    Shared("eps", Optional[float], typer.Option(
        None, "--eps", help="Image budget K: K/255 under --norm linf (e.g. 4 = 4/255), the raw radius under l2. "
                            "Default: the study's 1/255 (linf) or 0.5 (l2), printed.")),
    Shared("norm", Optional[str], typer.Option(None, "--norm", help="Threat model of image attacks: linf (default) or l2.")),
    Shared("steps", Optional[int], typer.Option(None, "--steps", help="Attack iterations (default 10).")),
    Shared("alpha", Optional[float], typer.Option(
        None, "--alpha", help="PGD step size, same units as --eps (default: min(eps, max(eps/4, 1/255)); l2: eps/4).")),
    Shared("restarts", Optional[int], typer.Option(
        None, "--restarts", help="Random restarts of PGD/APGD/Square (per-example worst kept; default 1).")),
    Shared("square_queries", Optional[int], typer.Option(
        None, "--square-queries", help="Query budget of Square (default 1000).")),
    Shared("targeted", bool, typer.Option(
        False, "--targeted", help="PGD/FGSM/Square: attack each other class in turn, as APGD-T does.")),
    Shared("target_classes", Optional[int], typer.Option(
        None, "--target-classes", help="Targeted attacks: at most N wrong classes (default: all other classes).")),
    Shared("text_goal_images", Optional[int], typer.Option(
        None, "--text-goal-images", help="zero-shot-margin: clean images per class the attacker may look at (default 8).")),
    Shared("kl_text_weight", Optional[float], typer.Option(
        None, "--kl-text-weight", help="co-attack-kl: weight of the adversarial-text KL term (default 3, the study's).")),
    Shared("precision", Optional[str], typer.Option(
        None, "--precision", help="Image-attack arithmetic: fp32 (default), tf32 (CUDA; a no-op on CPU) or bf16 "
                                  "autocast. Scoring stays fp32; a sanity check replays a subset in fp32.")),
)


def text_values(shared: dict[str, Any]) -> dict[str, Any]:
    return {o.name: shared.get(o.name) for o in TEXT}
