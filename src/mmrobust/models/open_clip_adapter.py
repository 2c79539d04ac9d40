"""open_clip models behind mmrobust's :class:`VisionLanguageModel` interface (``--model open_clip:...``).

Spec forms (the part after ``open_clip:``):

* ``ARCH:TAG`` — ``open_clip.create_model(ARCH, pretrained=TAG)``, e.g. ``ViT-B-32:openai``
  (downloads, then cached); TAG may also be a local weights file (``ViT-B-32:/path/to/weights.pt``);
* ``ARCH`` — the architecture with random weights (smoke tests only);
* ``hf-hub:ORG/NAME`` — an open_clip model on the Hugging Face Hub;
* ``local-dir:FOLDER`` — a folder with ``open_clip_config.json`` and weights (open_clip's own layout).

Preprocessing (size, mean, std, interpolation) is read from the model's own ``preprocess_cfg``, so a
square image already at the model's size sees exactly open_clip's transform; other sizes are resized in
torch (differentiable) rather than by PIL, which differs slightly from open_clip's PIL resize.

open_clip is imported lazily: mmrobust works without it, and a missing or broken install is one line.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import inspect
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ModelLoadError
from .backend_support import first_line, import_backend, raise_if_network_failure
from .base import TextTokens, Tokenizer, VisionLanguageModel

#: file written next to mmrobust.json so open_clip's ``local-dir:`` loader can rebuild the architecture
OPEN_CLIP_CONFIG_NAME = "open_clip_config.json"
_HUB_PREFIX = "hf-hub:"
_LOCAL_PREFIX = "local-dir:"


def _open_clip() -> Any:
    return import_backend("open_clip", "open_clip", "create_model")


class OpenClipTokenizer:
    """open_clip's tokenizer seen as an mmrobust :class:`Tokenizer` (ids padded to ``context_length``).

    ``n_truncated`` is exact for CLIP's BPE tokenizer (``SimpleTokenizer``); for other tokenizers it counts
    texts that fill the whole context, which includes texts that fit exactly.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.context_length = int(inner.context_length)
        self.pad_id = 0  # open_clip pads with 0 for every tokenizer type
        self.sot_id = getattr(inner, "sot_token_id", None)
        self.eot_id = getattr(inner, "eot_token_id", None)
        self.vocab_size = int(getattr(inner, "vocab_size", 0) or len(getattr(inner, "encoder", {})) or 0)

    def _count_truncated(self, texts: Sequence[str], ids: torch.Tensor) -> int:
        encode = getattr(self.inner, "encode", None)
        if type(self.inner).__name__ == "SimpleTokenizer" and getattr(self.inner, "reduction_fn", None) is None:
            return sum(len(encode(text)) + 2 > self.context_length for text in texts)
        return int((ids[:, -1] != self.pad_id).sum())

    def __call__(self, texts: Sequence[str]) -> TextTokens:
        texts = list(texts)
        ids = self.inner(texts).long()
        return TextTokens(ids, None, self._count_truncated(texts, ids), texts)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of one row of ids (special and padding tokens dropped)."""
        keep = [int(i) for i in ids if int(i) not in (self.pad_id, self.sot_id, self.eot_id)]
        return self.inner.decode(keep).strip()


class OpenClipModel(VisionLanguageModel):
    """An ``open_clip`` model (``CLIP``, ``CustomTextCLIP``, ...) with pixels in [0, 1]."""

    backend = "open_clip"

    def __init__(self, model: nn.Module, tokenizer: Any, spec: str, model_cfg: dict[str, Any] | None) -> None:
        oc = _open_clip()
        preprocess = dict(oc.get_model_preprocess_cfg(model))
        size = preprocess.get("size", getattr(model.visual, "image_size", 224))
        if isinstance(size, (tuple, list)):
            if len(set(size)) != 1:
                raise ModelLoadError(f"open_clip model {spec!r} expects non-square {tuple(size)} images; not supported")
            size = size[0]
        super().__init__(
            spec=spec,
            image_size=int(size),
            image_mean=preprocess.get("mean", (0.48145466, 0.4578275, 0.40821073)),
            image_std=preprocess.get("std", (0.26862954, 0.26130258, 0.27577711)),
            resize_mode="bilinear" if preprocess.get("interpolation") == "bilinear" else "bicubic",
        )
        self.model = model
        self._tokenizer = OpenClipTokenizer(tokenizer)
        self.model_cfg = copy.deepcopy(model_cfg) if model_cfg is not None else None
        self.preprocess_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in preprocess.items()}
        from open_clip.transformer import text_global_pool

        self._text_pool = text_global_pool
        # Cutting the padded context is exact only for a causal tower pooled at the end-of-text token.
        self._can_cut_context = (
            isinstance(model, oc.CLIP)
            and getattr(model, "attn_mask", None) is not None
            and getattr(model, "text_pool_type", None) in ("argmax", "eos")
        )

    # ------------------------------------------------------------------ hooks
    def _encode_normalized_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _encode_normalized_images_spatial(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """open_clip's ViT with ``output_tokens`` on: its pooled embedding and its patch tokens, the latter
        through ``ln_post`` (where open_clip pools after the norm, they already are) and ``proj``.

        Only a ViT image tower pooled at the CLS token or by averaging patches has such tokens; attention
        pooling (CoCa) and timm / ResNet towers raise ``NotImplementedError``.
        """
        visual = self.model.visual
        usable = (hasattr(visual, "output_tokens") and hasattr(visual, "ln_post")
                  and getattr(visual, "attn_pool", None) is None and getattr(visual, "pool_type", "tok") in ("tok", "avg"))
        if not usable:
            return super()._encode_normalized_images_spatial(pixels)
        before = visual.output_tokens
        visual.output_tokens = True
        try:
            pooled, tokens = visual(pixels)
        finally:
            visual.output_tokens = before
        if getattr(visual, "final_ln_after_pool", False):
            tokens = visual.ln_post(tokens)
        if visual.proj is not None:
            tokens = tokens @ visual.proj
        return pooled, tokens

    def _encode_tokens(self, tokens: TextTokens) -> torch.Tensor:
        ids = tokens.input_ids
        if not self._can_cut_context:
            return self.model.encode_text(ids)
        return self._encode_cut_context(ids)

    def _pool_positions(self, ids: torch.Tensor) -> torch.Tensor:
        if self.model.text_pool_type == "argmax":
            return ids.argmax(dim=-1)
        return (ids == self.model.text_eos_id).int().argmax(dim=-1)

    def _encode_cut_context(self, ids: torch.Tensor) -> torch.Tensor:
        """``CLIP.encode_text`` on ids cut after the last end-of-text token of the batch.

        Why: prompts use ~10 of CLIP's 77 positions; under the causal mask no position attends to a later
        one, so the pooled end-of-text features are the same with the padding removed, and text encoding
        gets several times faster (tests check the features against ``model.encode_text``).
        """
        model = self.model
        length = int(self._pool_positions(ids).max()) + 1 if ids.numel() else ids.shape[1]
        ids = ids[:, :length]
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(ids).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        x = self._text_pool(x, ids, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
        projection = model.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().reshape(())

    def _towers(self) -> dict[str, list[nn.Module]]:
        model = self.model
        if hasattr(model, "text"):  # CustomTextCLIP / CoCa: the text side is one module
            text: list[nn.Module] = [model.text]
        else:  # CLIP keeps the text tower's parts (two of them bare Parameters) on the top module
            text = [m for m in (model.transformer, model.token_embedding, model.ln_final) if m is not None]
            loose = [p for p in (model.positional_embedding, model.text_projection) if isinstance(p, nn.Parameter)]
            text.append(nn.ParameterList(loose))  # transient holder: same Parameter objects, not registered
            if isinstance(model.text_projection, nn.Module):
                text.append(model.text_projection)
        return {"image": [model.visual], "text": text}

    def token_embedding(self) -> nn.Embedding | None:
        model = self.model
        embedding = getattr(model, "token_embedding", None)
        if embedding is None and hasattr(model, "text"):
            embedding = getattr(model.text, "token_embedding", None)
            if embedding is None and hasattr(getattr(model.text, "transformer", None), "get_input_embeddings"):
                embedding = model.text.transformer.get_input_embeddings()
        return embedding if isinstance(embedding, nn.Embedding) else None

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_config(self) -> dict[str, Any]:
        if self.model_cfg is None:
            raise ModelLoadError(f"open_clip model {self.spec!r} has no architecture config; cannot checkpoint it")
        return {
            "backend": self.backend,
            "source_spec": self.spec,
            "open_clip": {"model_cfg": copy.deepcopy(self.model_cfg), "preprocess_cfg": dict(self.preprocess_cfg)},
        }

    def write_checkpoint_files(self, folder: Path) -> None:
        """Files besides the weights, in open_clip's ``local-dir`` layout: its config and, for models with a
        Hugging Face tokenizer, that tokenizer's files (so the checkpoint reloads offline)."""
        from ..utils.files import write_json_atomic

        write_json_atomic(Path(folder) / OPEN_CLIP_CONFIG_NAME, self.checkpoint_config()["open_clip"])
        hf_tokenizer = getattr(self._tokenizer.inner, "tokenizer", None)
        if hf_tokenizer is not None and hasattr(hf_tokenizer, "save_pretrained"):
            hf_tokenizer.save_pretrained(str(folder))


# ---------------------------------------------------------------------- loading
def _known_architectures(oc: Any, wanted: str) -> str:
    names = oc.list_models()
    close = difflib.get_close_matches(wanted, names, n=3)
    common = [n for n in ("ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50", "convnext_base") if n in names]
    shown = list(dict.fromkeys(close + common))[:6]
    return f"known architectures include {', '.join(shown)} ({len(names)} in all: open_clip.list_models())"


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(("~", ".")) or Path(text).suffix in (
        ".pt", ".pth", ".bin", ".safetensors", ".npz",
    )


def _resolve(oc: Any, rest: str, spec: str) -> tuple[str, str | None]:
    """(model_name, pretrained) for open_clip, after checking what can be checked offline."""
    if not rest:
        raise ModelLoadError(f"model spec {spec!r}: expected open_clip:ARCH[:TAG], e.g. open_clip:ViT-B-32:openai")
    if rest.startswith(_HUB_PREFIX):
        return rest, None
    if rest.startswith(_LOCAL_PREFIX):
        folder = Path(rest[len(_LOCAL_PREFIX):]).expanduser()
        if not (folder / OPEN_CLIP_CONFIG_NAME).is_file():
            raise ModelLoadError(f"open_clip folder {folder} has no {OPEN_CLIP_CONFIG_NAME}")
        return f"{_LOCAL_PREFIX}{folder}", None
    arch, _, tag = rest.partition(":")
    if oc.get_model_config(arch) is None:
        raise ModelLoadError(f"unknown open_clip architecture {arch!r}; {_known_architectures(oc, arch)}")
    if not tag:
        return arch, None
    path = Path(tag).expanduser()
    if path.is_file():
        return arch, str(path)
    if oc.get_pretrained_cfg(arch, tag):
        return arch, tag
    if _looks_like_path(tag):
        raise ModelLoadError(f"weights file {path} does not exist")
    tags = oc.list_pretrained_tags_by_model(arch)
    raise ModelLoadError(
        f"unknown pretrained tag {tag!r} for {arch}; known: {', '.join(tags) or 'none'} (or a weights file path)"
    )


def _no_pickled_code(oc: Any) -> dict[str, Any]:
    """``weights_only=True`` where open_clip accepts it: a local ``.pt`` weights file is then read without
    running code from it (open_clip >= 2.24 defaults to it; older versions leave it to torch's default)."""
    return {"weights_only": True} if "weights_only" in inspect.signature(oc.create_model).parameters else {}


def load_open_clip(rest: str, spec: str) -> OpenClipModel:
    """Registry loader for ``open_clip:REST`` (see the module docstring for REST's forms)."""
    oc = _open_clip()
    model_name, pretrained = _resolve(oc, rest.strip(), spec)
    try:
        model = oc.create_model(model_name, pretrained=pretrained, device="cpu", precision="fp32",
                                **_no_pickled_code(oc))
        model_cfg = oc.get_model_config(model_name)
        tokenizer = oc.get_tokenizer(model_name)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise_if_network_failure(exc, f"open_clip model {spec!r}")
        raise ModelLoadError(f"open_clip could not build {spec!r}: {type(exc).__name__}: {first_line(exc, 300)}") from None
    return OpenClipModel(model, tokenizer, spec, model_cfg)


@contextlib.contextmanager
def _without_random_init_warning() -> Any:
    """open_clip warns "initialized randomly" when built without weights; for a checkpoint that is wrong
    (mmrobust loads the weights right after), so that one message is filtered while building."""

    def keep(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def from_checkpoint_config(config: dict[str, Any], folder: Path, spec: str, device: str = "cpu") -> OpenClipModel:
    """Rebuild the architecture of an mmrobust checkpoint of an open_clip model (weights loaded after);
    ``device="meta"`` builds shapes only (checked against the weights before the real build)."""
    oc = _open_clip()
    folder = Path(folder)
    if "open_clip" not in config or "model_cfg" not in config["open_clip"]:
        raise ModelLoadError(f"checkpoint {folder} lacks the open_clip architecture config")
    config_file = folder / OPEN_CLIP_CONFIG_NAME
    if not config_file.is_file():
        raise ModelLoadError(f"checkpoint {folder} has no {OPEN_CLIP_CONFIG_NAME} (open_clip's architecture file)")
    if json.loads(config_file.read_text(encoding="utf-8")).get("model_cfg") != config["open_clip"]["model_cfg"]:
        raise ModelLoadError(f"{config_file} does not match the architecture recorded in {folder / 'mmrobust.json'}")
    name = f"{_LOCAL_PREFIX}{folder}"
    try:
        # load_weights=False: mmrobust loads (and verifies) its own safetensors afterwards;
        # pretrained_text/image=False: never fetch tower weights that the checkpoint overwrites anyway.
        with _without_random_init_warning(), torch.device(device):
            model = oc.create_model(name, load_weights=False, pretrained_text=False, pretrained_image=False,
                                    device=device)
        tokenizer = oc.get_tokenizer(name)
    except Exception as exc:
        raise_if_network_failure(exc, f"open_clip checkpoint {folder}")
        raise ModelLoadError(f"open_clip could not rebuild checkpoint {folder}: {type(exc).__name__}: {first_line(exc)}") from None
    return OpenClipModel(model, tokenizer, spec, config["open_clip"]["model_cfg"])
