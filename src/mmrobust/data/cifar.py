"""CIFAR-10 and CIFAR-100 in the official python pickle layout, any number of images per batch.

Layouts (under ``root`` or ``root/cifar-10-batches-py`` / ``root/cifar-100-python``):
CIFAR-10: ``data_batch_1..5``, ``test_batch``, ``batches.meta``; CIFAR-100: ``train``, ``test``, ``meta``.
Pickles are read with ``encoding="latin1"`` as the official page prescribes, through a restricted unpickler
(:mod:`.safe_pickle`) that admits only what the official files contain, so a crafted file cannot run code.
Contents are checked, never coerced: pixels must be integers in 0..255 and labels integers in range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DatasetError
from .base import TensorImageDataset, refine_classname
from .safe_pickle import UnsafePickleError, load_restricted_file
from .templates import STUDY_TEMPLATE

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"


def _find_folder(root: str | Path | None, folder: str, marker: str, dataset: str) -> Path:
    if root is None:
        raise DatasetError(f"{dataset} needs --data-root (a folder containing {folder}/)")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"data root {root} does not exist")
    for candidate in (root / folder, root):
        if (candidate / marker).is_file():
            return candidate
    raise DatasetError(f"no {dataset} under {root}: expected {root / folder}/{marker} (the official python layout)")


def _read_pickle(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    try:
        raw = load_restricted_file(path)
    except UnsafePickleError as exc:
        raise DatasetError(f"refusing {path}: {exc}") from None
    except MemoryError:
        raise DatasetError(f"corrupt pickle {path}: it asks for more memory than exists") from None
    except Exception as exc:  # a damaged pickle raises many types (EOFError, ValueError, struct.error, ...)
        raise DatasetError(f"truncated or corrupt pickle {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"corrupt pickle {path}: expected a dict, found {type(raw).__name__}")
    return {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _pixels(value: Any, path: Path) -> np.ndarray:
    """The ``data`` array as uint8, refusing (never wrapping or rounding) anything that is not 0..255 integers."""
    if not isinstance(value, np.ndarray):
        raise DatasetError(f"corrupt CIFAR file {path}: data is a {type(value).__name__}, expected a numpy array")
    if value.dtype.kind not in "iu":
        raise DatasetError(f"corrupt CIFAR file {path}: pixels are {value.dtype}, expected uint8 integers 0..255")
    if value.size and (int(value.min()) < 0 or int(value.max()) > 255):
        raise DatasetError(f"corrupt CIFAR file {path}: pixel values outside 0..255")
    return value.astype(np.uint8, copy=False)


def _labels(value: Any, path: Path, key: str, n_classes: int) -> list[int]:
    """Labels as Python ints; a string, None, bool or float label is an error (3.7 must not become 3)."""
    items = value.tolist() if isinstance(value, np.ndarray) else value
    if not isinstance(items, (list, tuple)):
        raise DatasetError(f"corrupt CIFAR file {path}: {key} is a {type(value).__name__}, expected a list of ints")
    for position, label in enumerate(items):
        if not isinstance(label, int) or isinstance(label, bool):
            raise DatasetError(
                f"corrupt CIFAR file {path}: {key}[{position}] is {label!r} ({type(label).__name__}), expected an int"
            )
        if not 0 <= label < n_classes:
            raise DatasetError(f"corrupt CIFAR file {path}: {key}[{position}] = {label} is outside 0..{n_classes - 1}")
    return list(items)


def _images_and_labels(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, list[int]]:
    batch = _read_pickle(path)
    for key in ("data", label_key):
        if key not in batch:
            raise DatasetError(f"corrupt CIFAR file {path}: key {key!r} is missing")
    data = _pixels(batch["data"], path)
    labels = _labels(batch[label_key], path, label_key, n_classes)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != data.shape[0]:
        raise DatasetError(f"corrupt CIFAR file {path}: data {data.shape} does not match {len(labels)} labels of 3072 bytes")
    return data.reshape(-1, 3, 32, 32), labels


def _class_names(meta: dict[str, Any], key: str, path: Path, expected: int) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or len(names) != expected or not all(isinstance(n, (str, bytes)) for n in names):
        raise DatasetError(f"corrupt {path}: expected {expected} {key} (strings)")
    return [refine_classname(n if isinstance(n, str) else n.decode("latin-1")) for n in names]


def _build(images: list[np.ndarray], labels: list[int], classes: list[str], name: str, split: str, root: Path) -> TensorImageDataset:
    tensor = torch.from_numpy(np.concatenate(images, axis=0)) if images else torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    return TensorImageDataset(tensor, labels, name=name, split=split, classes=classes, templates=[STUDY_TEMPLATE], root=root)


def load_cifar10(root: str | Path | None, split: str = "test") -> TensorImageDataset:
    folder = _find_folder(root, CIFAR10_FOLDER, "batches.meta", "CIFAR-10")
    meta = _read_pickle(folder / "batches.meta")
    classes = _class_names(meta, "label_names", folder / "batches.meta", 10)
    files = {"test": ["test_batch"], "train": [f"data_batch_{i}" for i in range(1, 6)]}.get(split)
    if files is None:
        raise DatasetError(f"CIFAR-10 has splits 'train' and 'test', not {split!r}")
    images, labels = [], []
    for name in files:
        data, batch_labels = _images_and_labels(folder / name, "labels", len(classes))
        images.append(data)
        labels.extend(batch_labels)
    return _build(images, labels, classes, "cifar10", split, folder)


def load_cifar100(root: str | Path | None, split: str = "test") -> TensorImageDataset:
    folder = _find_folder(root, CIFAR100_FOLDER, "meta", "CIFAR-100")
    meta = _read_pickle(folder / "meta")
    classes = _class_names(meta, "fine_label_names", folder / "meta", 100)
    if split not in ("train", "test"):
        raise DatasetError(f"CIFAR-100 has splits 'train' and 'test', not {split!r}")
    data, labels = _images_and_labels(folder / split, "fine_labels", len(classes))
    return _build([data], labels, classes, "cifar100", split, folder)
