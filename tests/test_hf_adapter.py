"""Hugging Face adapter: a tiny ``transformers.CLIPModel`` with a tokenizer built offline must give the
same zero-shot logits through mmrobust as through transformers, survive a checkpoint round trip, and fail
with one-line errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import torchvision_shim  # noqa: F401  (before anything imports torchvision)
from mmrobust.errors import ModelLoadError
from mmrobust.models.zeroshot import ZeroShotClassifier
from mmrobust.models import load_model, save_checkpoint

CLASSES = ["cat", "dog", "the airplane", "small red truck"]
TEMPLATE = "a photo of a {}."
#: not CLIP's defaults, so a test fails if the adapter ignores preprocessor_config.json
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
CONTEXT = 64


@pytest.fixture(scope="module")
def transformers():
    try:
        import transformers as tf

        tf.CLIPModel  # noqa: B018  (lazy attribute: this is the import that needs torchvision)
    except Exception as exc:
        pytest.skip(f"transformers' CLIP unusable here: {type(exc).__name__}: {exc}")
    return tf


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2/CLIP convention)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def _tiny_tokenizer(transformers):
    """A real CLIP BPE tokenizer with a small vocabulary: bytes, bytes at word end, a few merges."""
    symbols = _byte_symbols()
    merges = [("t", "h"), ("th", "e</w>"), ("c", "a"), ("ca", "t</w>"), ("o", "g</w>"), ("d", "og</w>")]
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=list(merges))
    tokenizer.model_max_length = CONTEXT
    return tokenizer


@pytest.fixture(scope="module")
def hf_folder(transformers, tmp_path_factory):
    """A save_pretrained folder: tiny CLIPModel + tokenizer + preprocessor config."""
    folder = tmp_path_factory.mktemp("hf_tiny")
    tokenizer = _tiny_tokenizer(transformers)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=CONTEXT, **special),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2),
        projection_dim=16,
        logit_scale_init_value=3.0,
    )
    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference(transformers, hf_folder):
    model = transformers.CLIPModel.from_pretrained(hf_folder).eval()
    return model, transformers.AutoTokenizer.from_pretrained(hf_folder), transformers.CLIPImageProcessor.from_pretrained(hf_folder)


@pytest.fixture(scope="module")
def adapter(hf_folder):
    return load_model(f"hf:{hf_folder}")


def _features(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _direct_logits(reference, arrays, texts):
    model, tokenizer, processor = reference
    with torch.no_grad():
        pixels = processor(images=list(arrays), return_tensors="pt")["pixel_values"]
        image = _features(model.get_image_features(pixel_values=pixels))
        tokens = tokenizer(texts, padding=True, return_tensors="pt")
        text = _features(model.get_text_features(**tokens))
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        return model.logit_scale.exp() * image @ text.t()


def _arrays(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def test_zero_shot_logits_equal_transformers(reference, adapter):
    arrays = _arrays(5)
    texts = [TEMPLATE.format(c) for c in CLASSES]
    expected = _direct_logits(reference, arrays, texts)
    pixels = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0
    classifier = ZeroShotClassifier.from_prompts(adapter, CLASSES, [TEMPLATE])
    with torch.no_grad():
        got = classifier(pixels)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert float(adapter.logit_scale.detach()) == pytest.approx(float(np.exp(3.0)), rel=1e-6)
    assert adapter.image_size == 32
    torch.testing.assert_close(adapter.pixel_mean.flatten(), torch.tensor(MEAN))
    torch.testing.assert_close(adapter.pixel_std.flatten(), torch.tensor(STD))


def test_tokenizer_truncates_and_counts(adapter, reference):
    _, tokenizer, _ = reference
    long_text = "the cat and the dog " * 20
    tokens = adapter.tokenize(["a cat", long_text])
    assert tokens.input_ids.shape[1] == CONTEXT
    assert tokens.n_truncated == 1
    assert int(tokens.input_ids[1, -1]) == tokenizer.eos_token_id  # end of text kept after the cut
    assert tokens.attention_mask[0].sum() < CONTEXT  # the short text is padded, and masked
    assert adapter.tokenizer.decode(tokens.input_ids[0].tolist()) == "a cat"


def test_parameter_groups_and_token_embedding(adapter):
    groups = adapter.named_parameter_groups()
    image = {n for n, _ in groups["image"]}
    text = {n for n, _ in groups["text"]}
    other = {n for n, _ in groups["other"]}
    assert image and text and not image & text
    assert image | text | other == {n for n, _ in groups["all"]}
    assert other == {"model.logit_scale"}
    assert "model.visual_projection.weight" in image and "model.text_projection.weight" in text
    embedding = adapter.token_embedding()
    assert embedding is adapter.model.text_model.embeddings.token_embedding
    assert embedding.num_embeddings == adapter.tokenizer.vocab_size


def test_checkpoint_round_trip_after_fine_tune(hf_folder, adapter, tmp_path):
    model = load_model(f"hf:{hf_folder}")
    noise = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a "fine-tune": the checkpoint must carry these weights, not the folder's
        for param in (model.model.text_projection.weight, model.model.vision_model.embeddings.patch_embedding.weight):
            param.add_(0.1 * torch.randn(param.shape, generator=noise))
    folder = save_checkpoint(model, tmp_path / "ckpt")
    reloaded = load_model(str(folder))  # a bare checkpoint folder is a spec too
    assert reloaded.backend == "hf"
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    texts = [TEMPLATE.format(c) for c in CLASSES]
    with torch.no_grad():
        before, after, original = model(images, texts), reloaded(images, texts), adapter(images, texts)
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    assert not torch.allclose(before, original)
    torch.testing.assert_close(reloaded.pixel_std, model.pixel_std)


def test_gradient_reaches_pixels(adapter):
    pixels = torch.rand(2, 3, 48, 48, requires_grad=True)
    adapter(pixels, ["a cat", "a dog"])[:, 1].sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def _one_line_error(spec: str) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model(spec)
    message = str(info.value)
    assert "\n" not in message and message.strip()
    return message


def test_missing_folder(tmp_path):
    message = _one_line_error(f"hf:{tmp_path / 'nope'}")
    assert "does not exist" in message and "nope" in message


def test_folder_without_config(tmp_path):
    assert "config.json" in _one_line_error(f"hf:{tmp_path}")


def test_hub_id_without_network(transformers, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _one_line_error("hf:mmrobust-tests/not-a-cached-model")
    assert "weights not downloadable: no network" in message


def test_missing_transformers_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    message = _one_line_error("hf:openai/clip-vit-base-patch32")
    assert "pip install 'mmrobust[hf]'" in message


def test_spatial_tokens_are_projected_patches(adapter):
    """``encode_image_and_spatial``: the pooled embedding is ``encode_image``; the patch tokens go through the
    same post-layernorm and projection (TGA-ZSR's text-guided attention compares them with text)."""
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        pooled, spatial = adapter.encode_image_and_spatial(pixels)
        torch.testing.assert_close(pooled, adapter.encode_image(pixels), atol=1e-5, rtol=1e-5)
        vision = adapter.model.vision_model
        hidden = vision(pixel_values=adapter.preprocess(pixels), output_hidden_states=True).hidden_states[-1]
        expected = adapter.model.visual_projection(vision.post_layernorm(hidden[:, 1:]))
    grid = (adapter.image_size // adapter.model.config.vision_config.patch_size) ** 2
    assert spatial.shape == (2, grid, pooled.shape[1])
    torch.testing.assert_close(spatial, expected, atol=1e-5, rtol=1e-5)
    unit = adapter.encode_image_spatial(pixels, normalize=True)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(2, grid), atol=1e-5, rtol=1e-5)
