"""mmrobust's checkpoint format: a folder with ``mmrobust.json`` (config) and ``model.safetensors``.

Why a folder with a JSON config: the config says which backend and architecture to rebuild, so a
checkpoint loads without the code that trained it, and safetensors cannot execute code when read
(unlike pickled ``.pt`` files). The weights' sha256 is stored and verified on load, so a truncated or
corrupted file is refused instead of silently producing a different model. Before anything is allocated,
the config's sizes and the weight file's header are checked against each other
(:mod:`~mmrobust.models.weights_check`), so a tampered config cannot make the loader allocate without bound.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, ReportError
from ..utils.files import atomic_write, write_failure_message, write_json_atomic
from .base import VisionLanguageModel
from .weights_check import check_dimensions, check_weights_fit, read_header

CONFIG_NAME = "mmrobust.json"
WEIGHTS_NAME = "model.safetensors"
VOCAB_NAME = "vocab.txt"
FORMAT = "mmrobust-checkpoint"

#: backend name -> module with ``from_checkpoint_config(config, folder, spec)`` (imported lazily)
BACKEND_LOADERS = {
    "native": "mmrobust.models.native_loader",
    "open_clip": "mmrobust.models.open_clip_adapter",
    "hf": "mmrobust.models.hf_adapter",
}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file()


def save_checkpoint(model: VisionLanguageModel, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``folder`` (weights first, config last, each atomically).

    The config is written last: a folder whose config exists is complete, and the config's hash of the
    weights detects any later damage.
    """
    from safetensors.torch import save_model

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        config = model.checkpoint_config()
        weights = folder / WEIGHTS_NAME
        atomic_write(weights, lambda tmp: save_model(model, str(tmp)))
        vocab = getattr(model, "vocab_file", None)
        if vocab is not None and Path(vocab).resolve() != (folder / VOCAB_NAME).resolve():
            atomic_write(folder / VOCAB_NAME, lambda tmp: shutil.copyfile(vocab, tmp))
        model.write_checkpoint_files(folder)
    except OSError as exc:  # mkdir or a backend's own tokenizer files; atomic_write reports its own failures
        raise ReportError(write_failure_message(folder, exc)) from None
    config.update(
        {
            "format": FORMAT,
            "format_version": 1,
            "weights_sha256": file_sha256(weights),
            "metadata": metadata or {},
        }
    )
    write_json_atomic(folder / CONFIG_NAME, config)
    return folder


def read_checkpoint_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} is not an mmrobust checkpoint: {CONFIG_NAME} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"corrupt checkpoint config {path}: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ModelLoadError(f"{path} is not an mmrobust checkpoint config (format={found!r})")
    return config


def verify_weights(folder: str | Path, config: dict[str, Any]) -> Path:
    """Return the weights path after checking it exists and matches the recorded sha256."""
    weights = Path(folder) / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelLoadError(f"checkpoint {folder} has no {WEIGHTS_NAME}")
    expected = config.get("weights_sha256")
    if expected and file_sha256(weights) != expected:
        raise ModelLoadError(f"checkpoint {weights} is corrupt: sha256 does not match {CONFIG_NAME}")
    return weights


def check_declared_files(folder: str | Path, config: dict[str, Any]) -> Path:
    """The checks that need no model and no full read: the sizes the config declares, and the weight file's
    header (bounded). Cheap enough for a cache listing; :func:`load_checkpoint` adds the sha256 and the
    tensor-by-tensor comparison."""
    folder = Path(folder)
    check_dimensions({k: v for k, v in config.items() if k != "metadata"}, f"checkpoint {folder}")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelLoadError(f"checkpoint {folder} has no {WEIGHTS_NAME}")
    read_header(weights)
    return weights


def load_weights_into(model: VisionLanguageModel, weights: Path) -> None:
    from safetensors.torch import load_model

    try:
        load_model(model, str(weights), strict=True)
    except Exception as exc:  # safetensors raises several types for bad headers / shapes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"weights in {weights} do not fit the model: {first[:300]}") from None


def load_checkpoint(folder: str | Path, spec: str | None = None) -> VisionLanguageModel:
    """Rebuild the model a checkpoint folder describes and load (verified) weights into it.

    Order matters: sizes in the config, the weight file's header and its sha256 are checked first, then
    the model is built on the ``meta`` device and its tensors compared with the header; only a checkpoint
    that passes all of that is built for real (see :mod:`~mmrobust.models.weights_check`).
    """
    folder = Path(folder)
    config = read_checkpoint_config(folder)
    backend = config.get("backend")
    if backend not in BACKEND_LOADERS:
        raise ModelLoadError(f"checkpoint {folder} has unknown backend {backend!r}; known: {sorted(BACKEND_LOADERS)}")
    check_declared_files(folder, config)  # a truncated or non-safetensors file says so, not just "sha256"
    weights = verify_weights(folder, config)
    module = importlib.import_module(BACKEND_LOADERS[backend])
    skeleton = module.from_checkpoint_config(config, folder, spec or str(folder), device="meta")
    check_weights_fit(skeleton, weights, f"checkpoint {folder}")
    model = module.from_checkpoint_config(config, folder, spec or str(folder))
    load_weights_into(model, weights)
    return model.eval()
