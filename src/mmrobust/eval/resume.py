"""Resumable robust evaluations: per-batch progress in a state file next to the report.

The state file (``<report>.state.json``) is rewritten atomically after every batch and keyed by a hash of
everything that determines the results (model, data, indices, batch size, seed, attacks and options).
A run with the same config continues after the last finished batch; a different config refuses to mix
and starts over. A state whose config matches is still checked (types, bounds, lengths, and its labels against
the dataset's) before use: a hand-edited or damaged file is refused with one line saying how to start over,
never trusted into a report whose n and scores disagree. Together with per-batch seeding
(:func:`mmrobust.attacks.protocol.batch_seed`) a resumed run produces the same per-example results as an
uninterrupted one.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ReportError
from ..utils import records
from ..utils.files import write_json_atomic

STATE_VERSION = 1


#: the digest of a run's state file: the whole sha256 of json's default rendering, as state files have always
#: carried (:func:`mmrobust.utils.records.config_hash`, the one hash)
STATE_HASH = {"length": 64, "compact": False}


def config_hash(parts: dict[str, Any]) -> str:
    """The state-file digest of ``parts`` (what the results depend on)."""
    return records.config_hash(parts, **STATE_HASH)


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
    def from_json(cls, data: Any) -> "EvalState":
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        if data.get("state_version") != STATE_VERSION:
            raise ValueError(f"state_version {data.get('state_version')!r}, expected {STATE_VERSION}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__) - {"state_version"})
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        data = {k: v for k, v in data.items() if k != "state_version"}
        if not isinstance(data.get("config_hash"), str):
            raise ValueError("config_hash is missing or not a string")
        return cls(**data)


def _start_over(path: Path) -> str:
    return f"delete {path} (or pass --no-resume) to start over"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value >= 0


def _problem(state: EvalState, n_total: int, batch_size: int, attack_names: list[str], labels: list[int]) -> str | None:
    """What is wrong with ``state`` for this run (None when it is consistent)."""
    p = state.next_position
    if not _is_int(p) or not 0 <= p <= n_total:
        return f"next_position {p!r} is not a position in 0..{n_total}"
    if p != n_total and p % batch_size:
        return f"next_position {p} is not a batch boundary (batch size {batch_size})"
    if not isinstance(state.labels, list) or state.labels != labels[:p]:
        return f"its labels are not the dataset's labels of the first {p} images"
    if not isinstance(state.clean_correct, list) or len(state.clean_correct) != p or \
            not all(isinstance(v, bool) for v in state.clean_correct):
        return f"clean_correct is not {p} booleans"
    if not isinstance(state.attack_correct, dict) or not set(state.attack_correct) <= set(attack_names):
        return "attack_correct names attacks this run does not have"
    for name in attack_names:
        values = state.attack_correct.get(name, [])
        if not isinstance(values, list) or len(values) != p or \
                not all(v is None or isinstance(v, bool) for v in values):
            return f"attack_correct[{name!r}] is not {p} booleans or nulls (null = not attacked)"
        if any(v is not None and not c for v, c in zip(values, state.clean_correct)):
            return f"attack_correct[{name!r}] has results for images that were misclassified clean (never attacked)"
    for field_name in ("attack_extra", "ball_checks"):
        block = getattr(state, field_name)
        if not isinstance(block, dict) or not all(
                isinstance(v, dict) and all(_is_number(x) for x in v.values()) for v in block.values()):
            return f"{field_name} is not a mapping of non-negative numbers"
    if not isinstance(state.attack_seconds, dict) or not all(_is_number(v) for v in state.attack_seconds.values()):
        return "attack_seconds is not a mapping of non-negative numbers"
    if not _is_number(state.clean_seconds):
        return f"clean_seconds {state.clean_seconds!r} is not a non-negative number"
    if not isinstance(state.attack_states, dict) or not all(isinstance(v, dict) for v in state.attack_states.values()):
        return "attack_states is not a mapping of objects"
    return None


def check_state(
    state: EvalState, path: Path | None, n_total: int, batch_size: int, attack_names: list[str], labels: list[int]
) -> None:
    """Refuse a resumed ``state`` that does not fit this run (hand-edited, damaged, or from a bug)."""
    if state.resumed_from is None:
        return
    problem = _problem(state, n_total, batch_size, attack_names, labels)
    if problem is not None:
        raise ConfigError(f"resume state {path} is damaged or hand-edited: {problem}; {_start_over(path)}")


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
        except OSError as exc:
            raise ConfigError(f"cannot read resume state {self.path}: {exc.strerror or exc}; "
                              f"{_start_over(self.path)}") from None
        except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ConfigError(f"resume state {self.path} is damaged or not an mmrobust state ({exc}); "
                              f"{_start_over(self.path)}") from None
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
