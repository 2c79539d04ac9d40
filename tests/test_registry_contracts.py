"""Contract tests parametrised over the registries: a new entry is tested without writing a test.

Every attack spec runs on ``tiny``, keeps its threat model and never raises accuracy above clean; every
training method trains two steps and checkpoints; every preset resolves and builds; every text recipe builds.
"""

from __future__ import annotations

import pytest

from mmrobust.attacks.options import options_for
from mmrobust.attacks.presets import PRESETS, resolve
from mmrobust.attacks.registry import ATTACKS, SPECS, build_attacks
from mmrobust.attacks.text.recipe_specs import RECIPE_SPECS
from mmrobust.eval.run import EvalConfig, run_evaluation

SMALL = {"steps": 2, "square_queries": 8, "text_candidates": 3, "eps": 8 / 255}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_runs_on_tiny_inside_its_threat_model(name, tmp_path, request):
    spec = ATTACKS[name]
    values = {k: v for k, v in SMALL.items() if k in spec.fields}
    needs_mlm = {r for r, recipe in RECIPE_SPECS.items() if recipe.needs_mlm}
    if "mlm" in spec.fields and (name in needs_mlm or values.get("text_attack") in needs_mlm):
        values["mlm"] = str(request.getfixturevalue("tiny_mlm_folder"))
    report = run_evaluation(EvalConfig(model="tiny", dataset="digits", n_samples=8, batch_size=8, attacks=name,
                                       progress=False, sanity=False, output=str(tmp_path / "r.json"), **values))
    block = report["metrics"]["attacks"][name]
    assert block["n"] == 8
    assert block["accuracy"] <= report["metrics"]["clean"]["accuracy"] + 1 / 8  # one example of noise at most
    described = report["attacks"][0]
    assert described["name"] == name and described["modality"] == spec.modality
    if spec.modality == "text":
        assert report["threat_model"] is None
    else:
        check = block["threat_model_check"]
        assert check["n_outside_ball"] == 0 and check["n_out_of_box"] == 0
        assert report["threat_model"]["eps"] == pytest.approx(8 / 255)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_has_valid_defaults_and_refuses_unknown_values(name):
    spec = ATTACKS[name]
    options = options_for(spec.options, {})
    assert options == options.validated()  # defaults are valid and already resolved
    assert spec.white_box in (True, False) and spec.description


def test_sanity_split_comes_from_the_specs():
    assert {s.name for s in SPECS if s.modality == "image" and not s.white_box} == {"square"}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves_and_builds(name):
    names, values = resolve(name, None, {})
    assert names == list(PRESETS[name].attacks)
    assert all(n in ATTACKS for n in names)
    assert len(build_attacks(names, values)) == len(names)
    names, values = resolve(name, None, {"steps": 3})  # a flag overrides the preset
    if any("steps" in ATTACKS[n].fields for n in names):
        assert values["steps"] == 3


@pytest.mark.parametrize("recipe", list(RECIPE_SPECS))
def test_every_text_recipe_builds(recipe, tiny_model, request):
    from mmrobust.attacks.text.recipes import build_text_attack

    mlm = str(request.getfixturevalue("tiny_mlm_folder")) if RECIPE_SPECS[recipe].needs_mlm else None
    attacker = build_text_attack(recipe, tiny_model, candidates=3, mlm=mlm)
    results = attacker.attack(["a photo of a cat"], progress=False)
    assert len(results) == 1 and results[0].original == "a photo of a cat"

# every training method: tests/test_training.py::test_every_method_trains_and_reports (parametrised over METHOD_SPECS)


# ------------------------------------------------------------------------------------------ datasets
def _cifar100(root):
    import pickle

    import numpy as np

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"class{i}" for i in range(100)]}))
    data = np.random.default_rng(0).integers(0, 256, (3, 3072), dtype=np.uint8)
    (folder / "test").write_bytes(pickle.dumps({b"data": data, b"fine_labels": [0, 5, 99]}))


def _imagefolder(root):
    from PIL import Image

    for name in ("cat", "dog"):
        (root / "test" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "test" / name / "a.png")


def _wds(root):
    from mmrobust.data import load_dataset
    from mmrobust.data.wds_writer import write_wds

    write_wds(load_dataset("digits"), root, indices=[0, 1, 2])


#: dataset name -> fixture writer(root); a new dataset spec adds its fixture here (the test below insists)
FIXTURES = {
    "digits": None,  # ships with scikit-learn
    "cifar10": lambda root: __import__("test_data")._write_cifar10(root, 3),
    "cifar100": _cifar100,
    "tinyimagenet": lambda root: __import__("test_data")._write_tiny_imagenet(root),
    "imagefolder": _imagefolder,
    "wds:": _wds,  # wds:PATH with an empty PATH reads the data root itself
}


def _dataset_specs():
    from mmrobust.data.registry import SPECS

    # torchvision sets need a working torchvision; retrieval sets: tests/test_retrieval_data.py
    return [s for s in SPECS if "torchvision" not in s.description and s.task == "classification"]


@pytest.mark.parametrize("spec", _dataset_specs(), ids=lambda s: s.name)
def test_every_dataset_spec_loads_a_fixture(spec, tmp_path):
    from mmrobust.data import load_dataset

    assert spec.name in FIXTURES, f"dataset {spec.name!r} has no fixture in FIXTURES"
    if FIXTURES[spec.name] is not None:
        FIXTURES[spec.name](tmp_path)
    dataset = load_dataset(spec.name, tmp_path, spec.default_split)
    assert len(dataset) > 0 and dataset.classes
    image, label = dataset[0]
    assert image.dim() == 3 and 0 <= float(image.min()) and float(image.max()) <= 1
    assert 0 <= int(label) < len(dataset.classes)
