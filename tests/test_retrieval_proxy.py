"""On proxy:tinyimagenet (when built) and real photos: every retrieval attack lowers recall@1, and Co-Attack
(image + caption) is no better for the model than image-only PGD or caption-only embed-sub (within noise).

Slow (a few minutes on 2 cores); run with ``-m slow``. The data is "Tiny-ImageNet WordNet captions"
(real Tiny-ImageNet val photos, captions from WordNet names), not Flickr30k.
"""

from __future__ import annotations

import pytest

from mmrobust.data.retrieval_fixture import build_retrieval_fixture
from mmrobust.errors import ModelLoadError
from mmrobust.eval.run import EvalConfig, run_evaluation

pytestmark = pytest.mark.slow

#: one query of slack per direction on 40 images / 120 captions, in summed R@1 units
NOISE = 1 / 40 + 1 / 120


def r1(block: dict) -> float:
    """Summed recall@1 of both directions (the model's score)."""
    return block["recall"]["text_to_image"]["r@1"] + block["recall"]["image_to_text"]["r@1"]


def test_attacks_lower_recall_and_co_attack_is_strongest(shared_data, tmp_path):
    from mmrobust.models import load_model

    try:
        model = load_model("proxy:tinyimagenet")
    except ModelLoadError as exc:
        pytest.skip(f"proxy:tinyimagenet not available: {exc}")
    if not (shared_data / "tiny-imagenet-200").is_dir():
        pytest.skip("Tiny-ImageNet-200 not found")
    build_retrieval_fixture(shared_data, tmp_path, n_images=40, captions_per_image=3, seed=0)
    config = EvalConfig(model="proxy:tinyimagenet", dataset="flickr30k", data_root=str(tmp_path), task="retrieval",
                        attacks="pgd,embed-sub,co-attack,sga", eps=1 / 255, batch_size=20, progress=False)
    report = run_evaluation(config, model=model)
    clean = r1(report["metrics"]["clean"])
    attacks = report["metrics"]["attacks"]
    assert clean > 0.2  # the proxy retrieves well above chance (1/40 per direction)
    for name, block in attacks.items():
        assert r1(block) < clean, name
    assert r1(attacks["co-attack"]) <= r1(attacks["pgd"]) + NOISE
    assert r1(attacks["co-attack"]) <= r1(attacks["embed-sub"]) + NOISE
