"""Any ImageFolder tree: ``root/<class name>/<image>``; class names are the folder names.

Images of any size are resized (shorter side) and centre-cropped to ``image_size`` so batches stack.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import DatasetError
from .base import FileImageDataset, refine_classname
from .templates import STUDY_TEMPLATE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


def load_image_folder(root: str | Path | None, split: str = "test", image_size: int = 224) -> FileImageDataset:
    """``split`` selects ``root/<split>/`` when that folder exists, otherwise ``root`` itself is the split."""
    if root is None:
        raise DatasetError("imagefolder needs --data-root (a folder with one sub-folder of images per class)")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"data root {root} does not exist")
    folder = root / split if (root / split).is_dir() else root
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"no class folders under {folder}: expected {folder}/<class name>/<image files>")
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = [p for p in sorted(class_dir.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            print(f"warning: class folder {class_dir} has no images (its class is kept, never predicted right)",
                  file=sys.stderr)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise DatasetError(f"no image files under {folder} (looked for {sorted(IMAGE_SUFFIXES)})")
    return FileImageDataset(
        paths, labels, image_size=image_size, name="imagefolder", split=split,
        classes=[refine_classname(d.name) for d in class_dirs], templates=[STUDY_TEMPLATE], root=folder,
    )
