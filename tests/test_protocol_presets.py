"""The published-protocol presets (tecoa, robustvlm, tga-zsr), apgd-dlr, and ``--precision amp``.

``benchmark --preset a,b,c`` (one column group per protocol on the same images): tests/test_benchmark.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mmrobust.attacks.image.apgd import APGD
from mmrobust.attacks.image.losses import dlr_loss
from mmrobust.attacks.presets import PRESETS, get_preset, parse_presets, resolve
from mmrobust.errors import ConfigError
from mmrobust.eval.run import EvalConfig, run_evaluation
from mmrobust.utils.precision import autocast_dtype, autocast_dtype_name, precision_context, precision_note
from robust_test_models import prototype_digits_model


def test_the_protocol_presets_carry_their_published_settings():
    names, values = resolve("tecoa", None, {})
    assert names == ["apgd-ce", "apgd-dlr"] and values["steps"] == 100 and values["restarts"] == 1
    assert values["eps"] == pytest.approx(1 / 255)
    names, values = resolve("robustvlm", None, {})
    assert names == ["apgd-ce", "apgd-t"] and values["steps"] == 100 and values["precision"] == "fp32"
    assert values["target_classes"] == 9 and values["eps"] == pytest.approx(2 / 255)
    assert (PRESETS["robustvlm"].n_samples, PRESETS["robustvlm"].logit_scale) == (1000, 100.0)
    names, values = resolve("tga-zsr", None, {})
    assert names == ["pgd"] and values["steps"] == 100 and values["precision"] == "amp"
    assert values["alpha"] == pytest.approx(1 / 255) and values["eps"] == pytest.approx(1 / 255)
    for name in ("tecoa", "robustvlm", "tga-zsr"):  # the paper is cited where the help shows it
        assert "20" in PRESETS[name].description and ".py" in PRESETS[name].description + (PRESETS[name].note or "") \
            or "run_benchmark_adv.sh" in PRESETS[name].description
    assert {"study", "autoattack"} <= set(PRESETS)
    assert resolve("tga-zsr", None, {"precision": "fp32"})[1]["precision"] == "fp32"  # a flag wins


def test_per_attack_values_apply_to_their_attack_unless_a_flag_sets_both():
    from mmrobust.attacks.registry import PER_ATTACK, build_attacks

    names, values = resolve("robustvlm", None, {})
    assert values[PER_ATTACK] == {"apgd-ce": {"restarts": 5}}  # RobustVLM's AutoAttack(version='custom')
    ce, t = build_attacks(names, values)
    assert (ce.parameters["restarts"], t.parameters["restarts"], t.parameters["target_classes"]) == (5, 1, 9)
    names, values = resolve("robustvlm", None, {"restarts": 2})
    assert PER_ATTACK not in values
    assert [a.parameters["restarts"] for a in build_attacks(names, values)] == [2, 2]
    assert PER_ATTACK not in resolve("robustvlm", "apgd-t", {})[1]  # --attack replaces the preset's attacks


def test_a_preset_sample_size_applies_unless_the_user_gives_one():
    assert EvalConfig(model="tiny", dataset="digits", preset="robustvlm").validate().n_samples == 1000
    assert EvalConfig(model="tiny", dataset="digits", preset="robustvlm", n_samples=8).validate().n_samples == 8
    assert EvalConfig(model="tiny", dataset="digits", preset="tecoa").validate().n_samples is None
    assert EvalConfig(model="tiny", dataset="digits", preset="robustvlm").validate().logit_scale == 100.0


def test_parse_presets():
    assert parse_presets("study, TECOA") == ["study", "tecoa"]
    for bad, match in (("tecoa,tecoa", "twice"), ("tecoa,", "empty"), ("tecoa,nope", "unknown --preset")):
        with pytest.raises(ConfigError, match=match):
            parse_presets(bad)
    assert get_preset("tga-zsr").note


def test_dlr_is_autoattacks_untargeted_dlr():
    logits = torch.tensor([[3.0, 1.0, 0.5, -1.0], [0.0, 2.0, 1.0, -1.0]])
    labels = torch.tensor([0, 0])
    # true class on top: -(z_y - z_second) / (z_1 - z_3); true class below: -(z_y - z_top) / (z_1 - z_3)
    expected = torch.tensor([-(3.0 - 1.0) / (3.0 - 0.5), -(0.0 - 2.0) / (2.0 - 0.0)])
    assert torch.allclose(dlr_loss(logits, labels, None), expected)


def _eval(tmp_path, **kwargs):
    base = dict(model="test:prototype", dataset="digits", n_samples=16, batch_size=16, eps=8 / 255, steps=5,
                progress=False, sanity=False, output=str(tmp_path / "r.json"))
    return run_evaluation(EvalConfig(**(base | kwargs)), model=prototype_digits_model())


def test_apgd_dlr_runs_and_refuses_fewer_than_three_classes(tmp_path):
    report = _eval(tmp_path, attacks="apgd-dlr")
    block = report["metrics"]["attacks"]["apgd-dlr"]
    assert block["accuracy"] < report["metrics"]["clean"]["accuracy"]
    assert report["attacks"][0]["attack"]["loss"] == "dlr"
    with pytest.raises(ConfigError, match="apgd-dlr needs at least 3 classes"):
        _eval(tmp_path, attacks="apgd-dlr", classes=2, output=str(tmp_path / "two.json"))


def test_amp_autocasts_bf16_off_cuda_and_fp16_on_cuda():
    assert autocast_dtype("amp", "cuda") == torch.float16 and autocast_dtype("amp", "cuda:1") == torch.float16
    assert autocast_dtype("amp", "cpu") == torch.bfloat16 and autocast_dtype("amp", "mps") == torch.bfloat16
    assert autocast_dtype("fp32", "cpu") is None and autocast_dtype_name("bf16", "cuda") == "bfloat16"
    assert autocast_dtype_name("amp", "cuda") == "float16"
    layer = torch.nn.Linear(4, 3)
    with precision_context("amp", "cpu"):
        assert layer(torch.rand(2, 4)).dtype == torch.bfloat16
    assert "bfloat16" in precision_note("amp", "cpu")


def test_the_attack_runs_under_autocast_and_the_report_records_its_dtype(tmp_path):
    seen = []
    model = prototype_digits_model()
    encode = model.encode_image

    def spy(images, *args, **kwargs):
        if torch.is_grad_enabled():  # the attack's forward/backward, not the fp32 scoring
            seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return encode(images, *args, **kwargs)

    model.encode_image = spy
    config = EvalConfig(model="test:prototype", dataset="digits", n_samples=8, batch_size=8, preset="tga-zsr",
                        steps=2, eps=8 / 255, progress=False, sanity=False, output=str(tmp_path / "r.json"))
    report = run_evaluation(config, model=model)
    assert report["precision"] == "amp" and report["autocast_dtype"] == "bfloat16"
    assert report["attacks"][0]["attack"]["autocast_dtype"] == "bfloat16"
    assert seen and set(seen) == {torch.bfloat16}
    fp32 = run_evaluation(dataclasses.replace(config, precision="fp32", output=str(tmp_path / "f.json")),
                          model=prototype_digits_model())
    assert fp32["autocast_dtype"] is None


def test_training_refuses_amp():
    from mmrobust.training.config import TrainConfig

    with pytest.raises(ConfigError, match="attack protocol"):
        TrainConfig(model="tiny", method="mmcoa", dataset="digits", output_dir="x", precision="amp").validate()


def test_apgd_dlr_direct_api_matches_the_eval_attack():
    from robust_test_models import prototype_digits_model as build
    from mmrobust.data import load_dataset
    from mmrobust.models.zeroshot import ZeroShotClassifier

    ds = load_dataset("digits")
    clf = ZeroShotClassifier.from_prompts(build(), ds.classes, ds.templates)
    x = torch.stack([ds[i][0] for i in range(8)])
    y = torch.tensor([ds[i][1] for i in range(8)])
    adv = APGD(clf, 8 / 255, steps=5, loss="dlr", generator=torch.Generator().manual_seed(0))(x, y)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6
