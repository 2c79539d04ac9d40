"""``--gather-with-grad``: contrastive terms over the *global* batch under data parallelism (open_clip's option).

Why: MMCoA and text-AT contrast each image against the batch's captions. Per rank, the negatives are the
rank's own slice, so the objective changes with the world size (2 ranks of 64 is not one batch of 128). With
this option every rank all-gathers the image and caption features, keeping the autograd graph of its own
part, and computes the loss of the whole global batch (the same value on every rank). The backward of the
gather sums the ranks' gradients of the gathered tensor and keeps this rank's slice, so after the trainer's
gradient average the update equals the single-process gradient of the global batch — open_clip's
``gather_with_grad`` (Cherti et al. 2023, reproducible scaling laws), written here with ``all_reduce`` so
that gloo (no reduce-scatter) computes it too.

Captions are deduplicated across ranks by their clean text (class prompts repeat across ranks), in global
first-appearance order, so the text side is the global batch's distinct captions as one process builds it.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.distributed as dist

from .pairs import symmetric_contrastive_loss


class _GatherWithGrad(torch.autograd.Function):
    """All-gather equal-shape tensors; backward: sum over ranks of the gathered gradient, own slice."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
        ctx.rank, ctx.world_size = rank, world_size
        pieces = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(pieces, tensor.contiguous())
        return torch.stack(pieces)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank], None, None


def gather_rows(tensor: torch.Tensor, ctx: Any) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (rows may differ in number), differentiable in this rank's piece."""
    sizes = [None] * ctx.world_size
    dist.all_gather_object(sizes, int(tensor.shape[0]))
    padded = torch.zeros((max(sizes),) + tuple(tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded = torch.cat([tensor, padded[tensor.shape[0]:]]) if max(sizes) > tensor.shape[0] else tensor
    stacked = _GatherWithGrad.apply(padded, ctx.rank, ctx.world_size)
    return [stacked[r, : sizes[r]] for r in range(ctx.world_size)]


def global_contrastive_loss(image_features: torch.Tensor, caption_features: torch.Tensor, texts: Sequence[str],
                            caption_index: torch.Tensor, logit_scale: torch.Tensor, targets: str,
                            ctx: Any) -> torch.Tensor:
    """:func:`~mmrobust.training.pairs.symmetric_contrastive_loss` of the global batch (ranks' slices in rank
    order), from this rank's features; ``texts`` are the clean captions the rows of ``caption_features`` encode."""
    all_texts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(all_texts, list(texts))
    images = torch.cat(gather_rows(image_features, ctx))
    captions = gather_rows(caption_features, ctx)
    first: dict[str, int] = {}
    rows = []
    for rank, rank_texts in enumerate(all_texts):
        for row, text in enumerate(rank_texts):
            if text not in first:
                first[text] = len(first)
                rows.append(captions[rank][row])
    indices = [None] * ctx.world_size
    dist.all_gather_object(indices, [first[texts[i]] for i in caption_index.tolist()])
    index = torch.tensor([i for piece in indices for i in piece], dtype=torch.long, device=caption_index.device)
    return symmetric_contrastive_loss(images, torch.stack(rows), index, logit_scale, targets)
