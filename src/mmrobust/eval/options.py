"""Options of a zero-shot evaluation run (``mmrobust eval`` and ``benchmark``), declared once with their flags."""

from __future__ import annotations

from dataclasses import dataclass

from ..options.fields import option
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
