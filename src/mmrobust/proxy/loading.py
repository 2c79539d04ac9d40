"""``proxy:NAME[:SEED]`` -> a loaded proxy model (the model registry calls :func:`load_proxy`).

The embedded ``digits`` proxy builds itself on first use (it needs only PyPI packages and takes seconds),
so the README's main job runs on a fresh clone; other proxies need real data and a longer build, so an
unbuilt one is an error that prints the build command.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..errors import ConfigError, ModelLoadError
from ..models.checkpoint import load_checkpoint
from ..models.native import NativeCLIP
from .cache import CacheEntry, default_cache_dir
from .fingerprint import check_fingerprint
from .recipes import RECIPES, get_recipe


def parse_proxy_spec(rest: str) -> tuple[str, int]:
    """``digits`` -> ("digits", 0); ``digits:3`` -> ("digits", 3)."""
    name, _, seed = rest.strip().partition(":")
    if not name:
        raise ModelLoadError(f"proxy spec needs a name: proxy:NAME[:SEED], NAME one of {', '.join(sorted(RECIPES))}")
    try:
        return name, int(seed) if seed else 0
    except ValueError:
        raise ModelLoadError(f"proxy:{rest}: the seed after ':' must be an integer (e.g. proxy:{name}:1)") from None


def _build_command(name: str, seed: int, cache_dir: Any) -> str:
    parts = ["mmrobust proxy build", name]
    if seed:
        parts.append(f"--seed {seed}")
    if RECIPES[name].needs_data_root:
        parts.append("--data-root DIR")
    if cache_dir:
        parts.append(f"--cache-dir {cache_dir}")
    return " ".join(parts)


def load_proxy(
    rest: str, spec: str | None = None, cache_dir: str | os.PathLike | None = None, device: str | None = None
) -> NativeCLIP:
    """Load a built proxy (verified: weights sha256 and logit fingerprint); auto-build the embedded ones."""
    name, seed = parse_proxy_spec(rest)
    spec = spec or f"proxy:{rest}"
    try:
        recipe = get_recipe(name)
    except ConfigError as exc:
        raise ModelLoadError(str(exc)) from None
    entry = CacheEntry.of(recipe, seed, cache_dir)
    status, detail = entry.check(verify_hash=False)  # load_checkpoint verifies the sha256 itself
    if status != "ready":
        if not recipe.auto_build:
            state = "is not built" if status == "absent" else f"is {status} ({detail})"
            raise ModelLoadError(
                f"proxy:{name} (seed {seed}) in {entry.root} {state}; build it with `{_build_command(name, seed, cache_dir)}`"
            )
        _auto_build(name, seed, cache_dir, device, reason=detail if status != "absent" else None)
    try:
        model = _load_verified(entry, spec)
    except ModelLoadError as exc:
        if not recipe.auto_build:
            raise ModelLoadError(f"{exc}; rebuild it with `{_build_command(name, seed, cache_dir)} --force`") from None
        _auto_build(name, seed, cache_dir, device, reason=str(exc), force=True)
        model = _load_verified(entry, spec)
    return model if device is None else model.to(device)


def _load_verified(entry: CacheEntry, spec: str) -> NativeCLIP:
    model = load_checkpoint(entry.model_dir, spec=spec)
    check_fingerprint(model, (entry.read_manifest() or {}).get("probe"), f"proxy cache entry {entry.folder}")
    return model  # type: ignore[return-value]


def _auto_build(name: str, seed: int, cache_dir: Any, device: str | None, reason: str | None, force: bool = False) -> None:
    from .build import build_proxy

    what = f"cache entry is unusable ({reason}); rebuilding it" if reason else "is not built yet; building it"
    print(f"mmrobust: proxy:{name} {what} now into "
          f"{default_cache_dir(cache_dir)} (once, about {RECIPES[name].budget_minutes:g} min at most)",
          file=sys.stderr, flush=True)
    # no progress bars: the model loader cannot see the command's --quiet, and a build inside another command
    # reports itself through its log lines (one per stage/epoch) instead
    build_proxy(name, seed=seed, cache_dir=cache_dir, force=force, device=device, progress=False)


def list_proxies(cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per recipe (seed 0): name, status line, description (``mmrobust models`` / ``proxy list``)."""
    rows = []
    for name, recipe in RECIPES.items():
        entry = CacheEntry.of(recipe, 0, cache_dir)
        status, detail = entry.check(verify_hash=False)
        if status == "ready":
            accuracy = (entry.read_manifest() or {}).get("accuracy", {})
            scores = ", ".join(f"{k} {100 * v:.1f}%" for k, v in accuracy.items())
            line = f"built ({scores})"
        elif status == "absent":
            line = "built automatically on first use" if recipe.auto_build else f"not built: `{_build_command(name, 0, cache_dir)}`"
        else:
            line = f"{status}: {detail}"
        rows.append({"name": name, "status": line, "description": recipe.description, "folder": str(entry.folder)})
    return rows
