"""Data-parallel training and sharded evaluation with ``torch.distributed`` (torchrun; gloo on CPU, NCCL on GPU).

Why explicit gradient averaging instead of wrapping the model in ``DistributedDataParallel``: the objectives
call ``encode_image`` / ``encode_text`` several times per step (clean and adversarial images, class prompts,
captions) rather than one ``forward()``, and DDP's reducer is tied to ``forward``. One flat all-reduce per step
after ``backward()`` is what DDP computes, without that coupling. Each rank sees a contiguous slice of the
global batch and scales its loss by its share, so the averaged gradient equals the single-process gradient of
the global batch for per-example losses (clean, TeCoA, FARE, PMG-AFT). Contrastive objectives (MMCoA,
text-AT) use in-rank negatives, as open_clip does without ``--gather-with-grad``; with ``--gather-with-grad``
(:mod:`.gather`) they contrast the global batch and every rank's loss is the global one.
Sharded *evaluation* lives in :mod:`mmrobust.eval.distributed` (it reuses :func:`setup_distributed`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError
from .device import resolve_device


@dataclass
class DistributedContext:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Tear down the process group if this context created it."""
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


def setup_distributed(device_name: str | None = None) -> DistributedContext:
    """Join the job torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT).

    Without WORLD_SIZE > 1 this is a plain single process on ``device_name``. With CUDA each rank takes
    ``cuda:LOCAL_RANK`` and NCCL; otherwise gloo on the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=resolve_device(device_name))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    base = resolve_device(device_name)
    if base.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif base.type == "cpu":
        device, backend = base, "gloo"
    else:
        raise ConfigError(f"data-parallel training supports cuda (NCCL) and cpu (gloo), not {base.type}")
    initialized_here = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        initialized_here = True
    return DistributedContext(rank, world_size, local_rank, device, initialized_here)


def all_gather_objects(value: Any, ctx: DistributedContext) -> list[Any]:
    """Every rank's ``value``, in rank order (pickled; for small objects: reports, a grid's cell results)."""
    if not ctx.enabled:
        return [value]
    pieces: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(pieces, value)
    return pieces


def broadcast_parameters(params: Sequence[torch.nn.Parameter], ctx: DistributedContext) -> None:
    """Make every rank start from rank 0's weights (guards against any per-process initialisation)."""
    if not ctx.enabled:
        return
    with torch.no_grad():
        for param in params:
            dist.broadcast(param.data, src=0)


def average_gradients(params: Sequence[torch.nn.Parameter], ctx: DistributedContext) -> None:
    """All-reduce the gradients of ``params`` in one flat buffer and divide by the world size."""
    if not ctx.enabled:
        return
    grads = []
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        grads.append(param.grad)
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for grad in grads:
        n = grad.numel()
        grad.copy_(flat[offset : offset + n].view_as(grad))
        offset += n


def all_reduce_sum(values: Sequence[float], ctx: DistributedContext) -> list[float]:
    """Sum a few floats over ranks (loss logging)."""
    if not ctx.enabled:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def gather_sharded(local: np.ndarray, ctx: DistributedContext) -> np.ndarray:
    """Reassemble per-example results of a strided shard (rank r holds items r, r + W, ...) in order."""
    if not ctx.enabled:
        return local
    pieces: list[np.ndarray | None] = [None] * ctx.world_size
    dist.all_gather_object(pieces, local)
    total = sum(len(p) for p in pieces if p is not None)
    out = np.empty(total, dtype=local.dtype)
    for rank, piece in enumerate(pieces):
        out[rank :: ctx.world_size] = piece
    return out


def shard_strided(items: Sequence[int], ctx: DistributedContext) -> list[int]:
    """Rank r's evaluation items: r, r + W, r + 2W, ... (balanced, reassembled by :func:`gather_sharded`)."""
    return list(items[ctx.rank :: ctx.world_size])
