"""Per-batch progress of a retrieval evaluation, saved next to the report so a killed run continues.

Why a torch file (``<report>.state.pt``) and not the JSON state of classification: retrieval ranks the
whole split at the end, so what must survive is every finished batch's *embeddings* (clean and per
attack), which are tensors. The file is rewritten atomically after each batch and keyed by a hash of
everything the results depend on; a different configuration starts over (and says so).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..utils.files import atomic_write


def retrieval_state_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".state.pt")


@dataclass
class AttackProgress:
    """One attack's finished batches: scored-model embeddings and summed per-batch numbers."""

    image_embeddings: list[torch.Tensor] = field(default_factory=list)
    text_embeddings: list[torch.Tensor] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    ball: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, images: torch.Tensor, texts: torch.Tensor, extra: dict[str, float], ball: dict[str, float] | None,
            seconds: float) -> None:
        self.image_embeddings.append(images.detach().cpu())
        self.text_embeddings.append(texts.detach().cpu())
        for key, value in extra.items():
            self.extra[key] = self.extra.get(key, 0.0) + float(value)
        if ball:
            merged = {k: self.ball.get(k, 0.0) + ball[k] for k in ("n_checked", "n_out_of_box", "n_outside_ball")}
            merged["max_norm"] = max(self.ball.get("max_norm", 0.0), ball["max_norm"])
            self.ball = merged
        self.seconds += seconds


@dataclass
class RetrievalState:
    config_hash: str
    next_position: int = 0
    clean_images: list[torch.Tensor] = field(default_factory=list)
    attacks: dict[str, AttackProgress] = field(default_factory=dict)
    resumed_from: int | None = None

    def progress(self, name: str) -> AttackProgress:
        return self.attacks.setdefault(name, AttackProgress())


class RetrievalStateFile:
    """Load/save :class:`RetrievalState`; ``enabled=False`` (``--no-resume``) makes every call a no-op."""

    def __init__(self, path: Path | None, digest: str, enabled: bool = True) -> None:
        self.path, self.digest = path, digest
        self.enabled = enabled and path is not None

    def load_or_new(self) -> RetrievalState:
        if not self.enabled or not self.path.exists():
            return RetrievalState(self.digest)
        try:
            data: Any = torch.load(self.path, map_location="cpu", weights_only=False)
            state = RetrievalState(data["config_hash"], int(data["next_position"]), list(data["clean_images"]),
                                   {k: AttackProgress(**v) for k, v in data["attacks"].items()})
        except Exception as exc:  # an unreadable state is only lost work, never a reason to stop
            print(f"warning: ignoring unreadable resume state {self.path} ({exc})", file=sys.stderr)
            return RetrievalState(self.digest)
        if state.config_hash != self.digest:
            print(f"warning: {self.path} belongs to a different configuration; starting from scratch", file=sys.stderr)
            return RetrievalState(self.digest)
        state.resumed_from = state.next_position
        return state

    def save(self, state: RetrievalState) -> None:
        if not self.enabled:
            return
        data = {"config_hash": state.config_hash, "next_position": state.next_position,
                "clean_images": state.clean_images, "attacks": {k: vars(v) for k, v in state.attacks.items()}}
        atomic_write(self.path, lambda tmp: torch.save(data, tmp))

    def remove(self) -> None:
        if self.enabled and self.path.exists():
            self.path.unlink()
