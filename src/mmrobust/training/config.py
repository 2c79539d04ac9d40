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
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..utils.seeding import check_seed

from ..attacks.options import RULES, TEXT_GOALS, TextOptions, default_step_size
from ..attacks.text.recipe_specs import default_recipe
from .methods import METHOD_SPECS, get_method

METHODS = tuple(METHOD_SPECS)
TRAIN_MODES = ("full", "image", "text", "last-k", "prompt")
TARGET_MODES = ("class", "instance")
EVAL_ATTACKS = ("none", "pgd")
#: caption-attack options validated by the evaluation attacks' rules (text_goal has its own: see below)
TEXT_FIELDS = ("text_attack", "mlm", "text_words", "text_candidates", "text_chunk", "protect_classnames",
               "min_similarity")
#: goals a training caption attack can use (zero-shot-margin needs labelled evaluation images)
TRAIN_TEXT_GOALS = tuple(g for g in TEXT_GOALS if g != "zero-shot-margin")


def training_goal(goal: str | None) -> str:
    """The text goal training uses for ``--text-goal goal``: the goal itself if label-free, else the study's."""
    return goal if goal in TRAIN_TEXT_GOALS else "embedding-kl"


def parse_eps(value: str | float | int, name: str = "--eps") -> float:
    """``"4"`` / ``4`` -> 4/255 (the literature's integer units), ``"4/255"`` -> 4/255, ``"0.5/255"`` -> 0.5/255.

    A bare number is always k/255 (``--eps 1`` is MMCoA's 1/255); a fraction ``a/b`` is taken literally.
    """
    if isinstance(value, (int, float)):
        result = float(value) / 255.0
    else:
        text = str(value).strip()
        match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?", text)
        if not match:
            raise ConfigError(f"{name} {value!r} is not a number: give k (meaning k/255) or a fraction like 4/255")
        numerator = float(match.group(1))
        result = numerator / float(match.group(2)) if match.group(2) else numerator / 255.0
    if not math.isfinite(result) or result < 0 or result > 1:
        raise ConfigError(f"{name} {value!r} must lie in [0, 1] of the pixel range (k/255 with 0 <= k <= 255)")
    return result


def eps_label(eps: float) -> str:
    """4/255 -> "4/255" (units the literature reports), keeping fractions of a level readable."""
    k = eps * 255.0
    return f"{k:g}/255" if abs(k - round(k, 3)) < 1e-9 else f"{k:.4g}/255"


@dataclass
class TrainConfig:
    """One fine-tuning run. ``eps``/``alpha``/``eval_eps`` are fractions of the pixel range (1/255, not 1)."""

    model: str
    method: str
    dataset: str
    output_dir: str
    data_root: str | None = None
    train_split: str = "train"
    eval_split: str | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-6
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-6
    grad_clip: float = 1.0
    train: str | None = None
    last_k: int = 4
    prompt_size: int | None = None
    eps: float = 1 / 255
    #: None = the one PGD step-size rule (:func:`mmrobust.attacks.options.default_step_size`): 1/255 at 1/255
    alpha: float | None = None
    steps: int = 10
    attack_random_start: bool = True
    #: caption attack recipe; None = bert-attack with ``mlm``, else embed-sub (as everywhere)
    text_attack: str | None = None
    text_words: int = 1
    text_candidates: int = 10
    mlm: str | None = None
    text_goal: str = "embedding-kl"
    #: captions searched together by the batched search (cost only: the adversarial captions are the same)
    text_chunk: int = TextOptions.text_chunk
    #: the caption attack never changes a caption's own class words nor introduces another class's name
    protect_classnames: bool = False
    #: reject caption substitutions whose MiniLM sentence cosine to the clean caption is lower (None = off)
    min_similarity: float | None = None
    lambda_img: float = 0.5
    lambda_txt: float = 0.5
    pmg_alpha: float = 1.0
    pmg_beta: float = 1.0
    targets: str = "class"
    #: MMCoA / text-AT under torchrun: contrast against every rank's features (the global batch), as open_clip's
    #: --gather-with-grad; False = in-rank negatives (the objective then depends on the world size)
    gather_with_grad: bool = False
    templates: str | None = "study"
    n_train: int | None = None
    shots: int | None = None
    n_eval: int | None = 500
    eval_attack: str = "none"
    eval_eps: float | None = None
    eval_steps: int = 10
    eval_batch_size: int = 128
    seed: int = 0
    device: str | None = None
    resume: bool = False
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 1
    progress: bool = True
    #: arithmetic of the training attack and of the forward/backward (AMP): fp32, tf32 or bf16
    precision: str = "fp32"
    #: torch.compile the model's towers (mmrobust.utils.compile)
    compile: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ derived values
    @property
    def train_mode(self) -> str:
        return self.train or get_method(self.method).default_train

    @property
    def effective_eval_eps(self) -> float:
        return self.eps if self.eval_eps is None else self.eval_eps

    def validate(self) -> "TrainConfig":
        """Refuse bad values up front, each with one line naming the option."""
        self.method = get_method(self.method).name
        if self.train is not None and self.train not in TRAIN_MODES:
            raise ConfigError(f"unknown --train {self.train!r}; known: {', '.join(TRAIN_MODES)}")
        if self.targets not in TARGET_MODES:
            raise ConfigError(f"unknown --targets {self.targets!r}; known: {', '.join(TARGET_MODES)}")
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
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        for name in ("lr", "adam_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        for name in ("weight_decay", "grad_clip", "lambda_img", "lambda_txt", "pmg_alpha", "pmg_beta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a non-negative number, got {value}")
        if self.method in ("mmcoa", "mmcoa-released") and self.lambda_img == 0 and self.lambda_txt == 0:
            raise ConfigError("--lambda-img and --lambda-txt are both 0: MMCoA would have no loss")
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
        from ..utils.precision import check_precision

        self.precision = check_precision(self.precision)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        data["train_mode"] = self.train_mode
        data["eps_label"] = eps_label(self.eps)
        data["alpha_label"] = eps_label(self.alpha) if self.alpha is not None else None
        data["eval_eps_label"] = eps_label(self.effective_eval_eps)
        return data

    #: options that may change between a run and its resumption (more epochs, another device, quieter)
    #: (the text search's chunk size changes its cost, never the adversarial captions)
    RESUMABLE_CHANGES = ("epochs", "device", "resume", "progress", "output_dir", "keep_checkpoints", "compile",
                         "text_chunk")

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Options whose value differs from a saved run's config (ignoring those a resume may change).

        An option the saved config lacks (a run started before the option existed) counts as its default."""
        mine = self.to_dict()
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.default is not dataclasses.MISSING}
        return [
            key for key in sorted(set(mine) | set(saved))
            if key not in self.RESUMABLE_CHANGES and key != "extra"
            and _norm(mine.get(key)) != _norm(saved.get(key, defaults.get(key)))
        ]


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
