"""Defenses: adversarial fine-tuning of CLIP-style models (MMCoA, TeCoA, FARE, PMG-AFT, text-AT, clean).

``train(TrainConfig(model="proxy:digits", method="mmcoa", dataset="digits", output_dir="runs/mmcoa"))``
fine-tunes and writes ``runs/mmcoa/final`` (load it with ``--model ckpt:runs/mmcoa/final``), a per-epoch
``log.jsonl`` and ``report.json``. Layout: ``objectives/`` one module per method, ``trainer`` the loop,
``param_selection`` / ``visual_prompt`` what is trained, ``checkpointing`` resume, ``distributed`` torchrun.
"""

from .config import METHODS, TRAIN_MODES, TrainConfig, parse_eps
from .objectives import OBJECTIVES
from .trainer import StepInfo, Trainer, train

__all__ = ["METHODS", "OBJECTIVES", "TRAIN_MODES", "StepInfo", "TrainConfig", "Trainer", "parse_eps", "train"]
