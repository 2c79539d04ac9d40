"""A grid of cells across torchrun ranks and across independent jobs sharing one output folder.

One mechanism for the benchmark (:mod:`mmrobust.benchmark.distribute`) and the studies
(:mod:`mmrobust.studies.grid`), kept here so neither imports the other. Two levels (CLIP_benchmark's
``--distributed`` deals whole runs round-robin; this adds the images inside a run when there are fewer cells
than ranks):

* **cells** when there are more cells than ranks: cell ``i`` belongs to rank ``i % W``, computed on that rank
  alone (no collective inside it);
* **images** otherwise: every rank takes part in every cell, whose batches are sharded
  (:mod:`mmrobust.eval.distributed`) — the per-example results are those of one process either way.

Independent jobs (a SLURM job array) pointed at one folder with ``--share-output`` claim each cell through a
lock file beside its result (``.<cell>.json.claim``, ``flock``: released by the kernel if the job dies): a job
skips a cell another job holds, runs the rest, then waits for the skipped ones and reads their results back.
No cell runs twice; a cell whose job died is picked up (and resumed from its state file) by whichever job
waits for it. So every job ends holding every cell, and whatever it writes from them (a table) is complete.

Within one torchrun job the ranks meet in collectives (the gather of dealt cells, the barrier of images mode),
so a rank that waits for another job's cell keeps its own ranks waiting there: a wait longer than the process
group's timeout (torch.distributed's default, 30 min for gloo) ends the job, and its relaunch reuses every
finished cell. Multi-seed studies share one seed's grid at a time (each seed folder is its own grid).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import ReportError
from .distributed import DistributedContext, all_gather_objects
from .files import lock_file

#: the words of a busy claim's error (how a deferred cell is told apart from a real failure)
BUSY = "is being worked on by another job"


def mode(n_cells: int, ctx: DistributedContext) -> str:
    """``"cells"`` (whole cells per rank) when there are more cells than ranks, else ``"images"``."""
    return "cells" if ctx.enabled and n_cells > ctx.world_size else "images"


def my_cells(n_cells: int, ctx: DistributedContext, how: str) -> list[int]:
    """The cell numbers this rank runs (all of them in images mode: the eval inside shards them)."""
    if how == "cells":
        return list(range(ctx.rank, n_cells, ctx.world_size))
    return list(range(n_cells))


def claim_path(cell: Path) -> Path:
    """The claim file of the result at ``cell`` (hidden, beside it)."""
    return cell.with_name(f".{cell.name}.claim")


@contextlib.contextmanager
def claim(cell: Path, shared: bool, wait: Callable[[str], None] | None = None, what: str = "cell") -> Iterator[None]:
    """Hold the claim on ``cell`` while its work runs (no-op unless the folder is shared); busy and ``wait=None``:
    :class:`ReportError` (the caller defers the cell); with ``wait``: block until the holder is done."""
    if not shared:
        yield
        return
    with lock_file(claim_path(cell), f"{what} {cell.name} {BUSY}", wait):
        yield


def waiting(say: Callable[[str], None]) -> Callable[[str], None]:
    """The ``wait`` callback of :func:`claim` that says what the job waits for."""
    return lambda message: say(f"waiting: {message}")


@contextlib.contextmanager
def hold(path: Path, shared: bool, say: Callable[[str], None], ctx: DistributedContext | None = None,
         what: str = "cell") -> Iterator[None]:
    """Wait for, then hold, the claim on ``path`` (work that must not be done twice, e.g. a fine-tune several
    cells evaluate). ``ctx``: a torchrun job whose ranks do the work together: rank 0 holds the claim and the
    others wait at a barrier until it does, so that every rank then finds the work done, or not, alike."""
    together = ctx is not None and ctx.enabled
    with claim(path, shared and (not together or ctx.is_main), wait=waiting(say), what=what):
        if shared and together:
            ctx.barrier()
        yield


def run_claimed(cells: Sequence[int], path_of: Callable[[int], Path], run: Callable[[int], Any], shared: bool,
                say: Callable[[str], None], ctx: DistributedContext | None = None, how: str = "cells") -> dict[int, Any]:
    """``run(i)`` for every cell under its claim; cells busy in another job are run (read back) last, waiting.

    In images mode every rank of the job enters every cell together, so only rank 0 claims, and waits rather
    than defers (the ranks must not disagree on the order of cells); the others wait at a barrier until it
    holds the claim, so that all of them then find the cell finished (read back) or not (computed) alike.
    """
    if ctx is not None and ctx.enabled and how == "images":
        return _run_together(cells, path_of, run, shared, say, ctx)
    results: dict[int, Any] = {}
    deferred = []
    for i in cells:
        try:
            with claim(path_of(i), shared):
                results[i] = run(i)
        except ReportError as exc:
            if BUSY not in str(exc):
                raise
            deferred.append(i)
    for i in deferred:  # the other job finishes it (then run() reuses it) or dies (then run() resumes it)
        with claim(path_of(i), shared, wait=waiting(say)):
            results[i] = run(i)
    return results


def _run_together(cells: Sequence[int], path_of: Callable[[int], Path], run: Callable[[int], Any], shared: bool,
                  say: Callable[[str], None], ctx: DistributedContext) -> dict[int, Any]:
    results: dict[int, Any] = {}
    for i in cells:
        with hold(path_of(i), shared, say, ctx):
            results[i] = run(i)
    return results


def gather_all(local: dict[int, Any], n_cells: int, ctx: DistributedContext, how: str) -> list[Any]:
    """Every cell's result in cell order, on every rank (images mode: each rank already holds them all)."""
    if how != "cells":
        return [local[i] for i in range(n_cells)]
    merged: dict[int, Any] = {}
    for piece in all_gather_objects(local, ctx):
        merged.update(piece)
    return [merged[i] for i in range(n_cells)]
