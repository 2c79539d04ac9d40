"""Which parameters a fine-tune trains: the study's "number of fine-tuned parameters" axis.

``full`` = every parameter (both towers, projections, temperature); ``image`` / ``text`` = one tower with
its projection; ``last-k`` = the last K parameter tensors of the image tower (TeCoA's ``--last_num_ft``);
``prompt`` = a learnable padding prompt with the whole backbone frozen. Everything not trained gets
``requires_grad=False``, so frozen towers build no autograd graph (cheaper) and can never drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError
from ..models.base import VisionLanguageModel
from .visual_prompt import PromptedModel, can_fold_prompt, default_prompt_size


@dataclass
class TrainableSelection:
    """The model to train (wrapped for ``prompt``) and its trainable parameters, named."""

    model: VisionLanguageModel
    mode: str
    named_parameters: list[tuple[str, nn.Parameter]]

    @property
    def parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_parameters]

    @property
    def n_trainable(self) -> int:
        return sum(p.numel() for _, p in self.named_parameters)

    @property
    def n_total(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def trains_text(self) -> bool:
        """Whether text embeddings change during training (then class prompts are re-encoded with grad)."""
        text_ids = {id(p) for p in self.model.parameter_groups()["text"]}
        return any(id(p) in text_ids for p in self.parameters)

    def describe(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "n_trainable_parameters": self.n_trainable,
            "n_total_parameters": self.n_total,
            "trainable_fraction": self.n_trainable / max(self.n_total, 1),
            "n_trainable_tensors": len(self.named_parameters),
        }


def select_trainable(
    model: VisionLanguageModel, mode: str, last_k: int = 4, prompt_size: int | None = None
) -> TrainableSelection:
    """Freeze everything, then unfreeze (or add, for ``prompt``) the parameters ``mode`` names."""
    if mode == "prompt":
        if not can_fold_prompt(model):
            raise ConfigError(
                f"--train prompt needs a model whose image tower is an mmrobust ViT (the trained prompt is "
                f"exported by folding it into the position embeddings); {model.spec!r} has another tower"
            )
        model = PromptedModel(model, prompt_size or default_prompt_size(model.image_size))
    for param in model.parameters():
        param.requires_grad_(False)
    groups = model.named_parameter_groups()
    if mode == "full":
        chosen = groups["all"]
    elif mode == "image":
        chosen = groups["image"]
    elif mode == "text":
        chosen = groups["text"]
    elif mode == "last-k":
        image = groups["image"]
        if last_k > len(image):
            raise ConfigError(f"--last-k {last_k} exceeds the image tower's {len(image)} parameter tensors")
        chosen = image[-last_k:]
    elif mode == "prompt":
        chosen = [(name, p) for name, p in model.named_parameters() if name.startswith("prompt.")]
    else:
        raise ConfigError(f"unknown --train {mode!r}")
    if not chosen:
        raise ConfigError(f"--train {mode} selects no parameters for model {model.spec!r}")
    for _, param in chosen:
        param.requires_grad_(True)
    return TrainableSelection(model, mode, list(chosen))
