"""TGA-ZSR (text-guided attention terms on top of TeCoA) and LEAF (character-edit adversarial fine-tuning of the
text tower): the terms, their zero points, their gradients, the spatial tokens they read and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmrobust.models.native import NativeCLIP
from mmrobust.models.tiny import TINY_CONFIG, build_tiny
from mmrobust.training import TrainConfig, Trainer
from mmrobust.training.objectives import TrainBatch
from mmrobust.training.objectives.tga_zsr import attention_distance, text_guided_attention


def tiny_config(tmp_path: Path, method: str, **overrides) -> TrainConfig:
    options = dict(model="tiny", method=method, dataset="digits", output_dir=str(tmp_path / method), epochs=1,
                   batch_size=8, n_train=16, n_eval=8, lr=1e-3, eps=8 / 255, alpha=2 / 255, steps=2,
                   progress=False, eval_batch_size=8)
    options.update(overrides)
    return TrainConfig(**options)


def ready(tmp_path: Path, method: str, **overrides) -> Trainer:
    trainer = Trainer(tiny_config(tmp_path, method, **overrides))
    trainer.setup()
    return trainer


def first_batch(trainer: Trainer) -> TrainBatch:
    images, labels = trainer._load_batch(trainer.train_indices[:8])
    return TrainBatch(images, labels, torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------- spatial tokens (native towers)
def test_native_vit_spatial_tokens() -> None:
    model = build_tiny()
    pixels = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        pooled, spatial = model.encode_image_and_spatial(pixels)
        torch.testing.assert_close(pooled, model.encode_image(pixels))
    assert spatial.shape == (3, 16, 64)  # 32 px / 8 px patches = 4 x 4 grid, embed_dim 64
    assert model.encode_image_spatial(pixels).shape == (3, 16, 64)


def test_convnet_spatial_tokens_are_the_last_feature_map() -> None:
    config = {**TINY_CONFIG, "image_tower": {"type": "convnet", "widths": [8, 16], "blocks_per_stage": 1}}
    torch.manual_seed(0)
    model = NativeCLIP(config).eval()
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        pooled, spatial = model.encode_image_and_spatial(pixels)
        torch.testing.assert_close(pooled, model.encode_image(pixels), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(spatial.mean(dim=1), pooled, atol=1e-5, rtol=1e-5)  # the pool is their mean
    assert spatial.shape == (2, 16 * 16, 64)  # one stride-2 stage: 16 x 16 cells


# ---------------------------------------------------------------------- TGA-ZSR
def test_attention_map_shape_range_and_distances() -> None:
    pooled, spatial = torch.randn(2, 8), torch.randn(2, 16, 8)
    text = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    maps = text_guided_attention(pooled, spatial, text, 32)
    assert maps.shape == (2, 32 * 32)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6
    for metric in ("l2", "cos", "l1"):
        assert float(attention_distance(maps, maps, metric)) == pytest.approx(0, abs=1e-6)
        assert float(attention_distance(maps, maps.flip(0), metric)) > 0


def test_tga_zsr_step_reports_its_parts(tmp_path: Path) -> None:
    trainer = ready(tmp_path, "tga-zsr")
    batch = first_batch(trainer)
    terms = trainer.objective.loss(batch, trainer.objective.adversarial_inputs(batch))
    assert set(terms.parts) == {"ce_adv", "attention_refinement", "attention_constraint"}
    opts = trainer.objective.options
    assert (opts.tga_alpha, opts.tga_beta, opts.tga_distance) == (0.08, 0.05, "l2")  # TGA-ZSR's README
    expected = (terms.parts["ce_adv"] + opts.tga_alpha * terms.parts["attention_refinement"]
                + opts.tga_beta * terms.parts["attention_constraint"])
    assert float(terms.loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert terms.parts["attention_refinement"] > 0  # PGD moved the attention


def test_tga_zsr_terms_vanish_when_adv_is_clean_and_model_is_frozen(tmp_path: Path) -> None:
    trainer = ready(tmp_path, "tga-zsr")
    objective = trainer.objective
    batch = first_batch(trainer)
    inputs = objective.adversarial_inputs(batch)
    inputs["images"] = batch.images.clone()  # no perturbation; the model has not been updated yet
    terms = objective.loss(batch, inputs)
    assert terms.parts["attention_refinement"] == pytest.approx(0, abs=1e-5)
    assert terms.parts["attention_constraint"] == pytest.approx(0, abs=1e-5)
    # after an update of the trained model the constraint is no longer 0
    with torch.no_grad():
        for _, param in objective.model.named_parameter_groups()["image"]:
            param.add_(0.05 * torch.randn_like(param))
    assert objective.loss(batch, inputs).parts["attention_constraint"] > 0


def test_tga_zsr_attention_terms_reach_the_image_tower(tmp_path: Path) -> None:
    trainer = ready(tmp_path, "tga-zsr", method_options={"tga_alpha": 1.0, "tga_beta": 1.0})
    objective = trainer.objective
    batch = first_batch(trainer)
    inputs = objective.adversarial_inputs(batch)
    text = inputs["text"]
    model = objective.model
    pooled, spatial = model.encode_image_and_spatial(inputs["images"])
    refinement = attention_distance(text_guided_attention(pooled, spatial, text, model.image_size),
                                    inputs["clean_original"], "l2")
    model.zero_grad(set_to_none=True)
    refinement.backward()
    image_grads = [p.grad for _, p in model.named_parameter_groups()["image"] if p.requires_grad]
    assert image_grads and any(g is not None and float(g.abs().sum()) > 0 for g in image_grads)
    assert all(p.grad is None for p in objective.ctx.original.parameters())  # the frozen model stays frozen


def test_tga_zsr_options_are_validated(tmp_path: Path) -> None:
    from mmrobust.errors import ConfigError

    with pytest.raises(ConfigError, match="tga-distance"):
        Trainer(tiny_config(tmp_path, "tga-zsr", method_options={"tga_distance": "kl"})).setup()


# ---------------------------------------------------------------------- CLI
def _cli_train(tmp_path: Path, method: str, *extra: str) -> dict:
    from typer.testing import CliRunner

    from mmrobust.cli.main import app

    out = tmp_path / f"cli-{method}"
    result = CliRunner().invoke(app, ["train", "--model", "tiny", "--method", method, "--dataset", "digits",
                                      "--output-dir", str(out), "--epochs", "1", "--batch-size", "8", "--n-train",
                                      "8", "--n-eval", "8", "--steps", "1", "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


def test_cli_trains_tga_zsr(tmp_path: Path) -> None:
    report = _cli_train(tmp_path, "tga-zsr", "--tga-alpha", "0.1", "--tga-distance", "cos")
    assert report["config"]["tga_alpha"] == 0.1 and report["config"]["tga_distance"] == "cos"
    step = report["history"][0]
    assert "train_attention_refinement" in step and "train_attention_constraint" in step


def test_cli_trains_leaf_and_leaf_fare(tmp_path: Path) -> None:
    report = _cli_train(tmp_path, "leaf", "--leaf-rho", "8")
    assert report["config"]["leaf_rho"] == 8 and report["config"]["leaf_k"] == 1
    assert report["trainable"]["mode"] == "text"  # LEAF freezes the image tower
    step = report["history"][0]
    assert step["train_l2_text_adv"] > 0 and 0 <= step["train_changed_caption_rate"] <= 1
    report = _cli_train(tmp_path, "leaf-fare", "--leaf-rho", "4", "--leaf-k", "2")
    step = report["history"][0]
    assert {"train_l2_image_adv", "train_l2_text_adv"} <= set(step) and report["trainable"]["mode"] == "full"
    assert step["train_loss"] == pytest.approx(step["train_l2_image_adv"] + step["train_l2_text_adv"], rel=1e-5)


# ---------------------------------------------------------------------- LEAF
def levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_leaf_edit_slots() -> None:
    from mmrobust.attacks.text.leaf import edit_at

    assert edit_at("cat", 0, "x") == "xcat"  # gap before the first character
    assert edit_at("cat", 6, "s") == "cats"  # gap after the last
    assert edit_at("cat", 3, "o") == "cot"  # replace the 'a'
    assert edit_at("cat", 3, None) == "ct"  # delete it
    assert edit_at("cat", 3, "a") == "ct"  # the same character deletes, as LEAF's generate_sentence
    assert edit_at("a cat", 3, " ") == "acat"  # the position stage's space deletes an existing space
    assert edit_at("cat", 2, None) == "cat"  # deleting in a gap changes nothing
    with pytest.raises(ValueError):
        edit_at("cat", 7, "x")


@pytest.mark.parametrize("k", [1, 2])
def test_leaf_attack_stays_within_k_edits_and_moves_the_embedding(k: int) -> None:
    import numpy as np

    from mmrobust.attacks.text.leaf import LEAFAttack

    model = build_tiny()
    texts = ["a photo of a seven.", "a photo of a two.", "x"]
    with torch.no_grad():
        anchors = model.encode_text(texts)
    attack = LEAFAttack(model, rho=12, k=k)
    adv = attack.attack(texts, anchors, np.random.default_rng(0))
    assert len(adv) == 3 and all(levenshtein(a, t) <= k for a, t in zip(adv, texts))
    with torch.no_grad():
        moved = ((model.encode_text(adv) - anchors) ** 2).sum(dim=-1)
    assert bool((moved > 0).all())  # the model is the anchor's: the original scores 0, any edit more
    assert attack.texts_scored == 2 * k * 3 * 12
    assert adv == LEAFAttack(model, rho=12, k=k).attack(texts, anchors, np.random.default_rng(0))  # seeded


def test_leaf_loss_is_zero_on_clean_captions_and_trains_only_text(tmp_path: Path) -> None:
    trainer = ready(tmp_path, "leaf", method_options={"leaf_rho": 6})
    objective = trainer.objective
    assert (trainer.config.method_options.leaf_rho, type(trainer.config.method_options)().leaf_rho) == (6, 50)
    batch = first_batch(trainer)
    inputs = objective.adversarial_inputs(batch)
    assert all(levenshtein(a, t) <= 1 for a, t in zip(inputs["adv_texts"], inputs["captions"].texts))
    clean = dict(inputs, adv_texts=list(inputs["captions"].texts))
    assert objective.loss(batch, clean).parts["l2_text_adv"] == pytest.approx(0, abs=1e-8)
    terms = objective.loss(batch, inputs)
    assert terms.parts["l2_text_adv"] > 0
    model = objective.model
    model.zero_grad(set_to_none=True)
    terms.loss.backward()
    groups = model.named_parameter_groups()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for _, p in groups["text"])
    assert all(p.grad is None for _, p in groups["image"])
    assert trainer.selection.trains_text and not any(p.requires_grad for _, p in groups["image"])
