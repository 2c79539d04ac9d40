"""mmrobust checkpoints of native models: identical logits after a round trip, damage is refused.
(open_clip and Hugging Face round trips are in their adapter tests.)"""

from __future__ import annotations

import json

import pytest
import torch

from mmrobust.errors import ModelLoadError
from mmrobust.models import load_model, save_checkpoint
from mmrobust.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, is_checkpoint


def _logits(model) -> torch.Tensor:
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(images, ["a cat", "a dog", "a ship"])


@pytest.fixture
def fine_tuned(tiny_model):
    noise = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in tiny_model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=noise))
    return tiny_model


def test_native_round_trip(fine_tuned, tmp_path):
    folder = save_checkpoint(fine_tuned, tmp_path / "ckpt", metadata={"epochs": 2})
    assert is_checkpoint(folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["backend"] == "native" and config["metadata"] == {"epochs": 2} and len(config["weights_sha256"]) == 64
    for spec in (f"ckpt:{folder}", str(folder)):
        reloaded = load_model(spec)
        assert reloaded.spec == spec
        torch.testing.assert_close(_logits(reloaded), _logits(fine_tuned), atol=0, rtol=0)
    assert not torch.allclose(_logits(load_model("tiny")), _logits(fine_tuned))


def test_corrupt_weights_are_refused(tiny_model, tmp_path):
    folder = save_checkpoint(tiny_model, tmp_path / "ckpt")
    weights = folder / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_model(f"ckpt:{folder}")
    weights.unlink()
    with pytest.raises(ModelLoadError, match=WEIGHTS_NAME):
        load_model(f"ckpt:{folder}")


def test_bad_configs(tiny_model, tmp_path):
    folder = save_checkpoint(tiny_model, tmp_path / "ckpt")
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps({**config, "backend": "mystery"}))
    with pytest.raises(ModelLoadError, match="unknown backend"):
        load_model(f"ckpt:{folder}")
    (folder / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ModelLoadError, match="corrupt checkpoint config"):
        load_model(f"ckpt:{folder}")
    (folder / CONFIG_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelLoadError, match="not an mmrobust checkpoint"):
        load_model(f"ckpt:{folder}")
