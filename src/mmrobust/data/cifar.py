"""CIFAR-10 and CIFAR-100 in the official python pickle layout, any number of images per batch.

Layouts (under ``root`` or ``root/cifar-10-batches-py`` / ``root/cifar-100-python``):
CIFAR-10: ``data_batch_1..5``, ``test_batch``, ``batches.meta``; CIFAR-100: ``train``, ``test``, ``meta``.
Pickles are read with ``encoding="latin1"`` as the official page prescribes; only open files you trust
(pickle can execute code), which is why the loader reads nothing but these fixed names.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DatasetError
from .base import TensorImageDataset, refine_classname
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
        with open(path, "rb") as handle:
            raw = pickle.load(handle, encoding="latin1")
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(f"truncated or corrupt pickle {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"corrupt pickle {path}: expected a dict, found {type(raw).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _images_and_labels(path: Path, label_key: str) -> tuple[np.ndarray, list[int]]:
    batch = _read_pickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = [int(x) for x in batch[label_key]]
    except KeyError as exc:
        raise DatasetError(f"corrupt CIFAR file {path}: key {exc} is missing") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != data.shape[0]:
        raise DatasetError(f"corrupt CIFAR file {path}: data {data.shape} does not match {len(labels)} labels of 3072 bytes")
    return data.reshape(-1, 3, 32, 32), labels


def _build(images: list[np.ndarray], labels: list[int], classes: list[str], name: str, split: str, root: Path) -> TensorImageDataset:
    tensor = torch.from_numpy(np.concatenate(images, axis=0)) if images else torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    if labels and (min(labels) < 0 or max(labels) >= len(classes)):
        raise DatasetError(f"{name} under {root}: labels outside 0..{len(classes) - 1}")
    return TensorImageDataset(tensor, labels, name=name, split=split, classes=classes, templates=[STUDY_TEMPLATE], root=root)


def load_cifar10(root: str | Path | None, split: str = "test") -> TensorImageDataset:
    folder = _find_folder(root, CIFAR10_FOLDER, "batches.meta", "CIFAR-10")
    meta = _read_pickle(folder / "batches.meta")
    classes = [refine_classname(c if isinstance(c, str) else c.decode()) for c in meta.get("label_names", [])]
    if len(classes) != 10:
        raise DatasetError(f"corrupt {folder / 'batches.meta'}: expected 10 label_names")
    files = {"test": ["test_batch"], "train": [f"data_batch_{i}" for i in range(1, 6)]}.get(split)
    if files is None:
        raise DatasetError(f"CIFAR-10 has splits 'train' and 'test', not {split!r}")
    images, labels = [], []
    for name in files:
        data, batch_labels = _images_and_labels(folder / name, "labels")
        images.append(data)
        labels.extend(batch_labels)
    return _build(images, labels, classes, "cifar10", split, folder)


def load_cifar100(root: str | Path | None, split: str = "test") -> TensorImageDataset:
    folder = _find_folder(root, CIFAR100_FOLDER, "meta", "CIFAR-100")
    meta = _read_pickle(folder / "meta")
    classes = [refine_classname(c if isinstance(c, str) else c.decode()) for c in meta.get("fine_label_names", [])]
    if len(classes) != 100:
        raise DatasetError(f"corrupt {folder / 'meta'}: expected 100 fine_label_names")
    if split not in ("train", "test"):
        raise DatasetError(f"CIFAR-100 has splits 'train' and 'test', not {split!r}")
    data, labels = _images_and_labels(folder / split, "fine_labels")
    return _build([data], labels, classes, "cifar100", split, folder)
