"""Retrieval datasets (``mmrobust eval --task retrieval -d NAME``): the ``task="retrieval"`` lines of the dataset
registry (:data:`mmrobust.data.registry.SPECS`: flickr30k, coco) plus ``wds:PATH``, a CLIP_benchmark
webdataset folder (as given or under --data-root) or its hub id (``wds:clip-benchmark/wds_flickr30k``),
found the same way as the classification webdatasets (:func:`mmrobust.data.wds.resolve_wds`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .registry import SPECS
from .retrieval import RetrievalDataset
from .retrieval_wds import PREFIX as WDS_PREFIX
from .retrieval_wds import load_wds_retrieval

ALIASES = {"mscoco": "coco", "mscoco_captions": "coco", "flickr": "flickr30k"}


def retrieval_specs() -> dict:
    return {spec.name: spec for spec in SPECS if spec.task == "retrieval"}


def load_retrieval_dataset(name: str, root: str | Path | None = None, split: str | None = None) -> RetrievalDataset:
    """Load a retrieval dataset; ``split=None`` takes its test split."""
    if name.startswith(WDS_PREFIX):
        spec = name[len(WDS_PREFIX):]
        if not spec:  # ``wds:`` alone: --data-root is the folder
            return load_wds_retrieval(root or "", split or "test")
        from .wds import resolve_wds  # a folder, under --data-root, or a hub id (cached or downloaded)

        return load_wds_retrieval(resolve_wds(spec, root, split or "test"), split or "test")
    specs = retrieval_specs()
    key = ALIASES.get(name.lower(), name.lower())
    if key not in specs:
        raise DatasetError(f"unknown retrieval dataset {name!r}; known: {', '.join(specs)}, wds:PATH")
    return specs[key].loader(root, split or specs[key].default_split)


def list_retrieval_datasets() -> list[dict[str, str]]:
    rows = [{"name": s.name, "default_split": s.default_split, "description": s.description}
            for s in retrieval_specs().values()]
    return rows + [{"name": "wds:PATH", "default_split": "test",
                    "description": "CLIP_benchmark webdataset retrieval folder (<split>/N.tar, .txt captions)"}]
