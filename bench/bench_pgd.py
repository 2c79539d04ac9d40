"""Benchmark: images/second of one PGD-10 evaluation, three ways, on the same model and batch.

(a) mmrobust ``PGD`` on a ``ZeroShotClassifier`` (class-prompt embeddings encoded once, grads w.r.t. the
    perturbation only);
(b) the reference implementations' shape: the class prompts are re-encoded by the text tower inside every
    step and ``loss.backward()`` fills parameter gradients too (MMCoA/TeCoA ``attacks.py``);
(c) torchattacks' ``PGD`` wrapped around the same zero-shot classifier (skipped with a message when
    torchattacks is not installed: ``VIRTUAL_ENV=.venv uv pip install --no-deps torchattacks``; it is not a
    project dependency because it pins an old ``requests``).

Each variant runs in its own subprocess so its peak memory is its own (CPU: peak RSS; CUDA:
``torch.cuda.max_memory_allocated``). Usage::

    .venv/bin/python bench/bench_pgd.py                 # all variants, markdown table on stdout
    .venv/bin/python bench/bench_pgd.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

MODEL_CONFIG = {
    "image_size": 32,
    "embed_dim": 256,
    "image_tower": {"type": "vit", "image_size": 32, "patch_size": 4, "width": 256, "layers": 4, "heads": 4},
    "text_tower": {"type": "causal_transformer", "vocab_size": 30522, "context_length": 32, "width": 256,
                   "layers": 4, "heads": 4},
    "tokenizer": {"type": "wordpiece", "context_length": 32},
}
VARIANTS = {"a": "mmrobust PGD (ZeroShotClassifier)", "b": "re-encode prompts every step (reference shape)",
            "c": "torchattacks PGD (ZeroShotClassifier)"}


def build(args):
    from mmrobust.models.zeroshot import ZeroShotClassifier, build_prompts
    from mmrobust.models.native import NativeCLIP

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = NativeCLIP(MODEL_CONFIG, spec="bench:vit-w256-l4").to(args.device).eval()
    classes = [f"object number {i}" for i in range(args.classes)]
    prompts = build_prompts(classes, ["This is a photo of a {}"])
    classifier = ZeroShotClassifier.from_prompts(model, classes, ["This is a photo of a {}"])
    g = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, 32, 32, generator=g).to(args.device)
    labels = torch.randint(0, args.classes, (args.batch,), generator=g).to(args.device)
    return model, classifier, prompts, images, labels


def reencode_pgd(model, prompts, images, labels, eps, alpha, steps):
    """The reference loop's shape: text tower inside the step, backward() into parameter grads too."""
    flat = [p for per_class in prompts for p in per_class]
    model.train()
    delta = (torch.rand_like(images) * 2 - 1) * eps
    delta = ((images + delta).clamp(0, 1) - images).detach()
    for _ in range(steps):
        delta.requires_grad_(True)
        text = F.normalize(model.encode_text(flat), dim=-1)
        image = F.normalize(model.encode_image(images + delta), dim=-1)
        loss = F.cross_entropy(model.logit_scale * image @ text.t(), labels)
        loss.backward()
        grad = delta.grad.detach()
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        delta = ((images + delta).clamp(0, 1) - images).detach()
    model.zero_grad(set_to_none=True)
    model.eval()
    return images + delta


def run_variant(args) -> dict:
    torch.set_num_threads(args.threads)
    model, classifier, prompts, images, labels = build(args)
    eps, alpha, steps = 4 / 255, 1 / 255, 10
    if args.variant == "a":
        from mmrobust.attacks.image import PGD

        attack = lambda: PGD(classifier, eps, alpha, steps, generator=torch.Generator().manual_seed(0))(images, labels)
    elif args.variant == "b":
        attack = lambda: reencode_pgd(model, prompts, images, labels, eps, alpha, steps)
    else:
        try:
            import torchattacks
        except ImportError:
            return {"variant": "c", "skipped": "torchattacks not installed "
                    "(VIRTUAL_ENV=.venv uv pip install --no-deps torchattacks)"}
        atk = torchattacks.PGD(classifier, eps=eps, alpha=alpha, steps=steps, random_start=True)
        attack = lambda: atk(images, labels)
    attack()  # warm-up
    cuda = images.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        adv = attack()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    assert float((adv - images).abs().max()) <= eps + 1e-6
    best = min(times)
    out = {"variant": args.variant, "seconds_best": best, "seconds_all": times,
           "images_per_s": args.batch / best, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_growth_during_attack_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024}
    if cuda:
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["a", "b", "c", "all"], default="all")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per subprocess")
    parser.add_argument("--rounds", type=int, default=3, help="subprocesses per variant, interleaved")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.variant != "all":
        print(json.dumps(run_variant(args)))
        return
    # rounds interleave the variants (a b c a b c ...) so a burst of machine load hits all of them alike
    runs: dict[str, list[dict]] = {v: [] for v in "abc"}
    for _ in range(args.rounds):
        for variant in "abc":
            cmd = [sys.executable, __file__, "--variant", variant, "--batch", str(args.batch), "--classes",
                   str(args.classes), "--repeats", str(args.repeats), "--threads", str(args.threads),
                   "--device", args.device]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                runs[variant].append({"variant": variant,
                                      "skipped": f"failed: {proc.stderr.strip().splitlines()[-1:]}"})
            else:
                runs[variant].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = {}
    for variant, rs in runs.items():
        ok = [r for r in rs if "skipped" not in r]
        if not ok:
            results[variant] = rs[0]
            continue
        best = min(ok, key=lambda r: r["seconds_best"])
        all_times = sorted(t for r in ok for t in r["seconds_all"])
        results[variant] = {**best, "seconds_median": all_times[len(all_times) // 2],
                            "peak_rss_mib": max(r["peak_rss_mib"] for r in ok)}
    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"device {args.device}, threads {args.threads}, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    print(f"model: NativeCLIP ViT width 256, 4 layers, patch 4 on 32x32 (65 tokens); text width 256, 4 layers; "
          f"{args.classes} class prompts; PGD-10 Linf eps 4/255, batch {args.batch}; "
          f"{args.rounds} interleaved rounds x {args.repeats} timed runs per variant\n")
    print("| variant | images/s (best) | s per batch: best / median | peak RSS MiB | RSS growth MiB | CUDA max alloc MiB |")
    print("|---|---|---|---|---|---|")
    for variant, r in results.items():
        if "skipped" in r:
            print(f"| ({variant}) {VARIANTS[variant]} | skipped: {r['skipped']} | | | | |")
            continue
        cuda = f"{r['cuda_max_allocated_mib']:.0f}" if "cuda_max_allocated_mib" in r else "-"
        print(f"| ({variant}) {VARIANTS[variant]} | {r['images_per_s']:.1f} | {r['seconds_best']:.2f} / {r['seconds_median']:.2f} | "
              f"{r['peak_rss_mib']:.0f} | {r['rss_growth_during_attack_mib']:.0f} | {cuda} |")
    a = results["a"].get("images_per_s")
    for other in "bc":
        if a and results[other].get("images_per_s"):
            med = results[other]["seconds_median"] / results["a"]["seconds_median"]
            print(f"\nmmrobust / ({other}): {a / results[other]['images_per_s']:.2f}x on best times, {med:.2f}x on medians")


if __name__ == "__main__":
    main()
