"""``bert-attack-released``: BERT-Attack exactly as the study's released code runs it (ElleZWQ/MMCoA).

Why a second recipe: the study's numbers come from its released ``attack/bert_attack.py``, which departs
from BERT-Attack as written (Li et al., 2020, "BERT-ATTACK: Adversarial Attack Against BERT Using BERT")
and from mmrobust's ``bert-attack`` recipe, which follows the paper. Measured on a random masked LM, the
two agree on about 1 class prompt in 30 (docs/released-vs-paper-text.md). This recipe reproduces the
released behaviour prompt for prompt (tests/test_released_bert_attack.py checks it against prompts the
released code itself produced, tests/fixtures/released/bert_attack_prompts.json); ``bert-attack`` stays
the corrected algorithm. The departures, each reproduced here:

1. **Candidate positions one token to the left.** The masked LM reads ``[CLS] w1 w2 ...`` but each word's
   piece positions are counted from 0 without the ``[CLS]``, so word i's candidates are the MLM's top-k
   at the position of the *previous* token (the first word's come from ``[CLS]``). With a pretrained BERT
   the candidates for "cat" in "This is a photo of a cat" are predictions for the "a" before it.
2. **No [SEP]** (the ALBEF tokenizer adds only ``[CLS]``); sequences are cut to ``max_length`` = 30
   tokens and padded to 30 with ``[PAD]`` (attention-masked).
3. **Multi-piece words** take the first 24 combinations of the top-4 tokens of each piece (at most 12
   pieces), ranked by perplexity under **extra MLM forward passes** on the bare combinations (no
   ``[CLS]``, no mask) — counted in ``AttackCost.mlm_forwards``. mmrobust's ``bert-attack`` ranks them
   from the one forward it already ran.
4. **Words are ``text.split(' ')``** (punctuation stays attached) and every word, stop words included,
   is probed with ``[UNK]`` for importance; a candidate may decode to several words ("ice cream").
5. **The BERT decode round trip**: the attacked text tower never sees the prompt itself but
   ``decode(tokenize(prompt))`` with ``[CLS]``/``[SEP]``/``[PAD]`` stripped (lower-cased, punctuation
   split off, text past 29 pieces dropped), as the released CLIP wrapper's ``inference_text`` does.
6. **The released stop-word list** (:data:`RELEASED_FILTER_WORDS`, with punctuation) filters target
   words and candidates; single-piece candidates stop at the first logit below 0.3; candidates equal to
   the word or containing ``##`` are dropped; no case matching, no de-duplication.
7. **Goal**: float32 KL(softmax(e_orig) || softmax(e_cand)) over the flattened L2-normalised text
   embedding. The current text is candidate 0, and the arg-max over all candidates is taken, so a word
   counts as changed only when some candidate scores above the unchanged text.

The search is batched like the other recipes (a chunk of texts advances in lock-step: one MLM forward
for the chunk, one encoding of all importance probes, one per step for all candidates, one perplexity
forward per step and piece count); every text's choices depend only on its own scores, so chunking
changes the cost and never the prompts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...models.base import VisionLanguageModel
from .attacked_text import AttackedText
from .constraints import Constraint
from .goals import ENCODE_CHUNK, Goal, encode_texts
from .mlm import MaskedLanguageModel
from .search import SearchOutcome
from .transformations import Transformation

#: The released code's filter list (the TextFooler/BERT-Attack stop words plus punctuation), as data: the
#: recipe must skip and reject exactly these strings to reproduce the released prompts.
RELEASED_FILTER_WORDS: frozenset[str] = frozenset(
    """
    a about above across after afterwards again against ain all almost alone along already also although am
    among amongst an and another any anyhow anyone anything anyway anywhere are aren aren't around as at back
    been before beforehand behind being below beside besides between beyond both but by can cannot could
    couldn couldn't d didn didn't doesn doesn't don don't down due during either else elsewhere empty enough
    even ever everyone everything everywhere except first for former formerly from hadn hadn't hasn hasn't
    haven haven't he hence her here hereafter hereby herein hereupon hers herself him himself his how however
    hundred i if in indeed into is isn isn't it it's its itself just latter latterly least ll may me meanwhile
    mightn mightn't mine more moreover most mostly must mustn mustn't my myself namely needn needn't neither
    never nevertheless next no nobody none noone nor not nothing now nowhere o of off on once one only onto or
    other others otherwise our ours ourselves out over per please s same shan shan't she she's should've
    shouldn shouldn't somehow something sometime somewhere such t than that that'll the their theirs them
    themselves then thence there thereafter thereby therefore therein thereupon these they this those through
    throughout thru thus to too toward towards under unless until up upon used ve was wasn wasn't we were
    weren weren't what whatever when whence whenever where whereafter whereas whereby wherein whereupon
    wherever whether which while whither who whoever whole whom whose why with within without won won't would
    wouldn wouldn't y yet you you'd you'll you're you've your yours yourself yourselves some b
    . - / ? " , & ! @ % ^ * ( ) + = < > | : ; ～ ·
    """.split()
) | {"a the"}

#: the released code's settings (``BertAttack.attack`` defaults and ``get_bpe_substitues``' limits)
MAX_LENGTH = 30
PIECE_TOP = 4
MAX_PIECES = 12
MAX_COMBINATIONS = 24
#: tokenizer clean-up of decoded text (transformers' ``clean_up_tokenization``, on by default then)
CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
           (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def join_pieces(tokens: Sequence[str]) -> str:
    """WordPiece tokens to a string the way the released (ALBEF) tokenizer does: spaces, ``##`` glued."""
    return " ".join(tokens).replace(" ##", "").strip()


class ReleasedBertInput:
    """The released tokenisation (``[CLS]`` + pieces, no ``[SEP]``, padded to 30) and its decode round trip."""

    def __init__(self, tokenizer: Any, max_length: int = MAX_LENGTH, cleanup: bool = True) -> None:
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.cleanup = bool(cleanup)
        cls_id, pad_id = tokenizer.cls_token_id, tokenizer.pad_token_id
        if cls_id is None or pad_id is None:
            raise ConfigError("bert-attack-released needs a BERT-style masked LM tokenizer (with [CLS] and [PAD])")
        self.cls_id, self.pad_id = int(cls_id), int(pad_id)
        self.unk = tokenizer.unk_token or "[UNK]"
        self.stripped = [t for t in (tokenizer.pad_token, tokenizer.cls_token, tokenizer.sep_token) if t]

    def pieces(self, text: str) -> list[str]:
        return list(self.tokenizer.tokenize(text))

    def ids(self, text: str) -> tuple[list[int], int]:
        """``[CLS]`` + the first ``max_length - 1`` piece ids, padded to ``max_length``; and the real length."""
        ids = [self.cls_id] + list(self.tokenizer.convert_tokens_to_ids(self.pieces(text)))[: self.max_length - 1]
        return ids + [self.pad_id] * (self.max_length - len(ids)), len(ids)

    def token(self, token_id: int) -> str:
        token = self.tokenizer.convert_ids_to_tokens(int(token_id))
        return self.unk if token is None else token

    def round_trip(self, text: str) -> str:
        """What the released CLIP wrapper hands its text encoder: decode(ids) without [PAD]/[CLS]/[SEP]."""
        ids, _ = self.ids(text)
        decoded = join_pieces([self.token(i) for i in ids])
        if self.cleanup:
            for old, new in CLEANUP:
                decoded = decoded.replace(old, new)
        for special in self.stripped:
            decoded = decoded.replace(special, "")
        return decoded.strip()

    def word_keys(self, words: Sequence[str]) -> list[tuple[int, int]]:
        """The released ``keys``: each word's piece span counted from 0, i.e. ignoring the leading [CLS]."""
        keys, index = [], 0
        for word in words:
            n = len(self.pieces(word))
            keys.append((index, index + n))
            index += n
        return keys


class ReleasedKLGoal(Goal):
    """float32 KL(softmax(e_orig) || softmax(e_cand)) summed over the normalised embedding (the released goal).

    Every text is encoded after the BERT decode round trip, as the released wrapper does.
    """

    name = "embedding-kl-released"
    text_only = True

    def __init__(self, model: VisionLanguageModel, bert_input: ReleasedBertInput) -> None:
        super().__init__(model)
        self.bert_input = bert_input

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        self.encoder_calls += -(-len(texts) // ENCODE_CHUNK)
        return encode_texts(self.model, [self.bert_input.round_trip(t) for t in texts]).flatten(1)

    def start(self, texts: Sequence[str], image_features: torch.Tensor | None = None) -> None:
        self.original = self.encode(texts)

    def score_embeddings(self, index: int, candidates: Sequence[str], embeddings: torch.Tensor) -> torch.Tensor:
        target = self.original[index].float().softmax(dim=-1).repeat(len(embeddings), 1)
        return F.kl_div(embeddings.float().log_softmax(dim=-1), target, reduction="none").sum(dim=-1).cpu()


class ReleasedMLMCandidates(Transformation):
    """The released candidate rules on one padded MLM forward per chunk, plus perplexity forwards."""

    name = "masked-lm-released"

    def __init__(self, mlm: MaskedLanguageModel, bert_input: ReleasedBertInput, k: int = 10,
                 threshold: float = 0.3) -> None:
        self.mlm = mlm
        self.bert_input = bert_input
        self.k = int(k)
        self.threshold = float(threshold)

    def word_candidates(self, text: AttackedText, indices: Sequence[int]) -> dict[int, list[str]]:
        raise ConfigError("bert-attack-released's candidates come from its own search (ReleasedGreedySearch)")

    @torch.no_grad()
    def top_k(self, texts: Sequence[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scores, ids), each ``max_length x k``, of every text from one padded MLM forward."""
        encoded = [self.bert_input.ids(t) for t in texts]
        ids = torch.tensor([e[0] for e in encoded], dtype=torch.long, device=self.mlm.device)
        attention = torch.tensor([[1] * n + [0] * (len(e) - n) for e, n in encoded], dtype=torch.long,
                                 device=self.mlm.device)
        self.mlm.forwards += 1
        logits = self.mlm.model(ids, attention_mask=attention).logits
        scores, top = torch.topk(logits, min(self.k, logits.shape[-1]), -1)
        return [(scores[row], top[row]) for row in range(len(texts))]

    def single_piece(self, ids: torch.Tensor, scores: torch.Tensor) -> list[str]:
        words = []
        for token_id, score in zip(ids.tolist(), scores.tolist()):
            if self.threshold != 0 and score < self.threshold:
                break
            words.append(self.bert_input.token(token_id))
        return words

    @staticmethod
    def combinations(ids: torch.Tensor) -> list[list[int]]:
        """The first 24 combinations of the top-4 tokens of the first 12 pieces (first piece varies slowest)."""
        rows = ids[:MAX_PIECES, :PIECE_TOP].tolist()
        return [list(c) for c in itertools.islice(itertools.product(*rows), MAX_COMBINATIONS)]

    @torch.no_grad()
    def ranked_by_perplexity(self, groups: Sequence[list[list[int]]]) -> list[list[str]]:
        """Each group's combinations by increasing MLM perplexity, decoded; one forward per piece count."""
        out: list[list[str]] = [[] for _ in groups]
        by_length: dict[int, list[int]] = {}
        for g, combos in enumerate(groups):
            by_length.setdefault(len(combos[0]), []).append(g)
        for length, members in by_length.items():
            batch = torch.tensor([c for g in members for c in groups[g]], dtype=torch.long, device=self.mlm.device)
            self.mlm.forwards += 1
            logits = self.mlm.model(batch)[0]
            losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.reshape(-1), reduction="none")
            start = 0
            for g in members:
                n = len(groups[g])
                chunk = batch[start : start + n]
                ppl = torch.exp(losses.view(-1, length)[start : start + n].mean(dim=-1))
                _, order = torch.sort(ppl)
                out[g] = [join_pieces([self.bert_input.token(i) for i in chunk[j].tolist()]) for j in order.tolist()]
                start += n
        return out

    @property
    def forwards(self) -> int:
        return self.mlm.forwards

    def describe(self) -> dict[str, Any]:
        return {"transformation": self.name, "k": self.k, "threshold": self.threshold,
                "max_length": self.bert_input.max_length, **self.mlm.describe()}


@dataclass
class _Released:
    """One text's progress in the released search."""

    index: int
    text: str
    words: list[str]
    keys: list[tuple[int, int]]
    top: tuple[torch.Tensor, torch.Tensor]
    final: list[str] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    cursor: int = 0
    changed: int = 0
    queries: int = 0
    score: float = 0.0


class ReleasedGreedySearch:
    """The released loop: words by decreasing [UNK]-importance, arg-max over {current text} + candidates."""

    name = "greedy-word-importance-released"

    def __init__(self, max_words: int = 1, mask_token: str = "[UNK]") -> None:
        self.max_words = int(max_words)
        self.mask_token = mask_token

    def run(self, text: AttackedText, index: int, goal: ReleasedKLGoal, transformation: ReleasedMLMCandidates,
            constraints: Sequence[Constraint]) -> SearchOutcome:
        return self.run_many([text], [index], goal, transformation, constraints)[0]

    def _next_word(self, state: _Released, limit: int) -> int | None:
        """The next word the released loop would try (stop words and words past the cut are skipped)."""
        while state.cursor < len(state.order):
            position = state.order[state.cursor]
            state.cursor += 1
            if state.words[position] in RELEASED_FILTER_WORDS or state.keys[position][0] > limit - 2:
                continue
            return position
        return None

    def run_many(self, texts: Sequence[AttackedText], indices: Sequence[int], goal: ReleasedKLGoal,
                 transformation: ReleasedMLMCandidates, constraints: Sequence[Constraint]) -> list[SearchOutcome]:
        bert = transformation.bert_input
        plain = [t.text for t in texts]
        tops = transformation.top_k(plain)
        states = []
        for i, text, top in zip(indices, plain, tops):
            words = text.split(" ")
            states.append(_Released(i, text, words, bert.word_keys(words), top, final=list(words)))
        masks = [[" ".join(s.words[:w] + [self.mask_token] + s.words[w + 1 :]) for w in range(len(s.words))]
                 for s in states]
        for state, probes, importance in zip(states, masks, goal.score_many([(s.index, m) for s, m in zip(states, masks)])):
            state.order = torch.argsort(-importance, stable=True).tolist()
            state.queries = len(probes)
        limit = bert.max_length
        while True:
            visits = []
            for state in states:
                position = self._next_word(state, limit) if state.changed < self.max_words else None
                if position is not None:
                    visits.append((state, position))
            if not visits:
                break
            candidates = self._candidates(visits, transformation, limit)
            requests = []
            for (state, position), found in zip(visits, candidates):
                target = state.words[position]
                options, texts_ = [target], [" ".join(state.final)]
                for substitute in found:
                    if substitute == target or "##" in substitute or substitute in RELEASED_FILTER_WORDS:
                        continue
                    options.append(substitute)
                    texts_.append(" ".join(state.final[:position] + [substitute] + state.final[position + 1 :]))
                requests.append((state, position, options, texts_))
            scored = goal.score_many([(s.index, t) for s, _, _, t in requests])
            for (state, position, options, texts_), scores in zip(requests, scored):
                state.queries += len(texts_)
                best = int(torch.argmax(scores))
                state.final[position] = options[best]
                if options[best] != state.words[position]:
                    state.changed += 1
                    state.score = float(scores[best])
        outcomes = []
        for state, text in zip(states, texts):
            goal.accept(state.index, " ".join(state.final))
            outcomes.append(SearchOutcome(AttackedText(" ".join(state.final), _original=text), state.queries, state.score))
        return outcomes

    @staticmethod
    def _candidates(visits: Sequence[tuple[_Released, int]], transformation: ReleasedMLMCandidates,
                    limit: int) -> list[list[str]]:
        """Each visited word's candidates: read at the word's (shifted) key span of its text's MLM top-k."""
        found: list[list[str]] = [[] for _ in visits]
        multi: list[tuple[int, list[list[int]]]] = []
        for v, (state, position) in enumerate(visits):
            start, end = state.keys[position]
            scores, ids = state.top[0][start:min(end, limit)], state.top[1][start:min(end, limit)]
            if len(ids) == 1:
                found[v] = transformation.single_piece(ids[0], scores[0])
            elif len(ids) > 1:
                multi.append((v, transformation.combinations(ids)))
        if multi:
            for (v, _), words in zip(multi, transformation.ranked_by_perplexity([c for _, c in multi])):
                found[v] = words
        return found

    def describe(self) -> dict:
        return {"search": self.name, "max_words": self.max_words, "mask_token": self.mask_token}


def build_released_attacker(model: VisionLanguageModel, *, max_words: int, candidates: int, mlm: Any,
                            goal: Any, mlm_threshold: float, chunk_size: int, min_similarity: float | None,
                            extra_constraints: Sequence[Constraint], cleanup: bool = True, **_: Any):
    """The :class:`~.attacker.TextAttacker` of ``bert-attack-released`` (named by its RecipeSpec line)."""
    from .attacker import TextAttacker
    from .recipes import DEFAULT_MLM

    if not (goal == "embedding-kl" or getattr(goal, "name", None) == "embedding-kl"):
        raise ConfigError("bert-attack-released reproduces the released code's embedding-KL goal only; "
                          "use bert-attack for other text goals")
    if min_similarity is not None or list(extra_constraints):
        raise ConfigError("bert-attack-released reproduces the released code, which has no similarity or "
                          "class-name constraints; drop --min-similarity/--protect-classnames or use bert-attack")
    loaded = mlm if isinstance(mlm, MaskedLanguageModel) else MaskedLanguageModel.load(mlm or DEFAULT_MLM, model.device)
    bert_input = ReleasedBertInput(loaded.tokenizer, MAX_LENGTH, cleanup=cleanup)
    transformation = ReleasedMLMCandidates(loaded, bert_input, k=candidates, threshold=mlm_threshold)
    return TextAttacker(model, ReleasedKLGoal(model, bert_input), transformation, [],
                        ReleasedGreedySearch(max_words=max_words), recipe="bert-attack-released",
                        options={"max_words": int(max_words), "candidates": int(candidates)},
                        chunk_size=chunk_size)
