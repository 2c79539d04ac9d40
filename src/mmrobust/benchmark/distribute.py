"""Benchmark cells across torchrun ranks and across independent jobs sharing one output folder.

Two levels, as the issue asks (CLIP_benchmark's ``--distributed`` deals whole runs round-robin; this adds the
images inside a run when there are fewer cells than ranks):

* **cells** when there are more cells than ranks: cell ``i`` belongs to rank ``i % W``, evaluated on that rank
  alone (no collective inside it);
* **images** otherwise: every rank takes part in every cell, whose batches are sharded
  (:mod:`mmrobust.eval.distributed`) — the per-example results are those of one process either way.

Independent jobs (a SLURM job array) pointed at one folder with ``--share-output`` claim each cell through a
lock file beside it (``cells/.<cell>.json.claim``, ``flock``: released by the kernel if the job dies): a job
skips a cell another job holds, runs the rest, then waits for the skipped ones and reads their reports. No
cell runs twice; a cell whose job died is picked up (and resumed from its state file) by whichever job
waits for it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import ReportError
from ..eval.distributed import all_gather_objects, eval_context
from ..utils.distributed import DistributedContext
from ..utils.files import lock_file


def benchmark_context(device: str | None) -> DistributedContext:
    """torchrun's job for the benchmark as a whole (one process outside torchrun)."""
    return eval_context(device)


def mode(n_cells: int, ctx: DistributedContext) -> str:
    """``"cells"`` (whole cells per rank) when there are more cells than ranks, else ``"images"``."""
    return "cells" if ctx.enabled and n_cells > ctx.world_size else "images"


def my_cells(n_cells: int, ctx: DistributedContext, how: str) -> list[int]:
    """The cell numbers this rank runs (all of them in images mode: the eval inside shards them)."""
    if how == "cells":
        return list(range(ctx.rank, n_cells, ctx.world_size))
    return list(range(n_cells))


def claim_path(cell: Path) -> Path:
    return cell.with_name(f".{cell.name}.claim")


@contextlib.contextmanager
def claim(cell: Path, shared: bool, wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the cell's claim while it runs (no-op unless the folder is shared); busy and ``wait=None``:
    :class:`ReportError` (the caller defers the cell)."""
    if not shared:
        yield
        return
    with lock_file(claim_path(cell), f"cell {cell.name} is being run by another job", wait):
        yield


def run_claimed(cells: Sequence[int], path_of: Callable[[int], Path], run: Callable[[int], Any], shared: bool,
                say: Callable[[str], None], ctx: DistributedContext | None = None, how: str = "cells") -> dict[int, Any]:
    """``run(i)`` for every cell under its claim; cells busy in another job are run (read back) last, waiting.

    In images mode every rank of the job enters every cell together, so only rank 0 claims, and waits rather
    than defers (the ranks must not disagree on the order of cells).
    """
    results: dict[int, Any] = {}
    if ctx is not None and ctx.enabled and how == "images":
        for i in cells:
            with claim(path_of(i), shared and ctx.is_main, wait=lambda message: say(f"waiting: {message}")):
                results[i] = run(i)
        return results
    deferred = []
    for i in cells:
        try:
            with claim(path_of(i), shared):
                results[i] = run(i)
        except ReportError as exc:
            if "being run by another job" not in str(exc):
                raise
            deferred.append(i)
    for i in deferred:  # the other job finishes it (then run() reuses its report) or dies (then run() resumes it)
        with claim(path_of(i), shared, wait=lambda message: say(f"waiting: {message}")):
            results[i] = run(i)
    return results


def gather_results(local: dict[int, Any], n_cells: int, ctx: DistributedContext, how: str) -> list[Any] | None:
    """Every cell's result in cell order on rank 0 (None on the others); images mode: rank 0's own."""
    if how != "cells":
        return [local[i] for i in range(n_cells)] if ctx.is_main else None
    pieces = all_gather_objects(local, ctx)
    if not ctx.is_main:
        return None
    merged: dict[int, Any] = {}
    for piece in pieces:
        merged.update(piece)
    return [merged[i] for i in range(n_cells)]
