"""A small *real-image* retrieval set for tests and benchmarks when no captioned set is available offline.

"Tiny-ImageNet WordNet captions": real Tiny-ImageNet-200 val photos, one per class for ``n_images``
classes chosen under a seed, each with ``captions_per_image`` captions written from the class's WordNet
names and synonyms in ``words.txt`` ("a photo of a goldfish.", "a close-up picture of the carassius
auratus.", ...). It is *not* Flickr30k: captions name the object only, so it measures whether an attack
breaks object-level image–text matching, and every report built on it should say so.

Written in both layouts mmrobust reads: the Karpathy layout (``dataset_flickr30k.json`` +
``flickr30k-images/``, split ``test``) and CLIP_benchmark's webdataset layout (``wds/``).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .tiny_imagenet import find_tiny_imagenet, read_class_names

NAME = "Tiny-ImageNet WordNet captions"
CAPTION_TEMPLATES = (
    "a photo of {a} {}.",
    "a close-up picture of the {}.",
    "an image showing {a} {}.",
    "{A} {} in its usual surroundings.",
    "a low-resolution photo of the {}.",
)


def captions_for(synonyms: list[str], n: int) -> list[str]:
    """``n`` captions cycling through the synonyms and the templates together."""
    out = []
    for j in range(n):
        name = synonyms[j % len(synonyms)]
        article = "an" if name[:1] in "aeiou" else "a"
        out.append(CAPTION_TEMPLATES[j % len(CAPTION_TEMPLATES)].format(name, a=article, A=article.capitalize()))
    return out


def choose_images(folder: Path, n_images: int, seed: int) -> list[tuple[str, int]]:
    """(val file name, class index) for the first val image of ``n_images`` seeded classes."""
    wnids, _, _ = read_class_names(folder)
    if not 1 <= n_images <= len(wnids):
        raise DatasetError(f"the fixture takes 1..{len(wnids)} images (one per class), got {n_images}")
    first: dict[str, str] = {}
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            first.setdefault(parts[1], parts[0])
    classes = sorted(np.random.default_rng(seed).choice(len(wnids), size=n_images, replace=False).tolist())
    return [(first[wnids[c]], c) for c in classes]


def build_retrieval_fixture(
    tinyimagenet_root: str | Path, output: str | Path, n_images: int = 100, captions_per_image: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Write the fixture under ``output`` (Karpathy layout at the top, webdataset under ``wds/``)."""
    folder = find_tiny_imagenet(tinyimagenet_root)
    _, _, synonyms = read_class_names(folder)
    if captions_per_image < 1:
        raise DatasetError(f"captions per image must be at least 1, got {captions_per_image}")
    output = Path(output)
    images_dir = output / "flickr30k-images"
    images_dir.mkdir(parents=True, exist_ok=True)
    entries, samples = [], []
    for imgid, (filename, label) in enumerate(choose_images(folder, n_images, seed)):
        shutil.copyfile(folder / "val" / "images" / filename, images_dir / filename)
        captions = captions_for(synonyms[label], captions_per_image)
        entries.append({"filename": filename, "imgid": imgid, "split": "test",
                        "sentids": list(range(imgid * captions_per_image, (imgid + 1) * captions_per_image)),
                        "sentences": [{"raw": c, "tokens": c.rstrip(".").split()} for c in captions]})
        samples.append((filename, captions))
    description = {"name": NAME, "source": str(folder), "seed": seed, "n_images": len(entries),
                   "captions_per_image": captions_per_image, "templates": list(CAPTION_TEMPLATES)}
    (output / "dataset_flickr30k.json").write_text(json.dumps({"dataset": "tinyimagenet-wordnet-captions",
                                                               "description": description, "images": entries}))
    write_wds(output / "wds", images_dir, samples)
    (output / "README.txt").write_text(
        f"{NAME}: {len(entries)} real Tiny-ImageNet val photos (one per class, seed {seed}), "
        f"{captions_per_image} captions each from WordNet names/synonyms. Not Flickr30k.\n"
        "Karpathy layout: dataset_flickr30k.json + flickr30k-images/ (split 'test'); webdataset: wds/.\n")
    return description


def write_wds(root: Path, images_dir: Path, samples: list[tuple[str, list[str]]], split: str = "test") -> None:
    """One shard in CLIP_benchmark's retrieval layout (keys s0000000, captions newline-separated)."""
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "dataset_type.txt").write_text("retrieval\n")
    with tarfile.open(root / split / "0.tar", "w") as tar:
        for index, (filename, captions) in enumerate(samples):
            key = f"s{index:07d}"
            _add(tar, f"{key}.jpg", (images_dir / filename).read_bytes())
            _add(tar, f"{key}.txt", "\n".join(c.replace("\n", r"\n") for c in captions).encode())
    (root / split / "nshards.txt").write_text("1\n")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
