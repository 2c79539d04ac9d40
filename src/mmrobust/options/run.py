"""Run options every command shares: where the data is, where it runs, which seed, which templates.

Declared once (:func:`~.fields.option`); ``EvalConfig``, ``TrainConfig``, ``StudyOptions`` and ``DemoConfig``
are composed from this group, and every command that takes it gets the same flags, defaults and help.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import option

#: what ``templates=None`` means where prompts become captions (fine-tuning, the studies, the demo)
TRAINING_TEMPLATES = "study"


@dataclass(kw_only=True)
class RunOptions:
    data_root: str | None = option(None, "Folder holding the dataset files.")
    device: str | None = option(None, "cpu, cuda, cuda:N or mps (default: best available).")
    seed: int = option(0, "Seed for sub-sampling, data order and every attack's randomness; recorded.")
    templates: str | None = option(
        None, "Prompt templates: default (the dataset's), study ('This is a photo of a {}'), clip, clip-cifar, "
              "digits, or a file (one per line, {} or {c} for the class name). Default: the dataset's when "
              "evaluating, study for fine-tuning captions and in the studies.")
    precision: str | None = option(
        None, "Attack (and, when fine-tuning, forward/backward) arithmetic: fp32 (default), tf32 (CUDA; a no-op "
              "on CPU) or bf16 autocast. Scoring stays fp32; a sanity check replays a subset in fp32.")
    compile: bool = option(False, "torch.compile the model's towers (off by default).")
    progress: bool = option(True, "No progress bars.", flag="--quiet", short="-q", inverted=True, param="quiet")
