"""TextAttacker: a goal, a transformation, constraints and a search wired together (TextAttack's shape).

The attacker owns the run-level rules every text attack must follow: no gradients, the model in eval
mode during the attack and its train/eval mode restored afterwards (training calls the attacker
mid-epoch), an error for an empty input, and a warning when texts are longer than the model's context.

Texts are searched in chunks of ``chunk_size`` (default :data:`DEFAULT_CHUNK`) by the batched search —
one masked-LM forward and a few ``encode_text`` calls per chunk — or one at a time with ``chunk_size=1``
(the per-prompt loop; also used whatever the chunk size for goals that are not ``independent``). Both
give the same texts. Every call records its :class:`~.cost.AttackCost` (``last_cost``; ``total_cost``
sums the attacker's life, e.g. a training run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ...errors import ConfigError
from ...models.base import VisionLanguageModel
from .attacked_text import AttackedText, TextAttackResult
from .constraints import Constraint
from .cost import AttackCost
from .goals import Goal
from .search import GreedyWordImportanceSearch, SearchOutcome
from .transformations import Transformation

#: texts per chunk of the batched search: 100 class prompts take one masked-LM forward and ~7 encode calls,
#: and the padded masked-LM logits of a chunk (chunk x 30 tokens x 30522 words, fp32) stay under 0.5 GB
DEFAULT_CHUNK = 128


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
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        if int(chunk_size) < 1:
            raise ConfigError(f"text attack: chunk size must be >= 1 text (got {chunk_size}); 1 = one prompt at a time")
        self.model = model
        self.goal = goal
        self.transformation = transformation
        self.constraints = list(constraints)
        self.search = search
        self.recipe = recipe
        self.options = dict(options or {})
        self.chunk_size = int(chunk_size)
        self.last_cost = AttackCost()
        self.total_cost = AttackCost()

    @property
    def batched(self) -> bool:
        """Whether :meth:`attack` uses the batched search (chunk size > 1 and an independent goal)."""
        return self.chunk_size > 1 and self.goal.independent

    def _counters(self) -> tuple[int, int, int]:
        similarity = sum(getattr(c, "encoder_calls", 0) for c in self.constraints)
        return self.goal.encoder_calls, self.transformation.forwards, similarity

    def _search(self, texts: list[str], progress: bool) -> list[SearchOutcome]:
        """Search every text, in chunks (batched) or one by one."""
        bar = tqdm(total=len(texts), desc=f"{self.recipe} texts", disable=not progress, leave=False)
        outcomes: list[SearchOutcome] = []
        step = self.chunk_size if self.batched else 1
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            if self.batched:
                outcomes += self.search.run_many([AttackedText(t) for t in chunk], list(range(start, start + len(chunk))),
                                                 self.goal, self.transformation, self.constraints)
            else:
                outcomes.append(self.search.run(AttackedText(chunk[0]), start, self.goal, self.transformation,
                                                self.constraints))
            bar.update(len(chunk))
        bar.close()
        return outcomes

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
        started, before = time.perf_counter(), self._counters()
        with eval_mode(self.model), torch.no_grad():
            self.goal.start(distinct, image_features)
            outcomes = self._search(distinct, progress)
        after = self._counters()
        found = [TextAttackResult.from_texts(o.text, o.queries, o.score) for o in outcomes]
        self.last_cost = AttackCost(
            text_encoder_calls=after[0] - before[0], mlm_forwards=after[1] - before[1],
            similarity_encoder_calls=after[2] - before[2], texts_attacked=len(distinct),
            texts_scored=sum(o.queries for o in outcomes), seconds=time.perf_counter() - started,
        )
        self.total_cost = self.total_cost + self.last_cost
        results: list[TextAttackResult] = [] if self.goal.text_only else found
        if self.goal.text_only:
            done = dict(zip(distinct, found))
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
            "chunk_size": self.chunk_size,
            "batched": self.batched,
            "constraints": [c.describe() for c in self.constraints],
        }
