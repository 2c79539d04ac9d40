"""The dataset catalog and dataset lists: ``@study``, ``@clip-benchmark``, files of specs, comma lists.

Why a catalog: the study evaluates on ~16 sets; each can live on disk in its own official layout (read by
a local loader) or in CLIP_benchmark's webdataset layout (local folder or hub id). The catalog
(``files/datasets.json``, shipped as package data) maps a study name to both, in that order, with the
study's own prompt template where MMCoA's code has one. Class names for the sets whose own files give
none or raw ones (``files/classnames.json``, from CLIP_benchmark) are data too, keyed by the same names.
Preset lists are plain files of specs
(``files/<preset>.txt``), the same format a user's ``--datasets FILE`` uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DatasetError

WDS_PREFIX = "wds:"
PRESETS = ("study", "clip-benchmark", "retrieval")


@dataclass(frozen=True)
class CatalogEntry:
    """One evaluation set: its local loader name and/or CLIP_benchmark hub id, templates, how to get it."""

    name: str
    title: str
    local: str | None
    wds: str | None
    templates: tuple[str, ...] | None
    get: str | None = None
    note: str | None = None
    #: "classification" (zero-shot) or "retrieval" (image-caption pairs, ``eval --task retrieval``)
    task: str = "classification"

    def candidates(self) -> list[str]:
        """Dataset specs to try, in order: the official local layout, then the webdataset."""
        return [s for s in (self.local, f"{WDS_PREFIX}{self.wds}" if self.wds else None) if s]

    def how_to_get(self, data_root: str | None = None) -> str:
        from .wds import hub_download_hint

        parts = []
        if self.wds:
            parts.append(hub_download_hint(self.wds, data_root))
        if self.get:
            parts.append(self.get)
        return "; ".join(parts) or "no known source"


def _package_file(name: str) -> str:
    return resources.files("mmrobust.data").joinpath("files", name).read_text(encoding="utf-8")


class Catalog:
    """Read-only view of ``files/datasets.json`` and ``files/classnames.json`` (an object the caller owns;
    nothing global). ``raw``/``class_names`` replace the packaged files' contents (tests)."""

    def __init__(self, raw: dict[str, Any] | None = None, class_names: dict[str, list[str]] | None = None) -> None:
        self._raw = raw if raw is not None else json.loads(_package_file("datasets.json"))
        self._class_names = class_names

    @cached_property
    def entries(self) -> dict[str, CatalogEntry]:
        out = {}
        for name, item in self._raw["datasets"].items():
            templates = item.get("templates")
            out[name] = CatalogEntry(name, item.get("title", name), item.get("local"), item.get("wds"),
                                     tuple(templates) if templates else None, item.get("get"), item.get("note"),
                                     item.get("task", "classification"))
        return out

    def get(self, name: str) -> CatalogEntry | None:
        return self.entries.get(name.lower().replace("-", "_"))

    @cached_property
    def shipped_class_names(self) -> dict[str, list[str]]:
        """Catalog name -> class names in label order (read on first use: the file is ~30 kB)."""
        if self._class_names is not None:
            return self._class_names
        return json.loads(_package_file("classnames.json"))["classnames"]

    def class_names(self, name: str) -> list[str] | None:
        """The shipped class names of catalog entry ``name``, or None when the package ships none."""
        names = self.shipped_class_names.get(name.lower().replace("-", "_"))
        return list(names) if names is not None else None

    def for_wds(self, spec: str) -> CatalogEntry | None:
        """The entry of a hub id or of a local folder named like the hub id's last part."""
        tail = spec.rstrip("/").rpartition("/")[2]
        for entry in self.entries.values():
            if entry.wds and (spec == entry.wds or tail == entry.wds.rpartition("/")[2]):
                return entry
        return None


def read_spec_lines(text: str) -> list[str]:
    """One spec per line; blank lines and ``#`` comments are skipped."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def expand_dataset_list(value: str | list[str], _depth: int = 0) -> list[str]:
    """``"cifar10,@study,my_list.txt,wds:/data/x"`` -> a flat list of specs, duplicates removed in order.

    An item is ``@preset`` (a packaged list), an existing file of specs (one per line), or a spec.
    """
    if _depth > 5:
        raise DatasetError("dataset lists nest more than 5 levels deep (a file including itself?)")
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in (part.strip() for chunk in items for part in chunk.split(",")):
        if not item:
            continue
        if item.startswith("@"):
            preset = item[1:]
            if preset not in PRESETS:
                raise DatasetError(f"unknown dataset preset {item!r}; presets: {', '.join('@' + p for p in PRESETS)}")
            expanded = expand_dataset_list(read_spec_lines(_package_file(f"{preset}.txt")), _depth + 1)
        elif not item.startswith(WDS_PREFIX) and Path(item).is_file():
            expanded = expand_dataset_list(read_spec_lines(Path(item).read_text(encoding="utf-8")), _depth + 1)
        else:
            expanded = [item]
        out.extend(s for s in expanded if s not in out)
    if not out and _depth == 0:
        raise DatasetError("the dataset list is empty")
    return out
