"""LEAF's training-time character attack (Abad Rocamora et al. 2025, "Robustness in Both Domains: CLIP Needs a
Robust Text Encoder"; ``LIONS-EPFL/LEAF``, ``utils_attacks.py``: ``attack_text_leaf``, ``generate_sentence``,
``generate_all_sentences``, ``generate_random_sentences_at_z``).

A sentence ``S`` of length L is seen as 2L + 1 slots: the even slots are the gaps (before, between and after
the characters), the odd ones the characters. An edit at slot ``z`` with character ``c`` inserts ``c`` (a gap),
replaces the character (a character slot), or deletes it when ``c`` is the deletion symbol or equals the
character already there. One edit changes the Levenshtein distance by at most 1; ``k`` rounds give a sentence
within distance ``k`` of the original. Each round, for every sentence of the batch:

1. positions: ``rho`` slots drawn at random (with replacement only when ``rho > 2L + 1``); each is scored by
   putting a space there (a space already there is deleted instead), and the slot whose candidate's embedding
   is farthest from the anchor (squared L2, unnormalised embeddings) is kept;
2. characters: ``rho`` characters drawn from the vocabulary (the deletion symbol, a-z, space, A-Z, 0-9,
   punctuation: 96 symbols; with replacement only when ``rho > 96``) are tried at that slot, and the farthest
   candidate becomes the sentence.

The anchor is the frozen model's clean embedding (LEAF's ``text_features_frozen``); the candidates are scored
by the model being trained. LEAF's training scripts use ``rho = 50`` (``--rho=50``) and ``k = 1``
(``--k_adv 1``).

Departures: LEAF's ``--constrain`` (a candidate must contain fewer dictionary words than the original, from
nltk's English word list) is not available offline and is not implemented; the random draws come from a
generator seeded per call (LEAF uses numpy's global state); candidates are encoded in chunks.
"""

from __future__ import annotations

import string
from typing import Sequence

import numpy as np
import torch

from ...models.base import VisionLanguageModel

#: LEAF's vocabulary ``V``: ``None`` = delete, then LEAF's characters in its order
LEAF_VOCABULARY: tuple[str | None, ...] = (None, *(string.ascii_lowercase + " " + string.ascii_uppercase
                                                   + string.digits + string.punctuation))
#: the defaults of LEAF's training scripts (``scripts/train_leaf_*.sh``)
LEAF_RHO = 50
LEAF_K = 1


def edit_at(sentence: str, slot: int, char: str | None) -> str:
    """``sentence`` with one edit at ``slot`` of its 2L + 1 slots (even = gap, odd = character), as LEAF's
    ``generate_sentence(S, z, u, V, k=1, alternative=-1)``: insert / replace with ``char``; delete when
    ``char`` is None or equals the character already at that slot (a gap edit with None changes nothing)."""
    if not 0 <= slot <= 2 * len(sentence):
        raise ValueError(f"slot {slot} outside 0..{2 * len(sentence)}")
    i = slot // 2
    if slot % 2 == 0:  # a gap
        return sentence if char is None else sentence[:i] + char + sentence[i:]
    if char is None or sentence[i] == char:
        return sentence[:i] + sentence[i + 1 :]
    return sentence[:i] + char + sentence[i + 1 :]


class LEAFAttack:
    """``attack(texts, anchors, rng) -> adversarial texts``: LEAF's two-stage random search, ``k`` rounds."""

    def __init__(self, model: VisionLanguageModel, rho: int = LEAF_RHO, k: int = LEAF_K,
                 vocabulary: Sequence[str | None] = LEAF_VOCABULARY, chunk_size: int = 512) -> None:
        if int(rho) < 1 or int(k) < 1:
            raise ValueError(f"LEAF needs rho >= 1 and k >= 1 (got rho={rho}, k={k})")
        self.model = model
        self.rho = int(rho)
        self.k = int(k)
        self.vocabulary = tuple(vocabulary)
        self.chunk_size = int(chunk_size)
        #: texts scored over the attack's life (the cost: candidates encoded)
        self.texts_scored = 0

    @torch.no_grad()
    def _farthest(self, candidates: list[list[str]], anchors: torch.Tensor) -> list[int]:
        flat = [c for row in candidates for c in row]
        features = torch.cat([self.model.encode_text(flat[i : i + self.chunk_size], normalize=False)
                              for i in range(0, len(flat), self.chunk_size)])
        self.texts_scored += len(flat)
        scores = []
        start = 0
        for row, anchor in zip(candidates, anchors):
            block = features[start : start + len(row)]
            start += len(row)
            scores.append(int(((block - anchor.to(block.dtype)) ** 2).sum(dim=-1).argmax()))
        return scores

    def attack(self, texts: Sequence[str], anchors: torch.Tensor, rng: np.random.Generator) -> list[str]:
        sentences = list(texts)
        if len(sentences) != anchors.shape[0]:
            raise ValueError(f"{len(sentences)} texts but {anchors.shape[0]} anchors")
        n_symbols = len(self.vocabulary)
        for _ in range(self.k):
            slots = [rng.choice(2 * len(s) + 1, size=self.rho, replace=self.rho > 2 * len(s) + 1) for s in sentences]
            by_slot = [[edit_at(s, int(z), " ") for z in row] for s, row in zip(sentences, slots)]
            best = [int(row[j]) for row, j in zip(slots, self._farthest(by_slot, anchors))]
            chars = [rng.choice(n_symbols, size=self.rho, replace=self.rho > n_symbols) for _ in sentences]
            by_char = [[edit_at(s, z, self.vocabulary[int(u)]) for u in row]
                       for s, z, row in zip(sentences, best, chars)]
            sentences = [row[j] for row, j in zip(by_char, self._farthest(by_char, anchors))]
        return sentences

    def describe(self) -> dict[str, object]:
        return {"attack": "leaf", "rho": self.rho, "k": self.k, "vocabulary_size": len(self.vocabulary),
                "constrain": False}
