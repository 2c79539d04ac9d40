"""Which dataset spec serves each item of ``--datasets``, decided before any work.

An item is a registry name (``cifar10``), ``wds:FOLDER|HUB_ID`` or a catalog name (``country211``).
Catalog names try their official local layout first, then the CLIP_benchmark webdataset (see
:mod:`mmrobust.data.catalog`). An unknown item stops the benchmark before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.base import ImageClassificationDataset
from ..data.catalog import WDS_PREFIX, Catalog, CatalogEntry
from ..data.registry import DATASETS, load_dataset
from ..errors import DatasetError


@dataclass
class DatasetChoice:
    """An item of the list, its candidate specs, and (after :func:`open_dataset`) the one that loaded."""

    item: str
    candidates: list[str]
    entry: CatalogEntry | None = None
    spec: str | None = None
    problems: list[str] = field(default_factory=list)


def plan_datasets(items: list[str], catalog: Catalog) -> list[DatasetChoice]:
    """Candidate specs per item; the first unknown item raises (naming itself) before anything runs."""
    choices = []
    for item in items:
        entry = catalog.get(item) if not item.startswith(WDS_PREFIX) else catalog.for_wds(item[len(WDS_PREFIX):])
        if item.startswith(WDS_PREFIX):
            if not item[len(WDS_PREFIX):]:
                raise DatasetError("dataset 'wds:' needs a folder or hub id (wds:FOLDER or wds:OWNER/NAME)")
            choices.append(DatasetChoice(item, [item], entry))
        elif entry is not None:
            choices.append(DatasetChoice(item, entry.candidates(), entry))
        elif item.lower().replace("-", "_") in DATASETS or item.lower() in DATASETS:
            choices.append(DatasetChoice(item, [item]))
        else:
            known = sorted(set(DATASETS) | set(catalog.entries))
            raise DatasetError(f"unknown dataset {item!r} in --datasets; known: {', '.join(known)}, wds:FOLDER|HUB_ID, "
                               f"@study, @clip-benchmark or a file with one spec per line")
    return choices


def open_dataset(choice: DatasetChoice, data_root: str | None, split: str | None) -> ImageClassificationDataset | None:
    """The first candidate that loads (its spec is recorded in ``choice``), or None with every reason kept."""
    choice.problems = []
    for spec in choice.candidates:
        try:
            dataset = load_dataset(spec, data_root, split)
        except DatasetError as exc:
            choice.problems.append(f"{spec}: {exc}")
            continue
        choice.spec = spec
        return dataset
    if not choice.candidates and choice.entry is not None:
        choice.problems.append(f"{choice.item}: no loader or published webdataset")
    return None


def missing_message(choice: DatasetChoice, data_root: str | None) -> str:
    """What failed and how to get the files (the catalog's sources, or the loader's own message)."""
    text = " | ".join(choice.problems)
    if choice.entry is not None:
        text += f" -- to get it: {choice.entry.how_to_get(data_root)}"
    return text
