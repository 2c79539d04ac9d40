"""--gather-with-grad: MMCoA's and text-AT's loss and gradients at world size 2 equal one process's global batch."""

from __future__ import annotations


import pytest
import torch

import gloo_processes
from gloo_processes import join_rank, report_to
from mmrobust.data.digits import DIGIT_NAMES
from mmrobust.models.tiny import build_tiny
from mmrobust.training.config import TrainConfig
from mmrobust.utils.distributed import average_gradients, setup_distributed
from mmrobust.training.objectives.base import ObjectiveContext, TrainBatch
from mmrobust.training.objectives.mmcoa import MMCoA, TextAdversarialTraining

torch_distributed = pytest.importorskip("torch.distributed")
if not torch_distributed.is_available() or not torch_distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

OBJECTIVES = {"mmcoa": MMCoA, "text-at": TextAdversarialTraining}
#: classes 3 and 1 appear on both ranks' halves: deduplication of the captions across ranks matters
LABELS = torch.tensor([3, 1, 3, 7, 1, 3, 5, 1])


def adversary(texts):
    return [t.replace("photo", "picture") for t in texts]  # deterministic stand-in for the caption attack


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(len(LABELS), 3, 8, 8, generator=gen)
    noise = (torch.rand(images.shape, generator=gen) - 0.5) * 0.05
    return images, (images + noise).clamp(0, 1)


def loss_and_grads(method: str, targets: str, lo: int, hi: int, dist=None, gather: bool = False):
    model = build_tiny(seed=1).train()
    cfg = TrainConfig(model="tiny", method=method, dataset="digits", output_dir="unused",
                      method_options={"targets": targets, "gather_with_grad": gather})
    ctx = ObjectiveContext(model=model, classes=DIGIT_NAMES, class_prompts=[], caption_template="This is a photo of a {}",
                           config=cfg, trains_text=True, text_adversary=adversary, dist=dist)
    objective = OBJECTIVES[method](ctx)
    images, adv_images = global_batch()
    batch = TrainBatch(images[lo:hi], LABELS[lo:hi])
    captions = objective.captions(batch.labels)
    adversarial = {"captions": captions, "adv_texts": adversary(captions.texts), "images": adv_images[lo:hi]}
    loss = objective.loss(batch, adversarial).loss
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    if dist is not None:
        average_gradients(params, dist)
    return float(loss.detach()), [p.grad.clone() for p in params], objective.global_loss


def _rank(rank: int, port: int, results, gather: bool) -> None:
    def work() -> dict:
        torch.set_num_threads(1)
        join_rank(rank, 2, port)
        dist = setup_distributed("cpu")
        out = {}
        for method in OBJECTIVES:
            for targets in ("class", "instance"):
                loss, grads, is_global = loss_and_grads(method, targets, 4 * rank, 4 * rank + 4, dist, gather)
                out[(method, targets)] = (loss, [g.numpy() for g in grads], is_global)  # plain arrays cross the queue
        dist.close()
        return out

    report_to(results, rank, work)


def two_ranks(gather: bool) -> dict:
    return gloo_processes.run(2, _rank, gather, check_exit=False)


def test_gathered_loss_and_gradients_equal_the_global_batch() -> None:
    got = two_ranks(gather=True)
    for key in got[0]:
        loss, grads, _ = loss_and_grads(*key, 0, len(LABELS))
        for rank in (0, 1):
            r_loss, r_grads, is_global = got[rank][key]
            assert is_global
            assert r_loss == pytest.approx(loss, rel=1e-5, abs=1e-6), (key, rank)
            for a, b in zip(r_grads, grads):
                torch.testing.assert_close(torch.from_numpy(a), b, atol=1e-5, rtol=1e-4, msg=f"{key} rank {rank}")


def test_per_rank_negatives_change_the_objective() -> None:
    """Without the gather each rank contrasts its own half: the loss is not the global batch's."""
    got = two_ranks(gather=False)
    for key in got[0]:
        loss, _, _ = loss_and_grads(*key, 0, len(LABELS))
        mean = (got[0][key][0] + got[1][key][0]) / 2
        assert not got[0][key][2] and abs(mean - loss) > 1e-4, key
