"""Retrieval data: the Karpathy and webdataset layouts read the same fixture identically, bad input gives one
clear error (or a counted skip), and recall / attack success rate follow their published definitions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from mmrobust.data.retrieval_registry import load_retrieval_dataset
from mmrobust.errors import DatasetError
from mmrobust.eval import retrieval_metrics as m
from tar_members import write_tar



def test_both_layouts_read_the_same_images_and_captions(tin_captions):
    karpathy = load_retrieval_dataset("flickr30k", tin_captions)
    wds = load_retrieval_dataset(f"wds:{tin_captions / 'wds'}")
    assert len(karpathy) == len(wds) == 6 and karpathy.n_captions == 18
    assert karpathy.captions == wds.captions
    assert all(len(set(c)) == 3 for c in karpathy.captions)  # several distinct captions per image
    karpathy.image_size = wds.image_size = 32
    assert torch.equal(karpathy.images(range(6)), wds.images(range(6)))
    images = karpathy.images([0, 5])
    assert images.shape == (2, 3, 32, 32) and 0 <= float(images.min()) and float(images.max()) <= 1


def _karpathy(folder: Path, entries: list[dict]) -> Path:
    (folder / "flickr30k-images").mkdir(parents=True, exist_ok=True)
    (folder / "dataset_flickr30k.json").write_text(json.dumps({"images": entries}))
    return folder


def _jpeg(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 6), (10, 200, 30)).save(path)


def test_missing_image_names_the_first_missing_file(tmp_path):
    root = _karpathy(tmp_path, [
        {"filename": "a.jpg", "split": "test", "sentences": [{"raw": "x"}]},
        {"filename": "b.jpg", "split": "test", "sentences": [{"raw": "y"}]},
        {"filename": "c.jpg", "split": "test", "sentences": [{"raw": "z"}]},
    ])
    _jpeg(root / "flickr30k-images" / "a.jpg")
    with pytest.raises(DatasetError, match=r"flickr30k-images/b\.jpg"):
        load_retrieval_dataset("flickr30k", root)


def test_image_without_captions_is_skipped_and_counted_and_empty_split_is_an_error(tmp_path):
    root = _karpathy(tmp_path, [
        {"filename": "a.jpg", "split": "test", "sentences": [{"raw": "a dog"}, {"raw": "  "}]},
        {"filename": "b.jpg", "split": "test", "sentences": []},
        {"filename": "c.jpg", "split": "train", "sentences": [{"raw": "z"}]},
    ])
    _jpeg(root / "flickr30k-images" / "a.jpg")
    data = load_retrieval_dataset("flickr30k", root)
    assert len(data) == 1 and data.captions == [["a dog"]] and data.n_skipped_no_captions == 1
    with pytest.raises(DatasetError, match="'val' is empty"):
        load_retrieval_dataset("flickr30k", root, "val")
    with pytest.raises(DatasetError, match="unknown retrieval dataset"):
        load_retrieval_dataset("flickr8k", root)


def test_coco_uses_filepath(tmp_path):
    (tmp_path / "val2014").mkdir()
    _jpeg(tmp_path / "val2014" / "COCO_1.jpg")
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [
        {"filepath": "val2014", "filename": "COCO_1.jpg", "split": "test", "sentences": [{"raw": "a cat"}]}]}))
    data = load_retrieval_dataset("coco", tmp_path)
    data.image_size = 4
    assert data.images([0]).shape == (1, 3, 4, 4)




def test_webdataset_bad_input(tmp_path):
    buffer = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    (tmp_path / "test").mkdir()
    (tmp_path / "dataset_type.txt").write_text("retrieval\n")
    (tmp_path / "test" / "nshards.txt").write_text("2\n")
    write_tar(tmp_path / "test" / "0.tar", {"s0.png": buffer.getvalue(), "s0.txt": b"one\ntwo\n",
                                          "s1.png": buffer.getvalue(), "s1.txt": b"\n"})
    with pytest.raises(DatasetError, match=r"missing shard .*1\.tar"):
        load_retrieval_dataset(f"wds:{tmp_path}")
    write_tar(tmp_path / "test" / "1.tar", {"s2.png": buffer.getvalue()})
    data = load_retrieval_dataset(f"wds:{tmp_path}")
    assert data.captions == [["one", "two"]] and data.n_skipped_no_captions == 2
    write_tar(tmp_path / "test" / "1.tar", {"s3.png": b"not an image", "s3.txt": b"a caption"})
    with pytest.raises(DatasetError, match=r"corrupt image 1\.tar:s3\.png"):
        load_retrieval_dataset(f"wds:{tmp_path}").image(1)
    write_tar(tmp_path / "test" / "1.tar", {"s2.txt": b"caption without image"})
    with pytest.raises(DatasetError, match="s2 .* no image"):
        load_retrieval_dataset(f"wds:{tmp_path}")
    (tmp_path / "dataset_type.txt").write_text("classification\n")
    with pytest.raises(DatasetError, match="retrieval needs"):
        load_retrieval_dataset(f"wds:{tmp_path}")


def test_recall_and_success_rate_definitions():
    # 3 images; captions 0,1 -> image 0, caption 2 -> image 1, caption 3 -> image 2
    owner = torch.tensor([0, 0, 1, 2])
    similarity = torch.tensor([[0.9, 0.1, 0.8, 0.0],   # image 0: own caption 0 first; caption 2 ranks image 1 third
                               [0.2, 0.3, 0.1, 0.5],   # image 1: own caption 2 last of 4
                               [0.0, 0.9, 0.2, 0.4]])  # image 2: own caption 3 second
    t2i = m.text_to_image_ranks(similarity, owner)
    i2t = m.image_to_text_ranks(similarity, owner)
    assert t2i.tolist() == [0, 2, 2, 1] and i2t.tolist() == [0, 3, 1]
    summary = m.recall_summary({"text_to_image": t2i, "image_to_text": i2t}, ks=(1, 2))
    assert summary["text_to_image"] == {"r@1": 0.25, "r@2": 0.5}
    assert summary["image_to_text"] == {"r@1": pytest.approx(1 / 3), "r@2": pytest.approx(2 / 3)}
    attacked = {"text_to_image": torch.tensor([1, 0, 1, 1]), "image_to_text": torch.tensor([0, 0, 0])}
    asr = m.success_rate_summary({"text_to_image": t2i, "image_to_text": i2t}, attacked, ks=(1, 2))
    assert asr["text_to_image"]["asr@1"] == 1.0  # the only clean R@1 hit (caption 0) is lost
    assert asr["text_to_image"]["asr@2"] == 0.0
    assert asr["image_to_text"]["asr@1"] == 0.0


def test_classification_refuses_a_retrieval_dataset(tin_captions):
    from mmrobust.data import load_dataset

    with pytest.raises(DatasetError, match="use --task retrieval"):
        load_dataset("flickr30k", tin_captions)
