"""Search: greedy word substitution in order of word importance (BERT-Attack's search).

1. Importance: every modifiable word is replaced by ``[UNK]`` and the goal scores the masked texts (one
   encoding of all masks); words are visited from most to least important.
2. Substitution: at each word the goal scores all acceptable candidates at once; the best one is kept
   only if it beats the current text, and the search stops after ``max_words`` substitutions.

Queries (texts the goal encoded) are counted for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .attacked_text import AttackedText
from .constraints import Constraint
from .goals import Goal
from .transformations import Transformation
from .words import match_case


@dataclass
class SearchOutcome:
    text: AttackedText
    queries: int
    score: float


class GreedyWordImportanceSearch:
    """Visit words by decreasing importance, keep the best candidate if it improves the goal."""

    name = "greedy-word-importance"

    def __init__(self, max_words: int = 1, mask_token: str = "[UNK]") -> None:
        self.max_words = int(max_words)
        self.mask_token = mask_token

    def word_order(self, text: AttackedText, index: int, goal: Goal, allowed: Sequence[int]) -> tuple[list[int], int]:
        """``allowed`` sorted by decreasing importance (ties keep text order) and the queries spent."""
        if len(allowed) <= 1:
            return list(allowed), 0
        masked = [text.with_word_text(i, self.mask_token) for i in allowed]
        importance = goal.score(index, masked)
        order = torch.argsort(-importance, stable=True).tolist()
        return [allowed[j] for j in order], len(masked)

    def run(
        self,
        text: AttackedText,
        index: int,
        goal: Goal,
        transformation: Transformation,
        constraints: Sequence[Constraint],
    ) -> SearchOutcome:
        allowed = [i for i in range(len(text.words)) if all(c.allows_word(text, i) for c in constraints)]
        score = goal.initial_score(index)
        if not allowed:
            goal.accept(index, text.text)
            return SearchOutcome(text, 0, score)
        order, queries = self.word_order(text, index, goal, allowed)
        candidates = transformation.word_candidates(text, order)
        current, changed = text, 0
        for position in order:
            if changed >= self.max_words:
                break
            original_word = current.words[position].text
            options = [
                match_case(original_word, c)
                for c in dict.fromkeys(candidates.get(position, []))
                if all(con.allows_candidate(current, position, c) for con in constraints)
            ]
            options = list(dict.fromkeys(options))
            if not options:
                continue
            texts = [current.replace(position, option) for option in options]
            scores = goal.score(index, [t.text for t in texts])
            queries += len(texts)
            best = int(torch.argmax(scores))
            if float(scores[best]) > score:
                current, score, changed = texts[best], float(scores[best]), changed + 1
        goal.accept(index, current.text)
        return SearchOutcome(current, queries, score)

    def describe(self) -> dict:
        return {"search": self.name, "max_words": self.max_words, "mask_token": self.mask_token}
