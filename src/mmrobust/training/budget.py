"""A fine-tune's planned work (epochs × steps per epoch × attack steps) and its ceilings (:mod:`mmrobust.utils.budget`).

Why measured here: the cost of one step depends on the model, the device and the batch, all known only once
the trainer is set up; one image-tower forward and backward on the first batch is timed and extrapolated to
every remaining update (each: the attack's steps plus the update's own pass).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..utils.budget import Plan, check_batch_size, check_estimate, plural, time_step


def train_plan(config: Any, steps_per_epoch: int) -> Plan:
    """``3 epochs × 4 steps per epoch × 10 attack steps = 120 attack steps``."""
    return Plan(((config.epochs, plural(config.epochs, "epoch")),
                 (steps_per_epoch, plural(steps_per_epoch, "step") + " per epoch"),
                 (config.steps, plural(config.steps, "attack step"))), "attack steps")


def check_train_split(config: Any, train_set: Any) -> None:
    """A global batch larger than the training split is refused (unless ``allow_long_run``)."""
    check_batch_size(config.batch_size, len(train_set), f"{train_set.name}/{train_set.split}", config.allow_long_run)


def check_train_budget(config: Any, model: Any, images: torch.Tensor, remaining_updates: int,
                       average: Callable[[float], float] = float) -> None:
    """Time one forward-backward pass on the first batch and refuse a fine-tune estimated at over a week.

    ``average``: the ranks' mean of a float under torchrun, so every rank takes the same decision (one rank
    stopping alone would leave the others waiting in their next all-reduce)."""
    if config.allow_long_run or remaining_updates <= 0:
        return

    def one_pass() -> None:
        x = images.clone().requires_grad_(True)
        torch.autograd.grad(model.encode_image(x).float().square().sum(), x)  # no parameter's .grad is touched

    check_estimate(average(time_step(one_pass)), remaining_updates * (config.steps + 1),
                   ("forward-backward passes", f"one timed on the first batch of {len(images):,} images"),
                   False, ("--steps", "--epochs"))


def plan_and_check(trainer: Any, position: Any) -> None:
    """Announce the trainer's planned work; refuse a run estimated (on its first batch) at over a week.

    ``position``: where training starts (a resumed run plans only what is left)."""
    from ..utils.distributed import all_reduce_sum
    from .batching import epoch_order, global_batches, shard

    cfg, dist = trainer.config, trainer.dist
    batches = global_batches(epoch_order(trainer.train_indices, cfg.seed, min(position.epoch, cfg.epochs - 1)),
                             cfg.batch_size, dist.world_size)
    if trainer.announce is not None and dist.is_main:
        trainer.announce(train_plan(cfg, len(batches)).line())
    remaining = (cfg.epochs - position.epoch) * len(batches) - position.step_in_epoch
    if remaining > 0 and not cfg.allow_long_run:
        images, _ = trainer._load_batch(shard(batches[0], dist.rank, dist.world_size))
        check_train_budget(cfg, trainer.model, images, remaining,
                           lambda s: all_reduce_sum([s], dist)[0] / dist.world_size)
