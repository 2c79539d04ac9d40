"""Options of a zero-shot evaluation run (``mmrobust eval`` and ``benchmark``), declared once with their flags."""

from __future__ import annotations

from dataclasses import dataclass

from ..options.fields import BUDGET, option
from ..options.run import N_SAMPLES_HELP, SANITY_HELP


@dataclass(kw_only=True)
class ExampleOptions:
    """What to keep for a person to look at (``mmrobust report``): eval, benchmark and the studies share it."""

    #: keep the first K attacked examples per attack beside the report (:mod:`.examples`; 0 = none, reports unchanged)
    save_examples: int = option(
        0, "Keep the first K attacked images per attack (PNGs, top-3 before/after, prompt diffs) beside the report, "
           "for `mmrobust report`.")


@dataclass(kw_only=True)
class EvalOptions(ExampleOptions):
    split: str | None = option(None, "Dataset split (default: the dataset's test split).")
    n_samples: int | None = option(None, N_SAMPLES_HELP, short="-n")
    #: evaluate on a deterministic subset of this many classes (k-way task, images of those classes only)
    classes: int | None = option(
        None, "K-way task on a fixed (seeded) subset of K classes and their images.", flag="--n-classes",
        param="n_classes")
    batch_size: int = option(64, "Images per batch.", short="-b")
    #: a file of class names (one per line, line i = label i) replacing the dataset's; None = the dataset's own
    classnames: str | None = option(
        None, "File of class names replacing the dataset's: one per line, line i = label i; the count must match "
              "the dataset's classes.")
    logit_scale: float | None = option(
        None, "Fix the temperature (the study evaluates at 100); default: the model's.")
    resume: bool = option(True, "Continue an interrupted attack run from <output>.state.json.",
                          flag="--resume/--no-resume")
    sanity: bool = option(True, SANITY_HELP, flag="--sanity/--no-sanity")
    #: "cascade" (each attack only on images no earlier attack broke, as AutoAttack) or "each" (standalone)
    ensemble: str = option(
        "cascade", "cascade: each attack only on images no earlier attack broke (as AutoAttack; per-attack "
                   "numbers cumulative); each: every attack on every clean-correct image (standalone numbers). "
                   "Same worst case.")


@dataclass(kw_only=True)
class DefenseOptions:
    """A test-time defense inside the classifier (:mod:`mmrobust.models.test_time`); every attack and sanity check
    then attacks the defended model. The ``ttc_*`` values default (None) to the reference's ``TTC.sh``."""

    test_time_defense: str | None = option(
        None, "Test-time defense run inside the classifier before every prediction, so every attack and sanity "
              "check must defeat it: ttc (Xing et al. CVPR'25 counterattacks). Default: none.")
    ttc_eps: float | None = option(
        None, "TTC counterattack budget, always L-inf K/255 (or a fraction like 4/255). Default: 4.",
        unit=BUDGET, budget_norm="linf")
    ttc_steps: int | None = option(
        None, "TTC counterattack steps (0 = the random start only, as the reference's RN). Default: 2.")
    ttc_alpha: float | None = option(
        None, "TTC step size, always L-inf K/255. Default: 1.", unit=BUDGET, budget_norm="linf")
    ttc_tau: float | None = option(
        None, "TTC tau: only images whose embedding moves by less than tau (relative) under the random start are "
              "counterattacked; the others get the random start alone. Default: 0.2.")
    ttc_beta: float | None = option(
        None, "TTC beta: step k's perturbation weighs exp(beta k) in the result. Default: 2.")
    ttc_gradient: str | None = option(
        None, "How the attacks differentiate the counterattack: detach (a constant shift, straight-through: "
              "non-adaptive, could hide gradient masking), unrolled (the exact gradient through every counterattack "
              "step) or bpda (unrolled, with BPDA for its sign step and tau gate: second order through the image "
              "tower). "
              "Default: detach.")
