"""Constraints: which words may change and which candidates are acceptable.

Each constraint answers two questions, both cheap and model-free: may word ``index`` be modified at all
(:meth:`Constraint.allows_word`), and is ``candidate`` an acceptable replacement for it
(:meth:`Constraint.allows_candidate`). "At most N words changed" is enforced by the search, which owns
the count. Constraints that need a model to judge a whole candidate text (sentence similarity) are
:class:`TextConstraint` objects: the search hands them every candidate text of a step at once
(:func:`filter_texts`), so they batch their model calls like the goal does.
"""

from __future__ import annotations

from typing import Sequence

from .attacked_text import AttackedText
from .words import STOP_WORDS, split_words


class Constraint:
    """Default: allows everything. Subclasses override one or both checks."""

    name = "constraint"

    def allows_word(self, text: AttackedText, index: int) -> bool:
        return True

    def allows_candidate(self, text: AttackedText, index: int, candidate: str) -> bool:
        return True

    def describe(self) -> dict:
        return {"name": self.name}


class TextConstraint(Constraint):
    """A constraint on whole candidate texts, judged in batches (word-level checks allow everything)."""

    def allows_texts(self, groups: Sequence[Sequence[AttackedText]]) -> list[list[bool]]:
        """For each group of candidate texts (one group per attacked text), which ones are acceptable."""
        raise NotImplementedError


def filter_texts(constraints: Sequence[Constraint], groups: Sequence[Sequence[AttackedText]]) -> list[list[AttackedText]]:
    """``groups`` with the candidates every :class:`TextConstraint` in ``constraints`` rejects removed."""
    kept = [list(group) for group in groups]
    for constraint in constraints:
        if isinstance(constraint, TextConstraint) and any(kept):
            masks = constraint.allows_texts(kept)
            kept = [[t for t, ok in zip(group, mask) if ok] for group, mask in zip(kept, masks)]
    return kept


class StopWordConstraint(Constraint):
    """Stop words are never changed and never inserted (BERT-Attack's ``filter_words`` rule)."""

    name = "stop-words"

    def __init__(self, stop_words: frozenset[str] = STOP_WORDS) -> None:
        self.stop_words = frozenset(w.lower() for w in stop_words)

    def allows_word(self, text: AttackedText, index: int) -> bool:
        return text.words[index].text.lower() not in self.stop_words

    def allows_candidate(self, text: AttackedText, index: int, candidate: str) -> bool:
        return candidate.lower() not in self.stop_words

    def describe(self) -> dict:
        return {"name": self.name, "n_stop_words": len(self.stop_words)}


class SubwordConstraint(Constraint):
    """No word pieces: masked-LM tokens starting with ``##`` are fragments, not words."""

    name = "no-subwords"

    def allows_candidate(self, text: AttackedText, index: int, candidate: str) -> bool:
        return "##" not in candidate


class SingleWordConstraint(Constraint):
    """A candidate must be exactly one word (no spaces, punctuation-only strings or ``[UNK]``-like tokens).

    This keeps word positions stable, which "at most N words changed" relies on.
    """

    name = "single-word"

    def allows_candidate(self, text: AttackedText, index: int, candidate: str) -> bool:
        words = split_words(candidate)
        return len(words) == 1 and words[0].text == candidate


class NotOriginalConstraint(Constraint):
    """A candidate must differ from the word it replaces (ignoring case)."""

    name = "not-original"

    def allows_candidate(self, text: AttackedText, index: int, candidate: str) -> bool:
        return candidate.lower() != text.original.words[index].text.lower()


class MinWordLengthConstraint(Constraint):
    """Only words of at least ``min_length`` characters are modified (typos of "ox" are not meaningful)."""

    name = "min-word-length"

    def __init__(self, min_length: int = 3) -> None:
        self.min_length = int(min_length)

    def allows_word(self, text: AttackedText, index: int) -> bool:
        return len(text.words[index].text) >= self.min_length

    def describe(self) -> dict:
        return {"name": self.name, "min_length": self.min_length}


def default_word_constraints() -> list[Constraint]:
    """What every built-in recipe uses: the study's stop-word and sub-word filters plus well-formedness."""
    return [StopWordConstraint(), SubwordConstraint(), SingleWordConstraint(), NotOriginalConstraint()]
