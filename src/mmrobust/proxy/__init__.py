"""Offline proxy VLMs: small CLIP-style models trained here on real data, loadable as ``proxy:NAME``.

No pretrained CLIP exists offline, so mmrobust trains its own stand-ins: an image tower trained from
scratch, LiT-style, against the real pretrained MiniLM-L6 sentence encoder (locked) through the real
WordPiece tokenizer — so zero-shot transfer and text attacks mean something.

- :func:`build_proxy` (``mmrobust proxy build NAME``) builds or reuses a cached proxy and returns its folder
- :func:`load_proxy` (``--model proxy:NAME[:SEED]``) loads a verified build; ``digits`` builds itself on first use
- :data:`RECIPES`: ``digits`` (scikit-learn digits, seconds) and ``tinyimagenet`` (Tiny-ImageNet-200, ~30 min)
"""

from .build import build_proxy
from .cache import CacheEntry, default_cache_dir, list_entries
from .loading import list_proxies, load_proxy
from .recipes import RECIPES, ProxyRecipe, get_recipe

__all__ = [
    "RECIPES",
    "CacheEntry",
    "ProxyRecipe",
    "build_proxy",
    "default_cache_dir",
    "get_recipe",
    "list_entries",
    "list_proxies",
    "load_proxy",
]
