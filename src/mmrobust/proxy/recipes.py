"""Proxy recipes: everything that decides what a proxy model becomes, as plain data.

Why data and not code: the recipe (with the seed) is the cache key — its hash names the cache entry, so a
changed recipe can never be served from a stale cache, and the manifest records exactly what was trained.
Tests shrink a recipe with ``overrides`` (e.g. one epoch, a tiny image tower) and get their own entry.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..data.templates import CLIP_CIFAR_TEMPLATES, CLIP_GENERAL_TEMPLATES, DIGIT_TEMPLATES, STUDY_TEMPLATE
from ..errors import ConfigError
from ..utils.records import config_hash

#: bump when the training code changes what a recipe produces (part of the cache key)
RECIPE_FORMAT_VERSION = 2


@dataclass(frozen=True)
class EvalSet:
    """A held-out set the build scores zero-shot: ``templates`` None = the dataset's own (what ``mmrobust eval`` uses)."""

    dataset: str
    split: str
    templates: str | None = None
    #: minimum accuracy the issue asks for; recorded as reached / not reached, never enforced
    target: float | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.split}" + (f"@{self.templates}" if self.templates else "")


@dataclass(frozen=True)
class ProxyRecipe:
    """How to build one proxy VLM: image tower trained here, MiniLM text tower locked (LiT)."""

    name: str
    description: str
    dataset: str  # training data: "digits" or "tinyimagenet"
    train_split: str
    needs_data_root: bool
    #: built automatically on first ``load_proxy`` (it needs nothing but PyPI packages and is fast)
    auto_build: bool
    image_size: int
    resize_mode: str
    image_tower: dict[str, Any]
    embed_dim: int
    templates: tuple[str, ...]
    #: class-name synonyms (words.txt) used as extra text targets, at most this many per class (1 = name only)
    max_synonyms: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    init_logit_scale: float
    #: {"crop_scale": [lo, hi], "ratio": [lo, hi], "flip": bool} or None
    augmentation: dict[str, Any] | None
    #: soft targets from text-text similarity: {"alpha": a, "temperature": t} or None
    semantic_smoothing: dict[str, Any] | None
    #: train the text projection (False: identity, the joint space is MiniLM's own sentence space)
    train_text_projection: bool
    #: bf16 autocast + channels_last for the image tower's training steps where the hardware supports it
    #: (3.3x faster on the build CPU, AVX512-BF16); weights, evaluation and the saved model stay fp32
    fast_training: bool
    eval_sets: tuple[EvalSet, ...]
    #: images of each eval set scored after every epoch (progress signal; the final score uses all)
    epoch_eval_images: int
    budget_minutes: float
    #: torch intra-op threads for the whole build. Why fixed: fp32 reductions differ between thread counts,
    #: so a build that picked its threads from the load gave different weights for the same recipe and seed.
    #: One thread is also the fastest choice on a shared 2-core machine (two descheduled threads wait on
    #: each other: 3-8x slower per step under load 7, measured).
    threads: int = 1
    format_version: int = RECIPE_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        """The recipe as JSON-ready data (what the hash covers and the manifest records)."""
        data = asdict(self)
        data["templates"] = list(self.templates)
        data["eval_sets"] = [asdict(e) for e in self.eval_sets]
        return data

    def config_hash(self) -> str:
        """Short sha256 of the config: part of the cache key."""
        return config_hash(self.config(), length=12)

    def with_overrides(self, overrides: dict[str, Any] | None) -> "ProxyRecipe":
        """A copy with some fields replaced (tests, experiments); unknown fields are an error."""
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown proxy recipe field(s) {unknown}; known: {sorted(known)}")
        data = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        data.update(copy.deepcopy(overrides))
        data["templates"] = tuple(data["templates"])
        data["eval_sets"] = tuple(e if isinstance(e, EvalSet) else EvalSet(**e) for e in data["eval_sets"])
        return ProxyRecipe(**data)


DIGITS = ProxyRecipe(
    name="digits",
    description="scikit-learn digits (real 8x8 handwriting), 10 classes; embedded default, builds in well under 2 min",
    dataset="digits",
    train_split="train",
    needs_data_root=False,
    auto_build=True,
    image_size=16,  # 8 px digits upsampled x2: 99.3 % at a quarter of the 32 px cost (measured)
    resize_mode="bicubic",
    image_tower={"type": "convnet", "widths": [16, 32, 64], "blocks_per_stage": 1},
    embed_dim=384,
    templates=tuple(DIGIT_TEMPLATES) + ("a photo of the number {}.", STUDY_TEMPLATE),
    max_synonyms=1,
    epochs=10,
    batch_size=64,
    lr=3e-3,
    weight_decay=0.05,
    warmup_steps=20,
    init_logit_scale=2.302585,  # log(10), LiT's initial temperature
    augmentation={"crop_scale": [0.7, 1.0], "ratio": [0.85, 1.18], "flip": False},
    semantic_smoothing=None,
    train_text_projection=False,
    fast_training=False,
    eval_sets=(EvalSet("digits", "test", None, 0.97),),
    epoch_eval_images=450,
    budget_minutes=2.0,
)

TINYIMAGENET = ProxyRecipe(
    name="tinyimagenet",
    description="Tiny-ImageNet-200 train subset (40k real photos, 200 classes), zero-shot to TIN val and CIFAR-10",
    dataset="tinyimagenet",
    train_split="train",
    needs_data_root=True,
    auto_build=False,
    image_size=32,
    resize_mode="bicubic-aa",  # 64 -> 32 anti-aliased, like the PIL resize that made CIFAR's 32 px images
    image_tower={"type": "convnet", "widths": [32, 64, 128, 256], "blocks_per_stage": 1},
    embed_dim=384,
    templates=tuple(dict.fromkeys([STUDY_TEMPLATE, *CLIP_GENERAL_TEMPLATES, *CLIP_CIFAR_TEMPLATES[:9]])),
    max_synonyms=3,
    epochs=18,
    batch_size=128,
    lr=3e-3,
    weight_decay=0.05,
    warmup_steps=150,
    init_logit_scale=2.302585,
    augmentation={"crop_scale": [0.5, 1.0], "ratio": [0.75, 1.333], "flip": True},
    semantic_smoothing=None,
    train_text_projection=False,
    fast_training=True,
    eval_sets=(
        EvalSet("tinyimagenet", "val", None, 0.30),
        EvalSet("cifar10", "test", None, 0.40),
        EvalSet("cifar10", "test", "clip-cifar", None),
    ),
    epoch_eval_images=2000,
    budget_minutes=30.0,
)

RECIPES: dict[str, ProxyRecipe] = {r.name: r for r in (DIGITS, TINYIMAGENET)}


def get_recipe(name: str, overrides: dict[str, Any] | None = None) -> ProxyRecipe:
    """The named recipe (optionally modified); an unknown name lists the known ones."""
    if name not in RECIPES:
        raise ConfigError(f"unknown proxy {name!r}; known proxies: {', '.join(sorted(RECIPES))}")
    return RECIPES[name].with_overrides(overrides)
