"""The one resumable-record primitive: a hashed configuration, a slug for file names, and JSON records reused
only when the key stored in them matches.

Why one: the studies' cells, the benchmark's cells, eval's and retrieval's per-batch state files and the proxy
cache each had their own hash, slug and "is this saved file mine?" rule (three ``config_hash`` functions, two
slug rules). The digests below are exactly the ones those rules produced, so every folder written before
keeps resuming.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable

from .files import write_json_atomic


def config_hash(parts: Any, *, length: int = 16, compact: bool = True) -> str:
    """sha256 of the canonical JSON of ``parts`` (keys sorted), its first ``length`` hex digits.

    ``compact=False`` keeps json's default separators: the digest eval's state files have always carried."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":") if compact else None)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def slug(text: Any, limit: int = 80) -> str:
    """``"proxy:digits"`` -> ``"proxy-digits"``: safe and readable in file names on every OS."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", str(text)).strip("-.")[:limit] or "x"


def read_record(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``; None when it is missing, unreadable or not an object."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return record if isinstance(record, dict) else None


def matching_record(path: Path, key: str, key_of: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
    """The record at ``path`` when ``key_of(record) == key`` (made by a finished run with the same config)."""
    record = read_record(path)
    return record if record is not None and key_of(record) == key else None


def write_record(path: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` atomically (a killed run never leaves half a record)."""
    return write_json_atomic(path, record)
