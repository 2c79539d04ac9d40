"""Search: greedy word substitution in order of word importance (BERT-Attack's search).

1. Importance: every modifiable word is replaced by ``[UNK]`` and the goal scores the masked texts (one
   encoding of all masks); words are visited from most to least important.
2. Substitution: at each word the goal scores all acceptable candidates at once; the best one is kept
   only if it beats the current text, and the search stops after ``max_words`` substitutions.

Two drivers run exactly this search. :meth:`GreedyWordImportanceSearch.run` handles one text (the
study's loop; one masked-LM forward and two or three ``encode_text`` calls per text).
:meth:`GreedyWordImportanceSearch.run_many` advances a chunk of texts in lock-step — importance for all
texts in one scoring request, one masked-LM forward for the chunk, then step s scores the s-th word of
every text still under budget together — so a chunk costs a handful of model calls instead of a few per
text. Each text's decisions only depend on its own scores, so both drivers give the same texts for goals
whose scores are ``independent`` of the other texts (the attacker falls back to :meth:`run` otherwise).

Queries (texts the goal encoded) are counted for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .attacked_text import AttackedText
from .constraints import Constraint, filter_texts
from .goals import Goal
from .transformations import Transformation
from .words import match_case


@dataclass
class SearchOutcome:
    text: AttackedText
    queries: int
    score: float


@dataclass
class _State:
    """One text's progress in the batched search."""

    index: int
    current: AttackedText
    score: float
    order: list[int]
    queries: int = 0
    changed: int = 0
    candidates: dict[int, list[str]] | None = None


class GreedyWordImportanceSearch:
    """Visit words by decreasing importance, keep the best candidate if it improves the goal."""

    name = "greedy-word-importance"

    def __init__(self, max_words: int = 1, mask_token: str = "[UNK]") -> None:
        self.max_words = int(max_words)
        self.mask_token = mask_token

    # ------------------------------------------------------------------ shared steps
    def allowed_words(self, text: AttackedText, constraints: Sequence[Constraint]) -> list[int]:
        return [i for i in range(len(text.words)) if all(c.allows_word(text, i) for c in constraints)]

    def masked_texts(self, text: AttackedText, allowed: Sequence[int]) -> list[str]:
        """The importance probes: each allowed word replaced by the mask token (none if only one word)."""
        return [text.with_word_text(i, self.mask_token) for i in allowed] if len(allowed) > 1 else []

    @staticmethod
    def importance_order(allowed: Sequence[int], importance: torch.Tensor | None) -> list[int]:
        """``allowed`` sorted by decreasing importance (ties keep text order)."""
        if importance is None or len(allowed) <= 1:
            return list(allowed)
        return [allowed[j] for j in torch.argsort(-importance, stable=True).tolist()]

    @staticmethod
    def substitutions(
        current: AttackedText, position: int, candidates: Sequence[str], constraints: Sequence[Constraint]
    ) -> list[AttackedText]:
        """The texts made by each acceptable candidate at ``position`` (case matched, duplicates dropped)."""
        original_word = current.words[position].text
        options = [
            match_case(original_word, c)
            for c in dict.fromkeys(candidates)
            if all(con.allows_candidate(current, position, c) for con in constraints)
        ]
        return [current.replace(position, option) for option in dict.fromkeys(options)]

    # ------------------------------------------------------------------ one text
    def word_order(self, text: AttackedText, index: int, goal: Goal, allowed: Sequence[int]) -> tuple[list[int], int]:
        """``allowed`` sorted by decreasing importance (ties keep text order) and the queries spent."""
        masked = self.masked_texts(text, allowed)
        if not masked:
            return list(allowed), 0
        return self.importance_order(allowed, goal.score(index, masked)), len(masked)

    def run(
        self,
        text: AttackedText,
        index: int,
        goal: Goal,
        transformation: Transformation,
        constraints: Sequence[Constraint],
    ) -> SearchOutcome:
        allowed = self.allowed_words(text, constraints)
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
            texts = self.substitutions(current, position, candidates.get(position, []), constraints)
            texts = filter_texts(constraints, [texts])[0]
            if not texts:
                continue
            scores = goal.score(index, [t.text for t in texts])
            queries += len(texts)
            best = int(torch.argmax(scores))
            if float(scores[best]) > score:
                current, score, changed = texts[best], float(scores[best]), changed + 1
        goal.accept(index, current.text)
        return SearchOutcome(current, queries, score)

    # ------------------------------------------------------------------ many texts in lock-step
    def run_many(
        self,
        texts: Sequence[AttackedText],
        indices: Sequence[int],
        goal: Goal,
        transformation: Transformation,
        constraints: Sequence[Constraint],
    ) -> list[SearchOutcome]:
        """:meth:`run` for every text at once (requires an ``independent`` goal); same outcomes, in order."""
        allowed = [self.allowed_words(text, constraints) for text in texts]
        states = [_State(i, text, goal.initial_score(i), list(a)) for i, text, a in zip(indices, texts, allowed)]
        probing = [s for s, a in zip(states, allowed) if len(a) > 1]
        probes = [self.masked_texts(s.current, s.order) for s in probing]
        for state, masks, importance in zip(probing, probes, goal.score_many([(s.index, m) for s, m in zip(probing, probes)])):
            state.order, state.queries = self.importance_order(state.order, importance), len(masks)
        searched = [s for s in states if s.order]
        for state, found in zip(searched, transformation.word_candidates_many([(s.current, s.order) for s in searched])):
            state.candidates = found
        for step in range(max((len(s.order) for s in searched), default=0)):
            active = [s for s in searched if step < len(s.order) and s.changed < self.max_words]
            built = [self.substitutions(s.current, s.order[step], s.candidates.get(s.order[step], []), constraints)
                     for s in active]
            built = filter_texts(constraints, built)
            requests = [(s, options) for s, options in zip(active, built) if options]
            if not requests:
                continue
            scored = goal.score_many([(s.index, [t.text for t in options]) for s, options in requests])
            for (state, options), scores in zip(requests, scored):
                state.queries += len(options)
                best = int(torch.argmax(scores))
                if float(scores[best]) > state.score:
                    state.current, state.score, state.changed = options[best], float(scores[best]), state.changed + 1
        for state in states:
            goal.accept(state.index, state.current.text)
        return [SearchOutcome(s.current, s.queries, s.score) for s in states]

    def describe(self) -> dict:
        return {"search": self.name, "max_words": self.max_words, "mask_token": self.mask_token}
