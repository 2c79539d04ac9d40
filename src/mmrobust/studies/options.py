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
from ..attacks.settings import TextSettings
from ..attacks.text.recipe_specs import default_recipe
from ..errors import ConfigError
from ..eval.options import ExampleOptions
from ..options.fields import BUDGET, flag_of, option
from ..options.parse import positive_int as positive_integer
from ..options.run import DATASET_HELP, MODEL_HELP, N_SAMPLES_HELP, N_TRAIN_HELP, SANITY_HELP, TRAINING_TEMPLATES, BudgetOptions, RunOptions, SeedsOptions, SharingOptions
from ..training.options import EPOCHS_HELP, LR_HELP, TRAIN_EPS_HELP, TRAIN_MODE_HELP
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
#: options that change what a fine-tune produces (the method's own options are added: see ``hash_fields``)
TRAIN_FIELDS = (
    "method", "epochs", "train_batch_size", "lr", "train_eps", "train_steps", "train_mode", "n_train",
    "lambda_img", "lambda_txt", "text_attack", "text_words", "text_candidates", "mlm", "text_goal",
    "protect_classnames", "min_similarity",
)
#: options added after cells were first measured: in a cell's hash only when set, so older cells keep theirs
HASHED_WHEN_SET = ("train_alpha",)
#: attack names accepted per modality ("none" switches a modality off)
NONE = "none"


def _attack_help(modality: str) -> str:
    from ..attacks.registry import names_of

    return f"{modality.capitalize()} attack: {', '.join(names_of(modality) + [NONE])}."


def _method_help() -> str:
    from ..training.methods import method_help

    return method_help()


@dataclass(kw_only=True)
class StudyTraining:
    """The fine-tuning studies' per-cell training budget (train-size, loss-ablation, params): only those
    studies take these flags. Sized for proxy:digits on two CPU cores."""

    method: str = option("mmcoa", _method_help())
    epochs: int = option(1, EPOCHS_HELP)
    train_batch_size: int = option(32, "Fine-tuning batch size.")
    lr: float = option(1e-4, LR_HELP)
    train_eps: float = option(16 / 255, TRAIN_EPS_HELP, unit=BUDGET)
    train_steps: int = option(5, "Training PGD steps.")
    train_alpha: float | None = option(
        None, "Training PGD step size K (K/255; default min(eps, max(eps/4, 1/255)), the one step-size rule).",
        unit=BUDGET)
    train_mode: str | None = option(None, TRAIN_MODE_HELP, flag="--train")
    n_train: int | None = option(256, N_TRAIN_HELP)
    #: fine-tuning studies: also evaluate every row's model zero-shot on these datasets (a ``--datasets`` list
    #: of ``mmrobust benchmark``); never in a cell's hash (the OOD cells are the benchmark's own, see ``ood.py``)
    ood_datasets: str | None = option(
        None, "Also evaluate every row's model zero-shot on these datasets (as `mmrobust benchmark --datasets`: "
              "comma list, @study, a file) with the same attacks: DIR/ood/ holds that benchmark (paired tests vs "
              "the model before fine-tuning); the table gains OOD-average columns.", flag="--ood-dataset",
        param="ood_dataset")


@dataclass(kw_only=True)
class StudyOptions(RunOptions, BudgetOptions, SeedsOptions, SharingOptions, TextSettings, ExampleOptions, StudyTraining):
    """Options shared by the studies. Defaults are small and sized for ``proxy:digits`` on two CPU cores.

    Composed from :class:`~mmrobust.options.run.RunOptions` and the text options every command shares
    (:class:`~mmrobust.attacks.settings.TextSettings`), plus the grid's own options below, each declared once
    with its flag. ``method_options``: the fine-tuning method's hyperparameters the user gave (names of its
    :attr:`~mmrobust.training.methods.MethodSpec.options` fields), the rest at their defaults.

    ``eval_eps`` / ``train_eps`` are fractions of the [0, 1] pixel range (L-inf; the CLI reads K/255). The
    digits are 8 x 8 images upsampled, so small budgets barely move the proxy: 16/255 is the demo's measured
    choice for fine-tuning studies. The text options mean what they mean in ``mmrobust eval`` and ``train``:
    ``text_attack`` is the recipe of every text perturbation (the text column, sep's text part, the training
    captions; None = bert-attack with ``mlm``, else embed-sub; "none" drops the text column).
    ``device`` and ``progress`` never enter a cell's hash (a cell measured on one device is reused on
    another; the cell JSON records where it ran), nor does ``save_examples`` (:class:`~mmrobust.eval.options.
    ExampleOptions`): it keeps images beside the cells measured in this run, and a cell reused from an earlier
    run keeps what it kept then.
    """

    output_dir: str = option(help="Study folder: cells/, table.csv, table.json, plot.png.", short="-o")
    models: tuple[str, ...] = option(
        ("proxy:digits",), MODEL_HELP + " Repeat to compare several.", flag="--model", short="-m", param="model",
        repeat=True)
    dataset: str = option("digits", DATASET_HELP, short="-d")
    split: str | None = option(None, "Evaluation split (default: the dataset's test split).", cli=False)
    n_eval: int = option(100, N_SAMPLES_HELP, flag="--n-samples", short="-n", param="n_samples")
    batch_size: int = option(100, "Evaluation batch size.", short="-b")
    sanity: bool = option(False, SANITY_HELP, flag="--sanity/--no-sanity")
    # --- evaluation attacks
    eval_eps: float = option(16 / 255, "Evaluation L-inf budget K (K/255).", unit=BUDGET)
    eval_steps: int = option(10, "Steps of the evaluation image attack.")
    image_attack: str = option("pgd", _attack_help("image"))
    multimodal_attack: str = option("sep", _attack_help("multimodal"))
    method_options: dict[str, Any] = field(default_factory=dict)
    # --- statistics (never in a cell's hash: they change how rows are summarised, not what a cell measures)
    #: the row every other row is compared with (cell key, setting or model); None: the study's default
    reference: str | None = option(
        None, "Row every other row is compared with on the same images (cell key, setting or model): difference, "
              "paired bootstrap 95 % interval, exact McNemar p. Default: the first row (the model before "
              "fine-tuning) / the first --model.")

    def __post_init__(self) -> None:
        for name, default in (("text_words", 1), ("text_candidates", 10), ("text_goal", "embedding-kl")):
            if getattr(self, name) is None:
                setattr(self, name, default)
        if self.templates is None:
            self.templates = TRAINING_TEMPLATES
        if isinstance(self.seeds, str) or (self.seeds and all(isinstance(s, str) for s in self.seeds)):
            self.seeds = tuple(parse_list(self.seeds, "--seeds", seed_value))

    def method_values(self) -> dict[str, Any]:
        """The method's full options (the given ones over its defaults), validated by its spec."""
        from ..training.methods import get_method

        made = get_method(self.method).make_options(self.method_options)
        return {} if made is None else made.to_dict()

    @property
    def lambda_img(self) -> float:
        return float(self.method_options.get("lambda_img", 0.5))

    @property
    def lambda_txt(self) -> float:
        return float(self.method_options.get("lambda_txt", 0.5))

    def validate(self) -> "StudyOptions":
        """Refuse bad values before any model is loaded, one line each."""
        from ..attacks.registry import names_of
        from ..training.methods import get_method

        if self.text_attack is None:
            self.text_attack = default_recipe(self.mlm)
        self.method = get_method(self.method).name
        self.method_values()  # a hyperparameter the method does not read is refused here
        if self.precision not in (None, "fp32") or self.compile:
            raise ConfigError("the studies evaluate and fine-tune in fp32 without torch.compile "
                              "(--precision / --compile apply to eval, benchmark and train)")
        if not self.models:
            raise ConfigError("give at least one --model")
        for name in ("n_eval", "batch_size", "eval_steps", "text_words", "text_candidates", "epochs",
                     "train_batch_size", "train_steps"):
            setattr(self, name, positive_integer(getattr(self, name), flag_of(StudyOptions, name)))
        if self.save_examples < 0:
            raise ConfigError(f"--save-examples must be at least 0, got {self.save_examples}")
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
        """The options a cell's numbers depend on (see the module docstring). A method hyperparameter other
        than MMCoA's two weights enters only when given, so the cells measured before it existed keep their
        hash."""
        data = self.to_dict()
        keys = EVAL_FIELDS + (TRAIN_FIELDS if training else ())
        out = {k: data[k] for k in keys}
        if training:
            out.update({k: v for k, v in sorted(self.method_options.items()) if k not in TRAIN_FIELDS})
            out.update({k: data[k] for k in HASHED_WHEN_SET if data[k] is not None})
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("method_options")
        data.update(lambda_img=self.lambda_img, lambda_txt=self.lambda_txt, **self.method_options)
        data.pop("precision", None), data.pop("compile", None)
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
