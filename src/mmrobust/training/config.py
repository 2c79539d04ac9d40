"""Everything a fine-tuning run depends on, validated once, recorded in every checkpoint and report.

Defaults and why:

* Optimiser: AdamW with MMCoA's reference settings (betas 0.9/0.98, eps 1e-6, weight decay 0.2, lr 1e-6, no
  schedule). The reference uses coupled-L2 Adam although its config says AdamW; we use decoupled AdamW as the
  config intends. lr 1e-6 suits a pretrained ViT-B/32 at batch 256 over 30 epochs; small proxies on a CPU
  budget need a larger one (the demo passes its own and prints it).
* Gradient clipping at global norm 1.0 (the reference has none): adversarial losses spike early in training.
* Training PGD: L-inf, eps 1/255, step 1/255, 10 steps, uniform random start (MMCoA's training config).
* Text attack: one word changed, 10 candidates, ``embed-sub`` (offline; BERT-Attack needs a masked LM); the
  caption options mean what they mean in ``mmrobust eval`` and are checked by the same rules
  (:data:`mmrobust.attacks.options.RULES`). ``protect_classnames`` keeps each caption's own class words and
  forbids another class's name (the training dataset's classes); ``min_similarity`` is eval's MiniLM constraint.
* ``--targets class`` (not the reference's instance targets): with several images of one class in a batch,
  the reference's ``arange(B)`` target treats identical captions as negatives, so the loss asks for two equal
  columns to win different rows — an unreachable optimum whose gradient pushes same-class images apart.
  Class-aware targets make every same-class caption a positive (the captions are the class prompts, so the
  image-to-text side becomes CE over the classes present in the batch). ``--targets instance`` reproduces
  the reference.
* Trained parameters per method follow each reference: MMCoA and clean fine-tuning train everything,
  TeCoA / FARE / PMG-AFT the image tower, text-only adversarial training the text tower.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..utils.seeding import check_seed

from ..attacks.options import RULES, TEXT_GOALS, TextOptions, default_step_size
from ..attacks.settings import TextSettings
from ..attacks.text.recipe_specs import default_recipe
from ..options.parse import parse_budget, positive_int
from ..options.fields import option
from ..options.run import TRAINING_TEMPLATES, BudgetOptions, RunOptions, TargetOptions
from .methods import METHOD_SPECS, get_method, method_help
from .options import EVAL_ATTACKS, TRAIN_MODES, TrainingOptions

METHODS = tuple(METHOD_SPECS)
#: caption-attack options validated by the evaluation attacks' rules (text_goal has its own: see below)
TEXT_FIELDS = ("text_attack", "mlm", "text_words", "text_candidates", "text_chunk", "protect_classnames",
               "min_similarity")
#: goals a training caption attack can use (zero-shot-margin needs labelled evaluation images)
TRAIN_TEXT_GOALS = tuple(g for g in TEXT_GOALS if g != "zero-shot-margin")


def training_goal(goal: str | None) -> str:
    """The text goal training uses for ``--text-goal goal``: the goal itself if label-free, else the study's."""
    return goal if goal in TRAIN_TEXT_GOALS else "embedding-kl"


def parse_eps(value: str | float | int, name: str = "--eps") -> float:
    """``"4"`` / ``4`` -> 4/255 (the literature's integer units), ``"4/255"`` -> 4/255 (the one parser:
    :func:`mmrobust.options.parse.parse_budget`)."""
    return parse_budget(value, "linf", name)


def eps_label(eps: float) -> str:
    """4/255 -> "4/255" (units the literature reports), keeping fractions of a level readable."""
    k = eps * 255.0
    return f"{k:g}/255" if abs(k - round(k, 3)) < 1e-9 else f"{k:.4g}/255"


@dataclass(kw_only=True)
class TrainConfig(TargetOptions, RunOptions, BudgetOptions, TrainingOptions, TextSettings):
    """One fine-tuning run, composed from the option groups (each declared once, with its flag):
    :class:`~mmrobust.options.run.RunOptions`, :class:`.options.TrainingOptions`, the caption attack's
    :class:`~mmrobust.attacks.settings.TextSettings`, and ``method_options``: the method's own hyperparameters
    (an instance of its :attr:`~.methods.MethodSpec.options` class, a mapping of its values, or None for its
    defaults; e.g. ``MMCoAOptions(lambda_img=1, lambda_txt=0)``).

    ``eps``/``alpha``/``eval_eps`` are fractions of the pixel range (1/255, not 1). ``templates`` None = the
    study's template; the text options None = the text attack's defaults (1 word, 10 candidates,
    embedding-kl, 128 captions per search).
    """

    method: str = option(help=method_help())
    output_dir: str = option(help="Run folder: checkpoints, log.jsonl, report.json, final/.", short="-o")
    method_options: Any = None

    def __post_init__(self) -> None:
        defaults = TextOptions()
        for name in ("text_words", "text_candidates", "text_goal", "text_chunk"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(defaults, name))
        if self.templates is None:
            self.templates = TRAINING_TEMPLATES
        if self.precision is None:
            self.precision = "fp32"

    # ------------------------------------------------------------------ derived values
    @property
    def train_mode(self) -> str:
        return self.train or get_method(self.method).default_train

    @property
    def effective_eval_eps(self) -> float:
        return self.eps if self.eval_eps is None else self.eval_eps

    def validate(self) -> "TrainConfig":
        """Refuse bad values up front, each with one line naming the option."""
        spec = get_method(self.method)
        self.method = spec.name
        self.method_options = spec.make_options(self.method_options)
        if self.train is not None and self.train not in TRAIN_MODES:
            raise ConfigError(f"unknown --train {self.train!r}; known: {', '.join(TRAIN_MODES)}")
        if self.text_attack is None:
            self.text_attack = default_recipe(self.mlm)
        for name in TEXT_FIELDS:  # the caption attack's options mean and check what they do in eval
            setattr(self, name, RULES[name](name, getattr(self, name)))
        if self.text_goal not in TRAIN_TEXT_GOALS:
            raise ConfigError(f"--text-goal {self.text_goal!r} cannot drive a training caption attack; "
                              f"known: {', '.join(TRAIN_TEXT_GOALS)} (zero-shot-margin is an evaluation goal)")
        check_seed(self.seed)
        if self.eval_attack not in EVAL_ATTACKS:
            raise ConfigError(f"unknown --eval-attack {self.eval_attack!r}; known: {', '.join(EVAL_ATTACKS)}")
        for name in ("epochs", "batch_size", "steps", "eval_steps", "eval_batch_size", "keep_checkpoints"):
            setattr(self, name, positive_int(getattr(self, name), "--" + name.replace("_", "-")))
        for name in ("lr", "adam_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        for name in ("weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a non-negative number, got {value}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"Adam betas must lie in [0, 1), got {self.betas}")
        if self.alpha is None and 0 < self.eps <= 1:
            self.alpha = default_step_size(self.eps, "linf")
        for name in ("eps", "alpha"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 1):
                shown = eps_label(value) if isinstance(value, (int, float)) and math.isfinite(value) else repr(value)
                raise ConfigError(f"--{name} must lie in (0, 255/255] of the pixel range, got {shown}")
        if self.eval_eps is not None and not (0 < self.eval_eps <= 1):
            raise ConfigError(f"--eval-eps must be in (0, 1], got {self.eval_eps}")
        if self.last_k < 1:
            raise ConfigError(f"--last-k must be at least 1, got {self.last_k}")
        if self.prompt_size is not None and self.prompt_size < 1:
            raise ConfigError(f"--prompt-size must be at least 1 pixel, got {self.prompt_size}")
        if self.n_train is not None and self.shots is not None:
            raise ConfigError("give either --n-train or --shots, not both")
        for name in ("n_train", "shots", "n_eval"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.checkpoint_every_steps < 0:
            raise ConfigError("--checkpoint-every must be >= 0 (0 = once per epoch)")
        from ..utils.precision import TRAINING_PRECISIONS, check_precision

        self.precision = check_precision(self.precision)
        if self.precision not in TRAINING_PRECISIONS:  # amp's fp16 would need a gradient scaler
            raise ConfigError(f"--precision {self.precision} is an attack protocol; training takes "
                              f"{', '.join(TRAINING_PRECISIONS)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Flat, as reports and checkpoints have always recorded it: the method's options are top-level keys."""
        data = dataclasses.asdict(self)
        options = data.pop("method_options")
        data.update(options if isinstance(options, dict) else {})
        data["betas"] = list(self.betas)
        data["train_mode"] = self.train_mode
        data["eps_label"] = eps_label(self.eps)
        data["alpha_label"] = eps_label(self.alpha) if self.alpha is not None else None
        data["eval_eps_label"] = eps_label(self.effective_eval_eps)
        return data

    #: options that may change between a run and its resumption (more epochs, another device, quieter)
    #: (the text search's chunk size changes its cost, never the adversarial captions)
    RESUMABLE_CHANGES = ("epochs", "device", "resume", "progress", "output_dir", "keep_checkpoints", "compile",
                         "text_chunk", "allow_long_run")

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Options whose value differs from a saved run's config (ignoring those a resume may change).

        An option the saved config lacks (a run started before the option existed) counts as its default; a
        saved option this run does not have (another method's hyperparameter, recorded by older versions for
        every method) is not a difference."""
        mine = self.to_dict()
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.default is not dataclasses.MISSING}
        spec = get_method(self.method)
        if spec.options is not None:
            defaults.update(spec.options().to_dict())
        return [
            key for key in sorted(mine)
            if key not in self.RESUMABLE_CHANGES
            and _norm(mine.get(key)) != _norm(saved.get(key, defaults.get(key)))
        ]


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
