"""Resumable robust evaluation: interrupt after k batches, resume, get the same report."""

from __future__ import annotations

import json

import pytest

from mmrobust.eval.resume import state_path_for
from mmrobust.attacks.registry import parse_attack_list, values_read_by
from mmrobust.eval.run import ATTACK_FIELDS, EvalConfig, run_evaluation
from robust_test_models import prototype_digits_model


class Interrupt(Exception):
    pass


def stop_after(k: int):
    def hook(done: int) -> None:
        if done >= k:
            raise Interrupt
    return hook


def make_config(output, **kwargs) -> EvalConfig:
    base = dict(model="test:prototype", dataset="digits", n_samples=40, batch_size=8, attacks="pgd,apgd-ce,square",
                eps=16 / 255, steps=5, square_queries=30, seed=3, progress=False, output=str(output), sanity=False)
    config = base | kwargs
    attack_values = {k: config.pop(k) for k in list(config) if k in ATTACK_FIELDS}
    return EvalConfig(**config, **values_read_by(parse_attack_list(config["attacks"]), attack_values))


def test_interrupted_run_resumes_to_the_same_report(tmp_path):
    reference = run_evaluation(make_config(tmp_path / "full.json"), model=prototype_digits_model())

    out = tmp_path / "resumed.json"
    with pytest.raises(Interrupt):
        run_evaluation(make_config(out), model=prototype_digits_model(), after_batch=stop_after(2))
    state_file = state_path_for(out)
    assert state_file.exists() and not out.exists()  # no partial report, progress saved
    assert json.loads(state_file.read_text())["next_position"] == 16

    with pytest.raises(Interrupt):  # a second interruption, continuing from the first
        run_evaluation(make_config(out), model=prototype_digits_model(), after_batch=stop_after(1))
    assert json.loads(state_file.read_text())["next_position"] == 24

    resumed = run_evaluation(make_config(out), model=prototype_digits_model())
    assert resumed["resume"]["resumed_from_position"] == 24
    assert resumed["per_example"] == reference["per_example"]
    for name in ("clean", "worst_case"):
        assert resumed["metrics"][name] == reference["metrics"][name]
    for name, block in reference["metrics"]["attacks"].items():
        assert resumed["metrics"]["attacks"][name]["accuracy"] == block["accuracy"]
    assert not state_file.exists()


def test_a_different_config_does_not_reuse_the_state(tmp_path, capsys):
    out = tmp_path / "r.json"
    with pytest.raises(Interrupt):
        run_evaluation(make_config(out, attacks="pgd"), model=prototype_digits_model(), after_batch=stop_after(1))
    report = run_evaluation(make_config(out, attacks="pgd", eps=8 / 255), model=prototype_digits_model())
    assert report["resume"]["resumed_from_position"] is None
    assert "different configuration" in capsys.readouterr().err


def test_no_resume_ignores_and_keeps_no_state(tmp_path):
    out = tmp_path / "r.json"
    with pytest.raises(Interrupt):
        run_evaluation(make_config(out, attacks="pgd", resume=False), model=prototype_digits_model(),
                       after_batch=stop_after(1))
    assert not state_path_for(out).exists()
