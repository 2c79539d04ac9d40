"""Atomic file writes: a report or checkpoint is either complete on disk or absent.

Writing to a temp file in the same directory and renaming it makes the final write atomic on POSIX, so an
interrupted run never leaves a half-written JSON that a later sweep would mistake for a result.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import ReportError


def _json_default(obj: Any) -> Any:
    """Serialise numpy/torch scalars and paths that json cannot handle by itself."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite_or_none(obj: Any) -> Any:
    """Replace NaN/inf floats with None so the JSON stays standard (json.dumps would emit NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (before hours of work) if ``path`` cannot be created: missing parent or no permission."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and path.is_dir():
        raise ReportError(f"output path {path} is a directory, expected a file name")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReportError(f"cannot create output directory {parent}: {exc.strerror or exc}") from None
    if not parent.is_dir():
        raise ReportError(f"output path {path} is not writable: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise ReportError(f"output path {path} is not writable (no write permission on {parent})")
    return path


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename tmp_path onto ``path``; remove the temp file on failure."""
    path = check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(_finite_or_none(data), indent=2, default=_json_default, sort_keys=False)

    def _write(tmp: Path) -> None:
        tmp.write_text(text + "\n", encoding="utf-8")

    return atomic_write(path, _write)
