"""Versions and provenance recorded in every report, so a number can be traced to the code that made it."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the mmrobust checkout, if it is one (None for a wheel install)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_versions() -> dict[str, str | None]:
    """mmrobust, torch, numpy, python and optional backends, as found at run time."""
    from .. import __version__

    return {
        "mmrobust": __version__,
        "mmrobust_git_commit": git_commit(),
        "torch": torch.__version__,
        "numpy": _package_version("numpy"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "open_clip_torch": _package_version("open_clip_torch"),
        "transformers": _package_version("transformers"),
    }
