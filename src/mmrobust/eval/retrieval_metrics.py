"""Recall@K in both directions and attack success rate for image–text retrieval.

Definitions (the ones Co-Attack's and SGA's evaluation code and CLIP_benchmark use):

* **text→image recall@K** (``text_to_image``, "image retrieval", IR@K): the fraction of captions whose own
  image is among the K images most similar to the caption.
* **image→text recall@K** (``image_to_text``, "text retrieval", TR@K): the fraction of images with *at
  least one* of their own captions among the K most similar captions.
* **mean recall**: the mean of the six numbers (R@1/5/10 in both directions), Co-Attack's ``r_mean``.
* **attack success rate@K** (SGA's ASR): of the queries retrieved correctly at K on clean data, the
  fraction no longer retrieved correctly at K under attack. Recall is what the *model* keeps (higher =
  more robust); success rate is what the *attack* achieves (higher = stronger attack). They are not
  complements: success rate is relative to the clean hits, recall to all queries.

All values are fractions in [0, 1]. Ties are broken towards the lower rank (a query whose match ties
with another item counts as found), consistently in every direction.
"""

from __future__ import annotations

from typing import Sequence

import torch

KS = (1, 5, 10)


def caption_owner(captions: Sequence[Sequence[str]]) -> torch.Tensor:
    """For each caption (flattened in image order), the index of its image."""
    return torch.tensor([i for i, group in enumerate(captions) for _ in group], dtype=torch.long)


def text_to_image_ranks(similarity: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """0-based rank of each caption's own image (``similarity`` is images x captions)."""
    scores = similarity.t()  # captions x images
    own = scores.gather(1, owner[:, None])
    return (scores > own).sum(dim=1)


def image_to_text_ranks(similarity: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """0-based rank of each image's best-ranked own caption."""
    n_images = similarity.shape[0]
    mine = owner[None, :] == torch.arange(n_images)[:, None]
    best_own = similarity.masked_fill(~mine, float("-inf")).max(dim=1, keepdim=True).values
    return (similarity.masked_fill(mine, float("-inf")) > best_own).sum(dim=1)


def ranks(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, owner: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both directions' ranks from L2-normalised embeddings (cosine similarity, as CLIP retrieves)."""
    similarity = image_embeddings.float() @ text_embeddings.float().t()
    return {"text_to_image": text_to_image_ranks(similarity, owner),
            "image_to_text": image_to_text_ranks(similarity, owner)}


def rank_lists(rank: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    """The ranks as plain lists (the report's ``per_query`` block)."""
    return {direction: [int(v) for v in r.tolist()] for direction, r in rank.items()}


def recall_summary(rank: dict[str, torch.Tensor], ks: Sequence[int] = KS) -> dict[str, object]:
    out: dict[str, object] = {}
    values = []
    for direction, r in rank.items():
        block = {f"r@{k}": int((r < k).sum()) / len(r) for k in ks}  # exact fraction, not a float32 mean
        values.extend(block.values())
        out[direction] = block
    out["mean"] = sum(values) / len(values)
    return out


def success_rate_summary(clean: dict[str, torch.Tensor], attacked: dict[str, torch.Tensor],
                         ks: Sequence[int] = KS) -> dict[str, dict[str, float | None]]:
    """SGA's ASR@K per direction (None when no query was correct at K on clean data)."""
    out: dict[str, dict[str, float | None]] = {}
    for direction in clean:
        block: dict[str, float | None] = {}
        for k in ks:
            hits = clean[direction] < k
            lost = hits & (attacked[direction] >= k)
            block[f"asr@{k}"] = float(lost.sum()) / float(hits.sum()) if hits.any() else None
            block[f"n_clean_hits@{k}"] = int(hits.sum())
        out[direction] = block
    return out
