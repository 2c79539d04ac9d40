"""Sharded evaluation under ``torchrun``: each rank attacks whole batches, rank 0 writes the report.

Why whole batches, dealt round-robin (global batch ``g`` to rank ``g % W``): every batch then holds exactly the
images, positions and dataset indices it holds in one process, so the per-batch seeding of the global RNGs
(:func:`mmrobust.attacks.protocol.batch_seed`, keyed by the batch's *global* position), the per-example random
streams (keyed by (seed, dataset index, attack), :mod:`mmrobust.attacks.image.streams`) and even the
batch-shaped floating point of the forward passes are those of the single-process run. The per-example results
are therefore identical at every world size, not merely equal in distribution. CLIP_benchmark's
``--distributed`` spreads whole (model, dataset) runs; this shards the images inside one run.

* Text attacks on the class prompts run once, on rank 0 (their :meth:`state_dict` runs the search), and reach
  the other ranks by broadcast, through the same ``load_state_dict`` path a resumed run takes.
* Each rank keeps its own resume state (``<report>.rank-R-of-W.state.json``): after a ``kill -9`` of one rank
  (torchrun then stops the others) a relaunch continues every shard after its last finished batch.
* The ranks' states are gathered into the state one process would have built; rank 0 alone runs the sanity
  checks on it and writes the report.

The process group comes from torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR/PORT``; SLURM via ``srun torchrun``) through :func:`mmrobust.utils.distributed.setup_distributed`:
gloo on the CPU, NCCL with CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np
import torch.distributed as dist

from ..utils.distributed import DistributedContext, all_gather_objects, setup_distributed
from .resume import EvalState, state_path_for

T = TypeVar("T")


def env_world_size() -> int:
    """The world size torchrun announces (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    """This process's rank as torchrun announces it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0")) if env_world_size() > 1 else 0


def is_main_process() -> bool:
    """True on rank 0 (and in a plain single process): the one that writes reports, tables and plots."""
    return env_rank() == 0


def main_only(path: T, shard: bool = True) -> T | None:
    """``path`` on rank 0, None on the others (so only rank 0 locks and writes a shared output); ``shard=False``:
    ``path`` (the output is this rank's alone)."""
    return path if is_main_process() or not shard else None


def eval_context(device_name: str | None, shard: bool = True) -> DistributedContext:
    """Join torchrun's job (or stay a single process) on ``device_name``; ``shard=False``: this rank's device
    as a job of one (a benchmark that deals whole cells to ranks evaluates each cell alone)."""
    ctx = setup_distributed(device_name)
    return ctx if shard else DistributedContext(device=ctx.device)


@dataclass(frozen=True)
class Shard:
    """Which whole batches of a run's index list this rank evaluates (global batch g -> rank g % W)."""

    rank: int
    world_size: int
    batch_size: int
    n_total: int

    @classmethod
    def of(cls, ctx: DistributedContext, batch_size: int, n_total: int) -> "Shard":
        return cls(ctx.rank, ctx.world_size, int(batch_size), int(n_total))

    @property
    def n_batches(self) -> int:
        return -(-self.n_total // self.batch_size)

    def batches(self) -> list[int]:
        """Global batch numbers of this rank, in order."""
        return list(range(self.rank, self.n_batches, self.world_size))

    def spans(self) -> list[tuple[int, int]]:
        """(start, stop) global positions of this rank's batches."""
        return [(b * self.batch_size, min((b + 1) * self.batch_size, self.n_total)) for b in self.batches()]

    def indices(self, indices: Sequence[int]) -> list[int]:
        """This rank's dataset indices, its batches concatenated (every batch but the global last is full)."""
        return [int(i) for a, b in self.spans() for i in indices[a:b]]

    def global_position(self, local_position: int) -> int:
        """The global position of a local batch start (local batch k is global batch k * W + rank)."""
        k = local_position // self.batch_size
        return (k * self.world_size + self.rank) * self.batch_size

    def state_path(self, output: str | Path, suffix: str = ".state.json") -> Path:
        """This shard's resume state beside the report (one file per rank and world size; one process: the
        usual ``<report>.state.json``, or ``suffix``)."""
        if self.world_size == 1:
            return state_path_for(output) if suffix == ".state.json" else Path(output).with_name(Path(output).name + suffix)
        return Path(output).with_name(f"{Path(output).name}.rank-{self.rank}-of-{self.world_size}{suffix}")

    def local_batch(self, b: int) -> tuple[int, int, int]:
        """(rank, local start, size) of global batch ``b``."""
        size = min(self.batch_size, self.n_total - b * self.batch_size)
        return b % self.world_size, (b // self.world_size) * self.batch_size, size

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "sharding": "whole batches, global batch g on rank g % world_size",
                "batches_per_rank": [len(range(r, self.n_batches, self.world_size)) for r in range(self.world_size)]}


def broadcast_object(value: T, ctx: DistributedContext, src: int = 0) -> T:
    """``value`` of rank ``src`` on every rank (pickled; for small objects: attack states, reports)."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_batches(local: np.ndarray, shard: Shard, ctx: DistributedContext) -> np.ndarray:
    """Per-example values of this rank's batches reassembled into the global order on every rank."""
    if not ctx.enabled:
        return local
    pieces = all_gather_objects(np.asarray(local), ctx)
    parts = []
    for b in range(shard.n_batches):
        rank, k = b % shard.world_size, b // shard.world_size
        a = k * shard.batch_size
        size = min(shard.batch_size, shard.n_total - b * shard.batch_size)
        parts.append(pieces[rank][a : a + size])
    return np.concatenate(parts) if parts else np.asarray(local)


def merge_states(states: Sequence[EvalState], shard: Shard, digest: str) -> EvalState:
    """The state one process would have built from the ranks' finished states (in global batch order).

    Per-example lists interleave by batch; counters (queries, ball checks) are sums of integers and maxima,
    so they are exact whatever the order; seconds are summed over ranks (compute time, not wall time).
    """
    merged = EvalState(config_hash=digest, next_position=shard.n_total)
    names = list(states[0].attack_correct) if states else []
    for b in range(shard.n_batches):
        state = states[b % shard.world_size]
        a = (b // shard.world_size) * shard.batch_size
        size = min(shard.batch_size, shard.n_total - b * shard.batch_size)
        merged.labels.extend(state.labels[a : a + size])
        merged.clean_correct.extend(state.clean_correct[a : a + size])
        for name in names:
            merged.attack_correct.setdefault(name, []).extend(state.attack_correct.get(name, [])[a : a + size])
    for state in states:
        for name, extra in state.attack_extra.items():
            block = merged.attack_extra.setdefault(name, {})
            for key, value in extra.items():
                block[key] = block.get(key, 0.0) + float(value)
        for name, seconds in state.attack_seconds.items():
            merged.attack_seconds[name] = merged.attack_seconds.get(name, 0.0) + seconds
        for name, check in state.ball_checks.items():
            total = merged.ball_checks.get(name)
            if total is None:
                merged.ball_checks[name] = dict(check)
                continue
            for key in ("n_checked", "n_out_of_box", "n_outside_ball"):
                total[key] = total.get(key, 0.0) + check[key]
            total["max_norm"] = max(total.get("max_norm", 0.0), check["max_norm"])
        merged.clean_seconds += state.clean_seconds
    merged.attack_states = dict(states[0].attack_states) if states else {}
    resumed = [s.resumed_from for s in states if s.resumed_from is not None]
    merged.resumed_from = min(resumed) if resumed else None
    return merged


def gather_state(state: EvalState, shard: Shard, ctx: DistributedContext) -> EvalState:
    """Every rank's finished state merged (:func:`merge_states`), on every rank."""
    if not ctx.enabled:
        return state
    return merge_states(all_gather_objects(state, ctx), shard, state.config_hash)


def share_attack_states(state: EvalState, attacks: Sequence[Any], ctx_attack: Any, ctx: DistributedContext) -> None:
    """Rank 0 prepares the attacks (text attacks search the prompts once); the others restore its results.

    Rank 0's ``attack_states`` then stand in every rank's state, exactly as on a resume, so no rank repeats
    a text attack and all score against the same adversarial prompts.
    """
    from .robust import prepare_attacks

    if ctx.is_main:
        prepare_attacks(attacks, ctx_attack, state)
    shared = broadcast_object(state.attack_states if ctx.is_main else None, ctx)
    if not ctx.is_main:
        state.attack_states = dict(shared)
        prepare_attacks(attacks, ctx_attack, state)


def gather_retrieval_state(state: Any, shard: Shard, ctx: DistributedContext) -> Any:
    """A retrieval run's per-batch embeddings of every rank, in global batch order (on every rank).

    Each rank's state lists one tensor per finished batch of its shard; batch ``k`` of rank ``r`` is global
    batch ``k * W + r``. Counters are sums of integers and maxima (exact in any order).
    """
    if not ctx.enabled:
        return state
    from .retrieval_state import AttackProgress, RetrievalState

    states = all_gather_objects(state, ctx)
    merged = RetrievalState(state.config_hash, shard.n_total)
    order = [(b % shard.world_size, b // shard.world_size) for b in range(shard.n_batches)]
    merged.clean_images = [states[r].clean_images[k] for r, k in order]
    for name in state.attacks:
        progress = AttackProgress()
        progress.image_embeddings = [states[r].attacks[name].image_embeddings[k] for r, k in order]
        progress.text_embeddings = [states[r].attacks[name].text_embeddings[k] for r, k in order]
        for other in states:
            mine = other.attacks[name]
            for key, value in mine.extra.items():
                progress.extra[key] = progress.extra.get(key, 0.0) + float(value)
            if mine.ball:
                ball = progress.ball
                progress.ball = {k: ball.get(k, 0.0) + mine.ball[k] for k in ("n_checked", "n_out_of_box", "n_outside_ball")}
                progress.ball["max_norm"] = max(ball.get("max_norm", 0.0), mine.ball["max_norm"])
            progress.seconds += mine.seconds
        merged.attacks[name] = progress
    resumed = [s.resumed_from for s in states if s.resumed_from is not None]
    merged.resumed_from = min(resumed) if resumed else None
    return merged
