"""Zero-shot classifier: logits are scale * cosine, class embeddings are cached per weights version, and
gradients reach the pixels (attacks depend on it)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmrobust.errors import ConfigError
from mmrobust.models.zeroshot import PromptEmbeddingCache, ZeroShotClassifier, build_prompts, encode_class_prompts

CLASSES = ["cat", "dog", "ship"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of the {}."]


def _images(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_build_prompts():
    prompts = build_prompts(CLASSES, TEMPLATES)
    assert prompts[1] == ["a photo of a dog.", "a blurry photo of the dog."]
    with pytest.raises(ConfigError):
        build_prompts(CLASSES, ["no placeholder"])
    with pytest.raises(ConfigError):
        build_prompts([], TEMPLATES)


def test_logits_are_scale_times_cosine(tiny_model):
    classifier = ZeroShotClassifier.from_prompts(tiny_model, CLASSES, TEMPLATES)
    images = _images()
    with torch.no_grad():
        logits = classifier(images)
        image = F.normalize(tiny_model.encode_image(images), dim=-1)
        per_template = [F.normalize(tiny_model.encode_text([t.format(c) for t in TEMPLATES]), dim=-1) for c in CLASSES]
        text = F.normalize(torch.stack([p.mean(dim=0) for p in per_template]), dim=-1)
        expected = tiny_model.logit_scale * image @ text.t()
    assert logits.shape == (4, 3)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    fixed = ZeroShotClassifier.from_prompts(tiny_model, CLASSES, TEMPLATES, logit_scale=100.0)
    with torch.no_grad():
        fixed_logits = fixed(images)
    torch.testing.assert_close(fixed_logits, 100.0 * image @ text.t(), atol=1e-4, rtol=1e-5)
    assert float(fixed_logits.abs().max()) <= 100.0 + 1e-4  # cosines are at most 1


def test_prompt_cache_reuse_and_invalidation(tiny_model):
    cache = PromptEmbeddingCache()
    prompts = build_prompts(CLASSES, TEMPLATES)
    first = cache.get(tiny_model, prompts)
    assert cache.get(tiny_model, prompts) is first and len(cache) == 1

    image_params = tiny_model.parameter_groups()["image"]
    image_step = torch.optim.SGD(image_params, lr=0.1)
    tiny_model(_images(), ["a cat"]).sum().backward()
    image_step.step()
    assert cache.get(tiny_model, prompts) is first  # image weights do not change text embeddings

    text_step = torch.optim.SGD(tiny_model.parameter_groups()["text"], lr=0.5)
    tiny_model.zero_grad()
    encode_class_prompts(tiny_model, prompts, grad=True).sum().backward()
    text_step.step()
    second = cache.get(tiny_model, prompts)
    assert len(cache) == 2 and second is not first
    assert not torch.allclose(second, first)
    with torch.no_grad():
        torch.testing.assert_close(second, encode_class_prompts(tiny_model, prompts))

    other = build_prompts(["horse"], TEMPLATES)
    cache.get(tiny_model, other)
    assert len(cache) == 3


def test_gradient_flows_to_pixels(tiny_model):
    classifier = ZeroShotClassifier.from_prompts(tiny_model, CLASSES, TEMPLATES)
    images = _images(size=20).requires_grad_(True)  # not the model's size: resized differentiably inside
    loss = F.cross_entropy(classifier(images), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert images.grad is not None and images.grad.shape == images.shape
    assert float(images.grad.abs().sum()) > 0
    assert not classifier.text_embeddings.requires_grad


def test_with_prompts_and_text_gradients(tiny_model):
    classifier = ZeroShotClassifier.from_prompts(tiny_model, CLASSES, TEMPLATES)
    other = classifier.with_prompts(build_prompts(["car", "tree", "bird"], TEMPLATES))
    assert other.model is classifier.model and other.classes == classifier.classes
    assert not torch.allclose(other.text_embeddings, classifier.text_embeddings)
    embeddings = encode_class_prompts(tiny_model, build_prompts(CLASSES, TEMPLATES), grad=True)
    embeddings.sum().backward()
    grads = [p.grad for p in tiny_model.parameter_groups()["text"]]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(3))
