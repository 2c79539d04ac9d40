"""The batch pipeline: same batches whatever the worker count; in-memory fast path; one-line worker errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmrobust.data import SubsetView, load_dataset
from mmrobust.data.loader import auto_workers, iterate_index_batches
from mmrobust.errors import DatasetError


def _all(dataset, batches, workers):
    return [(images.clone(), labels.clone()) for images, labels in iterate_index_batches(dataset, batches, workers)]


def test_workers_do_not_change_the_batches(tinyimagenet_root: Path) -> None:
    dataset = load_dataset("tinyimagenet", tinyimagenet_root)
    batches = [[9, 3, 7000], [5, 4], [1, 2, 3, 4, 5]]  # any order, uneven sizes
    serial = _all(dataset, batches, 0)
    parallel = _all(dataset, batches, 2)
    assert len(serial) == len(parallel) == 3
    for (a, la), (b, lb), batch in zip(serial, parallel, batches):
        assert torch.equal(a, b) and torch.equal(la, lb)
        assert torch.equal(a[0], dataset[batch[0]][0])
    assert auto_workers(dataset) >= 0


def test_in_memory_fast_path_matches_item_access() -> None:
    from mmrobust.data.base import TensorImageDataset

    images = torch.randint(0, 256, (300, 3, 8, 8), dtype=torch.uint8)
    memory = TensorImageDataset(images, [i % 3 for i in range(300)], name="m", split="test", classes=["a", "b", "c"],
                                templates=["{}"])
    view = SubsetView(SubsetView(memory, list(range(100, 200))), [5, 0, 99])
    assert auto_workers(view) == 0
    (images, labels), = _all(view, [[2, 0, 1]], None)
    expected = torch.stack([view[i][0] for i in (2, 0, 1)])
    assert torch.equal(images, expected) and labels.tolist() == [view[i][1] for i in (2, 0, 1)]


def test_worker_errors_are_one_line(tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for k in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / cls / f"{k}.png")
    (tmp_path / "b" / "2.png").write_bytes(b"broken")
    dataset = load_dataset("imagefolder", tmp_path, image_size=8)
    with pytest.raises(DatasetError) as info:
        _all(dataset, [[0, 1], [2, 3], [4, 5]], 2)
    assert "\n" not in str(info.value) and "2.png" in str(info.value)
    with pytest.raises(DatasetError, match="--workers must be 0 or more"):
        _all(dataset, [[0]], -1)
