"""Words of a text as text attacks see them: spans in the original string, stop words, marking.

Why spans instead of ``text.split()``: a substitution must leave everything that is not the word
(punctuation, spacing, the ``{}``-free rest of a prompt) byte-for-byte unchanged, so "a photo of a cat."
can become "a photo of a dog." and not "a photo of a dog" or "a photo of a dog .".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: a word: letters/digits with inner apostrophes or hyphens ("don't", "t-shirt"); everything else is a gap
WORD_PATTERN = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*", re.UNICODE)

#: Function words never substituted and never proposed as substitutes. The study's BERT-Attack skips a
#: long stop-word list so that, on "This is a photo of a X", only "photo" or the class word can change;
#: this list plays the same role (written for mmrobust, not copied).
STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above across after afterwards again against ain all almost alone along already also although am
    among amongst an and another any anyhow anyone anything anyway anywhere are aren aren't around as at
    be became because become becomes becoming been before beforehand behind being below beside besides between
    beyond both but by can cannot could couldn couldn't d didn didn't do does doesn doesn't doing don don't down
    due during each either else elsewhere empty enough even ever everyone everything everywhere except few
    first for former formerly from further had hadn hadn't has hasn hasn't have haven haven't having he hence
    her here hereafter hereby herein hereupon hers herself him himself his how however hundred i if in indeed
    into is isn isn't it it's its itself just latter latterly least ll m ma me meanwhile might mightn mightn't
    mine more moreover most mostly must mustn mustn't my myself namely needn needn't neither never nevertheless
    next no nobody none noone nor not nothing now nowhere o of off on once one only onto or other others
    otherwise our ours ourselves out over per please s same shan shan't she she's should should've shouldn
    shouldn't so some somehow something sometime somewhere such t than that that'll the their theirs them
    themselves then thence there thereafter thereby therefore therein thereupon these they this those through
    throughout thru thus to too toward towards under unless until up upon used ve very via was wasn wasn't we
    were weren weren't what whatever when whence whenever where whereafter whereas whereby wherein whereupon
    wherever whether which while whither who whoever whole whom whose why with within without won won't would
    wouldn wouldn't y yet you you'd you'll you're you've your yours yourself yourselves
    """.split()
)


@dataclass(frozen=True)
class Word:
    """One word of a text: its characters and where it sits (``text[start:end] == word``)."""

    text: str
    start: int
    end: int


def split_words(text: str) -> list[Word]:
    """The words of ``text`` with their character spans, in order."""
    return [Word(m.group(0), m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]


def replace_spans(text: str, words: list[Word], replacements: dict[int, str]) -> str:
    """``text`` with ``words[i]`` replaced by ``replacements[i]``; gaps between words are kept as they are."""
    pieces: list[str] = []
    cursor = 0
    for index, word in enumerate(words):
        if index in replacements:
            pieces.append(text[cursor : word.start])
            pieces.append(replacements[index])
            cursor = word.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def mark_words(text: str, words: list[Word], indices: set[int] | list[int]) -> str:
    """``text`` with the words at ``indices`` shown as ``[[word]]`` (how reports show substitutions)."""
    chosen = set(indices)
    return replace_spans(text, words, {i: f"[[{words[i].text}]]" for i in chosen if 0 <= i < len(words)})


def match_case(original: str, candidate: str) -> str:
    """``candidate`` written with the capitalisation pattern of ``original`` ("This" -> "That", "CAT" -> "DOG").

    Vocabularies and masked LMs are lower-case; without this a substitution would also change case, which
    is a second, unintended edit.
    """
    if original.isupper() and len(original) > 1:
        return candidate.upper()
    if original[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate
