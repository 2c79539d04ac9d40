"""Class names inside class prompts: which prompt now names another class, and the constraint forbidding it.

Why: the study's label-free BERT-Attack may replace "seven" in "This is a photo of a seven" by "four".
The class prompt of 7 then *is* the prompt of 4, which makes two classes indistinguishable — an attack on
the label set, not on the model's robustness to a paraphrase. Reports must show it
(``collides_with`` per prompt, ``class_name_collisions`` per run) and ``--protect-classnames`` forbids it:
a prompt's own class words are never changed and no substitution may introduce another class's name.

Names match as whole-word sequences, case-insensitively ("pickup truck" occurs in "a photo of a pickup
truck", "cat" does not occur in "catamaran").
"""

from __future__ import annotations

from typing import Mapping, Sequence

from .attacked_text import AttackedText
from .constraints import Constraint
from .words import split_words


def name_words(name: str) -> tuple[str, ...]:
    """A class name as the lower-case words it shows in a text (``pickup_truck`` reads "pickup truck")."""
    return tuple(w.text.lower() for w in split_words(name.replace("_", " ")))


def occurrences(name: Sequence[str], words: Sequence[str]) -> list[range]:
    """Word-index ranges where the word sequence ``name`` occurs in ``words`` (both lower case)."""
    n = len(name)
    if n == 0:
        return []
    return [range(i, i + n) for i in range(len(words) - n + 1) if tuple(words[i : i + n]) == tuple(name)]


def lower_words(text: str) -> list[str]:
    return [w.text.lower() for w in split_words(text)]


def prompt_classes(prompts: Sequence[Sequence[str]]) -> dict[str, int]:
    """Each class prompt -> its class (``prompts[c]`` are class c's, as :func:`~mmrobust.models.zeroshot.build_prompts`
    makes them): what :class:`ClassNameConstraint` and :class:`CollisionCheck` need to know a prompt's own class."""
    return {p: c for c, per_class in enumerate(prompts) for p in per_class}


class CollisionCheck:
    """:func:`collisions` with the class names split into words once (training checks every attacked caption)."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.names = [name_words(n) for n in self.class_names]

    def __call__(self, original: str, perturbed: str, own: int | None) -> list[str]:
        if perturbed == original:
            return []
        before, after = lower_words(original), lower_words(perturbed)
        return [name for c, (name, words) in enumerate(zip(self.class_names, self.names))
                if c != own and occurrences(words, after) and not occurrences(words, before)]


def collisions(original: str, perturbed: str, own: int | None, class_names: Sequence[str]) -> list[str]:
    """Names of other classes that ``perturbed`` contains and ``original`` did not (in class order)."""
    return CollisionCheck(class_names)(original, perturbed, own)


class ClassNameConstraint(Constraint):
    """``--protect-classnames``: keep each prompt's own class words; never introduce another class's name.

    ``own_class`` maps an original prompt to its class index (prompts not in it only get the second rule).
    """

    name = "protect-classnames"

    def __init__(self, class_names: Sequence[str], own_class: Mapping[str, int]) -> None:
        self.class_names = list(class_names)
        self.names = [name_words(n) for n in self.class_names]
        self.own_class = dict(own_class)
        #: word -> classes whose name contains it (only those can be introduced by substituting that word)
        self.by_word: dict[str, list[int]] = {}
        for c, words in enumerate(self.names):
            for word in set(words):
                self.by_word.setdefault(word, []).append(c)
        self._protected: dict[str, set[int]] = {}

    def protected(self, original: AttackedText) -> set[int]:
        """Word positions of the prompt's own class name in the original prompt."""
        key = original.text
        if key not in self._protected:
            own = self.own_class.get(key)
            words = [w.text.lower() for w in original.words]
            spans = occurrences(self.names[own], words) if own is not None else []
            self._protected[key] = {i for span in spans for i in span}
        return self._protected[key]

    def allows_word(self, text: AttackedText, index: int) -> bool:
        return index not in self.protected(text.original)

    def allows_candidate(self, text: AttackedText, index: int, candidate: str) -> bool:
        classes = self.by_word.get(candidate.lower())
        if not classes:
            return True
        own = self.own_class.get(text.original.text)
        after = [w.text.lower() for w in text.words]
        after[index] = candidate.lower()
        before = [w.text.lower() for w in text.original.words]
        return not any(
            c != own and occurrences(self.names[c], after) and not occurrences(self.names[c], before) for c in classes
        )

    def describe(self) -> dict:
        return {"name": self.name, "n_classes": len(self.class_names)}
