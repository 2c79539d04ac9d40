"""Masked language models for BERT-Attack: loading (one clear error line) and per-word predictions.

Any ``transformers`` masked LM works (``bert-base-uncased`` from the hub, or a local folder saved with
``save_pretrained``). transformers is imported only here, only when a masked LM is requested, so the
offline recipes (``embed-sub``, ``typo``) never need it.

Candidate generation follows the study's BERT-Attack (reference-algorithms §1.3): **one** forward pass
of the MLM on the *unmasked* sentence (truncated to ``max_length`` = 30 MLM tokens), then at each
word's position the top-k token ids. Single-piece words keep the top-k tokens up to the first one whose
raw logit is below ``threshold`` (0.3). Multi-piece words take combinations of the top-4 tokens per
piece (first 24 combinations), ranked by their summed log-probability from the same forward pass — the
reference re-scores combinations with extra MLM calls (perplexity); ranking from one pass is cheaper
and keeps the one-forward-per-text cost.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Sequence

import torch

from ...errors import ModelLoadError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {(text[0] if text else '')[:300]}"


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of ``exc``'s chain (``__cause__``, else ``__context__``)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def describe_failure(exc: BaseException) -> str:
    """One line naming the real cause of a load failure.

    transformers' lazy imports report "Could not import module 'BertForMaskedLM'" and keep the actual
    error (typically ``operator torchvision::nms does not exist``: a torchvision wheel built for another
    torch) only in the exception chain; a user needs the latter to fix anything.
    """
    root = _root_cause(exc)
    line = _first_line(exc) if root is exc else f"{_first_line(exc)}; caused by {_first_line(root)}"
    if "torchvision" in line:
        line += (" — the installed torchvision does not match the installed torch (transformers imports it); "
                 "install the torchvision build made for this torch, or uninstall torchvision")
    return line


class MaskedLanguageModel:
    """A loaded masked LM plus its tokenizer, in eval mode, on one device."""

    def __init__(self, model: Any, tokenizer: Any, spec: str, max_length: int = 30) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec = spec
        self.max_length = int(max_length)
        #: forward passes run so far (the attack reports the difference)
        self.forwards = 0

    @classmethod
    def load(cls, spec: str, device: torch.device | str | None = None, max_length: int = 30) -> "MaskedLanguageModel":
        """Load a hub id or a local folder; every failure is one :class:`ModelLoadError` line."""
        spec = str(spec).strip()
        if not spec:
            raise ModelLoadError("empty masked-LM spec (--mlm): give a hub id such as bert-base-uncased or a folder")
        path = Path(spec).expanduser()
        looks_like_path = path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1
        if looks_like_path and not path.is_dir():
            raise ModelLoadError(f"masked LM folder {spec!r} does not exist")
        source = str(path) if path.is_dir() else spec
        try:
            import transformers

            auto_tokenizer = transformers.AutoTokenizer
            auto_model = transformers.AutoModelForMaskedLM
        except Exception as exc:  # a torchvision build mismatching torch breaks transformers' lazy imports
            raise ModelLoadError(
                f"masked LM {spec!r} needs transformers, which could not be imported ({describe_failure(exc)})"
            ) from None
        local = {"local_files_only": True} if path.is_dir() else {}
        try:
            tokenizer = auto_tokenizer.from_pretrained(source, **local)
        except Exception as exc:
            raise ModelLoadError(
                f"the tokenizer of masked LM {spec!r} could not be loaded ({describe_failure(exc)}); "
                "without network access pass a local folder saved with save_pretrained"
            ) from None
        if tokenizer is None or not hasattr(tokenizer, "convert_tokens_to_ids"):
            raise ModelLoadError(f"masked LM {spec!r}: no usable tokenizer was found")
        special = set(getattr(tokenizer, "all_special_tokens", []) or [])
        if len(set(tokenizer.get_vocab()) - special) == 0:
            raise ModelLoadError(
                f"the tokenizer of masked LM {spec!r} could not be loaded: it has no vocabulary "
                "(no vocab/tokenizer files in the folder?)"
            )
        try:
            model = auto_model.from_pretrained(source, **local)
        except Exception as exc:
            raise ModelLoadError(f"masked LM {spec!r} could not be loaded ({describe_failure(exc)})") from None
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
        if vocab_size is not None and len(tokenizer) > int(vocab_size):
            raise ModelLoadError(
                f"masked LM {spec!r}: its tokenizer has {len(tokenizer)} tokens but the model only {vocab_size}"
            )
        if device is not None:
            model = model.to(device)
        return cls(model.float(), tokenizer, spec, max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def describe(self) -> dict[str, Any]:
        return {"mlm": self.spec, "mlm_max_length": self.max_length}

    # ------------------------------------------------------------------ predictions
    def _pieces(self, text: str, spans: Sequence[tuple[int, int]]) -> tuple[list[int], list[tuple[int, int] | None]]:
        """Token ids of ``[CLS] text [SEP]`` and, per word span, its piece positions (None if truncated away)."""
        tok = self.tokenizer
        ids: list[int] = []
        positions: list[tuple[int, int] | None] = []
        limit = self.max_length - 2
        cursor = 0
        for start, end in spans:
            ids += tok.convert_tokens_to_ids(tok.tokenize(text[cursor:start])) if text[cursor:start].strip() else []
            pieces = tok.convert_tokens_to_ids(tok.tokenize(text[start:end]))
            first = len(ids)
            ids += pieces
            positions.append((first + 1, len(ids) + 1) if pieces and len(ids) <= limit else None)
            cursor = end
        ids = ids[:limit]
        cls_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        sep_id = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        full = ([cls_id] if cls_id is not None else []) + ids + ([sep_id] if sep_id is not None else [])
        if cls_id is None:
            positions = [None if p is None else (p[0] - 1, p[1] - 1) for p in positions]
        return full, positions

    @torch.no_grad()
    def forward(self, sequences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Logits (L_i x V, float) of each token sequence from **one** forward pass, right-padded.

        Padding is masked out of attention and positions are absolute from the left, so each text's rows
        are those of its own unpadded forward up to floating-point summation order.
        """
        lengths = [len(ids) for ids in sequences]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(sequences), max(lengths)), int(pad_id), dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
            attention[row, : len(ids)] = 1
        self.forwards += 1
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)).logits
        return [logits[row, :length].float() for row, length in enumerate(lengths)]

    @torch.no_grad()
    def word_candidates(
        self,
        text: str,
        spans: Sequence[tuple[int, int]],
        wanted: Sequence[int],
        k: int = 10,
        threshold: float = 0.3,
    ) -> dict[int, list[str]]:
        """Candidate replacements for the words ``wanted`` (indices into ``spans``) from one MLM forward."""
        return self.word_candidates_many([(text, spans, wanted)], k=k, threshold=threshold)[0]

    @torch.no_grad()
    def word_candidates_many(
        self,
        items: Sequence[tuple[str, Sequence[tuple[int, int]], Sequence[int]]],
        k: int = 10,
        threshold: float = 0.3,
    ) -> list[dict[int, list[str]]]:
        """:meth:`word_candidates` for many (text, spans, wanted) items from one padded MLM forward."""
        if not items:
            return []
        prepared = [self._pieces(text, spans) for text, spans, _ in items]
        logits = self.forward([ids for ids, _ in prepared])
        return [self._candidates(rows, positions, wanted, k, threshold)
                for rows, (_, positions), (_, _, wanted) in zip(logits, prepared, items)]

    def _candidates(
        self,
        logits: torch.Tensor,
        positions: Sequence[tuple[int, int] | None],
        wanted: Sequence[int],
        k: int,
        threshold: float,
        piece_top: int = 4,
        max_combinations: int = 24,
        max_pieces: int = 12,
    ) -> dict[int, list[str]]:
        """The study's candidate rules applied to one text's logits (see the module docstring)."""
        top_scores, top_ids = logits.topk(min(k, logits.shape[-1]), dim=-1)
        log_probs = logits.log_softmax(dim=-1)
        out: dict[int, list[str]] = {}
        for index in wanted:
            span = positions[index] if index < len(positions) else None
            if span is None:
                out[index] = []
                continue
            first, last = span
            if last - first == 1:
                words = []
                for token_id, score in zip(top_ids[first].tolist(), top_scores[first].tolist()):
                    if threshold and score < threshold:
                        break
                    token = self.tokenizer.convert_ids_to_tokens(int(token_id))
                    if token is not None:  # ids past the tokenizer's vocabulary have no text
                        words.append(token)
                out[index] = words
            elif last - first <= max_pieces:
                per_piece = log_probs[first:last].topk(piece_top, dim=-1)
                combos = list(itertools.islice(itertools.product(*[row.tolist() for row in per_piece.indices]), max_combinations))
                ranked = sorted(
                    combos,
                    key=lambda combo: -sum(float(log_probs[first + j, t]) for j, t in enumerate(combo)),
                )
                words = [self.tokenizer.convert_tokens_to_string(self.tokenizer.convert_ids_to_tokens(list(c))).strip()
                         for c in ranked]
                out[index] = list(dict.fromkeys(words))[:k]
            else:
                out[index] = []
        return out
