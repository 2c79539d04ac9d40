"""One (model, dataset) cell = one normal eval report, reused when finished with the same configuration.

Why whole reports: a cell is then inspectable and re-plottable like any ``mmrobust eval`` output, and a
killed benchmark loses at most one batch: finished cells are reused (their stored key matches), the
unfinished one resumes from eval's own per-batch state file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from ..eval.resume import config_hash
from ..utils.records import matching_record, slug
from ..eval.run import EvalConfig, run_evaluation
from ..models.base import VisionLanguageModel
from ..eval.report import write_report

CELLS_DIR = "cells"
#: EvalConfig fields that do not change a cell's numbers
_NOT_IN_KEY = {"output", "progress", "resume", "allow_long_run"}


def cell_path(out_dir: Path, model: str, dataset_item: str, protocol: str | None = None) -> Path:
    """``cells/MODEL__DATASET.json``; with several ``--preset`` protocols ``cells/MODEL__DATASET__PRESET.json``
    (the preset is in the cell key too: it is a field of the cell's EvalConfig)."""
    suffix = f"__{slug(protocol)}" if protocol else ""
    return out_dir / CELLS_DIR / f"{slug(model)}__{slug(dataset_item)}{suffix}.json"


def cell_key(config: EvalConfig) -> str:
    """Hash of everything that determines the cell's numbers. Unset (None) fields are left out, so an option
    added later (whose unset value means "as before") keeps every finished cell's key."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_IN_KEY and v is not None}
    return config_hash(fields)


def finished_cell(path: Path, key: str) -> dict[str, Any] | None:
    """The stored report if it was written by a finished run with the same key."""
    return matching_record(path, key, lambda report: (report.get("benchmark_cell") or {}).get("key"))


def run_cell(config: EvalConfig, path: Path, model: VisionLanguageModel, item: str,
             shard: bool = True, announce: Callable[[str], None] | None = None) -> tuple[dict[str, Any], bool]:
    """(report, reused): reuse a finished cell, else evaluate (resuming any interrupted run) and store it.

    ``shard=False``: this process evaluates the whole cell even under torchrun (cells dealt across ranks).
    ``announce``: the cell's plan and its estimate timed on the first batch (``run_evaluation``'s lines).
    """
    from ..eval.distributed import is_main_process

    key = cell_key(config)
    report = finished_cell(path, key)
    if report is not None:
        return report, True
    local: dict[str, Any] = {} if shard else {"shard": False}  # the default call stays the plain one
    if announce is not None:
        local["announce"] = announce
    report = run_evaluation(dataclasses.replace(config, output=str(path)), model=model, **local)
    report["benchmark_cell"] = {"key": key, "item": item, "dataset_spec": config.dataset}
    if not shard or is_main_process():
        write_report(path, report)
    return report, False
