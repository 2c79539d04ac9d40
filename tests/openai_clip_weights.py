"""A seeded random-weight CLIP state dict in OpenAI's format (the keys ``clip.model.build_model`` reads).

Shared by ``bench/released_golden_step.py`` (which feeds it to the released ``clip.load``) and
``tests/test_released_golden_step.py`` (which loads the same dict into open_clip's
``build_model_from_openai_state_dict`` behind mmrobust's adapter). The dict is a pure function of the config
and the seed, built here without any code of the reference.

Every value is rounded to float16 and back: the released ``build_model`` casts the Linear / Conv / attention /
projection weights to fp16 before loading the dict (``convert_weights``), so only fp16-representable values
survive that load unchanged, and both sides then hold bit-identical float32 weights.
"""

from __future__ import annotations

import math

import torch

#: a small ViT CLIP: 224 px (the released preprocessing upsamples to 224), patch 32 (7 x 7 grid), width 64,
#: 2 layers (1 head: both loaders take heads = width // 64); 77-token context and CLIP's 49,408 BPE ids
SMALL_CLIP = {"embed_dim": 32, "image_resolution": 224, "vision_patch_size": 32, "vision_width": 64,
              "vision_layers": 2, "context_length": 77, "vocab_size": 49408, "transformer_width": 64,
              "transformer_layers": 2}


def _block_shapes(prefix: str, width: int) -> list[tuple[str, tuple[int, ...], str]]:
    return [
        (f"{prefix}.attn.in_proj_weight", (3 * width, width), "matrix"),
        (f"{prefix}.attn.in_proj_bias", (3 * width,), "bias"),
        (f"{prefix}.attn.out_proj.weight", (width, width), "matrix"),
        (f"{prefix}.attn.out_proj.bias", (width,), "bias"),
        (f"{prefix}.ln_1.weight", (width,), "ln_weight"),
        (f"{prefix}.ln_1.bias", (width,), "bias"),
        (f"{prefix}.mlp.c_fc.weight", (4 * width, width), "matrix"),
        (f"{prefix}.mlp.c_fc.bias", (4 * width,), "bias"),
        (f"{prefix}.mlp.c_proj.weight", (width, 4 * width), "matrix"),
        (f"{prefix}.mlp.c_proj.bias", (width,), "bias"),
        (f"{prefix}.ln_2.weight", (width,), "ln_weight"),
        (f"{prefix}.ln_2.bias", (width,), "bias"),
    ]


def state_dict_shapes(config: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, kind) of every tensor of the OpenAI ViT CLIP state dict, in a fixed order."""
    vw, tw, e = config["vision_width"], config["transformer_width"], config["embed_dim"]
    patch = config["vision_patch_size"]
    grid = config["image_resolution"] // patch
    shapes = [
        ("positional_embedding", (config["context_length"], tw), "embedding"),
        ("text_projection", (tw, e), "matrix"),
        ("logit_scale", (), "logit_scale"),
        ("visual.class_embedding", (vw,), "embedding"),
        ("visual.positional_embedding", (grid * grid + 1, vw), "embedding"),
        ("visual.proj", (vw, e), "matrix"),
        ("visual.conv1.weight", (vw, 3, patch, patch), "matrix"),
        ("visual.ln_pre.weight", (vw,), "ln_weight"),
        ("visual.ln_pre.bias", (vw,), "bias"),
    ]
    for i in range(config["vision_layers"]):
        shapes += _block_shapes(f"visual.transformer.resblocks.{i}", vw)
    shapes += [("visual.ln_post.weight", (vw,), "ln_weight"), ("visual.ln_post.bias", (vw,), "bias")]
    for i in range(config["transformer_layers"]):
        shapes += _block_shapes(f"transformer.resblocks.{i}", tw)
    shapes += [
        ("token_embedding.weight", (config["vocab_size"], tw), "token_embedding"),
        ("ln_final.weight", (tw,), "ln_weight"),
        ("ln_final.bias", (tw,), "bias"),
    ]
    return shapes


def openai_state_dict(config: dict, seed: int) -> dict[str, torch.Tensor]:
    """The seeded random float32 state dict (fp16-representable values, see the module doc)."""
    generator = torch.Generator().manual_seed(int(seed))
    out: dict[str, torch.Tensor] = {}
    for key, shape, kind in state_dict_shapes(config):
        noise = torch.randn(shape, generator=generator)
        if kind == "matrix":  # fan-in scaling (conv1: 3 * patch^2 inputs; OpenAI's proj layout is in x out)
            fan_in = shape[0] if key.endswith("proj") or key == "text_projection" else math.prod(shape[1:])
            value = noise * fan_in ** -0.5
        elif kind == "embedding":
            value = noise * shape[-1] ** -0.5
        elif kind == "token_embedding":
            value = noise * 0.1
        elif kind == "ln_weight":
            value = 1 + 0.1 * noise
        elif kind == "bias":
            value = 0.05 * noise
        elif kind == "logit_scale":
            value = torch.tensor(math.log(1 / 0.07))
        else:
            raise ValueError(kind)
        out[key] = value.float().half().float()
    return out
