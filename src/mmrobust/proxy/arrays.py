"""Datasets as in-memory uint8 arrays, with JPEG folders decoded once into a verified on-disk cache.

Why: decoding 40k Tiny-ImageNet JPEGs costs more than a training epoch of the proxy's CNN on a CPU, so the
build decodes them once into ``<cache>/arrays/<dataset>-<split>-<key>.npy``. The key hashes the file list
(paths, sizes, mtimes), so changed data is re-decoded; a sidecar records the array's sha256, so a damaged
cache file is detected and re-decoded instead of being trained on.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import load_dataset
from ..data.base import FileImageDataset, TensorImageDataset
from ..data.image_decode import decode_image, image_size_of
from ..models.checkpoint import file_sha256
from ..utils.files import atomic_write, write_json_atomic


@dataclass
class ImageArrays:
    """A labelled split held as uint8 N x 3 x H x W, plus what prompts need (names, synonyms, templates)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    class_synonyms: list[list[str]]
    templates: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_arrays(
    dataset: str, split: str, data_root: str | Path | None, array_dir: Path, progress: bool = True
) -> ImageArrays:
    """Load ``dataset``/``split`` through mmrobust's loaders; file-based datasets go through the array cache."""
    ds = load_dataset(dataset, data_root, split)
    info: dict[str, Any] = {"source": dataset, "split": split, "root": ds.root, "n": len(ds),
                            "n_classes": len(ds.classes)}
    if isinstance(ds, TensorImageDataset):
        images = ds.images
    elif isinstance(ds, FileImageDataset):
        images, cache_file = _decoded_file_images(ds, array_dir, progress)
        info["array_cache"] = str(cache_file)
    else:  # any other dataset type: decode through its own __getitem__ (slow but correct)
        images = torch.stack([(ds[i][0] * 255).round().to(torch.uint8) for i in range(len(ds))])
    labels = torch.as_tensor(np.asarray(ds.labels), dtype=torch.long)
    return ImageArrays(images, labels, list(ds.classes), [list(s) for s in ds.class_synonyms], list(ds.templates), info)


def _file_list_key(ds: FileImageDataset, size: int) -> str:
    digest = hashlib.sha256(f"{ds.name}|{ds.split}|{size}|v1".encode())
    root = Path(ds.root) if ds.root else None
    for path, label in zip(ds.paths, ds.labels):
        stat = path.stat() if path.exists() else None
        rel = path.relative_to(root) if root is not None and path.is_relative_to(root) else path
        digest.update(f"{rel}|{label}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}\n".encode())
    return digest.hexdigest()[:16]


def _decoded_file_images(ds: FileImageDataset, array_dir: Path, progress: bool) -> tuple[torch.Tensor, Path]:
    size = _probe_size(ds)
    key = _file_list_key(ds, size)
    array_file = array_dir / f"{ds.name}-{ds.split}-{size}px-{key}.npy"
    meta_file = array_file.with_suffix(".json")
    cached = _read_verified(array_file, meta_file, (len(ds), 3, size, size))
    if cached is not None:
        return torch.from_numpy(cached), array_file
    if array_file.exists():
        print(f"mmrobust: decoded-image cache {array_file} is damaged; decoding again", file=sys.stderr)
    array = _decode_all(ds, size, progress)
    array_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(array_file, lambda tmp: _save_npy(tmp, array))
    write_json_atomic(meta_file, {"shape": list(array.shape), "sha256": file_sha256(array_file), "key": key,
                                  "source": f"{ds.name}/{ds.split}", "root": ds.root})
    return torch.from_numpy(array), array_file


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as handle:
        np.save(handle, array)


def _read_verified(array_file: Path, meta_file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array if its sha256 and shape match the sidecar; None if absent or damaged."""
    if not array_file.is_file() or not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("sha256") != file_sha256(array_file) or tuple(meta.get("shape", ())) != shape:
            return None
        array = np.load(array_file, allow_pickle=False)
    except (OSError, ValueError, TypeError, AttributeError):  # JSONDecodeError is a ValueError; a list has no .get
        return None
    return array if array.shape == shape and array.dtype == np.uint8 else None


def _probe_size(ds: FileImageDataset) -> int:
    """Side length to store: the dataset's own resize if set, else the first image's (Tiny-ImageNet: 64)."""
    if ds.image_size is not None:
        return int(ds.image_size)
    width, height = ds.expected_size or image_size_of(ds.paths[0])
    return int(min(width, height))


def _decode_all(ds: FileImageDataset, size: int, progress: bool) -> np.ndarray:
    out = np.empty((len(ds), 3, size, size), dtype=np.uint8)
    for i in tqdm(range(len(ds)), desc=f"decode {ds.name}/{ds.split}", unit="img", disable=not progress,
                  mininterval=1.0):
        out[i] = decode_image(ds.paths[i], size, ds.expected_size).transpose(2, 0, 1)
    return out
