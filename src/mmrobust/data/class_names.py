"""``--classnames FILE``: a user's class names replace a dataset's, one per line, line i = label i.

Why: zero-shot accuracy (and what a text attack can change) depends on the words in the prompts as much
as on the images; a folder's own names may be codes or raw directory names, and papers differ in their
curated lists. The count must equal the dataset's number of classes, so a shifted or truncated list is
refused in one line instead of silently mislabelling every class after the gap; a name listed twice is
warned about (two equal zero-shot heads tie, see :func:`.text_lists.warn_duplicates`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .base import ImageClassificationDataset
from .text_lists import read_lines, warn_duplicates


def read_class_names(path: str | Path, n_classes: int, dataset_name: str) -> list[str]:
    """The names in ``path`` (UTF-8, blank lines ignored), exactly ``n_classes`` of them."""
    names = read_lines(path, f"--classnames {path}")
    if len(names) != n_classes:
        raise ConfigError(f"--classnames {path}: {len(names)} names but {dataset_name} has {n_classes} classes "
                          f"(one name per line, line i = label i)")
    warn_duplicates(names, f"--classnames {path}")
    return names


def rename_classes(dataset: ImageClassificationDataset, path: str | Path | None) -> ImageClassificationDataset:
    """``dataset`` with the names of ``path`` (a freshly loaded dataset is changed in place); None = unchanged."""
    if path is None:
        return dataset
    names = read_class_names(path, len(dataset.classes), dataset.name)
    dataset.classes = names
    dataset.class_synonyms = [[name] for name in names]
    return dataset
