"""Sanity checks: a gradient-masked model must be flagged unreliable; honest runs pass; skipped checks say so."""

from __future__ import annotations

import torch

from mmrobust.attacks.registry import parse_attack_list, values_read_by

from mmrobust.attacks.protocol import AttackContext, BatchOutcome, EvalAttack
from mmrobust.data import load_dataset
from mmrobust.eval.resume import EvalState
from mmrobust.eval.robust import prepare_attacks, run_attacks, summarize
from mmrobust.eval.run import ATTACK_FIELDS, EvalConfig, run_evaluation
from mmrobust.eval.sanity import run_sanity_checks
from mmrobust.models.zeroshot import ZeroShotClassifier, build_prompts
from robust_test_models import masked_digits_model, prototype_digits_model


def evaluate(model, tmp_path, **kwargs):
    attacks = kwargs.pop("attacks", "pgd,square")
    given = dict(eps=16 / 255, steps=10, square_queries=100) | {k: v for k, v in kwargs.items() if k in ATTACK_FIELDS}
    others = {k: v for k, v in kwargs.items() if k not in ATTACK_FIELDS}
    config = EvalConfig(model="test", dataset="digits", n_samples=64, batch_size=32, progress=False, attacks=attacks,
                        output=str(tmp_path / "r.json"), **others, **values_read_by(parse_attack_list(attacks), given))
    return run_evaluation(config, model=model)


def test_masked_gradient_model_is_flagged_unreliable(tmp_path, capsys):
    report = evaluate(masked_digits_model(), tmp_path)
    assert report["unreliable"] is True and report["sanity"]["unreliable"] is True
    assert "gradients" in report["sanity"]["failed"]
    assert report["sanity"]["checks"]["gradients"]["zero_fraction"] == 1.0
    assert "UNRELIABLE" in capsys.readouterr().err


def test_honest_model_passes_every_check(tmp_path, capsys):
    report = evaluate(prototype_digits_model(), tmp_path)
    sanity = report["sanity"]
    assert report["unreliable"] is False, sanity["failed"]
    assert set(sanity["checks_run"]) == {"threat_model", "gradients", "steps_monotone",
                                         "eps_monotone", "large_eps", "square_vs_whitebox", "batch_size"}
    assert "by construction" in sanity["checks_skipped"]["robust_le_clean"]
    assert sanity["checks_skipped"]["precision"] == "attacks ran in fp32"
    by_batch = sanity["checks"]["batch_size"]["attacks"]
    assert by_batch["PGD with random start"]["n_disagree"] == 0  # per-example streams
    assert by_batch["PGD without random start"]["n_disagree"] == 0
    assert sanity["checks"]["large_eps"]["accuracy"] <= 0.05
    assert "UNRELIABLE" not in capsys.readouterr().err


def test_l2_runs_check_square_l2_against_the_whitebox_attacks(tmp_path):
    report = evaluate(prototype_digits_model(), tmp_path, attacks="pgd", norm="l2", eps=2.0)
    assert "square_vs_whitebox" in report["sanity"]["checks_run"]  # the black-box control exists under L2 now
    assert "large_eps" in report["sanity"]["checks_run"] and not report["unreliable"]


def test_no_sanity_claims_nothing(tmp_path):
    report = evaluate(prototype_digits_model(), tmp_path, attacks="fgsm", sanity=False)
    assert report["sanity"]["ran"] is False and report["unreliable"] is None


class _IdentityTextAttack(EvalAttack):
    name, modality = "fake-text", "text"

    def attack_batch(self, images, labels):
        with torch.no_grad():
            return BatchOutcome(correct=(self.ctx.classifier(images).argmax(1) == labels).cpu())


class _HelpfulAttack(EvalAttack):
    """A broken 'attack' that makes every prediction correct: robust > clean must be caught."""

    name, modality = "helpful", "text"

    def attack_batch(self, images, labels):
        return BatchOutcome(correct=torch.ones(len(labels), dtype=torch.bool))


def _text_only_sanity(attacks):
    model = prototype_digits_model()
    ds = load_dataset("digits")
    clf = ZeroShotClassifier.from_prompts(model, ds.classes, ds.templates)
    ctx = AttackContext(model, clf, ds.classes, ds.templates, build_prompts(ds.classes, ds.templates),
                        torch.device("cpu"), progress=False)
    state = EvalState(config_hash="x")
    prepare_attacks(attacks, ctx, state)
    indices = list(range(40))
    run_attacks(ctx, attacks, ds, indices, 20, state)
    return run_sanity_checks(ctx, attacks, state, ds, indices, 20), summarize(state, attacks, 10)[0]


def test_text_only_runs_say_which_checks_ran():
    sanity, _ = _text_only_sanity([_IdentityTextAttack()])
    assert sanity["checks_run"] == []
    for name in ("gradients", "large_eps", "steps_monotone", "eps_monotone", "batch_size", "square_vs_whitebox",
                 "threat_model", "robust_le_clean", "precision"):
        assert name in sanity["checks_skipped"]
    assert sanity["unreliable"] is False


def test_an_attack_cannot_raise_accuracy_above_clean():
    """Only clean-correct images are attacked, so even a 'helpful' attack scores at most the clean accuracy."""
    _, metrics = _text_only_sanity([_HelpfulAttack()])
    assert metrics["attacks"]["helpful"]["accuracy"] == metrics["clean"]["accuracy"] < 1
    assert metrics["attacks"]["helpful"]["n_attacked"] == metrics["clean"]["n_correct"]
