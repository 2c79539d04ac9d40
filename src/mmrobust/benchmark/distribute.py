"""Benchmark cells across torchrun ranks and across independent jobs sharing one output folder.

The mechanism is :mod:`mmrobust.utils.cells` (shared with the studies): more cells than ranks deals whole
cells (cell ``i`` on rank ``i % W``), else every rank takes part in every cell with its images sharded;
independent jobs with ``--share-output`` claim each cell (``cells/.<cell>.json.claim``, ``flock``), skip the
cells others hold, then wait for them and read their reports. Every job then writes the same tables.
"""

from __future__ import annotations

from typing import Any

from ..eval.distributed import eval_context
from ..utils.cells import claim, claim_path, gather_all, mode, my_cells, run_claimed
from ..utils.distributed import DistributedContext

__all__ = ["benchmark_context", "claim", "claim_path", "gather_results", "mode", "my_cells", "run_claimed"]


def benchmark_context(device: str | None) -> DistributedContext:
    """torchrun's job for the benchmark as a whole (one process outside torchrun)."""
    return eval_context(device)


def gather_results(local: dict[int, Any], n_cells: int, ctx: DistributedContext, how: str) -> list[Any] | None:
    """Every cell's result in cell order on rank 0 (None on the others: rank 0 writes the tables)."""
    results = gather_all(local, n_cells, ctx, how)
    return results if ctx.is_main else None
