"""TextAttacker: a goal, a transformation, constraints and a search wired together (TextAttack's shape).

The attacker owns the run-level rules every text attack must follow: no gradients, the model in eval
mode during the attack and its train/eval mode restored afterwards (training calls the attacker
mid-epoch), an error for an empty input, and a warning when texts are longer than the model's context.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ...errors import ConfigError
from ...models.base import VisionLanguageModel
from .attacked_text import AttackedText, TextAttackResult
from .constraints import Constraint
from .goals import Goal
from .search import GreedyWordImportanceSearch
from .transformations import Transformation


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode inside the block; each one's own mode restored afterwards."""
    saved = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for m, training in saved:
            m.training = training


def truncated_texts(model: VisionLanguageModel, texts: Sequence[str]) -> list[bool]:
    """Which texts the model's tokenizer cuts to its context length (only tokenised one by one if any is)."""
    tokens = model.tokenizer(list(texts))
    if not getattr(tokens, "n_truncated", 0):
        return [False] * len(texts)
    return [bool(getattr(model.tokenizer([t]), "n_truncated", 0)) for t in texts]


class TextAttacker:
    """``attacker.attack(texts) -> list[TextAttackResult]``, one result per text, in order."""

    def __init__(
        self,
        model: VisionLanguageModel,
        goal: Goal,
        transformation: Transformation,
        constraints: Sequence[Constraint],
        search: GreedyWordImportanceSearch,
        recipe: str = "custom",
        options: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.goal = goal
        self.transformation = transformation
        self.constraints = list(constraints)
        self.search = search
        self.recipe = recipe
        self.options = dict(options or {})

    def attack(
        self,
        texts: Sequence[str],
        image_features: torch.Tensor | None = None,
        progress: bool = False,
    ) -> list[TextAttackResult]:
        """Attack every text (independently, except for goals that update shared state on accept).

        ``image_features`` (one per text) is only needed by the pair-similarity goal.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ConfigError("text attack: the list of texts to attack is empty")
        truncated = truncated_texts(self.model, texts)
        if any(truncated):
            context = getattr(self.model.tokenizer, "context_length", "?")
            warnings.warn(
                f"text attack: {sum(truncated)} of {len(texts)} text(s) are longer than the model's context "
                f"({context} tokens) and are truncated when encoded; words past the cut cannot change the embedding",
                stacklevel=2,
            )
        # Training batches repeat the same caption many times; with a text-only goal (and per-text seeded
        # candidates) a duplicate's attack is identical, so each distinct text is attacked once.
        distinct = list(dict.fromkeys(texts)) if self.goal.text_only else texts
        done: dict[str, TextAttackResult] = {}
        results: list[TextAttackResult] = []
        with eval_mode(self.model), torch.no_grad():
            self.goal.start(distinct, image_features)
            for index, text in enumerate(tqdm(distinct, desc=f"{self.recipe} texts", disable=not progress, leave=False)):
                outcome = self.search.run(AttackedText(text), index, self.goal, self.transformation, self.constraints)
                result = TextAttackResult.from_texts(outcome.text, outcome.queries, outcome.score)
                if self.goal.text_only:
                    done[text] = result
                else:
                    results.append(result)
        if self.goal.text_only:
            # duplicates cost nothing: only the first occurrence carries the queries
            seen: set[str] = set()
            for text in texts:
                results.append(dataclasses.replace(done[text], queries=0 if text in seen else done[text].queries))
                seen.add(text)
        for result, cut in zip(results, truncated):
            result.truncated = cut
        return results

    def describe(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            **self.options,
            **self.goal.describe(),
            **self.transformation.describe(),
            **self.search.describe(),
            "constraints": [c.describe() for c in self.constraints],
        }
