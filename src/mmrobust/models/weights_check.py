"""Check a safetensors weight file and a declared architecture against each other before allocating.

Why: a model folder is two files that can disagree — a JSON config that says how big to build the model,
and a weight file. Building from the config first and loading second means a tampered config (a width of
10^9) allocates until the machine dies, and a file with extra or missing tensors is found only after the
allocation (transformers even loads it with a warning). So every loader here does, in this order:

1. :func:`check_dimensions` on the config: every size it declares is below a sane ceiling, because even a
   ``meta``-device build of 10^9 layers never finishes;
2. :func:`read_header` on the weight file: bounded read of the 8-byte length and the JSON header, whose
   offsets must exactly cover the file (a truncated file is refused here);
3. build the model on the ``meta`` device (shapes, no storage), take :func:`expected_tensors`, and
   :func:`check_tensors` — names, shapes and dtypes must match exactly;
4. only then build for real and load.

Every refusal is one :class:`~mmrobust.errors.ModelLoadError` line naming the file and the cause.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from ..errors import ModelLoadError

#: a longer header is refused unread (safetensors itself stops at 100 MB; real headers are kilobytes)
MAX_HEADER_BYTES = 100 * 1024 * 1024
#: bytes per element of each safetensors dtype
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
               "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
#: dtypes a float weight may be stored in (loading converts to the model's dtype)
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
_TORCH_DTYPES = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16", torch.float16: "F16",
                 torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32", torch.int64: "I64",
                 torch.float64: "F64"}

#: (kind, ceiling) of every size a config may declare, by key; the largest real CLIPs are far below these
_LAYERS, _WIDTH, _HEADS = ("layer count", 1024), ("width", 65536), ("head count", 1024)
DIMENSION_CEILINGS: dict[str, tuple[str, int]] = {
    "layers": _LAYERS, "num_hidden_layers": _LAYERS, "blocks_per_stage": _LAYERS,
    "width": _WIDTH, "widths": _WIDTH, "hidden_size": _WIDTH, "embed_dim": _WIDTH, "projection_dim": _WIDTH,
    "head_width": _WIDTH, "intermediate_size": ("MLP width", 262144),
    "heads": _HEADS, "num_attention_heads": _HEADS,
    "vocab_size": ("vocabulary size", 1048576), "type_vocab_size": ("vocabulary size", 1048576),
    "context_length": ("context length", 65536), "max_position_embeddings": ("context length", 65536),
    "image_size": ("image size", 16384), "patch_size": ("image size", 16384), "num_channels": ("channel count", 64),
}


@dataclass(frozen=True)
class TensorSpec:
    """What a weight file says (or a model needs) about one tensor: its shape and safetensors dtype."""

    shape: tuple[int, ...]
    dtype: str


# ---------------------------------------------------------------------- declared sizes
def _sizes(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(dotted path, key, value) of every value in a nested config under a key of DIMENSION_CEILINGS."""
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        where = f"{path}.{key}" if path and isinstance(key, str) else f"{path}[{key}]" if path else str(key)
        if isinstance(key, str) and key in DIMENSION_CEILINGS:
            for item in value if isinstance(value, list) else [value]:
                yield where, key, item
        else:
            yield from _sizes(value, where)


def check_dimensions(config: Mapping[str, Any], where: str) -> None:
    """Refuse a config that declares a size that is not a number, negative, or above its ceiling."""
    for path, key, value in _sizes(config, ""):
        if value is None:  # "use the default": the builder's own default is plausible
            continue
        kind, ceiling = DIMENSION_CEILINGS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelLoadError(f"{where} declares {path} = {value!r}, which is not a {kind}")
        if value < 0:
            raise ModelLoadError(f"{where} declares a negative {kind}: {path} = {value}")
        if value > ceiling:
            raise ModelLoadError(f"{where} declares an implausible {kind}: {path} = {value} (the ceiling is "
                                 f"{ceiling}); refusing to build it")


# ---------------------------------------------------------------------- the weight file's header
def _header_length(path: Path, size: int, prefix: bytes) -> int:
    if len(prefix) < 8:
        raise ModelLoadError(f"weights {path} are truncated: {size} bytes, fewer than the 8-byte header length")
    length = int.from_bytes(prefix, "little")
    if length > MAX_HEADER_BYTES:
        raise ModelLoadError(f"weights {path} declare an absurd header length of {length} bytes (the ceiling is "
                             f"{MAX_HEADER_BYTES}); the file is corrupt or not safetensors")
    if length > size - 8:
        raise ModelLoadError(f"weights {path} are truncated: the header needs {length} bytes but only "
                             f"{size - 8} follow its length")
    return length


def _tensor_spec(path: Path, name: str, entry: Any) -> tuple[TensorSpec, int, int]:
    """(spec, begin, end) of one header entry, after checking its fields and that its byte span fits."""
    bad = f"weights {path} have a corrupt header entry for tensor {name!r}"
    if not isinstance(entry, dict) or entry.get("dtype") not in DTYPE_BYTES:
        raise ModelLoadError(f"{bad}: unknown or missing dtype")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ModelLoadError(f"{bad}: its shape is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and o >= 0 for o in offsets)
            and offsets[0] <= offsets[1]):
        raise ModelLoadError(f"{bad}: its data_offsets are not [begin, end]")
    needed = math.prod(shape) * DTYPE_BYTES[entry["dtype"]]
    if offsets[1] - offsets[0] != needed:
        raise ModelLoadError(f"{bad}: shape {shape} of {entry['dtype']} needs {needed} bytes, "
                             f"its data_offsets span {offsets[1] - offsets[0]}")
    return TensorSpec(tuple(shape), entry["dtype"]), offsets[0], offsets[1]


def _check_coverage(path: Path, spans: list[tuple[int, int, str]], data_bytes: int) -> None:
    """The tensors' byte spans must tile the data section exactly: no gap, no overlap, nothing missing."""
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ModelLoadError(f"weights {path} have a corrupt header: tensor {name!r} starts at byte {begin}, "
                                 f"expected {position}")
        position = end
    if position > data_bytes:
        raise ModelLoadError(f"weights {path} are truncated: the tensors need {position} bytes of data but "
                             f"the file holds {data_bytes}")
    if position < data_bytes:
        raise ModelLoadError(f"weights {path} have {data_bytes - position} bytes after the last tensor; "
                             f"the file is corrupt")


def read_header(path: str | Path) -> dict[str, TensorSpec]:
    """Name -> spec of every tensor in a safetensors file, reading only its header (bounded)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            length = _header_length(path, size, handle.read(8))
            raw = handle.read(length)
    except OSError as exc:
        raise ModelLoadError(f"weights {path} could not be read: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelLoadError(f"weights {path} have a corrupt header: it is not JSON") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"weights {path} have a corrupt header: it is not a JSON object")
    specs: dict[str, TensorSpec] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        specs[name], begin, end = _tensor_spec(path, name, entry)
        spans.append((begin, end, name))
    _check_coverage(path, spans, size - 8 - length)
    return specs


# ---------------------------------------------------------------------- the model's side
def expected_tensors(model: nn.Module) -> dict[str, TensorSpec]:
    """Name -> spec of every tensor ``model`` saves (its state dict); works on a ``meta``-device model."""
    return {name: TensorSpec(tuple(t.shape), _TORCH_DTYPES.get(t.dtype, str(t.dtype)))
            for name, t in model.state_dict().items()}


def unsaved_buffers(model: nn.Module) -> frozenset[str]:
    """Names of non-persistent buffers: older files may hold them (e.g. transformers' ``position_ids``);
    they are recomputed by the model, so a file that has them is not wrong."""
    saved = model.state_dict().keys()
    return frozenset(name for name, _ in model.named_buffers() if name not in saved)


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _tensor_count(n: int, adjective: str = "") -> str:
    return f"{n} {adjective + ' ' if adjective else ''}tensor{'' if n == 1 else 's'}"


def _dtype_fits(stored: str, needed: str) -> bool:
    """A float weight may be stored in any float dtype (loading converts it); anything else exactly."""
    return stored in FLOAT_DTYPES if needed in FLOAT_DTYPES else stored == needed


def check_tensors(found: Mapping[str, TensorSpec], expected: Mapping[str, TensorSpec], where: str,
                  ignorable: frozenset[str] = frozenset()) -> None:
    """Refuse (one line, first problem) unless ``found`` has exactly the names, shapes and dtypes expected."""
    unknown = sorted(set(found) - set(expected) - ignorable)
    if unknown:
        raise ModelLoadError(f"{where} has {_tensor_count(len(unknown), 'unknown')} that the declared "
                             f"architecture does not have: {_names(unknown)}")
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ModelLoadError(f"{where} lacks {_tensor_count(len(missing))} that the declared architecture "
                             f"needs: {_names(missing)}")
    for name, need in expected.items():
        have = found[name]
        if have.shape != need.shape:
            raise ModelLoadError(f"{where}: tensor {name!r} has shape {list(have.shape)} but the declared "
                                 f"architecture needs {list(need.shape)}")
        if not _dtype_fits(have.dtype, need.dtype):
            wanted = f"a float dtype ({', '.join(FLOAT_DTYPES)})" if need.dtype in FLOAT_DTYPES else need.dtype
            raise ModelLoadError(f"{where}: tensor {name!r} is stored as {have.dtype}, not {wanted}")


def check_weights_fit(skeleton: nn.Module, weights: str | Path, where: str | None = None) -> None:
    """Header of ``weights`` against a (``meta``-device) model: the whole pre-allocation check in one call."""
    check_tensors(read_header(weights), expected_tensors(skeleton), where or f"weights {weights}",
                  unsaved_buffers(skeleton))
