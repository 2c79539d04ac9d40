"""Model specs, the tiny model and the interface every backend shares."""

from __future__ import annotations

import pytest
import torch

from mmrobust.errors import ModelLoadError
from mmrobust.models import TextTokens, list_models, load_model, parse_spec


def _logits(model, seed: int = 0) -> torch.Tensor:
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(images, ["a photo of a cat", "a photo of a dog"])


def test_tiny_is_deterministic_per_seed():
    state = torch.random.get_rng_state()
    a, b, c = load_model("tiny"), load_model("tiny:0"), load_model("tiny:1")
    assert torch.equal(torch.random.get_rng_state(), state)  # building does not touch the global RNG
    assert torch.equal(_logits(a), _logits(b))
    assert not torch.allclose(_logits(a), _logits(c))
    assert not a.training and all(p.dtype == torch.float32 for p in a.parameters())


@pytest.mark.parametrize(
    "spec, expected",
    [("tiny:x", "integer seed"), ("", "empty"), ("nosuch:thing", "unknown model spec"), ("ckpt:/nonexistent/dir", "mmrobust.json")],
)
def test_bad_specs_are_one_line(spec, expected):
    with pytest.raises(ModelLoadError) as info:
        load_model(spec)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_parse_spec():
    assert parse_spec("open_clip:ViT-B-32:openai") == ("open_clip", "ViT-B-32:openai")
    assert parse_spec("hf:openai/clip-vit-base-patch32") == ("hf", "openai/clip-vit-base-patch32")
    assert parse_spec(" tiny ") == ("tiny", "")


def test_list_models_covers_every_scheme():
    schemes = {row["scheme"] for row in list_models()}
    assert {"tiny", "proxy", "open_clip", "hf", "ckpt"} <= schemes
    assert all(row["description"] and row["example"] for row in list_models())


def test_parameter_groups_disjoint(tiny_model):
    groups = tiny_model.named_parameter_groups()
    image, text, other = ({n for n, _ in groups[k]} for k in ("image", "text", "other"))
    assert image and text and not image & text and not (image | text) & other
    assert image | text | other == {n for n, _ in tiny_model.named_parameters()}
    assert "log_logit_scale" in other
    embedding = tiny_model.token_embedding()
    assert isinstance(embedding, torch.nn.Embedding)
    assert any(p is embedding.weight for _, p in groups["text"])


def test_encode_image_any_size_and_bad_shape(tiny_model):
    with torch.no_grad():
        small = tiny_model.encode_image(torch.rand(2, 3, 8, 8), normalize=True)
        large = tiny_model.encode_image(torch.rand(2, 3, 64, 48))
    assert small.shape == large.shape == (2, 64)
    torch.testing.assert_close(small.norm(dim=-1), torch.ones(2))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        tiny_model.encode_image(torch.rand(3, 32, 32))


def test_text_inputs_agree(tiny_model):
    texts = ["a photo of a cat", "a dog"]
    tokens = tiny_model.tokenize(texts)
    assert isinstance(tokens, TextTokens) and len(tokens) == 2 and tokens.n_truncated == 0
    with torch.no_grad():
        from_strings = tiny_model.encode_text(texts)
        from_tokens = tiny_model.encode_text(tokens)
    torch.testing.assert_close(from_strings, from_tokens)
    long = tiny_model.tokenize(["word " * 100])
    assert long.n_truncated == 1 and long.input_ids.shape[1] == tiny_model.tokenizer.context_length


def test_describe(tiny_model):
    info = tiny_model.describe()
    assert info["backend"] == "native" and info["image_size"] == 32
    assert info["n_parameters"] == sum(p.numel() for p in tiny_model.parameters())
