"""The one report schema of mmrobust: every run (CLI, study, demo) writes one JSON file built here.

Modeled on CLIP_benchmark's one-JSON-per-run and RobustBench's ``unreliable`` flag: a report must say
what was measured (model, data, exact images, seed, precision, versions) so that a number can be
reproduced or challenged.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Sequence

from ..data.base import ImageClassificationDataset
from ..data.sampling import indices_sha256
from ..models.base import VisionLanguageModel
from ..utils.environment import environment_versions
from ..utils.files import write_json_atomic

REPORT_VERSION = 1


def new_report(
    *,
    task: str,
    model: VisionLanguageModel,
    dataset: ImageClassificationDataset,
    templates: Sequence[str],
    indices: Sequence[int],
    seed: int,
    batch_size: int,
    device: str,
    precision: str = "fp32",
) -> dict[str, Any]:
    """The provenance part of a report; callers add ``metrics``, ``timings`` and attack sections."""
    return {
        "mmrobust_report_version": REPORT_VERSION,
        "task": task,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model.describe(),
        "dataset": {**dataset.describe(), "classes": list(dataset.classes), "templates": list(templates)},
        "n_samples": len(indices),
        "sampling": {
            "seed": seed,
            "method": "numpy default_rng(seed).choice without replacement, sorted",
            "indices_sha256": indices_sha256(indices),
            "indices": [int(i) for i in indices],
        },
        "seed": seed,
        "precision": precision,
        "batch_size": batch_size,
        "device": device,
        "versions": environment_versions(),
    }


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename): a report is complete or absent."""
    return write_json_atomic(path, report)
