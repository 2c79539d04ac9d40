"""What the optional-backend adapters (open_clip, Hugging Face) share: lazy imports and failure wording.

Why a module of its own: both adapters must turn the same three situations into one clear line — the
backend is not installed (say what to pip install), it is installed but broken (most often a torchvision
wheel that does not match torch), or weights could not be fetched because there is no network.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

from ..errors import ModelLoadError

#: words that mark a download failure caused by the network (or the Hub's offline mode), not by the spec
_NETWORK_MARKERS = (
    "offline",
    "connection",
    "connect to",
    "name or service not known",
    "temporary failure in name resolution",
    "network is unreachable",
    "timed out",
    "max retries",
    "check your connection",
    "cannot find the requested files in the local cache",
    "urlopen error",
)
_NETWORK_TYPES = (
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
    "ConnectionError",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "URLError",
    "gaierror",
)


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes/contexts, outermost first (libraries wrap the real reason)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def network_failure(exc: BaseException) -> str | None:
    """A short reason if ``exc`` (or anything it wraps) is a network/offline failure, else None."""
    for link in exception_chain(exc):
        name = type(link).__name__
        text = str(link).lower()
        if name in _NETWORK_TYPES or isinstance(link, (ConnectionError, TimeoutError)) or any(
            marker in text for marker in _NETWORK_MARKERS
        ):
            return f"{name}: {first_line(link, 160)}"
    return None


def raise_if_network_failure(exc: BaseException, what: str) -> None:
    """Re-raise a network failure as one line: ``weights not downloadable: no network (...)``."""
    reason = network_failure(exc)
    if reason is not None:
        raise ModelLoadError(
            f"{what}: weights not downloadable: no network ({reason}); download them where there is a "
            "network (they are cached) or pass a local weights path"
        ) from None


def import_backend(module: str, extra: str, attribute: str | None = None) -> ModuleType:
    """Import an optional backend (and check ``attribute`` resolves), or raise one ModelLoadError line.

    Not installed -> what to ``pip install``; installed but failing (e.g. a torchvision wheel built for
    another torch, which open_clip and transformers' image code import) -> the root cause and the fix.
    """
    try:
        imported = importlib.import_module(module)
        if attribute is not None:
            getattr(imported, attribute)
        return imported
    except ImportError as exc:
        if getattr(exc, "name", None) == module.split(".")[0]:
            raise ModelLoadError(
                f"{module} is not installed: `pip install 'mmrobust[{extra}]'` to use these models"
            ) from None
        root = exception_chain(exc)[-1]
        raise ModelLoadError(_broken_install_message(module, root)) from None
    except Exception as exc:  # e.g. RuntimeError from a mismatched torchvision at import time
        raise ModelLoadError(_broken_install_message(module, exception_chain(exc)[-1])) from None


def _broken_install_message(module: str, root: BaseException) -> str:
    message = f"{module} is installed but fails to import ({type(root).__name__}: {first_line(root, 160)})"
    if "torchvision" in str(root):
        message += (
            f"; the installed torchvision does not match torch {torch.__version__}: install the matching "
            "torchvision build or uninstall torchvision"
        )
    return message
