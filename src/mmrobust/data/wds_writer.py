"""Write a dataset in CLIP_benchmark's webdataset layout (see :mod:`.wds`), losslessly by default.

Why: tests and benchmarks need wds folders built from real images, and a user with images on disk can
convert them once and then evaluate them like any published CLIP_benchmark set. The output follows
CLIP_benchmark's converter: keys ``s%07d``, one image member and one ``.cls`` member per sample, shards
``<split>/0.tar, 1.tar, ...`` of at most ``max_count`` samples, ``nshards.txt``, ``classnames.txt`` and
``zeroshot_classification_templates.txt`` (templates written with ``{c}``).
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .base import ImageClassificationDataset
from .wds import CLASSNAMES_FILE, NSHARDS_FILE, TEMPLATES_FILE

#: PIL save options per extension; webp and png are lossless, jpg is not
FORMATS = {"png": {"format": "PNG"}, "webp": {"format": "WEBP", "lossless": True}, "jpg": {"format": "JPEG", "quality": 95}}


def encode_image(image: torch.Tensor, extension: str) -> bytes:
    """A 3 x H x W float image in [0, 1] -> encoded bytes (exact for 8-bit sources with png/webp)."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, **FORMATS[extension])
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_wds(dataset: ImageClassificationDataset, folder: str | Path, split: str = "test",
              indices: Sequence[int] | None = None, image_format: str = "png", max_count: int = 10_000,
              templates: Sequence[str] | None = None) -> Path:
    """Write ``dataset[indices]`` (all by default) to ``folder/split`` and the class/template files."""
    if image_format not in FORMATS:
        raise ConfigError(f"image format {image_format!r}: use one of {sorted(FORMATS)}")
    if max_count < 1:
        raise ConfigError(f"max_count must be at least 1, got {max_count}")
    folder = Path(folder)
    (folder / split).mkdir(parents=True, exist_ok=True)
    (folder / CLASSNAMES_FILE).write_text("\n".join(dataset.classes) + "\n", encoding="utf-8")
    templates = list(templates if templates is not None else dataset.templates)
    (folder / TEMPLATES_FILE).write_text("\n".join(t.replace("{}", "{c}") for t in templates) + "\n", encoding="utf-8")
    order = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    mtime = time.time()
    shards = 0
    for start in range(0, len(order), max_count):
        with tarfile.open(folder / split / f"{shards}.tar", mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for number, index in enumerate(order[start : start + max_count], start=start):
                image, label = dataset[index]
                key = "s%07d" % number
                _add(tar, f"{key}.{image_format}", encode_image(image, image_format), mtime)
                _add(tar, f"{key}.cls", str(int(label)).encode("ascii"), mtime)
        shards += 1
    (folder / split / NSHARDS_FILE).write_text(f"{shards}\n", encoding="utf-8")
    return folder
