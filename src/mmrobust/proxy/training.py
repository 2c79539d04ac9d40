"""LiT training of a proxy: the image tower learns to land on the locked MiniLM embeddings of its class.

Each step: a batch of augmented images, one random prompt per class from the precomputed bank, logits =
learned temperature x cosine, cross-entropy on the true class (optionally softened towards classes whose
names MiniLM finds similar). After every epoch the full training state (weights, optimizer, RNG) is saved
atomically, so an interrupted build resumes at the next epoch and gives the same weights as an uninterrupted
one (bit for bit: the build fixes the recipe's thread count; tested).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ModelLoadError
from ..models.native import NativeCLIP
from ..utils.files import atomic_write
from .arrays import ImageArrays
from .augment import random_resized_crop_flip
from .prompts import PromptBank
from .recipes import ProxyRecipe

STATE_NAME = "train_state.pt"


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    resumed_from_epoch: int = 0
    precision: str = "fp32"


def _set_trainable(model: NativeCLIP, recipe: ProxyRecipe) -> list[torch.nn.Parameter]:
    """Locked text tower (LiT); image tower, image projection and temperature train; text projection optional."""
    for param in model.parameters():
        param.requires_grad_(False)
    trainable = [model.image_tower, model.image_projection]
    if recipe.train_text_projection:
        trainable.append(model.text_projection)
    for module in trainable:
        for param in module.parameters():
            param.requires_grad_(True)
    model.log_logit_scale.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def _optimizer(model: NativeCLIP, params: list[torch.nn.Parameter], recipe: ProxyRecipe) -> torch.optim.Optimizer:
    # No weight decay on norms, biases and the temperature (standard practice; decay there only hurts).
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
    )


def learning_rate(recipe: ProxyRecipe, step: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, total_steps - recipe.warmup_steps)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _soft_targets(model: NativeCLIP, bank: PromptBank, recipe: ProxyRecipe) -> torch.Tensor | None:
    """Class x class target distribution: (1 - a) one-hot + a softmax(text similarity / t), or None."""
    config = recipe.semantic_smoothing
    if not config:
        return None
    with torch.no_grad():
        means = bank.class_means(model)
        similarity = means @ means.t()
        similarity.fill_diagonal_(-float("inf"))  # the smoothing mass goes to *other* classes
        neighbours = torch.softmax(similarity / float(config["temperature"]), dim=1)
        alpha = float(config["alpha"])
        return (1 - alpha) * torch.eye(bank.n_classes, device=means.device) + alpha * neighbours


def _save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_train_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when absent or unreadable (a damaged state restarts training, never crashes)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for truncated files
        return None


def _restore(state: dict[str, Any], path: Path, model: NativeCLIP, run: "_Run", result: "TrainResult") -> None:
    """Continue from a saved state after checking its types and bounds; a hand-edited or damaged state is
    refused (one line saying how to start over) rather than half-loaded into the model."""
    epoch, history, seconds = state.get("epoch"), state.get("history"), state.get("train_seconds")
    problem = None
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= run.recipe.epochs:
        problem = f"epoch {epoch!r} is not in 0..{run.recipe.epochs}"
    elif not isinstance(history, list) or len(history) != epoch:
        problem = f"its history does not list {epoch} epochs"
    elif not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds >= 0:
        problem = f"train_seconds {seconds!r} is not a non-negative number"
    if problem is None:
        try:
            model.load_state_dict(state["model"])
            run.optimizer.load_state_dict(state["optimizer"])
            run.generator.set_state(state["generator"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            problem = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
    if problem is not None:
        raise ModelLoadError(f"proxy training state {path} is damaged or hand-edited ({problem}); delete "
                             f"{path.parent.parent} (or build with --force) to start over")
    result.history = list(history)
    result.train_seconds = float(seconds)
    result.resumed_from_epoch = epoch


def bf16_autocast_supported(device: torch.device) -> bool:
    """bf16 autocast pays off on CUDA and on CPUs with native bf16 (oneDNN); elsewhere it is emulated (slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


@dataclass
class _Run:
    """What every epoch of one training run shares."""

    model: NativeCLIP
    recipe: ProxyRecipe
    seed: int
    train: ImageArrays
    bank: PromptBank
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    soft_targets: torch.Tensor | None
    batch_size: int
    steps_per_epoch: int
    fast: bool = False

    @property
    def total_steps(self) -> int:
        return self.recipe.epochs * self.steps_per_epoch


def train_proxy(
    model: NativeCLIP,
    recipe: ProxyRecipe,
    seed: int,
    train: ImageArrays,
    bank: PromptBank,
    state_dir: Path,
    evaluate: Callable[[NativeCLIP], dict[str, float]],
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``model`` in place for ``recipe.epochs`` epochs, resuming from ``state_dir`` if a state is there."""
    params = _set_trainable(model, recipe)
    batch_size = min(recipe.batch_size, len(train))
    run = _Run(
        model=model, recipe=recipe, seed=seed, train=train, bank=bank,
        optimizer=_optimizer(model, params, recipe),
        generator=torch.Generator().manual_seed(seed + 7919),
        soft_targets=None, batch_size=batch_size,
        steps_per_epoch=max(1, len(train) // batch_size),  # drop the ragged last batch (BatchNorm statistics)
    )
    result = TrainResult()
    state_file = state_dir / STATE_NAME
    state = load_train_state(state_file)
    if state is not None and state.get("recipe_hash") == recipe.config_hash() and state.get("seed") == seed:
        _restore(state, state_file, model, run, result)
        log(f"resuming {recipe.name} (seed {seed}) after epoch {result.resumed_from_epoch}/{recipe.epochs}")
    elif state_file.exists():
        log(f"ignoring unreadable or foreign training state {state_file}; starting from epoch 0")
    run.soft_targets = _soft_targets(model, bank, recipe)
    run.fast = recipe.fast_training and bf16_autocast_supported(model.device)
    result.precision = "bf16-autocast+channels_last" if run.fast else "fp32"
    if run.fast:
        model.image_tower.to(memory_format=torch.channels_last)
    try:
        for epoch in range(result.resumed_from_epoch, recipe.epochs):
            t0 = time.perf_counter()
            record = _train_epoch(run, epoch, progress)
            scores = evaluate(model)
            record["seconds"] = round(time.perf_counter() - t0, 2)
            record.update({f"eval_subset/{k}": v for k, v in scores.items()})
            result.history.append(record)
            result.train_seconds += record["train_seconds"]
            state_file.parent.mkdir(parents=True, exist_ok=True)
            _save_state(state_file, {
                "recipe_hash": recipe.config_hash(), "seed": seed, "epoch": epoch + 1,
                "model": model.state_dict(), "optimizer": run.optimizer.state_dict(),
                "generator": run.generator.get_state(), "history": result.history,
                "train_seconds": result.train_seconds,
            })
            evals = " ".join(f"{k}={100 * v:.1f}%" for k, v in scores.items())
            log(f"{recipe.name} epoch {epoch + 1}/{recipe.epochs}: loss {record['loss']:.3f} "
                f"train acc {100 * record['train_accuracy']:.1f}% {evals} ({record['seconds']:.0f}s, "
                f"{record['torch_threads']} thread(s), load {record['load_avg_1min'][0]:.1f})")
    finally:
        model.image_tower.to(memory_format=torch.contiguous_format)
    for param in model.parameters():
        param.requires_grad_(True)
    model.eval()
    return result


def _train_epoch(run: _Run, epoch: int, progress: bool) -> dict[str, Any]:
    """One pass over a fresh permutation of the training images."""
    model, recipe = run.model, run.recipe
    device = model.device
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    model.train()
    order = torch.randperm(len(run.train), generator=run.generator)
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(range(run.steps_per_epoch), desc=f"{recipe.name} epoch {epoch + 1}/{recipe.epochs}", unit="step",
               disable=not progress, leave=False, mininterval=1.0)
    for step in bar:
        for group in run.optimizer.param_groups:
            group["lr"] = learning_rate(recipe, epoch * run.steps_per_epoch + step, run.total_steps)
        rows = order[step * run.batch_size : (step + 1) * run.batch_size]
        images = run.train.images[rows].to(device).float().div_(255.0)
        images = random_resized_crop_flip(images, run.generator, recipe.augmentation)
        labels = run.train.labels[rows].to(device)
        text = F.normalize(model.text_projection(run.bank.sample(run.generator)), dim=-1)
        if run.fast:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=run.fast):
            features = model.encode_image(images)
        logits = model.logit_scale * F.normalize(features.float(), dim=-1) @ text.t()
        if run.soft_targets is None:
            loss = F.cross_entropy(logits, labels)
        else:
            loss = -(run.soft_targets[labels] * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        loss_sum += float(loss.detach()) * len(rows)
        correct += int((logits.detach().argmax(dim=1) == labels).sum())
        seen += len(rows)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {
        "epoch": epoch + 1,
        "loss": loss_sum / max(1, seen),
        "train_accuracy": correct / max(1, seen),
        "logit_scale": float(model.logit_scale.detach()),
        "train_seconds": round(time.perf_counter() - t0, 2),
        "load_avg_1min": [load_before, os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")],
        "torch_threads": torch.get_num_threads(),
    }
