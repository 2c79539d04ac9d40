"""open_clip adapter: a tiny open_clip model built here must give the same zero-shot logits through
mmrobust as through open_clip itself, survive a checkpoint round trip, and fail with one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import torchvision_shim  # noqa: F401  (before anything imports torchvision)
from mmrobust.errors import ModelLoadError
from mmrobust.models.zeroshot import ZeroShotClassifier
from mmrobust.models import load_model, save_checkpoint

ARCH = "mmrobust-test-tiny-oc"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
#: not CLIP's defaults, so a test fails if the adapter ignores the model's preprocess config
TINY_PREPROCESS = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "interpolation": "bicubic"}
CLASSES = ["cat", "dog", "airplane", "small red truck"]
TEMPLATE = "a photo of a {}."


@pytest.fixture(scope="module")
def open_clip():
    """One open_clip import per session (it takes several seconds)."""
    try:
        import open_clip as oc
    except Exception as exc:  # not installed, or broken beyond what the shim fixes
        pytest.skip(f"open_clip unusable here: {type(exc).__name__}: {exc}")
    return oc


@pytest.fixture(scope="module")
def reference(open_clip, tmp_path_factory):
    """(open_clip model, its eval transform, its tokenizer, weights file) for a tiny registered arch."""
    folder = tmp_path_factory.mktemp("open_clip_tiny")
    (folder / f"{ARCH}.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(folder / f"{ARCH}.json")
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    with torch.no_grad():  # make the temperature differ from the default so a wrong scale shows
        model.logit_scale.fill_(3.0)
    model.eval()
    weights = folder / "weights.pt"
    torch.save(model.state_dict(), weights)
    return model, preprocess, open_clip.get_tokenizer(ARCH), weights


@pytest.fixture(scope="module")
def adapter(reference):
    return load_model(f"open_clip:{ARCH}:{reference[3]}")


def _pil_images(n: int, size: int, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    arrays = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return arrays, [Image.fromarray(a) for a in arrays]


def _direct_logits(reference, pil_images, texts, preprocess=None):
    """What open_clip itself computes: its transform, tokenizer, towers and exp(logit_scale)."""
    model, own_preprocess, tokenizer, _ = reference
    preprocess = preprocess or own_preprocess
    with torch.no_grad():
        image = model.encode_image(torch.stack([preprocess(im) for im in pil_images]), normalize=True)
        text = model.encode_text(tokenizer(texts), normalize=True)
        return model.logit_scale.exp() * image @ text.t()


def test_zero_shot_logits_equal_open_clip(reference, adapter):
    arrays, pil = _pil_images(5, 32)
    texts = [TEMPLATE.format(c) for c in CLASSES]
    expected = _direct_logits(reference, pil, texts)
    pixels = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0
    classifier = ZeroShotClassifier.from_prompts(adapter, CLASSES, [TEMPLATE])
    with torch.no_grad():
        got = classifier(pixels)
    assert got.shape == (5, len(CLASSES))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert float(adapter.logit_scale.detach()) == pytest.approx(float(np.exp(3.0)), rel=1e-6)


def test_preprocess_config_is_read_from_the_model(reference, tmp_path, open_clip):
    """A model whose own preprocess_cfg has other statistics: the adapter must use them."""
    model, _, _, _ = reference
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CFG, "preprocess_cfg": TINY_PREPROCESS}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    loaded = load_model(f"open_clip:local-dir:{folder}")
    assert loaded.image_size == 32
    torch.testing.assert_close(loaded.pixel_mean.flatten(), torch.tensor(TINY_PREPROCESS["mean"]))
    torch.testing.assert_close(loaded.pixel_std.flatten(), torch.tensor(TINY_PREPROCESS["std"]))
    arrays, pil = _pil_images(3, 32, seed=1)
    texts = [TEMPLATE.format(c) for c in CLASSES]
    pixels = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0
    transform = open_clip.image_transform(32, is_train=False, mean=TINY_PREPROCESS["mean"], std=TINY_PREPROCESS["std"])
    with torch.no_grad():
        got = loaded(pixels, texts)
    torch.testing.assert_close(got, _direct_logits(reference, pil, texts, transform), atol=1e-5, rtol=1e-5)


def test_cut_context_gives_identical_text_features(reference, adapter):
    model, _, tokenizer, _ = reference
    texts = ["a photo of a cat.", "x", "a very long description of a scene " * 12, ""]
    tokens = adapter.tokenize(texts)
    assert tokens.input_ids.shape == (4, 77)
    assert tokens.n_truncated == 1
    assert adapter._can_cut_context
    with torch.no_grad():
        ours = adapter.encode_text(tokens)
        theirs = model.encode_text(tokenizer(texts))
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
    # short prompts alone: the cut is at the longest end-of-text, far below 77
    with torch.no_grad():
        short = adapter.encode_text(texts[:2])
    torch.testing.assert_close(short, theirs[:2], atol=1e-6, rtol=1e-6)


def test_parameter_groups_and_token_embedding(reference, adapter):
    groups = adapter.named_parameter_groups()
    image = {n for n, _ in groups["image"]}
    text = {n for n, _ in groups["text"]}
    other = {n for n, _ in groups["other"]}
    assert image and text
    assert not image & text and not image & other and not text & other
    assert image | text | other == {n for n, _ in groups["all"]}
    assert "model.positional_embedding" in text and "model.text_projection" in text
    assert "model.token_embedding.weight" in text
    assert other == {"model.logit_scale"}
    assert all(n.startswith("model.visual.") for n in image)
    assert adapter.token_embedding() is adapter.model.token_embedding
    assert adapter.token_embedding().num_embeddings == 49408


def test_gradient_reaches_pixels(adapter):
    pixels = torch.rand(2, 3, 40, 40, requires_grad=True)  # not the model's size: resized inside
    logits = adapter(pixels, ["a cat", "a dog"])
    logits[:, 0].sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_checkpoint_round_trip_after_fine_tune(reference, adapter, tmp_path):
    _, _, _, weights = reference
    model = load_model(f"open_clip:{ARCH}:{weights}")
    noise = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a "fine-tune": the checkpoint must carry these weights, not the original file's
        for param in (model.model.positional_embedding, model.model.visual.conv1.weight):
            param.add_(0.1 * torch.randn(param.shape, generator=noise))
    folder = save_checkpoint(model, tmp_path / "ckpt", metadata={"note": "test"})
    assert (folder / "open_clip_config.json").is_file()
    reloaded = load_model(f"ckpt:{folder}")
    assert reloaded.backend == "open_clip"
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    texts = [TEMPLATE.format(c) for c in CLASSES]
    with torch.no_grad():
        before, after, original = model(images, texts), reloaded(images, texts), adapter(images, texts)
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    assert not torch.allclose(before, original)
    torch.testing.assert_close(reloaded.pixel_mean, model.pixel_mean)


def test_random_init_architecture_alone(reference):
    model = load_model(f"open_clip:{ARCH}")
    assert model.backend == "open_clip" and model.image_size == 32
    assert model.tokenizer.context_length == 77


def _one_line_error(spec: str) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model(spec)
    message = str(info.value)
    assert "\n" not in message and message.strip()
    return message


def test_unknown_architecture_lists_known_ones(open_clip):
    message = _one_line_error("open_clip:ViT-B-99")
    assert "ViT-B-99" in message and "ViT-B-32" in message


def test_unknown_tag_and_missing_weights_file(reference):
    assert "known:" in _one_line_error("open_clip:ViT-B-32:no-such-tag")
    assert "does not exist" in _one_line_error(f"open_clip:{ARCH}:/nonexistent/weights.pt")
    assert "ARCH" in _one_line_error("open_clip:")


class _WritesMarker:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).write_text, (self.marker, "code ran"))


def test_a_pickled_weights_file_never_runs_code(reference, tmp_path):
    """A local ``.pt`` is read with ``weights_only=True``: an object with ``__reduce__`` is refused, not run."""
    marker = tmp_path / "pwned"
    torch.save({"state_dict": _WritesMarker(marker)}, tmp_path / "evil.pt")
    assert _one_line_error(f"open_clip:{ARCH}:{tmp_path / 'evil.pt'}")
    assert not marker.exists()


@pytest.fixture
def offline_hub(monkeypatch):
    """No download may be tried over the (absent) network: the Hub's offline mode fails at once."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("spec", ["open_clip:ViT-B-32:openai", "open_clip:hf-hub:laion/not-cached-here"])
def test_download_without_network_is_one_line(open_clip, offline_hub, spec):
    message = _one_line_error(spec)
    assert "no network" in message and "weights not downloadable" in message


def test_missing_open_clip_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    message = _one_line_error("open_clip:ViT-B-32")
    assert "pip install 'mmrobust[open_clip]'" in message


def test_spatial_tokens_are_projected_patches(adapter):
    """``encode_image_and_spatial``: the pooled embedding is ``encode_image``; the patch tokens are the ViT's
    last tokens after ``ln_post`` and ``proj`` (TGA-ZSR's ``encode_image(...)[:, 1:]``)."""
    pixels = torch.rand(2, 3, 32, 32)
    visual = adapter.model.visual
    with torch.no_grad():
        pooled, spatial = adapter.encode_image_and_spatial(pixels)
        torch.testing.assert_close(pooled, adapter.encode_image(pixels), atol=1e-5, rtol=1e-5)
        x = visual.conv1(adapter.preprocess(pixels)).flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.expand(2, 1, -1), x], dim=1) + visual.positional_embedding
        expected = (visual.ln_post(visual.transformer(visual.ln_pre(x))) @ visual.proj)[:, 1:]
    assert spatial.shape == (2, 16, 32)
    torch.testing.assert_close(spatial, expected, atol=1e-5, rtol=1e-5)
    assert visual.output_tokens is False  # restored
