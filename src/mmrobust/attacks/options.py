"""Each attack's typed options: fields with defaults, one validation rule per field, one rule per default.

Why typed options: every attack used to read one shared untyped ``options`` dict, so a new hyperparameter
touched the config, the option plumbing, the CLI and every factory, and a value no attack read was silently
ignored. Now an attack declares its options class (in its :class:`~.spec.AttackSpec`); the class lists exactly
the fields it reads, and :func:`options_for` builds it from the user's values, so a value *no* selected attack
reads is an error (``--eps`` with only text attacks, ``--square-queries`` without Square).

Units (Python API): ``eps`` and ``alpha`` are fractions of the [0, 1] pixel range for L-inf (4/255, not 4) and
raw radii for L2. Only the CLI reads K/255 (:mod:`mmrobust.cli.options`).

The defaults, each defined once here:

* ``eps``: the study's L-inf 1/255 (Zhou et al. 2024 evaluate at 1/255); L2: 0.5 (RobustBench's L2 radius).
* PGD step size ``alpha``: ``min(eps, max(eps/4, 1/255))`` for L-inf — 1/255 at the study's 1/255 (MMCoA's
  training and test PGD), eps/4 from 4/255 up (the demo's 16/255 -> 4/255); ``eps/4`` for L2.
* ``restarts`` 1; ``steps`` 10; Square's query budget 1000.
* ``target_classes``: ``None`` = all other classes of the task (APGD-T's "all but the true class"; AutoAttack's
  9 targets are exactly that on 10-class CIFAR-10, and a 3-class task has 2, not 9).

Adding an option to an attack: add the field to its options class (and, if it is new, one rule to
:data:`RULES` and one CLI flag in :mod:`mmrobust.cli.options`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from ..utils.precision import PRECISIONS
from .image.base import normalize_norm
from .text.recipe_specs import RECIPE_NAMES, default_recipe

#: the study's evaluation budget (L-inf), the default when no --eps is given
STUDY_EPS = 1 / 255
#: RobustBench's standard L2 radius, the default for --norm l2 without --eps
DEFAULT_L2_EPS = 0.5
DEFAULT_STEPS = 10
DEFAULT_SQUARE_QUERIES = 1000
TEXT_GOALS = ("embedding-kl", "embedding-cos", "zero-shot-margin")


def default_eps(norm: str) -> float:
    return STUDY_EPS if normalize_norm(norm) == "Linf" else DEFAULT_L2_EPS


def default_step_size(eps: float, norm: str) -> float:
    """The one PGD step-size rule (see the module docstring)."""
    if normalize_norm(norm) == "Linf":
        return min(eps, max(eps / 4, 1 / 255))
    return eps / 4


# ---------------------------------------------------------------------------------------------- field rules
def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{flag(name)} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag(name)} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{flag(name)} must be finite, got {value}")
    return out


def positive(name: str, value: Any) -> float:
    out = _number(name, value)
    if out <= 0:
        raise ConfigError(f"{flag(name)} must be positive, got {value}")
    return out


def positive_int(name: str, value: Any) -> int:
    out = _number(name, value)
    if not out.is_integer() or out < 1:
        raise ConfigError(f"{flag(name)} must be an integer of at least 1, got {value}")
    return int(out)


def _optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def _choice(known: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in known:
            raise ConfigError(f"unknown {flag(name)} {value!r}; known: {', '.join(known)}")
        return text

    return check


def _text_recipe(name: str, value: Any) -> str | None:
    return None if value in (None, "") else _choice(RECIPE_NAMES)(name, value)


def _optional_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{flag(name)} is empty")
    return text


def _cosine(name: str, value: Any) -> float | None:
    if value is None:
        return None
    out = _number(name, value)
    if not -1.0 <= out <= 1.0:
        raise ConfigError(f"{flag(name)} is a cosine similarity in [-1, 1], got {value}")
    return out


def _non_negative(name: str, value: Any) -> float:
    out = _number(name, value)
    if out < 0:
        raise ConfigError(f"{flag(name)} must be >= 0, got {value}")
    return out


def _scales(name: str, value: Any) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    scales = tuple(_number(name, v) for v in items if str(v).strip())
    if not scales or any(not 0 < v <= 4 for v in scales):
        raise ConfigError(f"{flag(name)} must be scales in (0, 4], got {value!r}")
    return scales


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{flag(name)} is a switch (true/false), got {value!r}")
    return value


#: field name -> validator(name, value) -> normalised value; one rule per field for every attack
RULES: dict[str, Callable[[str, Any], Any]] = {
    "norm": lambda name, value: normalize_norm(value),
    "eps": positive,
    "alpha": lambda name, value: None if value is None else positive(name, value),
    "steps": positive_int,
    "restarts": positive_int,
    "square_queries": positive_int,
    "targeted": _boolean,
    "target_classes": _optional_positive_int,
    "text_attack": _text_recipe,
    "text_words": positive_int,
    "text_candidates": positive_int,
    "mlm": _optional_text,
    "text_goal": _choice(TEXT_GOALS),
    "text_goal_images": positive_int,
    "text_chunk": positive_int,
    "protect_classnames": _boolean,
    "min_similarity": _cosine,
    "kl_text_weight": _non_negative,
    # retrieval only (mmrobust.attacks.retrieval.options; mmrobust.attacks.settings.RetrievalSettings)
    "co_attack_weight": positive,
    "co_attack_text_goal": _choice(("embedding-kl", "embedding-cos", "pair-similarity")),
    "sga_scales": lambda name, value: _scales(name, value),
    "precision": _choice(PRECISIONS),
}

#: fields whose CLI flag is not ``--`` + the name with dashes
FLAGS = {"square_queries": "--square-queries", "target_classes": "--target-classes"}


def flag(name: str) -> str:
    """The CLI flag of option ``name`` (error messages name what the user typed)."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


# ---------------------------------------------------------------------------------------------- classes
@dataclass(frozen=True)
class AttackOptions:
    """Base of every attack's options: :meth:`validated` applies :data:`RULES` and resolves the defaults."""

    def validated(self) -> "AttackOptions":
        values = {f.name: RULES[f.name](f.name, getattr(self, f.name)) for f in fields(self)}
        return dataclasses.replace(self, **self._resolve(values))

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        return values

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BudgetOptions(AttackOptions):
    """An image perturbation budget: ``eps`` (None = :func:`default_eps`) in the ``norm`` ball."""

    norm: str = "Linf"
    eps: float | None = None
    #: arithmetic of the attack's forward/backward (mmrobust.utils.precision); scoring stays fp32
    precision: str = "fp32"

    def validated(self) -> "BudgetOptions":
        norm = normalize_norm(self.norm)
        eps = default_eps(norm) if self.eps is None else positive("eps", self.eps)
        if norm == "Linf" and eps > 1:
            raise ConfigError(f"--eps {eps * 255:g}/255 exceeds the whole pixel range (L-inf eps is at most 255/255)")
        return super(BudgetOptions, dataclasses.replace(self, norm=norm, eps=eps)).validated()


@dataclass(frozen=True)
class TargetOptions(AttackOptions):
    """``targeted``: attack each of ``target_classes`` highest-scoring wrong classes in turn (None = all)."""

    targeted: bool = False
    target_classes: int | None = None


@dataclass(frozen=True)
class FGSMOptions(BudgetOptions, TargetOptions):
    pass


@dataclass(frozen=True)
class PGDOptions(BudgetOptions, TargetOptions):
    steps: int = DEFAULT_STEPS
    alpha: float | None = None
    restarts: int = 1

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        if values["alpha"] is None:
            values["alpha"] = default_step_size(values["eps"], values["norm"])
        return values


@dataclass(frozen=True)
class APGDOptions(BudgetOptions):
    steps: int = DEFAULT_STEPS
    restarts: int = 1


@dataclass(frozen=True)
class APGDTOptions(APGDOptions):
    target_classes: int | None = None


@dataclass(frozen=True)
class SquareOptions(BudgetOptions, TargetOptions):
    square_queries: int = DEFAULT_SQUARE_QUERIES
    restarts: int = 1


@dataclass(frozen=True)
class TextOptions(AttackOptions):
    """Options of the text attacks on the class prompts (see :mod:`.text.prompt_attack`)."""

    text_words: int = 1
    text_candidates: int = 10
    mlm: str | None = None
    text_goal: str = "embedding-kl"
    text_goal_images: int = 8
    #: prompts searched together by the batched search (1 = one at a time; the prompts are the same)
    text_chunk: int = 128
    #: never change a prompt's own class words nor introduce another class's name
    protect_classnames: bool = False
    #: reject candidates whose MiniLM sentence cosine to the original is lower (None = off, as in the study)
    min_similarity: float | None = None


@dataclass(frozen=True)
class MultimodalOptions(BudgetOptions, TextOptions):
    """A PGD image part and a text part; ``text_attack`` None = bert-attack with ``mlm``, else embed-sub."""

    steps: int = DEFAULT_STEPS
    alpha: float | None = None
    restarts: int = 1
    text_attack: str | None = None

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        if values["alpha"] is None:
            values["alpha"] = default_step_size(values["eps"], values["norm"])
        if values["text_attack"] is None:
            values["text_attack"] = default_recipe(values["mlm"])
        return values


@dataclass(frozen=True)
class Mode4Options(MultimodalOptions):
    """``co-attack-kl`` (the study's mode 4): ``kl_text_weight`` weighs the adversarial-text KL (the study's 3);
    the last PGD iterate is kept, so there is no success criterion to pick among restarts."""

    kl_text_weight: float = 3.0

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        if values["restarts"] != 1:
            raise ConfigError("co-attack-kl keeps the last PGD iterate (as the study does): --restarts must be 1")
        return super()._resolve(values)


def field_names(options_class: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(options_class))


def options_for(options_class: type, values: Mapping[str, Any]) -> AttackOptions:
    """The validated options of one attack from the run's values (those it does not read are left out)."""
    names = set(field_names(options_class))
    return options_class(**{k: v for k, v in values.items() if k in names and v is not None}).validated()
