"""Which dataset spec serves each item of ``--datasets``, and for which task, decided before any work.

An item is a registry name (``cifar10``, ``flickr30k``), ``wds:FOLDER|HUB_ID`` or a catalog name
(``country211``, ``mscoco``). Catalog names try their official local layout first, then the CLIP_benchmark
webdataset (see :mod:`mmrobust.data.catalog`). The task (zero-shot classification or image–text
retrieval) comes from the catalog, the registry line, or a local wds folder's ``dataset_type.txt``, as
CLIP_benchmark marks it. An unknown item stops the benchmark before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import Any

from ..data.catalog import WDS_PREFIX, Catalog, CatalogEntry
from ..data.registry import DATASETS, load_dataset
from ..data.retrieval_registry import ALIASES, load_retrieval_dataset
from ..data.wds import dataset_kind, locate
from ..errors import DatasetError

RETRIEVAL = "retrieval"


@dataclass
class DatasetChoice:
    """An item of the list, its candidate specs, and (after :func:`open_dataset`) the one that loaded."""

    item: str
    candidates: list[str]
    entry: CatalogEntry | None = None
    spec: str | None = None
    problems: list[str] = field(default_factory=list)
    #: "classification" or "retrieval": which evaluation the item's cells run
    task: str = "classification"


def _registry_task(item: str) -> str | None:
    key = ALIASES.get(item.lower(), item.lower().replace("-", "_"))
    spec = DATASETS.get(key) or DATASETS.get(item.lower())
    return spec.task if spec is not None else None


def _wds_task(spec: str, entry: CatalogEntry | None, data_root: str | None) -> str:
    """A local folder says it in ``dataset_type.txt``; a hub id not yet downloaded goes by the catalog."""
    folder = locate(spec, data_root)
    if folder is not None:
        return RETRIEVAL if dataset_kind(folder) == RETRIEVAL else "classification"
    return entry.task if entry is not None else "classification"


def plan_datasets(items: list[str], catalog: Catalog, data_root: str | None = None) -> list[DatasetChoice]:
    """Candidate specs and task per item; the first unknown item raises (naming itself) before anything runs."""
    choices = []
    for item in items:
        entry = catalog.get(item) if not item.startswith(WDS_PREFIX) else catalog.for_wds(item[len(WDS_PREFIX):])
        if item.startswith(WDS_PREFIX):
            if not item[len(WDS_PREFIX):]:
                raise DatasetError("dataset 'wds:' needs a folder or hub id (wds:FOLDER or wds:OWNER/NAME)")
            choices.append(DatasetChoice(item, [item], entry, task=_wds_task(item[len(WDS_PREFIX):], entry, data_root)))
        elif entry is not None:
            choices.append(DatasetChoice(item, entry.candidates(), entry, task=entry.task))
        elif (task := _registry_task(item)) is not None:
            choices.append(DatasetChoice(item, [item], task=task))
        else:
            known = sorted(set(DATASETS) | set(catalog.entries) | set(ALIASES))
            raise DatasetError(f"unknown dataset {item!r} in --datasets; known: {', '.join(known)}, wds:FOLDER|HUB_ID, "
                               f"@study, @clip-benchmark, @retrieval or a file with one spec per line")
    return choices


def open_dataset(choice: DatasetChoice, data_root: str | None, split: str | None) -> Any:
    """The first candidate that loads (its spec is recorded in ``choice``), or None with every reason kept."""
    choice.problems = []
    load = load_retrieval_dataset if choice.task == RETRIEVAL else load_dataset
    for spec in choice.candidates:
        try:
            dataset = load(spec, data_root, split)
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
    if choice.entry is not None:  # the catalog's sources, minus any the loader's own message already gave
        hints = [h for h in choice.entry.how_to_get(data_root).split("; ") if h not in text]
        text += f" -- to get it: {'; '.join(hints)}" if hints else ""
    return text
