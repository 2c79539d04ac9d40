"""A fine-tuning run's options (``mmrobust train``; the studies compose them with a CPU-sized budget).

Declared once, with their flags (:func:`mmrobust.options.option`). Units: ``eps``/``alpha``/``eval_eps`` are
fractions of the pixel range (1/255, not 1); their flags read K/255. Defaults and why: see
:mod:`.config`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options.fields import BUDGET, option
from ..options.run import N_TRAIN_HELP

TRAIN_MODES = ("full", "image", "text", "last-k", "prompt")
TRAIN_MODE_HELP = f"Parameters to train: {', '.join(TRAIN_MODES)} (default: the method's reference choice)."
EPOCHS_HELP = "Fine-tuning epochs: passes over the training images (equal for every method and study cell)."
LR_HELP = "AdamW learning rate (MMCoA's reference 1e-6 for a pretrained ViT-B/32; small proxies need ~1e-4)."
TRAIN_EPS_HELP = "Training PGD L-inf radius: K means K/255, or a fraction like 1/255."
EVAL_ATTACKS = ("none", "pgd")


@dataclass(kw_only=True)
class TrainingOptions:
    train_split: str = option("train", "Split to fine-tune on.")
    eval_split: str | None = option(
        None, "Held-out split scored after each epoch (default: the dataset's test split).")
    epochs: int = option(10, EPOCHS_HELP)
    batch_size: int = option(128, "Global batch size (split over processes under torchrun).", short="-b")
    lr: float = option(1e-6, LR_HELP)
    weight_decay: float = option(0.2, "AdamW weight decay (reference 0.2).")
    betas: tuple[float, float] = option((0.9, 0.98), "AdamW betas (the reference's 0.9, 0.98).", cli=False)
    adam_eps: float = option(1e-6, "AdamW epsilon (the reference's 1e-6).", cli=False)
    grad_clip: float = option(1.0, "Clip the global gradient norm (0 = off).")
    train: str | None = option(None, TRAIN_MODE_HELP, param="train_mode")
    last_k: int = option(4, "With --train last-k: the last K parameter tensors of the image tower.")
    prompt_size: int | None = option(
        None, "With --train prompt: frame width in pixels (default: 30/224 of the input).")
    eps: float = option(1 / 255, TRAIN_EPS_HELP, unit=BUDGET)
    #: None = the one PGD step-size rule (:func:`mmrobust.attacks.options.default_step_size`): 1/255 at 1/255
    alpha: float | None = option(
        None, "Training PGD step size (K/255; default min(eps, max(eps/4, 1/255)), 1/255 at 1/255).", unit=BUDGET)
    steps: int = option(10, "Training PGD steps.")
    attack_random_start: bool = option(True, "Training PGD starts from uniform noise in the ball.", cli=False)
    n_train: int | None = option(None, N_TRAIN_HELP)
    shots: int | None = option(None, "Fine-tune on K images per class (fixed, seeded).")
    n_eval: int | None = option(500, "Held-out images scored after each epoch.")
    eval_attack: str = option("none", f"Also score PGD after each epoch: {' or '.join(EVAL_ATTACKS)}.")
    eval_eps: float | None = option(
        None, "PGD radius for the per-epoch score (K/255; default: --eps).", unit=BUDGET)
    eval_steps: int = option(10, "PGD steps for the per-epoch score.")
    eval_batch_size: int = option(128, "Batch size of the per-epoch held-out score.")
    resume: bool = option(False, "Continue the run in --output-dir from its last checkpoint.")
    checkpoint_every_steps: int = option(
        0, "Also checkpoint every N steps (0 = once per epoch).", flag="--checkpoint-every", param="checkpoint_every")
    keep_checkpoints: int = option(1, "Step checkpoints kept (the newest N).")
