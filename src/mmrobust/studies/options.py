"""The options every study shares, and the parsing of the comma-separated lists that define a study's grid.

Why the options are split into groups: a cell's identity (its config hash) must change when anything that
affects its numbers changes, and must *not* change when something irrelevant does (adding a value to
``--eps`` must not re-run the cells already measured; changing the learning rate must not re-run an
evaluation-only study). :meth:`StudyOptions.hash_fields` returns only the groups a study uses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from ..attacks.options import RULES, TEXT_GOALS
from ..attacks.text.recipe_specs import RECIPE_NAMES, default_recipe
from ..errors import ConfigError
from ..utils.device import resolve_device
from ..utils.seeding import check_seed

T = TypeVar("T")


class BadValue(ValueError):
    """Raised by the list-item converters below with a message meant for the user."""

#: options that change what an evaluation measures
EVAL_FIELDS = (
    "dataset", "data_root", "split", "n_eval", "batch_size", "templates", "seed", "sanity", "eval_eps", "eval_steps",
    "image_attack", "text_attack", "multimodal_attack", "text_words", "text_candidates", "mlm", "text_goal",
    "protect_classnames", "min_similarity",
)
#: options that change what a fine-tune produces
TRAIN_FIELDS = (
    "method", "epochs", "train_batch_size", "lr", "train_eps", "train_steps", "train_mode", "n_train",
    "lambda_img", "lambda_txt", "text_attack", "text_words", "text_candidates", "mlm", "text_goal",
    "protect_classnames", "min_similarity",
)
#: attack names accepted per modality ("none" switches a modality off)
NONE = "none"


@dataclass
class StudyOptions:
    """Options shared by the studies. Defaults are small and sized for ``proxy:digits`` on two CPU cores.

    ``eval_eps`` / ``train_eps`` are fractions of the [0, 1] pixel range (L-inf; the CLI reads K/255). The
    digits are 8 x 8 images upsampled, so small budgets barely move the proxy: 16/255 is the demo's measured
    choice for fine-tuning studies. The text options mean what they mean in ``mmrobust eval`` and ``train``:
    ``text_attack`` is the recipe of every text perturbation (the text column, sep's text part, the training
    captions; None = bert-attack with ``mlm``, else embed-sub; "none" drops the text column).
    ``device`` and ``progress`` never enter a cell's hash (a cell measured on one device is reused on
    another; the cell JSON records where it ran).
    """

    output_dir: str
    models: tuple[str, ...] = ("proxy:digits",)
    dataset: str = "digits"
    data_root: str | None = None
    split: str | None = None
    n_eval: int = 100
    batch_size: int = 100
    templates: str = "study"
    seed: int = 0
    device: str | None = None
    progress: bool = True
    sanity: bool = False
    # --- evaluation attacks
    eval_eps: float = 16 / 255
    eval_steps: int = 10
    image_attack: str = "pgd"
    text_attack: str | None = None
    multimodal_attack: str = "sep"
    text_words: int = 1
    text_candidates: int = 10
    mlm: str | None = None
    #: "embedding-kl" (the study's, label-free) or "zero-shot-margin" / "embedding-cos" (see ``mmrobust eval``)
    text_goal: str = "embedding-kl"
    #: text attacks (evaluation prompts and training captions) keep each prompt's class words and introduce
    #: no other class's name
    protect_classnames: bool = False
    #: text attacks keep a MiniLM sentence cosine of at least this to the original (None = off)
    min_similarity: float | None = None
    #: texts per batched text search (cost only; the texts are the same whatever the value)
    text_chunk: int | None = None
    # --- fine-tuning (train-size, loss-ablation, params)
    method: str = "mmcoa"
    epochs: int = 1
    train_batch_size: int = 32
    lr: float = 1e-4
    train_eps: float = 16 / 255
    train_steps: int = 5
    train_mode: str | None = None
    n_train: int | None = 256
    lambda_img: float = 0.5
    lambda_txt: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)
    #: fine-tuning studies: also evaluate every row's model zero-shot on these datasets (a ``--datasets`` list
    #: of ``mmrobust benchmark``); never in a cell's hash (the OOD cells are the benchmark's own, see ``ood.py``)
    ood_datasets: str | None = None
    # --- statistics (never in a cell's hash: they change how rows are summarised, not what a cell measures)
    #: run the whole grid once per seed and aggregate (None: the one ``seed``)
    seeds: tuple[int, ...] | None = None
    #: the row every other row is compared with (cell key, setting or model); None: the study's default
    reference: str | None = None

    def validate(self) -> "StudyOptions":
        """Refuse bad values before any model is loaded, one line each."""
        from ..attacks.registry import names_of
        from ..training.methods import get_method

        if self.text_attack is None:
            self.text_attack = default_recipe(self.mlm)
        self.method = get_method(self.method).name
        if not self.models:
            raise ConfigError("give at least one --model")
        for name in ("n_eval", "batch_size", "eval_steps", "text_words", "text_candidates", "epochs",
                     "train_batch_size", "train_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.n_train is not None and self.n_train < 1:
            raise ConfigError(f"--n-train must be at least 1, got {self.n_train}")
        check_seed(self.seed)
        resolve_device(self.device)  # an unknown or absent device is one line before any work
        for name in ("eval_eps", "train_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 1):
                raise ConfigError(f"--{name.replace('_', '-')} must lie in (0, 255/255] of the pixel range, "
                                  f"got {value * 255:g}/255")
        for seed in self.seeds or ():
            if isinstance(seed, bool) or int(seed) != seed or seed < 0:
                raise ConfigError(f"--seeds must be integers of at least 0, got {seed}")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ConfigError(f"--seeds must list distinct seeds, got {list(self.seeds)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        for name in ("protect_classnames", "min_similarity", "text_chunk"):  # eval's and train's rules
            if getattr(self, name) is not None:
                setattr(self, name, RULES[name](name, getattr(self, name)))
        if self.text_goal not in TEXT_GOALS:
            raise ConfigError(f"unknown --text-goal {self.text_goal!r}; known: {', '.join(TEXT_GOALS)}")
        for modality, name in (("image", self.image_attack), ("text", self.text_attack),
                               ("multimodal", self.multimodal_attack)):
            if name == NONE:
                continue
            known = names_of(modality)
            if name not in known:
                raise ConfigError(f"unknown --{modality}-attack {name!r}; known: {', '.join(known + [NONE])}")
        return self

    @property
    def train_text_attack(self) -> str:
        """The training caption recipe: ``text_attack`` (one meaning), or the default when the column is off."""
        return default_recipe(self.mlm) if self.text_attack in (None, NONE) else self.text_attack

    def seed_list(self) -> list[int]:
        """The seeds to run: ``seeds`` when given (it overrides ``seed``), else ``[seed]``."""
        return [int(s) for s in self.seeds] if self.seeds else [int(self.seed)]

    def attack_names(self) -> list[str]:
        return [a for a in (self.image_attack, self.text_attack, self.multimodal_attack) if a != NONE]

    def hash_fields(self, *, training: bool) -> dict[str, Any]:
        """The options a cell's numbers depend on (see the module docstring)."""
        data = asdict(self)
        keys = EVAL_FIELDS + (TRAIN_FIELDS if training else ())
        return {k: data[k] for k in keys}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = list(self.models)
        data["seeds"] = None if self.seeds is None else list(self.seeds)
        return data


def parse_list(text: str | Sequence[Any] | None, option: str, convert: Callable[[str], T]) -> list[T]:
    """``"1,2, 4"`` -> ``[1, 2, 4]``; empty, unparsable or repeated values -> one ConfigError naming ``option``."""
    if text is None:
        raise ConfigError(f"{option} is empty; give a comma-separated list")
    parts = [str(p).strip() for p in (text.split(",") if isinstance(text, str) else text)]
    parts = [p for p in parts if p]
    if not parts:
        raise ConfigError(f"{option} is empty; give a comma-separated list")
    values: list[T] = []
    for part in parts:
        try:
            values.append(convert(part))
        except (TypeError, ValueError) as exc:
            detail = str(exc) if isinstance(exc, BadValue) else f"{part!r} is not a valid value"
            raise ConfigError(f"{option}: {detail}") from None
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{option} lists a value twice: {text!r}")
    return values


def positive_int(text: str) -> int:
    value = float(text)
    if not value.is_integer() or value < 1:
        raise BadValue(f"{text!r} is not a positive integer")
    return int(value)


def seed_value(text: str) -> int:
    value = float(text)
    if not value.is_integer() or value < 0:
        raise BadValue(f"{text!r} is not an integer of at least 0")
    return int(value)


def eps_value(text: str) -> float:
    """k in k/255 (``"4"`` or ``"4/255"``), in (0, 255]."""
    text = text.strip()
    if text.endswith("/255"):
        text = text[: -len("/255")]
    value = float(text)
    if not (math.isfinite(value) and 0 < value <= 255):
        raise BadValue(f"{text!r} must be k in k/255 with 0 < k <= 255")
    return value


def choice(known: Sequence[str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        value = text.strip().lower()
        if value not in known:
            raise BadValue(f"unknown value {text!r}; known: {', '.join(known)}")
        return value

    return convert


def lambda_pair(text: str) -> tuple[float, float]:
    """``"0.5:0.5"`` -> (lambda_img, lambda_txt); both non-negative, not both zero."""
    left, sep, right = text.partition(":")
    if not sep:
        raise BadValue(f"{text!r} is not IMG:TXT (e.g. 1:0, 0:1, 0.5:0.5)")
    pair = (float(left), float(right))
    if not all(math.isfinite(v) and v >= 0 for v in pair):
        raise BadValue(f"{text!r}: weights must be non-negative numbers")
    if pair == (0.0, 0.0):
        raise BadValue(f"{text!r}: both weights are 0, MMCoA would have no loss")
    return pair
