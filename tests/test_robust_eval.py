"""The robust evaluation loop and ``mmrobust eval --attack``: metrics, worst case, report schema, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmrobust.attacks.protocol import AttackContext, BatchOutcome, EvalAttack
from mmrobust.cli.main import app
from mmrobust.data import load_dataset
from mmrobust.eval.resume import EvalState
from mmrobust.eval.robust import prepare_attacks, run_attacks, summarize
from mmrobust.eval.run import EvalConfig, run_evaluation
from mmrobust.models.zeroshot import ZeroShotClassifier, build_prompts
from mmrobust.models.checkpoint import save_checkpoint
from mmrobust.models.tiny import build_tiny
from robust_test_models import prototype_digits_model


def config(tmp_path: Path, **kwargs) -> EvalConfig:
    base = dict(model="test:prototype", dataset="digits", n_samples=48, batch_size=16, attacks="pgd,fgsm",
                eps=16 / 255, steps=10, progress=False, output=str(tmp_path / "report.json"), sanity=False)
    return EvalConfig(**(base | kwargs))


def test_report_has_clean_robust_worst_case_and_parameters(tmp_path):
    report = run_evaluation(config(tmp_path), model=prototype_digits_model())
    on_disk = json.loads(Path(tmp_path / "report.json").read_text())
    assert on_disk["metrics"] == json.loads(json.dumps(report["metrics"]))
    for key in ("accuracy", "robust_accuracy", "metrics", "per_example", "attacks", "threat_model", "timings",
                "sanity", "unreliable", "resume", "attack_options", "sampling", "model", "dataset"):
        assert key in report
    assert report["task"] == "robust_zeroshot_classification"
    metrics = report["metrics"]
    clean = np.array(report["per_example"]["clean"])
    pgd, fgsm = np.array(report["per_example"]["pgd"]), np.array(report["per_example"]["fgsm"])
    worst = np.array(report["per_example"]["worst_case"])
    assert np.array_equal(worst, clean & pgd & fgsm)  # correct only if correct under every attack
    assert metrics["clean"]["accuracy"] > metrics["attacks"]["pgd"]["accuracy"]
    assert metrics["worst_case"]["accuracy"] <= min(metrics["attacks"][a]["accuracy"] for a in ("pgd", "fgsm"))
    success = (clean & ~pgd).sum() / clean.sum()
    assert metrics["attacks"]["pgd"]["attack_success_rate"] == pytest.approx(success)
    assert metrics["by_modality"]["image"] == metrics["worst_case"]["accuracy"]
    assert metrics["by_modality"]["text"] is None
    assert report["threat_model"]["eps_255"] == 16 and report["threat_model"]["eps"] == pytest.approx(16 / 255)
    described = {a["name"]: a for a in report["attacks"]}
    assert described["pgd"]["steps"] == 10 and described["pgd"]["alpha"] == pytest.approx(4 / 255)
    assert metrics["attacks"]["pgd"]["threat_model_check"]["n_outside_ball"] == 0
    assert set(report["timings"]["attacks_s"]) == {"pgd", "fgsm"}
    assert report["unreliable"] is None and report["sanity"]["ran"] is False


def test_l2_eps_is_the_raw_radius(tmp_path):
    report = run_evaluation(config(tmp_path, attacks="pgd", norm="l2", eps=1.5, n_samples=16), model=prototype_digits_model())
    assert report["threat_model"]["norm"] == "L2" and report["threat_model"]["eps"] == 1.5
    assert report["metrics"]["attacks"]["pgd"]["threat_model_check"]["max_norm"] <= 1.5 + 1e-5


class _FlipTextAttack(EvalAttack):
    """A stand-in text attack: prompts of classes 0 and 1 swapped, images untouched."""

    name, modality = "fake-text", "text"

    def prepare(self, ctx: AttackContext) -> None:
        super().prepare(ctx)
        prompts = [list(p) for p in ctx.prompts]
        prompts[0], prompts[1] = prompts[1], prompts[0]
        self.classifier = ctx.classifier.with_prompts(prompts)

    def attack_batch(self, images, labels):
        with torch.no_grad():
            return BatchOutcome(correct=(self.classifier(images).argmax(1) == labels).cpu())


def test_loop_groups_by_modality_in_each_mode():
    from mmrobust.attacks.image.eval_attacks import make_pgd
    from mmrobust.attacks.options import PGDOptions

    model = prototype_digits_model()
    ds = load_dataset("digits")
    clf = ZeroShotClassifier.from_prompts(model, ds.classes, ds.templates)
    ctx = AttackContext(model, clf, ds.classes, ds.templates, build_prompts(ds.classes, ds.templates),
                        torch.device("cpu"), seed=0, progress=False)
    attacks = [make_pgd(PGDOptions(eps=16 / 255, steps=5).validated()), _FlipTextAttack()]
    state = EvalState(config_hash="x")
    prepare_attacks(attacks, ctx, state)
    indices = list(range(0, 60, 2))
    run_attacks(ctx, attacks, ds, indices, 7, state, ensemble="each")
    assert len(state.attack_correct["pgd"]) == len(state.attack_correct["fake-text"]) == len(indices)
    metrics, per_example = summarize(state, attacks, 10, "each")
    clean = np.array(per_example["clean"])
    for name in ("pgd", "fake-text"):  # every clean-correct image attacked, no other
        assert metrics["attacks"][name]["n_attacked"] == clean.sum()
    cascade_metrics, _ = summarize(state, attacks, 10, "cascade")  # the text attack came after PGD: not standalone
    assert cascade_metrics["by_modality"]["text"] is None and "text" in cascade_metrics["by_modality"]["note"]
    labels = np.array(per_example["labels"])
    text = np.array(per_example["fake-text"])
    assert not text[(labels == 0) | (labels == 1)].any()  # swapped prompts break exactly those classes
    assert metrics["by_modality"]["text"] == pytest.approx(text.mean())
    assert metrics["by_modality"]["worst_case"] <= min(metrics["by_modality"]["text"], metrics["by_modality"]["image"])


# ---------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def _cli(runner, out: Path, *args: str):
    return runner.invoke(app, ["eval", "-m", "tiny", "-d", "digits", "-n", "4", "-b", "4", "-q", "-o", str(out),
                               "--no-sanity", *args])


def test_cli_attack_run_writes_a_report(runner, tmp_path):
    out = tmp_path / "r.json"
    result = _cli(runner, out, "--attack", "fgsm", "--eps", "4")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["metrics"]["attacks"]["fgsm"]["n"] == 4 and report["threat_model"]["eps_255"] == 4
    assert report["ensemble"]["mode"] == "cascade" and report["precision"] == "fp32"
    assert "attacked" in result.output
    assert not (tmp_path / "r.json.state.json").exists()  # the state file goes once the report is written


@pytest.mark.parametrize("args,needle", [
    (["--attack", "pgd", "--eps", "0"], "--eps"),
    (["--attack", "pgd", "--eps", "-2"], "--eps"),
    (["--attack", "pgd", "--eps", "300"], "absurd"),
    (["--attack", "pgd", "--eps", "nan"], "--eps"),
    (["--attack", "pgd", "--eps", "4", "--norm", "l3"], "norm"),
    (["--attack", "pgdx", "--eps", "4"], "unknown attack"),
    (["--attack", "pgd", "--eps", "4", "--steps", "0"], "--steps"),
    (["--attack", ","], "empty entry"),
    (["--attack", "pgd,,fgsm"], "empty entry"),
    (["--attack", "embed-sub", "--eps", "4"], "--eps applies to none"),
    (["--eps", "4"], "--eps applies to none"),
    (["--attack", "pgd", "--square-queries", "5"], "--square-queries applies to none"),
    (["--attack", "square", "--square-queries", "0"], "--square-queries"),
    (["--attack", "embed-sub", "--text-goal-images", "0"], "--text-goal-images"),
    (["--attack", "embed-sub", "--text-goal", "nope"], "--text-goal"),
    (["--attack", "pgd", "--restarts", "0"], "--restarts"),
    (["--attack", "apgd-t", "--target-classes", "0"], "--target-classes"),
    (["--preset", "nope"], "--preset"),
    (["--logit-scale", "-100"], "--logit-scale"),
    (["--logit-scale", "0"], "--logit-scale"),
    (["--seed", "-1"], "--seed"),
    (["--batch-size", "0"], "--batch-size"),
    (["--attack", "pgd", "--eps", "4", "--ensemble", "all"], "--ensemble"),
    (["--attack", "pgd", "--eps", "4", "--precision", "fp8"], "--precision"),
])
def test_cli_bad_attack_input_is_one_error_line_and_no_report(runner, tmp_path, args, needle):
    out = tmp_path / "r.json"
    result = _cli(runner, out, *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.output
    assert not out.exists()


def test_cli_default_budget_is_the_studys_and_is_printed(runner, tmp_path):
    out = tmp_path / "r.json"
    result = _cli(runner, out, "--attack", "pgd", "--steps", "1")
    assert result.exit_code == 0, result.output
    assert "eps 1/255 L-inf (default" in result.output
    report = json.loads(out.read_text())
    assert report["threat_model"]["eps"] == pytest.approx(1 / 255)
    assert report["attacks"][0]["alpha"] == pytest.approx(1 / 255)  # the one step-size rule at the study's budget


def test_cli_nan_logits_model_is_a_numerical_error(runner, tmp_path):
    model = build_tiny(0)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    folder = save_checkpoint(model, tmp_path / "nan-model")
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["eval", "-m", f"ckpt:{folder}", "-d", "digits", "-n", "4", "-q", "-o", str(out),
                                 "--attack", "pgd", "--eps", "4", "--steps", "1"])
    assert result.exit_code == 2 and "non-finite" in result.output
    assert not out.exists()
