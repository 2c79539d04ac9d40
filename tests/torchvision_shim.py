"""Tests only: make a mismatched torchvision wheel importable so open_clip / transformers' CLIP load.

Why: the torchvision wheel installed here is a CUDA build whose compiled ops do not register with the
CPU torch, and ``import torchvision`` dies registering fake kernels for ``torchvision::nms`` because the
operator schema does not exist. Defining the two schemas it needs (no kernels) lets the import finish;
the adapters never call these ops. The core package must never import this module: users with a working
torchvision do not need it, and users without one get a clear ModelLoadError from the adapters.

Import it (for its side effect) before anything that imports torchvision::

    import torchvision_shim  # noqa: F401
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import torch

#: schemas torchvision registers fake kernels for at import time
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
)


def _op_exists(name: str) -> bool:
    try:
        torch._C._dispatch_has_kernel_for_dispatch_key(f"torchvision::{name}", "CPU")
    except RuntimeError:
        return False
    return True


def _torchvision_imports() -> bool:
    """Try the real import; on failure forget the half-imported modules so a later import starts clean."""
    try:
        importlib.import_module("torchvision")
        return True
    except Exception:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return False


def _define_missing_schemas() -> torch.library.Library | None:
    """Define the torchvision op schemas that do not exist; return the Library that keeps them alive."""
    if importlib.util.find_spec("torchvision") is None or _torchvision_imports():
        return None  # nothing to fix: no torchvision, or a working one
    missing = [schema for schema in _SCHEMAS if not _op_exists(schema.split("(", 1)[0])]
    if not missing:
        return None  # an earlier shim already defined them
    library = torch.library.Library("torchvision", "DEF")
    for schema in missing:
        library.define(schema)
    return library


#: the schemas live as long as this Library object does, i.e. for the whole test session
_LIBRARY = _define_missing_schemas()
