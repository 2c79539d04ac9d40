"""A study is a grid of cells; each finished cell is one JSON file, so an interrupted study resumes.

A cell file is written atomically after its work is done and carries the hash of everything the cell's
numbers depend on. On the next invocation a cell whose file exists *and* whose hash matches is read back
instead of recomputed; a changed option changes the hash and the cell is recomputed (its file replaced).

The same files make a grid shareable (:mod:`mmrobust.utils.cells`): under torchrun with more cells than ranks
each rank computes (and writes) its own cells, else all ranks compute every cell together and rank 0 writes
it; independent jobs on one folder (``shared``) claim each cell, and each ends holding every cell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from ..errors import ConfigError
from ..utils.cells import gather_all, mode, my_cells, run_claimed
from ..utils.distributed import DistributedContext
from ..utils.environment import environment_versions
from ..utils.records import config_hash, matching_record, slug, write_record

__all__ = ["Cell", "CellRecord", "CellStore", "GridOutcome", "config_hash", "run_grid", "slug"]

CELL_FORMAT = "mmrobust-study-cell"


@dataclass
class Cell:
    """One point of a study's grid: a file-safe ``key`` and the parameters that distinguish it."""

    key: str
    params: dict[str, Any]
    #: the model spec (as the user typed it) whose pinned weights the cell starts from
    model: str


@dataclass
class CellRecord:
    """A finished cell: its parameters, result and whether it was read back from disk."""

    cell: Cell
    result: dict[str, Any]
    config_hash: str
    seconds: float
    reused: bool


@dataclass
class GridOutcome:
    records: list[CellRecord] = field(default_factory=list)
    #: the OOD benchmark of a fine-tuning study's rows (folder, datasets, missing), when ``--ood-dataset`` ran
    ood: dict[str, Any] | None = None

    @property
    def n_reused(self) -> int:
        return sum(r.reused for r in self.records)

    @property
    def n_run(self) -> int:
        return sum(not r.reused for r in self.records)


class CellStore:
    """``DIR/cells/<key>.json`` files: read back when the hash matches, written atomically when done."""

    def __init__(self, folder: Path, check: Callable[[dict[str, Any]], str | None] | None = None) -> None:
        self.folder = Path(folder)
        #: what is wrong with a saved result (None when fine): a hand-edited cell is refused, not tabulated
        self.check = check

    def path(self, cell: Cell) -> Path:
        return self.folder / f"{cell.key}.json"

    def load(self, cell: Cell, digest: str) -> dict[str, Any] | None:
        """The saved record if it is complete and made with the same config; None otherwise."""
        path = self.path(cell)
        record = matching_record(path, digest,
                                 lambda r: r.get("config_hash") if r.get("format") == CELL_FORMAT else None)
        if record is None:
            return None
        if not isinstance(record.get("result"), dict):
            return None
        problem = self.check(record["result"]) if self.check is not None else None
        if problem is not None:
            raise ConfigError(f"study cell {path} is damaged or hand-edited ({problem}); delete it to recompute "
                              "that cell")
        return record

    def save(self, cell: Cell, digest: str, config: dict[str, Any], result: dict[str, Any], seconds: float) -> None:
        write_record(self.path(cell), {
            "format": CELL_FORMAT,
            "key": cell.key,
            "model": cell.model,
            "params": cell.params,
            "config_hash": digest,
            "config": config,
            "result": result,
            "seconds": round(seconds, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": environment_versions(),
        })


def run_grid(
    cells: Sequence[Cell],
    cell_config: Callable[[Cell], dict[str, Any]],
    compute: Callable[[Cell, str], dict[str, Any]],
    store: CellStore,
    *,
    desc: str,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    job: DistributedContext | None = None,
    shared: bool = False,
) -> GridOutcome:
    """Compute every cell not already on disk (``compute(cell, digest) -> result``); every cell's record, in
    order, on every rank of ``job`` (torchrun; None: one process). ``shared``: other jobs work on the same
    folder (cells are claimed; this returns once every cell exists)."""
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate cell keys in {keys}")  # a programming error in a study, not user input
    job = job or DistributedContext()
    how = mode(len(cells), job)
    writes = how == "cells" or job.is_main  # a dealt cell is its rank's alone; a shared one rank 0's to write
    bar = tqdm(total=len(cells), desc=desc, unit="cell", disable=not progress)

    def one(i: int) -> CellRecord:
        bar.set_postfix_str(cells[i].key)
        record = _cell(cells[i], cell_config, compute, store, echo, writes)
        bar.update(1)
        return record

    try:
        local = run_claimed(my_cells(len(cells), job, how), lambda i: store.path(cells[i]), one, shared,
                            echo or (lambda text: None), job, how)
    finally:
        bar.close()
    return GridOutcome(records=gather_all(local, len(cells), job, how))


def _cell(cell: Cell, cell_config: Callable[[Cell], dict[str, Any]], compute: Callable[[Cell, str], dict[str, Any]],
          store: CellStore, echo: Callable[[str], None] | None, writes: bool) -> CellRecord:
    """One cell: read back when finished with the same hash, else computed (and saved when ``writes``)."""
    config = cell_config(cell)
    digest = config_hash(config)
    saved = store.load(cell, digest)
    if saved is not None:
        return CellRecord(cell, saved["result"], digest, float(saved.get("seconds", 0.0)), True)
    if echo is not None and store.path(cell).exists():
        echo(f"[{cell.key}] saved cell was made with other options; recomputing")
    start = time.perf_counter()
    result = compute(cell, digest)
    seconds = time.perf_counter() - start
    if writes:
        store.save(cell, digest, config, result, seconds)
    return CellRecord(cell, result, digest, seconds, False)
