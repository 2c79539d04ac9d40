"""A tiny random masked LM (``transformers.BertForMaskedLM``) saved to a folder, for BERT-Attack tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

MLM_WORDS = (
    "this is a photo of the blurry picture image snapshot drawing painting sketch cat dog airplane truck frog "
    "horse ship bird car tree red green small big kitten puppy jet lorry toad pony boat parrot"
).split()


def save_tiny_mlm(folder: Path) -> Path:
    """A randomly initialised BertForMaskedLM with a small WordPiece vocabulary (``##s``/``##ing`` pieces, so
    plurals such as "cats" are multi-piece words), saved with ``save_pretrained``.

    The output bias is raised so its logits clear BERT-Attack's 0.3 threshold (a random head's do not).
    """
    import torchvision_shim  # noqa: F401  (transformers' BERT imports torchvision, whose wheel needs it here)

    transformers = pytest.importorskip("transformers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "##s", "##ing"] + MLM_WORDS
    tokenizer = transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.bias.add_(2.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
