"""Training checkpoints: the model (mmrobust checkpoint format) plus a training-state file, written atomically.

Layout under ``OUTPUT_DIR/checkpoints/``::

    step-0000040/mmrobust.json, model.safetensors   the weights, loadable with ``--model ckpt:...``
    step-0000040/training_state.pt                  optimizer, RNG states, position, history, config
    latest.json                                     which folder is current, with the state file's sha256

``latest.json`` is written last: a crash at any moment leaves the previous checkpoint current and intact.
The state file is read with ``torch.load(weights_only=True)`` (no code execution) after its sha256 has been
checked, and resuming refuses a checkpoint from another model or another configuration.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, ModelLoadError
from ..models.base import VisionLanguageModel
from ..models.checkpoint import (
    file_sha256,
    load_weights_into,
    read_checkpoint_config,
    save_checkpoint,
    verify_weights,
)
from ..utils.files import atomic_write, write_json_atomic

STATE_NAME = "training_state.pt"
LATEST_NAME = "latest.json"
STATE_FORMAT = "mmrobust-training-state"
#: how to start over when a checkpoint cannot be resumed (said in every such error)
START_OVER = "start over with a new --output-dir (or delete its checkpoints/ folder)"
_FOLDER_PATTERN = re.compile(r"^step-\d{7}$")


@dataclass
class Position:
    """Where training resumes: the next step to run is ``step_in_epoch`` of ``epoch`` (both 0-based)."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


def model_fingerprint(model: VisionLanguageModel) -> str:
    """Architecture identity: the checkpoint config plus every parameter's name and shape."""
    try:
        config = model.checkpoint_config()
    except NotImplementedError:
        config = {"class": type(model).__name__}
    shapes = [(name, list(p.shape)) for name, p in model.named_parameters()]
    text = json.dumps({"config": config, "shapes": shapes}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    """Global RNG states (torch CPU/CUDA, numpy, python) in a form ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def has_checkpoint(output_dir: str | Path) -> bool:
    return (checkpoint_root(output_dir) / LATEST_NAME).is_file()


def save_training_checkpoint(
    output_dir: str | Path,
    export_model: VisionLanguageModel,
    state: dict[str, Any],
    position: Position,
    keep: int = 1,
) -> Path:
    """Write weights + training state for ``position``, then point ``latest.json`` at them; prune old ones."""
    root = checkpoint_root(output_dir)
    folder = root / f"step-{position.global_step:07d}"
    save_checkpoint(export_model, folder, metadata={"training_position": asdict(position)})
    full_state = {"format": STATE_FORMAT, "format_version": 1, "position": asdict(position), **state}
    state_path = folder / STATE_NAME
    atomic_write(state_path, lambda tmp: torch.save(full_state, tmp))
    write_json_atomic(
        root / LATEST_NAME,
        {"folder": folder.name, "position": asdict(position), "training_state_sha256": file_sha256(state_path)},
    )
    current = sorted(p for p in root.iterdir() if p.is_dir() and _FOLDER_PATTERN.match(p.name))
    for old in current[: max(0, len(current) - keep)]:
        if old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def read_latest(output_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """The current checkpoint folder and its verified training state."""
    root = checkpoint_root(output_dir)
    latest_path = root / LATEST_NAME
    try:
        latest = json.loads(latest_path.read_text(encoding="utf-8"))
        name, expected_sha = latest["folder"], latest["training_state_sha256"]
        if not isinstance(name, str) or not _FOLDER_PATTERN.match(name) or not isinstance(expected_sha, str):
            raise TypeError(f"folder {name!r} is not a step-NNNNNNN folder of this run")
        folder = root / name
    except FileNotFoundError:
        raise ConfigError(f"--resume: no training checkpoint in {output_dir} ({latest_path} is missing)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"corrupt checkpoint pointer {latest_path}: {exc}") from None
    state_path = folder / STATE_NAME
    if not state_path.is_file():
        raise ModelLoadError(f"training checkpoint {folder} has no {STATE_NAME}")
    if file_sha256(state_path) != expected_sha:
        raise ModelLoadError(f"training state {state_path} is corrupt: sha256 does not match {LATEST_NAME}")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling raises many types for damaged or foreign files
        raise ModelLoadError(f"cannot read training state {state_path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ModelLoadError(f"{state_path} is not an mmrobust training state")
    return folder, state


def checked_position(state: dict[str, Any], folder: Path, epochs: int) -> Position:
    """The saved position after checking its types and bounds (a hand-edited state must not skip or repeat
    training silently)."""
    raw = state.get("position")
    fields = set(Position.__dataclass_fields__)
    if not isinstance(raw, dict) or set(raw) != fields or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in raw.values()):
        raise ModelLoadError(f"training state in {folder} has an invalid position {raw!r}; {START_OVER}")
    position = Position(**raw)
    if position.epoch > epochs or (position.epoch == epochs and position.step_in_epoch):
        raise ModelLoadError(
            f"training state in {folder} is at epoch {position.epoch}, beyond this run's {epochs} epochs; {START_OVER}"
        )
    return position


def check_same_model(state: dict[str, Any], fingerprint: str, folder: Path) -> None:
    saved = state.get("model_fingerprint")
    if saved != fingerprint:
        raise ModelLoadError(
            f"checkpoint {folder} was trained from another model (architecture fingerprint {saved}, this model "
            f"has {fingerprint}); resume with the same --model or use a new --output-dir"
        )


def load_model_weights(model: VisionLanguageModel, folder: Path) -> None:
    """Load a checkpoint's verified weights into ``model`` after checking the architecture matches."""
    config = read_checkpoint_config(folder)
    try:
        mine = model.checkpoint_config()
    except NotImplementedError:
        mine = None
    if mine is not None and config.get("architecture") != json.loads(json.dumps(mine.get("architecture"))):
        raise ModelLoadError(f"checkpoint {folder} holds another model's architecture; refusing to load it")
    load_weights_into(model, verify_weights(folder, config))
