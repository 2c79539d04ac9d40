"""Goal functions: how adversarial a candidate text is (higher = better for the attacker).

A goal is told the original texts once (:meth:`Goal.start`, one batched encoding), then scores the
candidate set for one text with **one** ``encode_text`` call (:meth:`Goal.score`), or the candidate sets
of many texts together in chunked calls (:meth:`Goal.score_many`, the batched search). The search keeps
the best candidate and tells the goal which text it finally chose (:meth:`Goal.accept`), so goals whose
value depends on the other texts (the zero-shot margin goal) stay consistent; those are not
``independent`` and are always searched one text at a time. Every ``encode_text`` call is counted
(``encoder_calls``) for the attack's cost report.

* :class:`EmbeddingKLGoal` — the study's BERT-Attack objective: KL(softmax(e_orig) || softmax(e_cand))
  over the dimensions of the L2-normalised text embedding. Label-free and image-free: it only moves the
  text embedding away from where it was.
* :class:`EmbeddingCosineGoal` — 1 - cos(e_orig, e_cand), the same idea in a more usual distance.
* :class:`ZeroShotMarginGoal` — task-aware (beyond the study): class prompts are scored by how much they
  lower zero-shot accuracy on a few clean images, i.e. the number of misclassified images, ties broken
  by the mean remaining margin of the true class.
* :class:`PairSimilarityGoal` — for image–caption pairs: lower the caption's cosine to its own image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...models.base import VisionLanguageModel

#: texts per ``encode_text`` call when encoding many originals at once
ENCODE_CHUNK = 256


def encode_texts(model: VisionLanguageModel, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised embeddings of ``texts`` in chunks (the caller owns no_grad / eval mode)."""
    chunks = [model.encode_text(list(texts[s : s + ENCODE_CHUNK]), normalize=True) for s in range(0, len(texts), ENCODE_CHUNK)]
    return torch.cat(chunks).float()


class Goal(ABC):
    """Scores candidate texts for the text at position ``index`` of the current :meth:`start` call."""

    name: str = "abstract"
    #: True when scores depend only on the texts (no images, no other texts): duplicates are attacked once
    text_only: bool = False
    #: True when text ``index``'s scores never depend on what was accepted for other texts, so the texts
    #: can be searched together (batched) with results identical to searching them one by one
    independent: bool = True

    def __init__(self, model: VisionLanguageModel) -> None:
        self.model = model
        self.encoder_calls = 0

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """:func:`encode_texts`, counting the ``encode_text`` calls it makes."""
        self.encoder_calls += -(-len(texts) // ENCODE_CHUNK)
        return encode_texts(self.model, texts)

    @abstractmethod
    def start(self, texts: Sequence[str], image_features: torch.Tensor | None = None) -> None:
        """Called once per attack with all original texts (and, for pair goals, one image feature per text)."""

    @abstractmethod
    def score_embeddings(self, index: int, candidates: Sequence[str], embeddings: torch.Tensor) -> torch.Tensor:
        """Scores (float, CPU) of ``candidates`` for text ``index`` given their normalised embeddings."""

    def score(self, index: int, candidates: Sequence[str]) -> torch.Tensor:
        """Scores of ``candidates`` (replacements for text ``index``), a float tensor on CPU."""
        return self.score_embeddings(index, candidates, self.encode(candidates))

    def score_many(self, requests: Sequence[tuple[int, Sequence[str]]]) -> list[torch.Tensor]:
        """:meth:`score` for many (index, candidates) requests with all candidates encoded together."""
        flat = [text for _, candidates in requests for text in candidates]
        if not flat:
            return [torch.zeros(0) for _ in requests]
        embeddings = self.encode(flat)
        out, start = [], 0
        for index, candidates in requests:
            out.append(self.score_embeddings(index, candidates, embeddings[start : start + len(candidates)]))
            start += len(candidates)
        return out

    def initial_score(self, index: int) -> float:
        """Score of the unmodified text (what a substitution must beat)."""
        return 0.0

    def accept(self, index: int, text: str) -> None:
        """The search settled on ``text`` for position ``index``."""

    def describe(self) -> dict:
        return {"goal": self.name}


class _EmbeddingDistanceGoal(Goal):
    """Shared part of the label-free goals: distance of the candidate embedding to the original one."""

    #: the score of a candidate depends on its text alone, so equal texts have equal attacks
    text_only = True

    def start(self, texts: Sequence[str], image_features: torch.Tensor | None = None) -> None:
        self.original = self.encode(texts)

    def score_embeddings(self, index: int, candidates: Sequence[str], embeddings: torch.Tensor) -> torch.Tensor:
        return self.distance(self.original[index : index + 1], embeddings).cpu()

    @abstractmethod
    def distance(self, original: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """1 x D original, K x D candidates -> K distances."""


class EmbeddingKLGoal(_EmbeddingDistanceGoal):
    """The study's BERT-Attack score: sum_d p_d (log p_d - log q_d), p = softmax(e_orig), q = softmax(e_cand).

    The softmax runs over embedding dimensions of the normalised embedding, which makes p and q nearly
    uniform and the values tiny; computed in float64 so candidate rankings do not drown in rounding.
    """

    name = "embedding-kl"

    def distance(self, original: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(original.double(), dim=-1)
        log_q = F.log_softmax(candidates.double(), dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(dim=-1).float()


class EmbeddingCosineGoal(_EmbeddingDistanceGoal):
    """1 - cos(e_orig, e_cand): the same label-free idea with a familiar distance."""

    name = "embedding-cos"

    def distance(self, original: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return 1.0 - (candidates @ original.t()).squeeze(-1)


class PairSimilarityGoal(Goal):
    """Image–caption pairs: push each caption away from its own image (score = -cos(image, caption))."""

    name = "pair-similarity"

    def start(self, texts: Sequence[str], image_features: torch.Tensor | None = None) -> None:
        if image_features is None or len(image_features) != len(texts):
            raise ConfigError(f"goal {self.name!r} needs one image feature per text (pass image_features=...)")
        self.images = F.normalize(image_features.detach().float(), dim=-1)
        self._initial = -(self.encode(texts) * self.images.to(self.model.device)).sum(-1).cpu()

    def score_embeddings(self, index: int, candidates: Sequence[str], embeddings: torch.Tensor) -> torch.Tensor:
        return -(embeddings @ self.images[index].to(embeddings.device)).cpu()

    def initial_score(self, index: int) -> float:
        return float(self._initial[index])


class ZeroShotMarginGoal(Goal):
    """Class prompts scored by the zero-shot errors they cause on a small set of clean images.

    Texts are the flattened class prompts ``prompts[c][t]`` (index ``c * T + t``); the class embedding of
    ``c`` is the normalised mean of its T prompt embeddings (as in :mod:`mmrobust.models.zeroshot`). A
    candidate for prompt (c, t) only changes column c of the logits, so one matrix product scores every
    candidate against every image: images of class c lose when c's column drops, images of other classes
    lose when it rises above their own class (the prompt "steals" them).

    Score = number of misclassified attack images + 0.5 * (1 - mean clipped true-class margin / 2):
    the error count decides, the margin (in cosine units, clipped to [0, 2]) breaks ties and gives a
    direction before any image flips. Accepted prompts update the class embeddings, so later prompts are
    attacked against the already-perturbed classifier (greedy coordinate ascent over prompts).
    """

    name = "zero-shot-margin"
    #: accepted prompts change the classifier the next prompts are scored against
    independent = False

    def __init__(
        self,
        model: VisionLanguageModel,
        image_features: torch.Tensor,
        labels: torch.Tensor,
        n_classes: int,
        prompts_per_class: int,
    ) -> None:
        super().__init__(model)
        if image_features is None or len(image_features) == 0:
            raise ConfigError("the zero-shot margin goal needs at least one clean image (none were given)")
        if len(image_features) != len(labels):
            raise ConfigError("the zero-shot margin goal needs one label per image")
        self.images = F.normalize(image_features.detach().float(), dim=-1)
        self.labels = labels.detach().long().to(self.images.device)
        self.n_classes = int(n_classes)
        self.per_class = int(prompts_per_class)
        self._last: dict[str, torch.Tensor] = {}

    def start(self, texts: Sequence[str], image_features: torch.Tensor | None = None) -> None:
        if len(texts) != self.n_classes * self.per_class:
            raise ConfigError(
                f"goal {self.name!r}: expected {self.n_classes} x {self.per_class} class prompts, got {len(texts)} texts"
            )
        device = self.model.device
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        self.prompt_embeddings = self.encode(texts).view(self.n_classes, self.per_class, -1)
        self.class_sums = self.prompt_embeddings.sum(dim=1)
        self.base_logits = self.images @ F.normalize(self.class_sums, dim=-1).t()  # N x C

    def _scores_for_column(self, column: int, new_columns: torch.Tensor) -> torch.Tensor:
        """Scores when column ``column`` of the logits takes each of the K values in ``new_columns`` (N x K)."""
        n, k = new_columns.shape
        logits = self.base_logits.unsqueeze(0).expand(k, -1, -1).clone()  # K x N x C
        logits[:, :, column] = new_columns.t()
        true = logits.gather(2, self.labels.view(1, n, 1).expand(k, n, 1)).squeeze(2)
        others = logits.scatter(2, self.labels.view(1, n, 1).expand(k, n, 1), float("-inf")).amax(dim=2)
        margins = true - others  # K x N, cosine units
        errors = (margins <= 0).float().sum(dim=1)
        return errors + 0.5 * (1.0 - margins.clamp(0.0, 2.0).mean(dim=1) / 2.0)

    def initial_score(self, index: int) -> float:
        column = index // self.per_class
        return float(self._scores_for_column(column, self.base_logits[:, column : column + 1])[0])

    def score_embeddings(self, index: int, candidates: Sequence[str], embeddings: torch.Tensor) -> torch.Tensor:
        column, slot = divmod(index, self.per_class)
        self._last = {text: embeddings[i] for i, text in enumerate(candidates)}
        rest = self.class_sums[column] - self.prompt_embeddings[column, slot]
        new_class = F.normalize(rest.unsqueeze(0) + embeddings, dim=-1)  # K x D
        return self._scores_for_column(column, self.images @ new_class.t()).cpu()

    def accept(self, index: int, text: str) -> None:
        column, slot = divmod(index, self.per_class)
        embedding = self._last.get(text)
        if embedding is None:
            embedding = self.encode([text])[0]
        self.class_sums[column] += embedding - self.prompt_embeddings[column, slot]
        self.prompt_embeddings[column, slot] = embedding
        self.base_logits[:, column] = self.images @ F.normalize(self.class_sums[column], dim=-1)
        self._last = {}

    def describe(self) -> dict:
        return {"goal": self.name, "n_goal_images": int(len(self.images))}


#: goals a recipe can build from a name alone (the zero-shot goal needs images: build it explicitly)
NAMED_GOALS = {"embedding-kl": EmbeddingKLGoal, "embedding-cos": EmbeddingCosineGoal, "pair-similarity": PairSimilarityGoal}


def make_goal(goal: "str | Goal", model: VisionLanguageModel) -> Goal:
    """A goal from its name, or ``goal`` itself if it already is one."""
    if isinstance(goal, Goal):
        return goal
    if goal == ZeroShotMarginGoal.name:
        raise ConfigError(
            "goal 'zero-shot-margin' needs clean images and labels: construct ZeroShotMarginGoal(...) and pass it, "
            "or use it through the evaluation attacks (option text_goal=zero-shot-margin)"
        )
    if goal not in NAMED_GOALS:
        raise ConfigError(f"unknown text-attack goal {goal!r}; known: {', '.join([*NAMED_GOALS, ZeroShotMarginGoal.name])}")
    return NAMED_GOALS[goal](model)
