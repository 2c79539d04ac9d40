"""Tiny-ImageNet-200 in its official layout, with readable class names from ``words.txt``.

Layout under ``root/tiny-imagenet-200`` (or ``root``): ``wnids.txt``, ``words.txt``,
``train/<wnid>/images/<wnid>_<k>.JPEG``, ``val/val_annotations.txt`` + ``val/images/val_<k>.JPEG``.
Class names are the first WordNet synonym ("goldfish"); all synonyms are kept in ``class_synonyms``
(prompt ensembles and the proxy model use them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import DatasetError
from .base import FileImageDataset, refine_classname
from .templates import STUDY_TEMPLATE

FOLDER = "tiny-imagenet-200"
#: every Tiny-ImageNet image is 64 x 64; another size is refused by name rather than failing a batch later
IMAGE_SIZE = (64, 64)
LAYOUT = "tiny-imagenet-200/{wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/val_annotations.txt, val/images/}"


def find_tiny_imagenet(root: str | Path | None) -> Path:
    if root is None:
        raise DatasetError(f"tinyimagenet needs --data-root (a folder containing {LAYOUT})")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"data root {root} does not exist")
    for candidate in (root / FOLDER, root):
        if (candidate / "wnids.txt").is_file():
            return candidate
    raise DatasetError(f"no Tiny-ImageNet under {root}: expected {root}/{LAYOUT}")


def read_class_names(folder: Path) -> tuple[list[str], list[str], list[list[str]]]:
    """(wnids, readable first names, all synonyms) in ``wnids.txt`` order."""
    wnids = [line.strip() for line in _read_text(folder / "wnids.txt").splitlines() if line.strip()]
    words: dict[str, str] = {}
    words_file = folder / "words.txt"
    if not words_file.is_file():
        raise DatasetError(f"missing file {words_file} (class names)")
    for line in _read_text(words_file).splitlines():
        wnid, _, names = line.partition("\t")
        words[wnid.strip()] = names.strip()
    synonyms = []
    for wnid in wnids:
        if wnid not in words:
            raise DatasetError(f"{words_file} has no name for {wnid}")
        synonyms.append([refine_classname(s) for s in words[wnid].split(",") if s.strip()])
    return wnids, [s[0] for s in synonyms], synonyms


def load_tiny_imagenet(root: str | Path | None, split: str = "val") -> FileImageDataset:
    folder = find_tiny_imagenet(root)
    wnids, names, synonyms = read_class_names(folder)
    index = {w: i for i, w in enumerate(wnids)}
    paths: list[Path] = []
    labels: list[int] = []
    if split == "val":
        annotations = folder / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise DatasetError(f"missing file {annotations}")
        dropped = []
        for number, line in enumerate(_read_text(annotations).splitlines(), start=1):
            parts = line.split("\t")
            if len(parts) < 2 or not parts[0].strip():
                if line.strip():
                    dropped.append(number)
                continue
            if parts[1] not in index:
                raise DatasetError(f"{annotations}: unknown wnid {parts[1]!r}")
            paths.append(folder / "val" / "images" / parts[0])
            labels.append(index[parts[1]])
        if dropped:
            print(f"warning: {annotations}: skipped {len(dropped)} malformed line(s) (first: line {dropped[0]}); "
                  "expected '<file>\\t<wnid>\\t...'", file=sys.stderr)
        _warn_unannotated(folder / "val" / "images", {p.name for p in paths}, annotations)
    elif split == "train":
        for wnid in wnids:
            image_dir = folder / "train" / wnid / "images"
            if not image_dir.is_dir():
                raise DatasetError(f"missing folder {image_dir}")
            files = sorted(image_dir.glob("*.JPEG"), key=lambda p: _image_number(p))
            if not files:
                print(f"warning: class folder {image_dir} has no images", file=sys.stderr)
            paths.extend(files)
            labels.extend([index[wnid]] * len(files))
    else:
        raise DatasetError(f"tinyimagenet has splits 'train' and 'val', not {split!r}")
    if not paths:
        raise DatasetError(f"no images found for tinyimagenet split {split!r} under {folder}")
    return FileImageDataset(
        paths, labels, image_size=None, expected_size=IMAGE_SIZE, name="tinyimagenet", split=split, classes=names,
        templates=[STUDY_TEMPLATE], root=folder, class_synonyms=synonyms,
    )


def _image_number(path: Path) -> tuple[int, str]:
    stem = path.stem.rsplit("_", 1)[-1]
    return (int(stem), path.name) if stem.isdigit() else (10**9, path.name)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None


def _warn_unannotated(image_dir: Path, annotated: set[str], annotations: Path) -> None:
    """Images without an annotation line are left out of the split: say so once instead of silently."""
    if not image_dir.is_dir():
        return
    missing = sorted(p.name for p in image_dir.iterdir() if p.suffix == ".JPEG" and p.name not in annotated)
    if missing:
        print(f"warning: {len(missing)} image(s) in {image_dir} have no line in {annotations} and are left out "
              f"(first: {missing[0]})", file=sys.stderr)
