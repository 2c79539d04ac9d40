"""The text under attack (immutable, remembers its original words) and the result the attacker returns.

Why track the original words: constraints ("at most N words changed", "never change a word twice") and
reports ("which word became which") both need to know which positions differ from the original, however
many substitutions were tried on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .words import Word, mark_words, replace_spans, split_words


class AttackedText:
    """A text plus its original version; substitutions return a new object (the old one stays valid).

    Word positions are stable under substitution: a replacement is one word (candidates that would split
    into several words, e.g. "ice cream", are rejected by :meth:`replace`).
    """

    def __init__(self, text: str, _original: "AttackedText | None" = None) -> None:
        self.text = text
        self.words: list[Word] = split_words(text)
        self.original: AttackedText = _original if _original is not None else self

    # ------------------------------------------------------------------ substitutions
    def replace(self, index: int, new_word: str) -> "AttackedText":
        """This text with word ``index`` replaced by ``new_word`` (a single word)."""
        if not 0 <= index < len(self.words):
            raise IndexError(f"word index {index} out of range for {self.text!r}")
        if len(split_words(new_word)) != 1 or split_words(new_word)[0].text != new_word:
            raise ValueError(f"replacement {new_word!r} is not a single word")
        return AttackedText(replace_spans(self.text, self.words, {index: new_word}), _original=self.original)

    def with_word_text(self, index: int, placeholder: str) -> str:
        """The string with word ``index`` replaced by any text (e.g. ``[UNK]`` for importance scoring)."""
        return replace_spans(self.text, self.words, {index: placeholder})

    # ------------------------------------------------------------------ what changed
    def changed_indices(self) -> list[int]:
        """Positions whose word differs from the original (case-sensitive)."""
        return [i for i, (w, o) in enumerate(zip(self.words, self.original.words)) if w.text != o.text]

    def changed_words(self) -> list[tuple[str, str]]:
        return [(self.original.words[i].text, self.words[i].text) for i in self.changed_indices()]

    def marked(self) -> str:
        """The perturbed text with substituted words shown as ``[[word]]``."""
        return mark_words(self.text, self.words, self.changed_indices())

    def __repr__(self) -> str:
        return f"AttackedText({self.text!r})"


@dataclass
class TextAttackResult:
    """What one text became.

    ``queries`` counts texts the goal encoded for this input (importance masks + candidates), the usual
    cost measure of black-box text attacks. ``score`` is the goal's value of the final text (higher = more
    adversarial; 0 for the unchanged original under the embedding goals).
    """

    original: str
    perturbed: str
    changed: list[tuple[str, str]]
    n_changed: int
    queries: int
    marked: str
    score: float = 0.0
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original,
            "perturbed": self.perturbed,
            "marked": self.marked,
            "changed": [list(pair) for pair in self.changed],
            "n_changed": self.n_changed,
            "queries": self.queries,
            "score": self.score,
            "truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TextAttackResult":
        return cls(
            original=str(data["original"]),
            perturbed=str(data["perturbed"]),
            changed=[(str(a), str(b)) for a, b in data.get("changed", [])],
            n_changed=int(data.get("n_changed", 0)),
            queries=int(data.get("queries", 0)),
            marked=str(data.get("marked", data["perturbed"])),
            score=float(data.get("score", 0.0)),
            truncated=bool(data.get("truncated", False)),
        )

    @classmethod
    def from_texts(cls, attacked: AttackedText, queries: int, score: float, truncated: bool = False) -> "TextAttackResult":
        changed = attacked.changed_words()
        return cls(
            original=attacked.original.text,
            perturbed=attacked.text,
            changed=changed,
            n_changed=len(changed),
            queries=queries,
            marked=attacked.marked(),
            score=score,
            truncated=truncated,
        )

