"""Model specs -> loaded :class:`VisionLanguageModel`, one loader per backend, imported lazily.

Spec grammar (what ``--model`` accepts):

==========================  =====================================================================
``tiny`` / ``tiny:SEED``     random tiny CLIP built in code (tests, smoke runs; chance accuracy)
``proxy:NAME``               an offline proxy VLM built here on real data (``mmrobust proxy build``)
``open_clip:ARCH[:TAG]``     ``open_clip.create_model_and_transforms(ARCH, pretrained=TAG)``;
                             ``open_clip:hf-hub:ORG/NAME`` for hub ids; no TAG = random init
``hf:ID_OR_FOLDER``          ``transformers.CLIPModel.from_pretrained`` (hub id or local folder)
``ckpt:FOLDER`` / FOLDER     a checkpoint written by mmrobust (``mmrobust.json`` + safetensors)
==========================  =====================================================================
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import MMRobustError, ModelLoadError
from .base import VisionLanguageModel
from .checkpoint import is_checkpoint, load_checkpoint


def _load_tiny(rest: str, spec: str) -> VisionLanguageModel:
    from .tiny import build_tiny

    try:
        seed = int(rest) if rest else 0
    except ValueError:
        raise ModelLoadError(f"model spec {spec!r}: tiny takes an integer seed (tiny:3)") from None
    return build_tiny(seed=seed, spec=spec)


def _lazy(module: str, function: str) -> Callable[[str, str], VisionLanguageModel]:
    def load(rest: str, spec: str) -> VisionLanguageModel:
        return getattr(importlib.import_module(module), function)(rest, spec)

    return load


def _load_ckpt(rest: str, spec: str) -> VisionLanguageModel:
    return load_checkpoint(Path(rest).expanduser(), spec=spec)


@dataclass(frozen=True)
class BackendSpec:
    """One model backend: ``scheme:REST`` specs go to ``loader(rest, spec)``. Adding a backend = an adapter
    module in ``models/`` + one line in :data:`SCHEMES` (lazy, so a missing optional package only matters
    when its scheme is used)."""

    scheme: str
    loader: Callable[[str, str], VisionLanguageModel]
    description: str
    example: str


#: scheme -> backend
SCHEMES: dict[str, BackendSpec] = {b.scheme: b for b in (
    BackendSpec("tiny", _load_tiny, "random tiny CLIP built in code, for tests (chance accuracy)", "tiny"),
    BackendSpec("proxy", _lazy("mmrobust.proxy.loading", "load_proxy"), "offline proxy VLM trained here on real data",
                "proxy:digits"),
    BackendSpec("open_clip", _lazy("mmrobust.models.open_clip_adapter", "load_open_clip"),
                "open_clip model (needs `pip install mmrobust[open_clip]`)", "open_clip:ViT-B-32:openai"),
    BackendSpec("hf", _lazy("mmrobust.models.hf_adapter", "load_hf"),
                "Hugging Face transformers CLIPModel (needs `pip install mmrobust[hf]`)", "hf:openai/clip-vit-base-patch32"),
    BackendSpec("ckpt", _load_ckpt, "checkpoint folder written by mmrobust", "ckpt:runs/mmcoa/final"),
)}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``scheme:rest``; a bare existing checkpoint folder is ``ckpt``."""
    spec = spec.strip()
    if not spec:
        raise ModelLoadError("empty model spec")
    scheme, _, rest = spec.partition(":")
    if scheme in SCHEMES:
        return scheme, rest
    if is_checkpoint(spec):
        return "ckpt", spec
    known = ", ".join(b.example for b in SCHEMES.values())
    raise ModelLoadError(f"unknown model spec {spec!r}: expected one of the forms {known}, or a checkpoint folder")


def load_model(spec: str, device: str | None = None) -> VisionLanguageModel:
    """Load the model named by ``spec`` in eval mode, fp32, on ``device`` (default cpu).

    Any failure becomes one :class:`ModelLoadError` line naming the spec and the cause.
    """
    scheme, rest = parse_spec(spec)
    loader = SCHEMES[scheme].loader
    try:
        model = loader(rest, spec)
    except MMRobustError as exc:
        if spec in str(exc):
            raise
        raise type(exc)(f"model {spec!r}: {exc}") from None
    except Exception as exc:  # backends raise anything; users get one line, not a traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"model {spec!r} could not be loaded: {type(exc).__name__}: {first[:300]}") from None
    model = model.float().eval()
    if device is not None:
        model = model.to(device)
    return model


def list_models() -> list[dict[str, Any]]:
    """Spec forms with a description, for ``mmrobust models``."""
    return [{"scheme": b.scheme, "example": b.example, "description": b.description} for b in SCHEMES.values()]
