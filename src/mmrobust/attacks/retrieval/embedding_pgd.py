"""PGD on an embedding objective: mmrobust's :class:`~mmrobust.attacks.image.pgd.PGD` (projection, random
start, box clipping, fp32, gradients w.r.t. the perturbation only) driven by a per-image objective on
image embeddings instead of logits.

The "classifier" handed to PGD is an embedder (pixels -> normalised embeddings: the shared
:class:`~mmrobust.attacks.image.base.ImageEmbedder` with ``normalize=True``, or SGA's embedder of several
augmented copies), the "labels" are the rows of the batch, and the loss is a callable
``objective(embeddings, rows, None) -> per-image value to maximise``. Last iterate, one run: the published
Co-Attack and SGA keep the last iterate and have no success criterion to track a best one by. The random
start comes from each image's own stream, so an image's result does not depend on its batch.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..image.pgd import PGD
from ..image.streams import ExampleStreams

Objective = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def embedding_pgd(embedder: nn.Module, objective: Objective, images: torch.Tensor, options: dict,
                  alpha: float, streams: ExampleStreams) -> torch.Tensor:
    """Adversarial images maximising ``objective`` inside the eps-ball of ``options`` (image_options form).

    One PGD run over the whole batch: every step calls ``embedder`` once on all ``images`` (SGA's embedder
    counts on it to name its per-step noise draws)."""
    attack = PGD(embedder, options["eps"], alpha, options["steps"], options["norm"], random_start=True,
                 restarts=1, loss=objective, track_best=False)
    rows = torch.arange(images.shape[0], device=images.device)
    return attack(images, rows, streams=streams)


def kl_rows(reference: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """KL(softmax(reference) || softmax(candidate)) per row, softmax over embedding dimensions.

    This is what ``nn.KLDivLoss()(candidate.log_softmax(-1), reference.softmax(-1))`` computes in the
    Co-Attack code (there averaged over the batch; here per image, so results do not depend on batch size).
    """
    log_p = reference.log_softmax(dim=-1)
    return (log_p.exp() * (log_p - candidate.log_softmax(dim=-1))).sum(dim=-1)
