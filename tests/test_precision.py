"""The precision policy (fp32 / tf32 / bf16) for attacks, evaluation and training, and its fp32 replay check."""

from __future__ import annotations

import pytest
import torch

from mmrobust.attacks.image.eval_attacks import ImageEvalAttack
from mmrobust.attacks.image.pgd import PGD
from mmrobust.errors import ConfigError
from mmrobust.eval.run import EvalConfig, run_evaluation
from mmrobust.utils.precision import check_precision, precision_context, precision_note
from robust_test_models import prototype_digits_model


def test_policy_names_and_contexts():
    assert check_precision("BF16") == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        check_precision("fp16x")
    layer = torch.nn.Linear(4, 3)
    x = torch.rand(2, 4)
    with precision_context("bf16", "cpu"):
        assert layer(x).dtype == torch.bfloat16
        with precision_context("fp32", "cpu"):  # the scoring inside a bf16 region is fp32 again
            assert layer(x).dtype == torch.float32
    with precision_context("tf32", "cpu"):
        assert layer(x).dtype == torch.float32
    assert "no-op" in precision_note("tf32", "cpu")


def _digits(n=24):
    from mmrobust.data import load_dataset
    from mmrobust.models.zeroshot import ZeroShotClassifier

    ds = load_dataset("digits")
    model = prototype_digits_model()
    clf = ZeroShotClassifier.from_prompts(model, ds.classes, ds.templates)
    images = torch.stack([ds[i][0] for i in range(n)])
    labels = torch.tensor([ds[i][1] for i in range(n)])
    return clf, images, labels


def test_tf32_is_exactly_fp32_on_cpu_and_bf16_attacks_still_work():
    clf, x, y = _digits()
    adv = {p: PGD(clf, 8 / 255, 2 / 255, 5, precision=p, generator=torch.Generator().manual_seed(0))(x, y)
           for p in ("fp32", "tf32", "bf16")}
    assert torch.equal(adv["fp32"], adv["tf32"])
    with torch.no_grad():
        accuracy = {p: float((clf(a).argmax(1) == y).float().mean()) for p, a in adv.items()}
        clean = float((clf(x).argmax(1) == y).float().mean())
    assert accuracy["bf16"] < clean
    assert (adv["bf16"] - x).abs().max() <= 8 / 255 + 1e-6


def _evaluate(tmp_path, **kwargs):
    base = dict(model="test:prototype", dataset="digits", n_samples=32, batch_size=16, attacks="pgd", eps=8 / 255, steps=5,
                progress=False, output=str(tmp_path / "r.json"))
    return run_evaluation(EvalConfig(**(base | kwargs)), model=prototype_digits_model())


def test_reports_record_the_precision_and_replay_low_precision_in_fp32(tmp_path):
    report = _evaluate(tmp_path, precision="bf16")
    assert report["precision"] == "bf16" and "bf16" in report["precision_note"]
    assert report["attacks"][0]["precision"] == "bf16"
    check = report["sanity"]["checks"]["precision"]
    assert check["passed"] and check["per_attack"]["pgd"]["n"] > 0
    assert _evaluate(tmp_path, precision="fp32")["sanity"]["checks_skipped"]["precision"] == "attacks ran in fp32"


def test_a_low_precision_run_that_masks_the_attack_is_flagged(tmp_path, monkeypatch):
    """A 'bf16' attack that does nothing must be caught by the fp32 replay."""
    original = ImageEvalAttack.adversarial

    def masked(self, images, labels, example_ids, precision=None):
        if (precision or self.precision) != "fp32":
            return images.clone(), None
        return original(self, images, labels, example_ids, precision)

    monkeypatch.setattr(ImageEvalAttack, "adversarial", masked)
    monkeypatch.setattr(ImageEvalAttack, "attack_batch", _attack_batch_without_extras)
    report = _evaluate(tmp_path, precision="bf16", eps=16 / 255)
    assert report["unreliable"] is True and "precision" in report["sanity"]["failed"]
    per = report["sanity"]["checks"]["precision"]["per_attack"]["pgd"]
    assert per["broken_in_run"] == 0 < per["broken_in_fp32"]


def _attack_batch_without_extras(self, images, labels):
    from mmrobust.attacks.protocol import BatchOutcome

    adv, _ = self.adversarial(images, labels, self.batch_example_ids(images.shape[0]))
    with torch.no_grad():
        correct = (self.ctx.classifier(adv).argmax(1) == labels).cpu()
    return BatchOutcome(correct=correct, adv_images=adv)


@pytest.mark.slow  # a trainer set-up: ~20-40 s on the shared 2-core machine
def test_training_step_runs_in_bf16(tmp_path, monkeypatch):
    from mmrobust.training.checkpointing import Position
    from mmrobust.training.trainer import Trainer

    from test_training import ready_trainer, tiny_config

    trainer = ready_trainer(tmp_path, "tecoa", precision="bf16")
    seen = []
    original = trainer.objective.loss

    def spy(batch, adversarial):
        terms = original(batch, adversarial)
        seen.append(torch.is_autocast_enabled("cpu"))
        return terms

    monkeypatch.setattr(trainer.objective, "loss", spy)
    before = [p.detach().clone() for p in trainer.selection.parameters]
    out = trainer._step(Position(), trainer.train_indices[:8])
    assert seen == [True] and torch.isfinite(torch.tensor(out["loss"]))
    assert all(p.dtype == torch.float32 for p in trainer.selection.parameters)  # AMP: weights stay fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.selection.parameters))
    assert trainer.config.to_dict()["precision"] == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        Trainer(tiny_config(tmp_path, "tecoa", precision="half"))
