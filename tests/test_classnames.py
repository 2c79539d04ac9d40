"""Class names and templates are shipped data (issue 11, item 3): the torchvision loaders take the shipped
zero-shot names (count-checked) and the catalog's templates, ``--templates`` reads CLIP_benchmark's ``{c}``,
and ``--classnames FILE`` replaces a dataset's names (count-checked, one error line).

No torchvision is needed: its module is replaced by a fake whose dataset classes expose what torchvision's
do (a ``classes``/``categories`` attribute or none, and labels).
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrobust.cli.main import app
from mmrobust.data import load_dataset, resolve_templates
from mmrobust.data import torchvision_datasets as tvd
from mmrobust.data.catalog import Catalog
from mmrobust.data.templates import STUDY_TEMPLATE
from mmrobust.errors import ConfigError, DatasetError

ROOT = Path(__file__).resolve().parents[1]
#: the datasets' own class counts (their papers / torchvision), independent of the shipped file
KNOWN_CLASS_COUNTS = {"caltech101": 101, "country211": 211, "eurosat": 10, "flowers102": 102, "imagenet": 1000,
                      "oxford_pets": 37, "pcam": 2}


def test_shipped_names_are_package_data_for_catalog_entries() -> None:
    package_file = resources.files("mmrobust.data").joinpath("files", "classnames.json")
    assert package_file.is_file()
    raw = json.loads(package_file.read_text(encoding="utf-8"))
    assert "CLIP_benchmark" in raw["about"] and "MIT" in raw["license"] and raw["source"].startswith("https://")
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mmrobust.data"]
    assert any(fnmatch.fnmatch("files/classnames.json", p) for p in patterns)  # a wheel carries it
    catalog = Catalog()
    assert {name: len(names) for name, names in catalog.shipped_class_names.items()} == KNOWN_CLASS_COUNTS
    for name in catalog.shipped_class_names:
        assert catalog.get(name) is not None, f"{name} is not a catalog name"
        names = catalog.class_names(name)
        assert all(isinstance(n, str) and n.strip() == n and n for n in names)
    assert catalog.class_names("flowers102")[:2] == ["pink primrose", "hard-leaved pocket orchid"]  # verbatim
    assert catalog.class_names("caltech101")[0] == "off-center face"  # torchvision drops BACKGROUND_Google
    assert catalog.class_names("cifar10") is None  # CIFAR keeps the names of its own files


class FakeSet:
    """Stands in for a torchvision dataset: ``labels`` as ``_labels``, names under ``attr`` (or none)."""

    def __init__(self, labels, names=None, attr: str = "classes") -> None:
        self._labels = list(labels)
        if names is not None:
            setattr(self, attr, names)

    def __len__(self) -> int:
        return len(self._labels)


def _resolve(inner: FakeSet, name: str, shipped) -> list[str]:
    return tvd.resolve_class_names(inner, np.asarray(inner._labels), tvd.TORCHVISION_DATASETS[name], name, shipped)


def test_shipped_names_win_when_the_counts_agree() -> None:
    shipped = Catalog().class_names("oxford_pets")
    raw = [f"Raw_Name_{i}" for i in range(37)]
    assert _resolve(FakeSet([0, 36], raw), "oxford_pets", shipped) == shipped
    assert _resolve(FakeSet([0, 101]), "flowers102", Catalog().class_names("flowers102"))[0] == "pink primrose"


def test_count_mismatch_is_one_line_naming_both_counts() -> None:
    with pytest.raises(DatasetError) as info:
        _resolve(FakeSet([0], [f"c{i}" for i in range(36)]), "oxford_pets", Catalog().class_names("oxford_pets"))
    assert "\n" not in str(info.value) and "37" in str(info.value) and "36" in str(info.value)
    with pytest.raises(DatasetError, match="label 102 but mmrobust ships only 102"):
        _resolve(FakeSet([0, 102]), "flowers102", Catalog().class_names("flowers102"))  # no attribute: labels decide


def test_fallback_to_torchvision_names() -> None:
    assert _resolve(FakeSet([0], ["apple_pie", "Beef-Tartare"]), "food101", None) == ["apple pie", "beef tartare"]
    wordnet = [("tench", "Tinca tinca"), ("goldfish", "Carassius auratus")]  # ImageNet's tuples: the first synonym
    assert _resolve(FakeSet([0], wordnet), "imagenet", None) == ["tench", "goldfish"]
    assert _resolve(FakeSet([0], ["Faces", "accordion"], "categories"), "caltech101", None) == ["faces", "accordion"]
    with pytest.raises(DatasetError) as info:
        _resolve(FakeSet([0]), "food101", None)
    assert "\n" not in str(info.value) and "Food101" in str(info.value)


def _fake_torchvision(names_by_class: dict[str, list | None]):
    """A module whose ``datasets.<Cls>(root, **kwargs)`` returns a 3-image FakeSet with those names."""
    def factory(cls: str):
        spec = next(s for s in tvd.TORCHVISION_DATASETS.values() if s.cls == cls)
        return lambda root, **kwargs: FakeSet([0, 1, 0], names_by_class.get(cls), spec.classes_attr)
    return SimpleNamespace(datasets=SimpleNamespace(**{s.cls: factory(s.cls) for s in tvd.TORCHVISION_DATASETS.values()}))


def test_every_torchvision_loader_takes_catalog_templates_and_shipped_names(monkeypatch, tmp_path) -> None:
    catalog = Catalog()
    names = {spec.cls: catalog.class_names(name) or ["a_b", "c"] for name, spec in tvd.TORCHVISION_DATASETS.items()}
    names["Flowers102"] = names["PCAM"] = None  # torchvision names none for these
    monkeypatch.setattr(tvd, "import_torchvision", lambda: _fake_torchvision(names))
    for name in tvd.TORCHVISION_DATASETS:
        entry = catalog.get(name)
        assert entry is not None, f"{name} has no catalog entry (its templates live there)"
        dataset = load_dataset(name, tmp_path)
        assert dataset.templates == (list(entry.templates) if entry.templates else [STUDY_TEMPLATE])
        assert dataset.classes == (catalog.class_names(name) or ["a b", "c"])
    assert load_dataset("food101", tmp_path).templates == ["A photo of {}, a type of food."]
    assert load_dataset("country211", tmp_path).classes[:2] == ["Andorra", "United Arab Emirates"]


def test_templates_file_accepts_clip_benchmark_placeholder(tmp_path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("a photo of a {c}.\n\nitap of a {}\n")
    assert resolve_templates(str(path), []) == ["a photo of a {}.", "itap of a {}"]
    path.write_text("a {c} next to a {}\n")
    with pytest.raises(ConfigError, match=r"exactly one '\{\}' \(or '\{c\}'\)"):
        resolve_templates(str(path), [])


EVAL = "eval -m tiny -d digits -n 4 -q --no-sanity"


def test_classnames_option_replaces_the_names(tmp_path) -> None:
    names = [f"digit number {i}" for i in range(10)]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n\n", encoding="utf-8")
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, f"{EVAL} --classnames {tmp_path}/names.txt -o {out}".split())
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["dataset"]["classes"] == names
    assert report["dataset"]["classnames_file"] == f"{tmp_path}/names.txt"


@pytest.mark.parametrize("content, expected", [
    (b"".join(b"n%d\n" % i for i in range(9)), "9 names but digits has 10 classes"),
    (b"a\n\xe9t\xe9\n", "not UTF-8"),
    (None, "cannot read it"),
])
def test_bad_classnames_file_is_one_line(tmp_path, content, expected) -> None:
    if content is not None:
        (tmp_path / "names.txt").write_bytes(content)
    result = CliRunner().invoke(app, f"{EVAL} --classnames {tmp_path}/names.txt -o {tmp_path}/out.json".split())
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert expected in result.stderr and f"--classnames {tmp_path}/names.txt" in result.stderr
    assert not (tmp_path / "out.json").exists()


def test_benchmark_has_no_classnames_option(tmp_path) -> None:
    result = CliRunner().invoke(app, ["benchmark", "-m", "tiny", "-d", "digits", "-o", str(tmp_path / "b"),
                                      "--classnames", str(tmp_path / "x.txt")])
    assert result.exit_code == 2 and "No such option" in result.output
