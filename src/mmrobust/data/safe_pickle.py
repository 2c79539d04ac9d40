"""Read CIFAR's python pickles without ever running code from them.

Why: ``pickle.load`` calls whatever callable a file names (``__reduce__``), so a dataset folder passed between
colleagues could run arbitrary code the moment it is read. The official CIFAR files only contain dicts, lists,
str/bytes, ints and numpy integer arrays, so this unpickler admits exactly the globals those need (numpy's array
reconstruction and ``_codecs.encode`` for protocol-2 bytes) and refuses every other name *before* importing it:
a foreign or malicious file is one error naming the file, and nothing in it runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: numpy dtype kinds an official CIFAR array may have (uint8 pixels; int labels in re-pickled copies)
_INTEGER_KINDS = "iu"


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names something outside the admitted set (it may be an attempt to run code)."""


def _checked_dtype(dtype: Any) -> np.dtype:
    resolved = np.dtype(dtype)
    if resolved.kind not in _INTEGER_KINDS or resolved.fields is not None:
        raise UnsafePickleError(f"it holds a numpy array of dtype {resolved}, only integer arrays are admitted")
    return resolved


def _dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """``numpy.dtype`` as pickles call it, for integer dtypes only."""
    _checked_dtype(obj)
    return np.dtype(obj, align, copy)


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` (protocols 0-4), for plain ndarrays only; the dtype arrives later via BUILD."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"it reconstructs a {subtype!r}, only numpy.ndarray is admitted")
    _checked_dtype(typecode)
    return np.ndarray.__new__(np.ndarray, shape, typecode)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's ``_frombuffer`` (protocol 5), for integer dtypes only; copied so the array owns its memory."""
    array = np.frombuffer(buffer, dtype=_checked_dtype(dtype))
    return array.reshape(shape, order=order).copy()


def _encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes: latin-1 text only (no arbitrary codec)."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise UnsafePickleError(f"it calls _codecs.encode with encoding {encoding!r}; only latin1 is admitted")
    return text.encode("latin-1")


_ADMITTED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"it names {module}.{name}, which CIFAR files never contain (refused: loading it could run code)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("it uses persistent ids, which CIFAR files never contain")


def _check_arrays(obj: Any) -> None:
    """The dtype of an array is set by BUILD after reconstruction: check every array that came out."""
    if isinstance(obj, np.ndarray):
        _checked_dtype(obj.dtype)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _check_arrays(key)
            _check_arrays(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _check_arrays(value)


def load_restricted(data: bytes) -> Any:
    """Unpickle ``data`` admitting only CIFAR's contents; raises :class:`pickle.UnpicklingError` subclasses or
    the usual decoding errors for anything else."""
    result = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    _check_arrays(result)
    return result


def load_restricted_file(path: Path) -> Any:
    return load_restricted(Path(path).read_bytes())
