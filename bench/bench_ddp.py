"""Step time of mmrobust's flat all-reduce vs DistributedDataParallel, bucketed vs flat, side by side in one run.

Why: the trainer averages gradients with one flat all-reduce after ``backward()``
(:func:`mmrobust.utils.distributed.average_gradients`) because its objectives call ``encode_image`` /
``encode_text`` several times per step, not one ``forward()``. DDP's reducer instead all-reduces gradient
buckets *during* backward (overlap). This measures, on the same model, data and process group:

* ``flat``         backward, then one all-reduce of every gradient in one buffer (what the trainer does);
* ``bucketed``     backward, then one all-reduce per ~``--bucket-mb`` MB bucket (no overlap);
* ``ddp``          ``DistributedDataParallel`` around a module whose ``forward`` runs both towers (the reducer
                   sees every parameter), default 25 MB buckets, overlapped with backward;
* ``ddp-1bucket``  the same with one bucket as large as the model (overlap impossible: flat, via the reducer).

Variants are interleaved round by round (so a burst of load on the shared machine hits all of them) and the
medians per step are reported. Usage (CPU, gloo)::

    PYTHONPATH=src torchrun --nproc-per-node 2 bench/bench_ddp.py --out bench/RESULTS_ddp.md

On GPUs (NCCL) run it with ``--device cuda`` under torchrun with one process per GPU (``bench/device_check.py
--ddp`` does that when at least two GPUs are visible).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from mmrobust.models.native import NativeCLIP
from mmrobust.utils.distributed import average_gradients, setup_distributed

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def model_config(width: int, layers: int) -> dict:
    return {"image_size": 32, "embed_dim": width,
            "image_tower": {"type": "vit", "image_size": 32, "patch_size": 8, "width": width, "layers": layers,
                            "heads": 4},
            "text_tower": {"type": "causal_transformer", "vocab_size": 30522, "context_length": 16, "width": width,
                           "layers": layers, "heads": 4},
            "tokenizer": {"type": "wordpiece", "context_length": 16}}


class Towers(nn.Module):
    """Both towers behind one ``forward`` (zero-shot logits of images against class prompts), so DDP's
    reducer sees every parameter used in the step."""

    def __init__(self, model: NativeCLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        image = self.model.encode_image(images, normalize=True)
        text = self.model.encode_text(prompts, normalize=True)
        return self.model.logit_scale * image @ text.t()


def bucketed_all_reduce(params: list[nn.Parameter], world_size: int, bucket_bytes: int) -> None:
    """All-reduce gradients in buckets of about ``bucket_bytes`` after backward (no overlap)."""
    bucket: list[torch.Tensor] = []
    size = 0

    def flush() -> None:
        if not bucket:
            return
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        bucket.clear()

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        bucket.append(p.grad)
        size += p.grad.numel() * p.grad.element_size()
        if size >= bucket_bytes:
            flush()
            size = 0
    flush()


def build(args, device: torch.device, seed: int = 0) -> Towers:
    torch.manual_seed(seed)
    return Towers(NativeCLIP(model_config(args.width, args.layers), spec="bench-ddp")).to(device).train()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16, help="images per rank")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--bucket-mb", type=float, default=25.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="markdown file written by rank 0")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ctx = setup_distributed(args.device)
    if not ctx.enabled:
        print("run under torchrun with at least 2 processes", file=sys.stderr)
        return 2
    device = ctx.device
    from torch.nn.parallel import DistributedDataParallel as DDP

    prompts = [f"This is a photo of a {c}" for c in CLASSES]
    gen = torch.Generator().manual_seed(100 + ctx.rank)
    images = torch.rand(args.batch, 3, 32, 32, generator=gen).to(device)
    labels = torch.randint(0, len(CLASSES), (args.batch,), generator=gen).to(device)
    ids = [device.index] if device.type == "cuda" else None
    plain = build(args, device)
    n_params = sum(p.numel() for p in plain.parameters())
    big = int(n_params * 4 / 2**20) + 1
    variants = {
        "flat": plain,
        "bucketed": build(args, device),
        "ddp": DDP(build(args, device), device_ids=ids, bucket_cap_mb=args.bucket_mb),
        "ddp-1bucket": DDP(build(args, device), device_ids=ids, bucket_cap_mb=big),
    }
    params = {name: [p for p in m.parameters() if p.requires_grad] for name, m in variants.items()}

    def step(name: str) -> None:
        module = variants[name]
        for p in params[name]:
            p.grad = None
        loss = F.cross_entropy(module(images, prompts), labels)
        loss.backward()
        if name == "flat":
            average_gradients(params[name], ctx)
        elif name == "bucketed":
            bucketed_all_reduce(params[name], ctx.world_size, int(args.bucket_mb * 2**20))
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    # the four compute the same averaged gradient (same weights, same data): check once before timing
    for name in variants:
        step(name)
    reference = [p.grad for p in params["flat"]]
    agree = all(torch.allclose(a.grad, b, atol=1e-5, rtol=1e-4) for name in variants
                for a, b in zip(params[name], reference))

    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name in variants:
            step(name)  # warm-up of this round
            for _ in range(args.steps):
                dist.barrier()
                t0 = time.perf_counter()
                step(name)
                elapsed = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
                dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # a step lasts as long as its slowest rank
                times[name].append(float(elapsed))
    load_after = os.getloadavg()
    if ctx.is_main:
        medians = {name: statistics.median(v) for name, v in times.items()}
        lines = [
            f"# DDP vs flat all-reduce ({dist.get_backend()}, {ctx.world_size} processes, {device.type})", "",
            f"Command: `torchrun --nproc-per-node {ctx.world_size} bench/bench_ddp.py {' '.join(argv or sys.argv[1:])}`", "",
            f"Model: NativeCLIP width {args.width}, {args.layers}+{args.layers} layers, {n_params / 1e6:.1f} M "
            f"parameters ({n_params * 4 / 2**20:.0f} MB of fp32 gradients); batch {args.batch} per rank; "
            f"{args.rounds} interleaved rounds x {args.steps} timed steps per variant; bucket {args.bucket_mb:g} MB.", "",
            f"Load average (1, 5, 15 min) before {tuple(round(x, 2) for x in load_before)}, after "
            f"{tuple(round(x, 2) for x in load_after)} on {os.cpu_count()} CPUs: the machine is shared and noisy, "
            "so small differences are not significant.", "",
            f"All four variants produced the same averaged gradient before timing: {agree}.", "",
            "| variant | median step (s) | min | max | vs flat |", "|---|---|---|---|---|",
        ]
        for name, values in times.items():
            lines.append(f"| {name} | {medians[name]:.4f} | {min(values):.4f} | {max(values):.4f} | "
                         f"{medians[name] / medians['flat']:.3f} |")
        lines += ["", f"Ratio DDP / flat (median step time): {medians['ddp'] / medians['flat']:.3f}; "
                      f"bucketed / flat: {medians['bucketed'] / medians['flat']:.3f}."]
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
    dist.barrier()
    ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
