"""CLIP_benchmark webdataset folders: lossless round trip from the real data, bad input, the catalog."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrobust.data import load_dataset
from mmrobust.data.catalog import Catalog, expand_dataset_list
from mmrobust.data.wds import load_wds_folder, split_member_name
from mmrobust.data.wds_writer import write_wds
from mmrobust.errors import DatasetError
from mmrobust.eval.run import EvalConfig, run_evaluation
from tar_members import write_tar


@pytest.fixture(scope="module")
def cifar_wds(cifar10_root: Path, tmp_path_factory) -> Path:
    """All real CIFAR-10 test images written as PNG shards of 400 samples (3 shards)."""
    folder = tmp_path_factory.mktemp("wds") / "wds_cifar10_fixture"
    return write_wds(load_dataset("cifar10", cifar10_root), folder, max_count=400)


def _clean_eval(model, dataset: str, root: Path | None) -> dict:
    config = EvalConfig(model="tiny", dataset=dataset, data_root=str(root) if root else None, batch_size=128,
                        progress=False)
    return run_evaluation(config, model=model)


def test_cifar_wds_gives_the_cifar_loaders_pixels_and_accuracy(cifar10_root: Path, cifar_wds: Path, tiny_model) -> None:
    reference = load_dataset("cifar10", cifar10_root)
    wds = load_dataset(f"wds:{cifar_wds}")
    assert (len(wds), wds.classes, wds.templates) == (len(reference), reference.classes, reference.templates)
    assert wds.describe()["n_shards"] == 3 and wds.image_size is None  # native 32 x 32
    np.testing.assert_array_equal(wds.labels, reference.labels)
    for index in (0, 399, 400, 1016):  # both sides of a shard boundary
        assert torch.equal(wds[index][0], reference[index][0])
    via_loader = _clean_eval(tiny_model, "cifar10", cifar10_root)
    via_wds = _clean_eval(tiny_model, f"wds:{cifar_wds}", None)
    assert via_wds["metrics"]["clean"]["n"] == 1017
    assert via_wds["accuracy"] == via_loader["accuracy"]
    assert via_wds["metrics"]["clean"]["per_class_accuracy"] == via_loader["metrics"]["clean"]["per_class_accuracy"]


def test_tinyimagenet_wds_round_trip(tinyimagenet_root: Path, tmp_path: Path, tiny_model) -> None:
    reference = load_dataset("tinyimagenet", tinyimagenet_root)
    picked = list(range(0, 10_000, 97))
    write_wds(reference, tmp_path / "tin", indices=picked, max_count=50)
    wds = load_dataset("wds:tin", tmp_path)  # found under the data root
    assert wds.classes == reference.classes and len(wds) == len(picked)
    for position in (0, 49, 50, len(picked) - 1):
        image, label = wds[position]
        expected_image, expected_label = reference[picked[position]]
        assert torch.equal(image, expected_image) and label == expected_label


def _corrupt_copy(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_truncated_shard_names_itself(cifar_wds: Path, tmp_path: Path) -> None:
    folder = _corrupt_copy(cifar_wds, tmp_path / "broken")
    shard = folder / "test" / "1.tar"
    shard.write_bytes(shard.read_bytes()[:100_000] + b"\x07" * 700)
    with pytest.raises(DatasetError, match=r"corrupt shard .*1\.tar after sample 's0000"):
        load_wds_folder(folder)




def _folder(tmp_path: Path, members: dict[str, bytes], classes: str = "a\nb\n") -> Path:
    (tmp_path / "test").mkdir(parents=True)
    (tmp_path / "classnames.txt").write_text(classes)
    (tmp_path / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    (tmp_path / "test" / "nshards.txt").write_text("1\n")
    write_tar(tmp_path / "test" / "0.tar", members)
    return tmp_path


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_corrupt_image_names_shard_and_key(tmp_path: Path) -> None:
    good = {f"s{i}.{ext}": (_png() if ext == "png" else b"1") for i in range(20) for ext in ("png", "cls")}
    dataset = load_wds_folder(_folder(tmp_path / "good", good))
    assert dataset.templates == ["a photo of a {}."] and dataset[0][1] == 1 and len(dataset) == 20
    bad = {**good, "s18.png": b"not a png at all"}  # past the size probe: found on access
    dataset = load_wds_folder(_folder(tmp_path / "late", bad))
    with pytest.raises(DatasetError, match=r"corrupt image in shard .*0\.tar, sample 's18': .*not a decodable"):
        dataset[18]
    bad = {**good, "s1.png": b"not a png at all"}  # within the size probe: found at load time
    with pytest.raises(DatasetError, match=r"corrupt image in shard .*0\.tar, sample 's1'"):
        load_wds_folder(_folder(tmp_path / "early", bad))


@pytest.mark.parametrize("members, message", [
    ({"s0.png": b"x"}, r"sample 's0' has no \.cls label"),
    ({"s0.cls": b"1"}, r"sample 's0' has no image"),
    ({"s0.png": b"x", "s0.cls": b"dog"}, r"sample 's0' has a non-integer label"),
    ({"s0.png": b"x", "s0.cls": b"5"}, r"sample 's0' has label 5, outside 0\.\.1"),
])
def test_bad_samples_are_named(tmp_path: Path, members: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_wds_folder(_folder(tmp_path, members))


def test_missing_layout_files_are_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"s0.png": _png(), "s0.cls": b"0"})
    (folder / "test" / "nshards.txt").unlink()
    with pytest.raises(DatasetError, match="has no nshards.txt"):
        load_wds_folder(folder)
    (folder / "classnames.txt").unlink()
    with pytest.raises(DatasetError, match="classnames.txt is missing"):
        load_wds_folder(folder)
    with pytest.raises(DatasetError, match="has no split 'train'"):
        load_wds_folder(_folder(tmp_path / "other", {"s0.png": _png(), "s0.cls": b"0"}), split="train")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("wds:" + str(tmp_path / "nowhere"))


def test_retrieval_folder_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"s0.png": _png(), "s0.cls": b"0"})
    (folder / "dataset_type.txt").write_text("retrieval\n")
    with pytest.raises(DatasetError, match="retrieval dataset"):
        load_wds_folder(folder)


def test_unreachable_hub_id_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DatasetError) as info:
        load_dataset("wds:mmrobust-test/wds_does-not-exist", tmp_path)
    message = str(info.value)
    assert "\n" not in message and "huggingface-cli download --repo-type dataset mmrobust-test/wds_does-not-exist" in message


def test_member_keys_follow_webdataset() -> None:
    assert split_member_name("s0000001.png") == ("s0000001", "png")
    assert split_member_name("dir/s1.seg.PNG") == ("dir/s1", "seg.png")


def test_catalog_folder_gets_the_study_template(cifar_wds: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(cifar_wds, tmp_path / "wds_vtab-eurosat")  # named like the published EuroSAT set
    dataset = load_dataset("wds:clip-benchmark/wds_vtab-eurosat", tmp_path)
    assert dataset.templates == ["A centered satellite photo of {}."]
    assert dataset.name == "wds:clip-benchmark/wds_vtab-eurosat"


def test_presets_and_lists(tmp_path: Path) -> None:
    study = expand_dataset_list("@study")
    assert len(study) == 16 and "tinyimagenet" in study and "country211" in study
    catalog = Catalog()
    assert all(catalog.get(name) is not None for name in study)
    assert catalog.get("cifar10").candidates() == ["cifar10", "wds:clip-benchmark/wds_vtab-cifar10"]
    clip = expand_dataset_list("@clip-benchmark")
    assert all(s.startswith("wds:clip-benchmark/wds_") for s in clip) and "wds:clip-benchmark/wds_vtab-pets" in clip
    listing = tmp_path / "mine.txt"
    listing.write_text("# my sets\ndigits\ncifar10  # again below\n@study\n")
    expanded = expand_dataset_list(f"tinyimagenet,{listing}")
    assert expanded[:3] == ["tinyimagenet", "digits", "cifar10"] and len(expanded) == 3 + 14  # cifar10, tinyimagenet once
    with pytest.raises(DatasetError, match="unknown dataset preset '@nope'"):
        expand_dataset_list("@nope")
    with pytest.raises(DatasetError, match="empty"):
        expand_dataset_list(" , ")
