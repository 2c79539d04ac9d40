"""Resumable robust evaluations: per-batch progress in a state file next to the report.

The state file (``<report>.state.json``) is rewritten atomically after every batch and keyed by a hash of
everything that determines the results (model, data, indices, batch size, seed, attacks and options).
A run with the same config continues after the last finished batch; a different config refuses to mix
and starts over. Together with per-batch seeding (:func:`mmrobust.attacks.protocol.batch_seed`) a
resumed run produces the same per-example results as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReportError
from ..utils.files import write_json_atomic

STATE_VERSION = 1


def config_hash(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (what the results depend on)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def state_path_for(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".state.json")


@dataclass
class EvalState:
    """Everything finished so far: per-example results up to ``next_position`` and per-attack totals."""

    config_hash: str
    next_position: int = 0
    labels: list[int] = field(default_factory=list)
    clean_correct: list[bool] = field(default_factory=list)
    attack_correct: dict[str, list[bool]] = field(default_factory=dict)
    attack_extra: dict[str, dict[str, float]] = field(default_factory=dict)
    attack_seconds: dict[str, float] = field(default_factory=dict)
    ball_checks: dict[str, dict[str, float]] = field(default_factory=dict)
    attack_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    clean_seconds: float = 0.0
    resumed_from: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["state_version"] = STATE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EvalState":
        data = {k: v for k, v in data.items() if k != "state_version"}
        return cls(**data)


class StateFile:
    """Load/save :class:`EvalState` at ``path``; ``enabled=False`` makes every call a no-op (``--no-resume``)."""

    def __init__(self, path: Path | None, digest: str, enabled: bool = True) -> None:
        self.path = path
        self.digest = digest
        self.enabled = enabled and path is not None

    def load_or_new(self) -> EvalState:
        """The saved state when it matches this config, else a fresh one (a mismatch is reported on stderr)."""
        if not self.enabled or not self.path.exists():
            return EvalState(config_hash=self.digest)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            state = EvalState.from_json(data)
        except (OSError, ValueError, TypeError) as exc:
            print(f"warning: ignoring unreadable resume state {self.path} ({exc})", file=sys.stderr)
            return EvalState(config_hash=self.digest)
        if state.config_hash != self.digest:
            print(f"warning: {self.path} belongs to a different configuration; starting from scratch",
                  file=sys.stderr)
            return EvalState(config_hash=self.digest)
        state.resumed_from = state.next_position
        return state

    def save(self, state: EvalState) -> None:
        if self.enabled:
            try:
                write_json_atomic(self.path, state.to_json())
            except ReportError as exc:
                raise ReportError(f"cannot save resume state: {exc}") from None

    def remove(self) -> None:
        """Drop the state once the report is written (the report is the durable result)."""
        if self.enabled and self.path.exists():
            self.path.unlink()
