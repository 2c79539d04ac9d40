"""Flickr30k and COCO in the Karpathy split layout that retrieval papers (and Co-Attack/SGA) evaluate on.

``--data-root DIR`` holds ``dataset_flickr30k.json`` (images in ``DIR/flickr30k-images/``) or
``dataset_coco.json`` (images at ``DIR/<filepath>/<filename>``, e.g. ``val2014/COCO_val2014_...jpg``;
``DIR/<filename>`` and ``DIR/val2014/<filename>`` are tried too). The JSON is Karpathy's:
``{"images": [{"filename", "split", "sentences": [{"raw": ...}], "filepath"?}]}``. The ``test`` split is
the standard 1k (Flickr30k) / 5k (COCO) test set.

Bad input: a missing image is an error naming the first missing file (found before any work starts); an
image without sentences is skipped and counted; an empty split is an error. A ``filename`` or ``filepath``
that is absolute or holds ``..`` is refused (the annotation may only name files under the data root: a
hostile JSON must not make a run read, and record, images from elsewhere on the machine), and so is an image
listed twice in the split (same file, or same ``imgid``): its captions would count as wrong matches for its
twin, deflating every recall.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from .retrieval import ImageSource, RetrievalDataset, clean_captions

#: dataset name -> (annotation file, image folder candidates relative to the root)
KARPATHY = {
    "flickr30k": ("dataset_flickr30k.json", ("flickr30k-images", "flickr30k_images", "images", ".")),
    "coco": ("dataset_coco.json", (".", "val2014", "train2014", "images")),
}


def find_annotation(name: str, root: str | Path | None) -> Path:
    filename = KARPATHY[name][0]
    if root is None:
        raise DatasetError(f"{name} needs --data-root (a folder holding {filename} and the images)")
    root = Path(root).expanduser()
    if root.is_file() and root.name.endswith(".json"):
        return root
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist")
    path = root / filename
    if not path.is_file():
        raise DatasetError(f"no {filename} under {root} (the Karpathy split file of {name})")
    return path


def read_karpathy(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise DatasetError(f"{path} is not a Karpathy split file (no 'images' list)")
    return images


def image_path(name: str, root: Path, entry: dict[str, Any], index: int, annotation: Path) -> Path:
    """The first existing candidate for the entry's file; a missing file names the most likely path."""
    filename = entry.get("filename")
    if not isinstance(filename, str) or not filename:
        raise DatasetError(f"{annotation}: image entry {index} has no filename")
    for part in (filename, str(entry.get("filepath") or "")):
        if Path(part).is_absolute() or ".." in Path(part).parts:
            raise DatasetError(f"{annotation}: image entry {index} names {part!r}, outside the data root {root} "
                               f"(absolute and '..' paths are refused)")
    candidates = []
    if entry.get("filepath"):
        candidates.append(root / str(entry["filepath"]) / filename)
    candidates.extend(root / folder / filename for folder in KARPATHY[name][1])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{name}: image file {candidates[0]} listed in {annotation} does not exist "
                       f"(first missing image of the split)")


def load_karpathy(name: str, root: str | Path | None, split: str = "test") -> RetrievalDataset:
    """Images of ``split`` with their raw sentences (``restval`` counts as ``train`` for COCO, as usual)."""
    annotation = find_annotation(name, root)
    folder = annotation.parent
    wanted = {"train", "restval"} if split == "train" else {split}
    entries = [e for e in read_karpathy(annotation) if isinstance(e, dict) and e.get("split") in wanted]
    sources, captions, skipped = [], [], 0
    seen: dict[object, int] = {}
    for index, entry in enumerate(entries):
        for key in (("file", str(entry.get("filepath") or ""), str(entry.get("filename"))),
                    ("imgid", repr(entry.get("imgid"))) if entry.get("imgid") is not None else None):
            if key is not None and key in seen:
                what = f"file {key[2]!r}" if key[0] == "file" else f"imgid {key[1]}"
                raise DatasetError(f"{annotation}: split {split!r} lists {what} twice (image entries {seen[key]} "
                                   f"and {index}); each image must appear once")
            if key is not None:
                seen[key] = index
        texts = clean_captions(s.get("raw", "") for s in entry.get("sentences", []) if isinstance(s, dict))
        if not texts:
            skipped += 1
            continue
        path = image_path(name, folder, entry, index, annotation)
        sources.append(ImageSource(str(path), path=path))
        captions.append(texts)
    if not sources and not skipped:
        splits = sorted({str(e.get("split")) for e in read_karpathy(annotation) if isinstance(e, dict)})
        raise DatasetError(f"{annotation}: split {split!r} is empty (splits present: {', '.join(splits) or 'none'})")
    return RetrievalDataset(name, split, sources, captions, folder, skipped, layout=f"karpathy ({annotation.name})")


def load_flickr30k(root: str | Path | None, split: str = "test") -> RetrievalDataset:
    return load_karpathy("flickr30k", root, split)


def load_coco(root: str | Path | None, split: str = "test") -> RetrievalDataset:
    return load_karpathy("coco", root, split)
