"""Held-out evaluation after each epoch: clean zero-shot accuracy and, optionally, PGD accuracy.

Sharded over ranks under torchrun (rank r scores items r, r + W, ...; results are gathered in order), so a
data-parallel run reports the same numbers as a single process. This is a training monitor on a fixed subset;
full robust evaluations (more attacks, sanity checks, resume) are ``mmrobust eval`` on the saved checkpoint.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..attacks.image.pgd import PGD
from ..data.base import ImageClassificationDataset
from ..eval.classification import accuracy_summary, check_finite_logits, iterate_batches
from ..models.zeroshot import ZeroShotClassifier
from ..models.base import VisionLanguageModel
from .config import eps_label
from ..utils.distributed import DistributedContext, gather_sharded, shard_strided


def eval_pgd_alpha(eps: float, steps: int) -> float:
    """The one PGD step-size rule (:func:`mmrobust.attacks.options.default_step_size`), as in ``mmrobust eval``,
    so a per-epoch PGD score is the number ``eval --attack pgd`` would print for the same budget."""
    from ..attacks.options import default_step_size

    return default_step_size(eps, "linf")


def evaluate_model(
    model: VisionLanguageModel,
    dataset: ImageClassificationDataset,
    indices: Sequence[int],
    templates: Sequence[str],
    *,
    batch_size: int,
    ctx: DistributedContext,
    pgd_eps: float | None = None,
    pgd_steps: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Clean (and PGD, if ``pgd_eps``) accuracy of ``model`` on ``dataset[indices]``."""
    with torch.no_grad():
        classifier = ZeroShotClassifier.from_prompts(model, dataset.classes, templates)
    local = shard_strided(list(indices), ctx)
    clean, robust, labels = [], [], []
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + ctx.rank)
    attack = None
    if pgd_eps is not None:
        attack = PGD(classifier, eps=pgd_eps, alpha=eval_pgd_alpha(pgd_eps, pgd_steps), steps=pgd_steps,
                     generator=generator)
    for batch in iterate_batches(dataset, local, batch_size, ctx.device, progress="eval" if progress else None):
        with torch.no_grad():
            logits = classifier(batch.images)
        check_finite_logits(logits, "held-out evaluation")
        clean.append((logits.argmax(1) == batch.labels).cpu())
        labels.append(batch.labels.cpu())
        if attack is not None:
            adv = attack(batch.images, batch.labels)
            with torch.no_grad():
                robust.append((classifier(adv).argmax(1) == batch.labels).cpu())
    n_classes = len(dataset.classes)
    cat = lambda parts: torch.cat(parts).numpy() if parts else np.zeros(0, dtype=bool)  # noqa: E731
    all_labels = gather_sharded(cat(labels).astype(np.int64), ctx)
    result: dict[str, Any] = {"n": int(len(all_labels))}
    clean_summary = accuracy_summary(gather_sharded(cat(clean), ctx), all_labels, n_classes)
    result["clean_accuracy"] = clean_summary["accuracy"]
    result["clean_std_error"] = clean_summary["std_error"]
    if attack is not None:
        robust_summary = accuracy_summary(gather_sharded(cat(robust), ctx), all_labels, n_classes)
        result["pgd_accuracy"] = robust_summary["accuracy"]
        result["pgd_std_error"] = robust_summary["std_error"]
        result["pgd"] = {"eps": eps_label(pgd_eps), "eps_float": pgd_eps, "steps": pgd_steps,
                         "alpha_float": eval_pgd_alpha(pgd_eps, pgd_steps)}
    return result
