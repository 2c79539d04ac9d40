"""A logit fingerprint: the built model's logits on fixed probe images and prompts, kept in the manifest.

Why: the sha256 proves the weight file is intact, but not that today's code turns those weights into the
same model (a changed tower, tokenizer or resize would silently shift every result). Every load recomputes
the probe logits and refuses a model that drifted.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import ModelLoadError
from ..models.base import VisionLanguageModel

PROBE_SEED = 0
PROBE_IMAGES = 4
#: cross-device / BLAS differences stay far below this; a changed model does not
PROBE_TOLERANCE = 1e-3


@torch.no_grad()
def probe_logits(model: VisionLanguageModel, texts: Sequence[str]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(PROBE_SEED)
    images = torch.rand(PROBE_IMAGES, 3, model.image_size, model.image_size, generator=generator)
    was_training = model.training
    model.eval()
    logits = model(images.to(model.device), list(texts)).cpu()
    model.train(was_training)
    return logits


def probe_fingerprint(model: VisionLanguageModel, prompts: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Probe texts (the first prompt of up to 4 classes) and the model's logits on them."""
    texts = [per_class[0] for per_class in prompts[:4]]
    return {"texts": texts, "logits": probe_logits(model, texts).tolist()}


def check_fingerprint(model: VisionLanguageModel, probe: dict[str, Any] | None, where: str) -> None:
    """Raise :class:`ModelLoadError` if the model's probe logits differ from the recorded ones."""
    if not isinstance(probe, dict) or "logits" not in probe:
        raise ModelLoadError(f"{where}: the manifest has no logit fingerprint")
    texts = probe.get("texts")
    try:
        expected = torch.tensor(probe["logits"], dtype=torch.float32)
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts is not a list of strings")
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{where}: the manifest's logit fingerprint is damaged ({exc}); rebuild it") from None
    actual = probe_logits(model, texts)
    if actual.shape != expected.shape or not torch.allclose(actual, expected, atol=PROBE_TOLERANCE, rtol=1e-4):
        diff = (actual - expected).abs().max().item() if actual.shape == expected.shape else float("nan")
        raise ModelLoadError(f"{where}: the loaded model's logits differ from the ones recorded at build time "
                             f"(max abs diff {diff:.3g}); the cache or the code changed — rebuild it")
