"""Run options every command shares: where the data is, where it runs, which seed, which templates.

Declared once (:func:`~.fields.option`); ``EvalConfig``, ``TrainConfig``, ``StudyOptions`` and ``DemoConfig``
are composed from this group, and every command that takes it gets the same flags, defaults and help.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import option

#: what ``templates=None`` means where prompts become captions (fine-tuning, the studies, the demo)
TRAINING_TEMPLATES = "study"
MODEL_HELP = "Model spec: tiny, proxy:NAME, open_clip:ARCH[:TAG], hf:ID_OR_FOLDER, ckpt:DIR."
DATASET_HELP = "Dataset (see `mmrobust datasets`)."
N_SAMPLES_HELP = "Evaluate a fixed random subset of N images (per dataset; capped at those available)."
N_TRAIN_HELP = "Fine-tune on a fixed random subset of N images (default: all; the studies: 256 per cell)."
SANITY_HELP = "Run the robustness sanity checks (slower; without them results are marked 'unchecked')."
SEEDS_HELP = ("Run once per seed (e.g. 0,1,2; overrides --seed) under OUTPUT_DIR/seed-S, finished seeds reused, and "
              "aggregate: mean ± sd, t interval over seeds, pooled 95 % interval.")


@dataclass(kw_only=True)
class TargetOptions:
    """The model and the dataset of a single run (eval, train)."""

    model: str = option(help=MODEL_HELP, short="-m")
    dataset: str = option(help=DATASET_HELP, short="-d")


@dataclass(kw_only=True)
class RunOptions:
    data_root: str | None = option(None, "Folder holding the dataset files.")
    device: str | None = option(None, "cpu, cuda, cuda:N or mps (default: best available).")
    seed: int = option(0, "Seed of every random choice (sub-sampling, data order, initialisation, augmentation, "
                          "attack noise); recorded.")
    templates: str | None = option(
        None, "Prompt templates: default (the dataset's), study ('This is a photo of a {}'), clip, clip-cifar, "
              "digits, or a file (one per line, {} or {c} for the class name). Default: the dataset's when "
              "evaluating, study for fine-tuning captions and in the studies.")
    precision: str | None = option(
        None, "Attack (and, when fine-tuning, forward/backward) arithmetic: fp32 (default), tf32 (CUDA; a no-op "
              "on CPU), bf16 autocast, or amp (attacks only: fp16 autocast on CUDA, bf16 elsewhere, as TeCoA's and "
              "TGA-ZSR's evaluation code; the dtype is recorded). Scoring stays fp32; a sanity check replays a subset "
              "in fp32.")
    compile: bool = option(False, "torch.compile the model's towers (off by default).")
    progress: bool = option(True, "No progress bars.", flag="--quiet", short="-q", inverted=True, param="quiet")


@dataclass(kw_only=True)
class SeedsOptions:
    """Repeat a whole run once per seed and aggregate (``train --seeds``, every study's ``--seeds``)."""

    #: None: the one ``seed``
    seeds: tuple[int, ...] | None = option(None, SEEDS_HELP, listing=True)


@dataclass(kw_only=True)
class SharingOptions:
    """Several independent jobs (a SLURM job array) on one output folder (benchmark, every study).

    Why a flag and not the default: a folder lock refuses a second run on the same folder, which is what a user
    who started the same command twice by mistake wants; sharing is asked for (:mod:`mmrobust.utils.cells`)."""

    share_output: bool = option(
        False, "Several jobs (a SLURM job array) share the output folder: each cell (and each fine-tune) is claimed by "
               "one job (lock file), none runs twice; a job waits for the cells others hold, then writes the table.")


@dataclass(kw_only=True)
class BudgetOptions:
    """The ceilings of a long command (:mod:`mmrobust.utils.budget`): one switch lifts them all."""

    allow_long_run: bool = option(
        False, "Run even beyond the ceilings: a batch larger than the split, or an estimated run over a week "
               "(one step on the first batch, timed and extrapolated).")
