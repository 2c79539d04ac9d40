"""The fine-tuning loop shared by every defense: data order, attacks, update, checks, checkpoints, logs.

One step: load this rank's slice of the global batch -> the objective crafts adversarial inputs -> every
parameter gradient is cleared -> the objective's loss is checked for NaN/inf and back-propagated ->
gradients are averaged over ranks and clipped -> AdamW step. The model stays in eval mode throughout:
CLIP's towers have no dropout or batch norm, and for towers that do (the proxies' CNNs) adversarial batch
statistics would drift the running averages and make a data-parallel run differ from a single process.

Everything random is a function of the run's seed and the step's position (epoch order, attack noise),
so a run killed at any point and resumed from its last checkpoint ends with the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import load_dataset, resolve_templates, subsample_indices
from ..data.base import ImageClassificationDataset
from ..data.loader import iterate_index_batches
from ..errors import ConfigError, NumericalError
from ..models.zeroshot import build_prompts
from ..models import load_model
from ..models.base import VisionLanguageModel
from ..utils.compile import compile_towers
from ..utils.files import output_lock
from ..utils.precision import precision_context
from ..utils.seeding import seed_everything
from .batching import epoch_order, global_batches, shard, training_indices
from .checkpointing import (
    Position,
    model_fingerprint,
)
from .config import TrainConfig
from ..utils.distributed import (
    DistributedContext,
    all_reduce_sum,
    average_gradients,
    broadcast_parameters,
    setup_distributed,
)
from .evaluation import evaluate_model
from .methods import get_method
from .objectives import Objective, ObjectiveContext, TrainBatch
from .param_selection import TrainableSelection, select_trainable
from .visual_prompt import PromptedModel, fold_prompt_into_model

from .budget import check_train_split, plan_and_check
from .trainer_report import ReportMixin
from .trainer_resume import ResumeMixin


@dataclass
class StepInfo:
    """Passed to a step hook after every optimizer step (progress displays, tests that kill a run)."""

    epoch: int
    step_in_epoch: int
    global_step: int
    loss: float
    output_dir: Path


StepHook = Callable[[StepInfo], None]


def step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """The seed of one step's attack noise: a pure function of the position (restorable, per rank)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(step), int(rank), 0xA77]).generate_state(1)[0])


class Trainer(ResumeMixin, ReportMixin):
    """Runs one :class:`TrainConfig`; :meth:`run` returns the final report (also written to disk)."""

    def __init__(
        self, config: TrainConfig, dist_ctx: DistributedContext | None = None, step_hook: StepHook | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config.validate()
        self.output_dir = Path(config.output_dir)
        self.step_hook = step_hook
        self.announce = announce
        self.dist = dist_ctx or setup_distributed(config.device)
        self.history: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ setup
    def _load_data(self) -> None:
        cfg = self.config
        self.train_set: ImageClassificationDataset = load_dataset(cfg.dataset, cfg.data_root, cfg.train_split)
        check_train_split(cfg, self.train_set)
        self.eval_set: ImageClassificationDataset = load_dataset(cfg.dataset, cfg.data_root, cfg.eval_split)
        if self.eval_set.split == self.train_set.split:
            raise ConfigError(
                f"--eval-split {self.eval_set.split!r} is the training split; evaluate on held-out images"
            )
        if list(self.train_set.classes) != list(self.eval_set.classes):
            raise ConfigError(f"{cfg.dataset}: train and eval splits have different class lists")
        self.templates = resolve_templates(cfg.templates, self.train_set.templates)
        self.caption_template = self.templates[0]
        self.train_indices = training_indices(self.train_set.labels, cfg.n_train, cfg.shots, cfg.seed)
        n_eval = None if cfg.n_eval is None else min(cfg.n_eval, len(self.eval_set))
        self.eval_indices = subsample_indices(len(self.eval_set), n_eval, cfg.seed)
        if len(self.train_indices) < self.dist.world_size:
            raise ConfigError(f"{len(self.train_indices)} training images cannot be split over "
                              f"{self.dist.world_size} processes")

    def _build_model(self) -> None:
        cfg = self.config
        base = load_model(cfg.model, device=str(self.dist.device))
        try:
            base.checkpoint_config()
        except NotImplementedError:
            raise ConfigError(
                f"model {cfg.model!r} cannot be saved as an mmrobust checkpoint, so its fine-tune could not be "
                "reloaded; use a model backend that supports checkpoints"
            ) from None
        objective_cls = get_method(cfg.method).objective_class()
        original = None
        if objective_cls.needs_original:
            original = copy.deepcopy(base).eval()
            for param in original.parameters():
                param.requires_grad_(False)
        self.selection: TrainableSelection = select_trainable(base, cfg.train_mode, cfg.last_k, cfg.prompt_size)
        self.model: VisionLanguageModel = self.selection.model.eval()
        if cfg.compile:
            compile_towers(base)
        self.fingerprint = model_fingerprint(self.model)
        class_prompts = build_prompts(self.train_set.classes, self.templates)
        text_adversary = None
        # Built from the weights *before* a resume loads the checkpoint, like an uninterrupted run (the
        # embed-sub neighbour table is a snapshot of the token embeddings taken here).
        if objective_cls.needs_text_attack:
            from .text_adversary import build_text_adversary

            text_adversary = build_text_adversary(cfg, self.model, self.train_set.classes, class_prompts)
        self.text_adversary = text_adversary
        context = ObjectiveContext(
            model=self.model,
            classes=self.train_set.classes,
            class_prompts=class_prompts,
            caption_template=self.caption_template,
            config=cfg,
            trains_text=self.selection.trains_text,
            original=original,
            text_adversary=text_adversary,
            dist=self.dist,
        )
        self.objective: Objective = objective_cls(context)
        self.optimizer = objective_cls.make_optimizer(self.selection.parameters, cfg)

    def export_model(self) -> VisionLanguageModel:
        """The model as a plain checkpointable model (a visual prompt folded into the weights)."""
        if isinstance(self.model, PromptedModel):
            return fold_prompt_into_model(self.model)
        return self.model

    # ------------------------------------------------------------------ checkpoints
    def _local_batches(self, batches: list[list[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's share of each global batch, decoded ahead by DataLoader workers for file-backed sets."""
        local = [shard(batch, self.dist.rank, self.dist.world_size) for batch in batches]
        for images, labels in iterate_index_batches(self.train_set, local):
            yield images.to(self.dist.device), labels.to(self.dist.device)

    def _load_batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of training images in this process (tests and one-off use)."""
        images, labels = next(iterate_index_batches(self.train_set, [indices], workers=0))
        return images.to(self.dist.device), labels.to(self.dist.device)

    def _step(self, position: Position, global_batch: list[int], images: torch.Tensor | None = None,
              labels: torch.Tensor | None = None) -> dict[str, float]:
        """One optimizer step; ``images``/``labels`` are this rank's share, loaded here when not given."""
        cfg = self.config
        local = shard(global_batch, self.dist.rank, self.dist.world_size)
        if images is None or labels is None:
            images, labels = self._load_batch(local)
        generator = torch.Generator().manual_seed(
            step_seed(cfg.seed, position.epoch, position.step_in_epoch, self.dist.rank)
        )
        batch = TrainBatch(images, labels, generator)
        adversarial = self.objective.adversarial_inputs(batch)
        # Phase boundary: nothing an attack left in .grad may reach the update.
        self.optimizer.zero_grad(set_to_none=True)
        with precision_context(cfg.precision, self.dist.device):  # AMP: forward in the policy, backward outside
            terms = self.objective.loss(batch, adversarial)
        where = (f"epoch {position.epoch + 1}, step {position.step_in_epoch + 1} (global step "
                 f"{position.global_step + 1}), batch of training images {local[:8]}{'...' if len(local) > 8 else ''}")
        finite = bool(torch.isfinite(terms.loss.detach()))
        if self.dist.enabled:  # every rank must stop together, or the others hang in the next all-reduce
            finite = all_reduce_sum([0.0 if finite else 1.0], self.dist)[0] == 0
        if not finite:
            raise NumericalError(
                f"the {cfg.method} loss is {float(terms.loss.detach())}"
                f"{f' on rank {self.dist.rank}' if self.dist.enabled else ''} at {where}; stopped before updating the weights "
                "(the last checkpoint is untouched); try a smaller --lr"
            )
        # Scale by this rank's share of the global batch so the rank-average is the global-batch mean.
        share = len(local) * self.dist.world_size / len(global_batch)
        if getattr(self.objective, "global_loss", False):  # --gather-with-grad: every rank holds the global loss
            share = 1.0
        (terms.loss * share).backward()
        params = self.selection.parameters
        average_gradients(params, self.dist)
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if not torch.isfinite(grad_norm):
            raise NumericalError(
                f"the {cfg.method} gradient norm is {float(grad_norm)} at {where}; stopped before updating the weights"
            )
        self.optimizer.step()
        counts = self.text_adversary.take_counts() if self.text_adversary is not None else {}
        return {"loss": float(terms.loss.detach()) * len(local), "n": float(len(local)),
                **{k: v * len(local) for k, v in terms.parts.items()}, "grad_norm": float(grad_norm), **counts}

    # ------------------------------------------------------------------ the run
    def _evaluate(self, epoch: int) -> dict[str, Any]:
        cfg = self.config
        pgd_eps = cfg.effective_eval_eps if cfg.eval_attack == "pgd" else None
        t0 = time.perf_counter()
        result = evaluate_model(
            self.model, self.eval_set, self.eval_indices, self.templates, batch_size=cfg.eval_batch_size,
            ctx=self.dist, pgd_eps=pgd_eps, pgd_steps=cfg.eval_steps, seed=cfg.seed * 1000 + epoch,
            progress=cfg.progress and self.dist.is_main,
        )
        result["eval_s"] = round(time.perf_counter() - t0, 3)
        return result

    def setup(self) -> None:
        """Load data and model, build the objective and optimizer, restore a checkpoint if resuming."""
        cfg = self.config
        self._t_start = time.perf_counter()
        self._prepare_output_dir()
        seed_everything(cfg.seed)
        self._load_data()
        self._build_model()
        self.position, self.accumulators = Position(), {}
        if cfg.resume:
            self.position, self.accumulators = self._resume()
        broadcast_parameters(self.selection.parameters, self.dist)
        self.timings["setup_s"] = round(time.perf_counter() - self._t_start, 3)

    def run(self) -> dict[str, Any]:
        """Train from the current position to ``epochs``, checkpointing and evaluating after every epoch."""
        cfg = self.config
        if not hasattr(self, "position"):
            self.setup()
        t_start = self._t_start
        position, accumulators = self.position, self.accumulators
        plan_and_check(self, position)
        t_train = time.perf_counter()
        last_folder: Path | None = None
        for epoch in range(position.epoch, cfg.epochs):
            batches = global_batches(epoch_order(self.train_indices, cfg.seed, epoch), cfg.batch_size,
                                     self.dist.world_size)
            start = position.step_in_epoch if epoch == position.epoch else 0
            if start == 0:
                accumulators = {}
            t_epoch = time.perf_counter()
            bar = tqdm(range(start, len(batches)), desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
                       unit="step", disable=not (cfg.progress and self.dist.is_main), leave=False)
            for step, (images, labels) in zip(bar, self._local_batches(batches[start:])):
                position = Position(epoch, step, position.global_step)
                numbers = self._step(position, batches[step], images, labels)
                for key, value in numbers.items():
                    accumulators[key] = accumulators.get(key, 0.0) + value
                position = Position(epoch, step + 1, position.global_step + 1)
                bar.set_postfix(loss=f"{numbers['loss'] / max(numbers['n'], 1):.4f}")
                if self.step_hook is not None:
                    self.step_hook(StepInfo(epoch, step, position.global_step, numbers["loss"] / numbers["n"],
                                            self.output_dir))
                every = cfg.checkpoint_every_steps
                if every and position.global_step % every == 0 and step + 1 < len(batches):
                    last_folder = self._save(position, accumulators)
            entry = self._epoch_entry(epoch, len(batches), accumulators, time.perf_counter() - t_epoch)
            self.history = [h for h in self.history if h["epoch"] < epoch + 1] + [entry]
            position = Position(epoch + 1, 0, position.global_step)
            last_folder = self._save(position, {})
            self._write_log()
            accumulators = {}
        self.timings["train_s"] = round(time.perf_counter() - t_train, 3)
        return self._finish(position, last_folder, t_start)


def train(config: TrainConfig, step_hook: StepHook | None = None,
          announce: Callable[[str], None] | None = None, *, distributed: bool = True) -> dict[str, Any]:
    """Run one fine-tuning (single process, or one rank under torchrun) and return its report.

    ``announce`` receives the planned work in one line before training starts (``mmrobust train`` prints it).
    ``distributed=False``: this rank trains alone even under torchrun (a study that deals whole cells to ranks)."""
    config.validate()  # a bad option is one error line before any work (not even the output folder)
    dist_ctx = setup_distributed(config.device)
    if not distributed:
        dist_ctx = DistributedContext(device=dist_ctx.device)
    try:
        # one writer per output folder: the main rank holds its lock for the whole run
        with output_lock(config.output_dir if dist_ctx.is_main else None, "training folder", folder=True):
            return Trainer(config, dist_ctx, step_hook, announce).run()
    finally:
        dist_ctx.close()
