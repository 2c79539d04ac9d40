"""Datasets: CIFAR pickles of any size, Tiny-ImageNet names, ImageFolder, digits' fixed split, sampling,
templates."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrobust.data import load_dataset, resolve_templates, subsample_indices, validate_templates
from mmrobust.data.digits import digits_split_indices
from mmrobust.errors import ConfigError, DatasetError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _write_cifar10(root: Path, n_test: int, seed: int = 0, labels: list[int] | None = None) -> tuple[np.ndarray, list[int]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR10_NAMES}))
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    labels = labels if labels is not None else rng.integers(0, 10, n_test).tolist()
    # bytes keys, as in the official files read with encoding="latin1"
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"test"}))
    return data, labels


@pytest.mark.parametrize("n", [1, 7, 123])
def test_cifar10_pickle_with_any_number_of_images(tmp_path, n):
    data, labels = _write_cifar10(tmp_path, n)
    ds = load_dataset("cifar10", tmp_path)
    assert len(ds) == n and ds.classes == CIFAR10_NAMES and ds.split == "test"
    assert ds.labels.tolist() == labels
    image, label = ds[n - 1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == labels[-1]
    # the official layout stores 1024 R, then 1024 G, then 1024 B values, row-major
    expected = torch.from_numpy(data[n - 1].reshape(3, 32, 32).astype(np.float32) / 255.0)
    assert torch.equal(image, expected)


def test_cifar10_labels_out_of_range(tmp_path):
    _write_cifar10(tmp_path, 3, labels=[0, 10, 2])
    with pytest.raises(DatasetError, match=r"labels\[\d+\] = \S+ is outside"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_real_files(cifar10_root):
    ds = load_dataset("cifar10", cifar10_root)
    assert ds.classes == CIFAR10_NAMES
    assert len(ds) == len(ds.labels) > 0
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert 0 <= label < 10


def test_cifar10_root_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("cifar10", tmp_path / "missing")
    with pytest.raises(DatasetError, match="--data-root"):
        load_dataset("cifar10", None)
    with pytest.raises(DatasetError, match="batches.meta"):
        load_dataset("cifar10", tmp_path)  # exists, but holds nothing


def _write_tiny_imagenet(root: Path) -> Path:
    from PIL import Image

    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("n01443537\nn09999999\n")
    (folder / "words.txt").write_text(
        "n00000001\tentity\nn01443537\tgoldfish, Carassius auratus\nn09999999\tsea_lion, Zalophus\n"
    )
    lines = []
    for k, wnid in enumerate(["n09999999", "n01443537", "n09999999"]):
        Image.new("RGB", (64, 64), (k * 40, 0, 0)).save(folder / "val" / "images" / f"val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_tinyimagenet_class_names_from_words_txt(tmp_path):
    _write_tiny_imagenet(tmp_path)
    ds = load_dataset("tinyimagenet", tmp_path)
    assert ds.classes == ["goldfish", "sea lion"]  # first synonym, readable, in wnids.txt order
    assert ds.class_synonyms[0] == ["goldfish", "carassius auratus"]
    assert ds.labels.tolist() == [1, 0, 1]
    image, _ = ds[0]
    assert image.shape == (3, 64, 64)
    with pytest.raises(DatasetError, match="splits"):
        load_dataset("tinyimagenet", tmp_path, "test")


def test_tinyimagenet_missing_name(tmp_path):
    folder = _write_tiny_imagenet(tmp_path)
    (folder / "wnids.txt").write_text("n01443537\nn07777777\n")
    with pytest.raises(DatasetError, match="n07777777"):
        load_dataset("tinyimagenet", tmp_path)


def test_tinyimagenet_real_files(tinyimagenet_root):
    ds = load_dataset("tinyimagenet", tinyimagenet_root)
    folder = tinyimagenet_root / "tiny-imagenet-200"
    wnids = (folder / "wnids.txt").read_text().split()
    words = dict(line.split("\t", 1) for line in (folder / "words.txt").read_text().splitlines() if "\t" in line)
    assert len(ds.classes) == len(wnids) == 200
    first = words[wnids[0]].split(",")[0].strip().lower().replace("_", " ")
    assert ds.classes[0] == first
    image, label = ds[len(ds) - 1]
    assert image.shape == (3, 64, 64) and 0 <= label < 200  # grayscale files come back as 3 channels


def test_imagefolder(tmp_path):
    from PIL import Image

    for name, size in (("red_car", (30, 20)), ("blue-sky", (16, 40))):
        (tmp_path / "test" / name).mkdir(parents=True)
        Image.new("RGB", size, (255, 0, 0)).save(tmp_path / "test" / name / "a.png")
        Image.new("L", size, 128).save(tmp_path / "test" / name / "b.jpg")
        (tmp_path / "test" / name / "notes.txt").write_text("not an image")
    ds = load_dataset("imagefolder", tmp_path, image_size=16)
    assert ds.classes == ["blue sky", "red car"] and ds.labels.tolist() == [0, 0, 1, 1]
    images = torch.stack([ds[i][0] for i in range(len(ds))])  # different sizes stack after the crop
    assert images.shape == (4, 3, 16, 16)
    assert torch.allclose(images[2, 0], torch.ones(16, 16)) and float(images[2, 1].max()) == 0.0


def test_imagefolder_without_classes(tmp_path):
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset("imagefolder", tmp_path)


def test_digits_split_is_fixed_and_disjoint():
    first, second = digits_split_indices(), digits_split_indices()
    assert np.array_equal(first["test"], second["test"]) and np.array_equal(first["train"], second["train"])
    assert not set(first["train"]) & set(first["test"])
    assert len(first["train"]) + len(first["test"]) == len(first["all"])
    test = load_dataset("digits")
    assert len(test) == len(first["test"]) and test.classes[3] == "three"
    from sklearn.datasets import load_digits

    assert test.labels.tolist() == load_digits().target[first["test"]].tolist()
    image, _ = test[0]
    assert image.shape == (3, 8, 8) and torch.equal(image[0], image[2])


def test_unknown_dataset_and_split():
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("nope")
    with pytest.raises(DatasetError, match="splits"):
        load_dataset("digits", split="validation")


def test_subsample_is_deterministic():
    a, b = subsample_indices(1000, 50, seed=3), subsample_indices(1000, 50, seed=3)
    assert a == b and a == sorted(set(a)) and len(a) == 50 and 0 <= a[0] and a[-1] < 1000
    assert subsample_indices(1000, 50, seed=4) != a
    assert subsample_indices(10, None) == list(range(10))
    assert subsample_indices(10, 10, seed=1) == list(range(10))
    with pytest.raises(DatasetError, match="larger than the split"):
        subsample_indices(10, 11)
    with pytest.raises(DatasetError, match="at least 1"):
        subsample_indices(10, 0)


def test_templates_validation(tmp_path):
    assert validate_templates(["a photo of a {}."]) == ["a photo of a {}."]
    for bad in (["no placeholder"], ["{} and {}"], []):
        with pytest.raises(ConfigError):
            validate_templates(bad)
    assert resolve_templates(None, ["x {}"]) == ["x {}"]
    assert resolve_templates("study", ["x {}"]) == ["This is a photo of a {}"]
    good = tmp_path / "templates.txt"
    good.write_text("a {}\n\n  itap of a {}  \n")
    assert resolve_templates(str(good), []) == ["a {}", "itap of a {}"]
    bad = tmp_path / "bad.txt"
    bad.write_text("a photo\n")
    with pytest.raises(ConfigError, match="placeholder"):
        resolve_templates(str(bad), [])
    with pytest.raises(ConfigError, match="unknown template set"):
        resolve_templates("no-such-set", [])
