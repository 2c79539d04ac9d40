"""Where built proxies live and how a cache entry is judged complete, partial or corrupt.

Layout (``<cache>`` = ``--cache-dir``, else ``$MMROBUST_CACHE_DIR``, else platformdirs' user cache
``mmrobust/proxies``)::

    <cache>/<name>/seed<S>-<recipe hash>/model/          mmrobust checkpoint (config, safetensors, vocab)
    <cache>/<name>/seed<S>-<recipe hash>/manifest.json   written last: data, seed, epochs, timings, accuracies
    <cache>/<name>/seed<S>-<recipe hash>/state/          per-epoch training state (resume), removed when done
    <cache>/<name>/seed<S>-<recipe hash>.lock            held while building (two processes never build twice)
    <cache>/arrays/                                      decoded-image arrays shared by all proxies

An entry is *ready* only if its manifest says complete, names the same recipe hash, the weights'
sha256 matches both the checkpoint config and the manifest, the config declares plausible sizes and the
weight file's header is whole: anything else is rebuilt, never used. (Loading then compares the header
with the model tensor by tensor; an entry that fails there is rebuilt or refused as well.)
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import MMRobustError
from ..utils.files import lock_file
from ..models.checkpoint import check_declared_files, read_checkpoint_config, verify_weights
from .recipes import ProxyRecipe

CACHE_ENV = "MMROBUST_CACHE_DIR"
MANIFEST_NAME = "manifest.json"
MODEL_DIR = "model"
STATE_DIR = "state"


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$MMROBUST_CACHE_DIR``, else ``<user cache>/mmrobust/proxies``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mmrobust")) / "proxies"


@dataclass(frozen=True)
class CacheEntry:
    """One (recipe, seed) build inside a cache directory."""

    root: Path
    name: str
    seed: int
    recipe_hash: str

    @classmethod
    def of(cls, recipe: ProxyRecipe, seed: int, cache_dir: str | os.PathLike | None = None) -> "CacheEntry":
        return cls(default_cache_dir(cache_dir), recipe.name, int(seed), recipe.config_hash())

    @property
    def folder(self) -> Path:
        return self.root / self.name / f"seed{self.seed}-{self.recipe_hash}"

    @property
    def model_dir(self) -> Path:
        return self.folder / MODEL_DIR

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME

    @property
    def state_dir(self) -> Path:
        return self.folder / STATE_DIR

    @property
    def lock_path(self) -> Path:
        return self.root / self.name / f"seed{self.seed}-{self.recipe_hash}.lock"

    @property
    def array_dir(self) -> Path:
        return self.root / "arrays"

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return manifest if isinstance(manifest, dict) else None

    def check(self, verify_hash: bool = True) -> tuple[str, str]:
        """(status, detail): status is ``ready``, ``absent``, ``partial`` or ``corrupt``."""
        if not self.folder.exists():
            return "absent", "not built"
        if not self.manifest_path.exists():
            from .training import STATE_NAME, load_train_state

            state = load_train_state(self.state_dir / STATE_NAME) if (self.state_dir / STATE_NAME).exists() else None
            if state is not None:
                return "partial", f"interrupted after epoch {state.get('epoch')}; `build` resumes it"
            return "partial", "build started but no epoch finished"
        manifest = self.read_manifest()
        if manifest is None or not manifest.get("complete"):
            return "corrupt", f"unreadable or incomplete {self.manifest_path}"
        if manifest.get("recipe_hash") != self.recipe_hash:
            return "corrupt", f"{self.manifest_path} names recipe hash {manifest.get('recipe_hash')}, expected {self.recipe_hash}"
        try:
            config = read_checkpoint_config(self.model_dir)
            if config.get("weights_sha256") != manifest.get("weights_sha256"):
                return "corrupt", "checkpoint and manifest disagree on the weights' sha256"
            check_declared_files(self.model_dir, config)  # a truncated file or a tampered config: not ready
            if verify_hash:
                verify_weights(self.model_dir, config)
        except MMRobustError as exc:
            return "corrupt", str(exc)
        return "ready", str(self.folder)


@contextlib.contextmanager
def build_lock(entry: CacheEntry, log: Any = None) -> Iterator[None]:
    """Exclusive lock on one entry while it is built (POSIX ``flock``; a no-op where unavailable): a second
    build of the same entry waits for the first, then finds it ready."""
    message = f"another process is building proxy:{entry.name} (seed {entry.seed}); waiting for it"
    with lock_file(entry.lock_path, message, wait=log or (lambda m: print(m, file=sys.stderr))):
        yield


def list_entries(cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every entry folder in the cache with its status (cheap: no weight hashing) and manifest summary."""
    root = default_cache_dir(cache_dir)
    rows: list[dict[str, Any]] = []
    if not root.is_dir():
        return rows
    for name_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "arrays"):
        for folder in sorted(p for p in name_dir.iterdir() if p.is_dir()):
            seed_part, _, recipe_hash = folder.name.partition("-")
            if not seed_part.startswith("seed") or not seed_part[4:].isdigit():
                continue
            entry = CacheEntry(root, name_dir.name, int(seed_part[4:]), recipe_hash)
            status, detail = entry.check(verify_hash=False)
            manifest = entry.read_manifest() or {}
            rows.append({"name": entry.name, "seed": entry.seed, "recipe_hash": recipe_hash, "status": status,
                         "detail": detail, "folder": str(folder), "accuracy": manifest.get("accuracy", {}),
                         "build_seconds": manifest.get("timings", {}).get("total_s")})
    return rows
