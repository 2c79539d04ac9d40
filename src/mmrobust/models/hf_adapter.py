"""Hugging Face ``transformers`` CLIP behind mmrobust's interface (``--model hf:ID_OR_FOLDER``).

``hf:openai/clip-vit-base-patch32`` downloads from the Hub (then cached); ``hf:/path/to/folder`` reads a
``save_pretrained`` folder (model, tokenizer and, if present, ``preprocessor_config.json``). Pixel
statistics come from the preprocessor config; the input size is the vision tower's ``image_size`` (its
position embeddings fix it). Images at that size see exactly ``CLIPImageProcessor``'s rescale+normalise;
other sizes are resized in torch (differentiable), which differs slightly from the processor's resize.

transformers is imported lazily; a missing or broken install, or a download without network, is one line.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ModelLoadError
from .backend_support import first_line, import_backend, raise_if_network_failure
from .base import TextTokens, Tokenizer, VisionLanguageModel
from .native import CLIP_MEAN, CLIP_STD
from .weights_check import check_dimensions, check_tensors, expected_tensors, read_header, unsaved_buffers

PREPROCESSOR_NAME = "preprocessor_config.json"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: a config.json longer than this is refused unread (real ones are a few kilobytes)
MAX_CONFIG_BYTES = 16 * 1024 * 1024
#: sub-folder of an mmrobust checkpoint holding the tokenizer files (``save_pretrained`` layout)
TOKENIZER_DIR = "hf_tokenizer"
#: PIL resampling codes used in preprocessor configs -> torch interpolation modes
_RESAMPLE = {2: "bilinear", 3: "bicubic"}


def _transformers() -> Any:
    return import_backend("transformers", "hf", "CLIPModel")


def _features(output: Any) -> torch.Tensor:
    """transformers 5 returns a ModelOutput from ``get_*_features`` (projected ``pooler_output``); 4.x a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise ModelLoadError(f"unexpected output type {type(output).__name__} from transformers' CLIP features")
    return pooled


class HFTokenizer:
    """A Hugging Face CLIP tokenizer as an mmrobust :class:`Tokenizer` (padded to the longest text)."""

    def __init__(self, inner: Any, context_length: int) -> None:
        self.inner = inner
        self.context_length = int(context_length)
        self.pad_id = inner.pad_token_id if inner.pad_token_id is not None else inner.eos_token_id
        self.eot_id = inner.eos_token_id
        self.sot_id = inner.bos_token_id
        self.vocab_size = len(inner)

    def __call__(self, texts: Sequence[str]) -> TextTokens:
        texts = list(texts)
        full_lengths = [len(ids) for ids in self.inner(texts, truncation=False, verbose=False)["input_ids"]]
        encoded = self.inner(
            texts, padding="longest", truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        n_truncated = sum(length > self.context_length for length in full_lengths)
        return TextTokens(encoded["input_ids"].long(), encoded["attention_mask"].long(), n_truncated, texts)

    def decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode([int(i) for i in ids], skip_special_tokens=True).strip()


class HFCLIP(VisionLanguageModel):
    """``transformers.CLIPModel`` with pixels in [0, 1]."""

    backend = "hf"

    def __init__(self, model: nn.Module, tokenizer: Any, spec: str, preprocess: dict[str, Any]) -> None:
        super().__init__(
            spec=spec,
            image_size=int(model.config.vision_config.image_size),
            image_mean=preprocess.get("mean", CLIP_MEAN),
            image_std=preprocess.get("std", CLIP_STD),
            resize_mode=preprocess.get("resize_mode", "bicubic"),
        )
        self.model = model
        self.preprocess_cfg = {
            "mean": list(self.pixel_mean.flatten().tolist()),
            "std": list(self.pixel_std.flatten().tolist()),
            "resize_mode": self.resize_mode,
        }
        limit = int(model.config.text_config.max_position_embeddings)
        declared = getattr(tokenizer, "model_max_length", None)
        context = min(limit, int(declared)) if isinstance(declared, int) and declared > 0 else limit
        self._tokenizer = HFTokenizer(tokenizer, context)

    def _encode_normalized_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixels))

    def _encode_normalized_images_spatial(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CLS and patch tokens of ``vision_model``'s last hidden state, each through ``post_layernorm`` and
        ``visual_projection`` (the path ``get_image_features`` takes for the CLS token alone)."""
        vision = self.model.vision_model
        hidden = vision(pixel_values=pixels).last_hidden_state
        tokens = self.model.visual_projection(vision.post_layernorm(hidden))
        return tokens[:, 0], tokens[:, 1:]

    def _encode_tokens(self, tokens: TextTokens) -> torch.Tensor:
        return _features(self.model.get_text_features(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask))

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().reshape(())

    def _towers(self) -> dict[str, list[nn.Module]]:
        return {
            "image": [self.model.vision_model, self.model.visual_projection],
            "text": [self.model.text_model, self.model.text_projection],
        }

    def token_embedding(self) -> nn.Embedding | None:
        embedding = self.model.text_model.embeddings.token_embedding
        return embedding if isinstance(embedding, nn.Embedding) else None

    def checkpoint_config(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "source_spec": self.spec,
            "hf": {"clip_config": self.model.config.to_dict(), "preprocess": copy.deepcopy(self.preprocess_cfg)},
        }

    def write_checkpoint_files(self, folder: Path) -> None:
        """The tokenizer files (``save_pretrained``), so the checkpoint reloads without the Hub."""
        self._tokenizer.inner.save_pretrained(str(Path(folder) / TOKENIZER_DIR))


# ---------------------------------------------------------------------- loading
def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~", "\\")) or (len(text) > 1 and text[1] == ":")


def _read_preprocess(source: str, is_folder: bool) -> dict[str, Any]:
    """mean / std / interpolation from ``preprocessor_config.json`` (read as JSON: the processor class
    itself pulls in torchvision, which the model does not need)."""
    if is_folder:
        path = Path(source) / PREPROCESSOR_NAME
        if not path.is_file():
            return {}
    else:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, PREPROCESSOR_NAME))
        except Exception as exc:
            raise_if_network_failure(exc, f"Hugging Face model {source!r}")
            return {}  # the repository has no preprocessor config: CLIP's defaults
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"corrupt {path}: {exc}") from None
    preprocess: dict[str, Any] = {}
    if raw.get("image_mean") is not None:
        preprocess["mean"] = [float(v) for v in raw["image_mean"]]
    if raw.get("image_std") is not None:
        preprocess["std"] = [float(v) for v in raw["image_std"]]
    preprocess["resize_mode"] = _RESAMPLE.get(raw.get("resample"), "bicubic")
    return preprocess


def _read_folder_config(folder: Path) -> dict[str, Any]:
    """``config.json`` as a dict, read only if its size is plausible."""
    path = folder / CONFIG_NAME
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelLoadError(f"{path} is {path.stat().st_size} bytes, more than a config can be "
                             f"(the ceiling is {MAX_CONFIG_BYTES}); refusing to read it")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"corrupt {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"corrupt {path}: it is not a JSON object")
    return raw


def check_folder(folder: Path, transformers: Any) -> None:
    """Refuse a folder whose config.json and ``model.safetensors`` disagree, before transformers allocates.

    Why: ``from_pretrained`` builds the model the config declares (a tampered width of 10^9 allocates
    without bound) and loads a file with unknown or missing tensors with a warning and random weights.
    Folders without ``model.safetensors`` (sharded or ``.bin`` weights) get the size check only.
    """
    raw = _read_folder_config(folder)
    check_dimensions(raw, str(folder / CONFIG_NAME))
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        return
    found = read_header(weights)
    try:
        with torch.device("meta"):
            skeleton = transformers.CLIPModel(transformers.CLIPConfig.from_dict(raw))
    except Exception as exc:
        raise ModelLoadError(f"{folder / CONFIG_NAME} does not describe a CLIP model transformers can build: "
                             f"{type(exc).__name__}: {first_line(exc)}") from None
    check_tensors(found, expected_tensors(skeleton), f"Hugging Face model folder {folder}", unsaved_buffers(skeleton))


def load_hf(rest: str, spec: str) -> HFCLIP:
    """Registry loader for ``hf:ID_OR_FOLDER``."""
    source = rest.strip()
    if not source:
        raise ModelLoadError(f"model spec {spec!r}: expected hf:HUB_ID or hf:FOLDER (e.g. hf:openai/clip-vit-base-patch32)")
    folder = Path(source).expanduser()
    is_folder = folder.is_dir()
    if not is_folder and (folder.exists() or _looks_like_path(source)):
        raise ModelLoadError(f"Hugging Face model folder {folder} does not exist (or is not a folder)")
    if is_folder:
        source = str(folder)
        if not (folder / CONFIG_NAME).is_file():
            raise ModelLoadError(f"{folder} is not a Hugging Face model folder: {CONFIG_NAME} is missing")
    transformers = _transformers()
    if is_folder:
        check_folder(folder, transformers)
    try:
        model = transformers.CLIPModel.from_pretrained(source)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    except Exception as exc:
        raise_if_network_failure(exc, f"Hugging Face model {source!r}")
        raise ModelLoadError(f"transformers could not load {source!r}: {type(exc).__name__}: {first_line(exc, 300)}") from None
    return HFCLIP(model, tokenizer, spec, _read_preprocess(source, is_folder))


def from_checkpoint_config(config: dict[str, Any], folder: Path, spec: str, device: str = "cpu") -> HFCLIP:
    """Rebuild the architecture of an mmrobust checkpoint of a transformers CLIP (weights loaded after);
    ``device="meta"`` builds the CLIPModel's shapes only (checked against the weights before the real build)."""
    transformers = _transformers()
    folder = Path(folder)
    section = config.get("hf", {})
    if "clip_config" not in section:
        raise ModelLoadError(f"checkpoint {folder} lacks the transformers CLIP config")
    tokenizer_dir = folder / TOKENIZER_DIR
    if not tokenizer_dir.is_dir():
        raise ModelLoadError(f"checkpoint {folder} has no {TOKENIZER_DIR}/ (the tokenizer files)")
    try:
        clip_config = transformers.CLIPConfig.from_dict(section["clip_config"])
        with torch.device(device):
            model = transformers.CLIPModel(clip_config)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    except Exception as exc:
        raise ModelLoadError(f"transformers could not rebuild checkpoint {folder}: {type(exc).__name__}: {first_line(exc)}") from None
    return HFCLIP(model, tokenizer, spec, section.get("preprocess", {}))
