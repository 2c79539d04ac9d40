"""Does a lower attack precision keep attacks as strong?  fp32 vs tf32 vs bf16, per example.

For each model, every attack runs at each precision on the same images with the same per-example random
streams (keyed by dataset index, so the only difference is the arithmetic); the table gives robust accuracy,
per-example agreement with fp32 and the time (interleaved, medians over ``--repeats``). Models:
``proxy:tinyimagenet`` on CIFAR-10 test images, and a random-weight open_clip ViT-B-32 on random images
labelled with its own clean predictions (so every image is clean-correct). On a CPU, tf32 is a no-op (exactly
fp32) and bf16 is CPU autocast; the GPU numbers come from bench/device_check.py. Usage::

    PYTHONPATH=src python bench/bench_precision.py --data-root ../shared/data --out bench/RESULTS_precision.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def proxy_setup(args):
    from mmrobust.data import load_dataset, subsample_indices
    from mmrobust.models.zeroshot import ZeroShotClassifier
    from mmrobust.models import load_model

    model = load_model(args.proxy, device="cpu").eval()
    dataset = load_dataset(args.proxy_dataset, None if args.proxy_dataset == "digits" else args.data_root, "test")
    indices = subsample_indices(len(dataset), args.n_proxy, args.seed)
    classifier = ZeroShotClassifier.from_prompts(model, dataset.classes, dataset.templates).eval()
    images = torch.stack([dataset[i][0] for i in indices])
    labels = torch.tensor([dataset[i][1] for i in indices])
    with torch.no_grad():
        keep = (classifier(images).argmax(dim=1) == labels).nonzero().squeeze(1)  # attack only what stands
    return f"{args.proxy} on {args.proxy_dataset} ({len(keep)} clean-correct of {len(indices)})", classifier, images[keep], \
        labels[keep], [indices[i] for i in keep.tolist()]


def vit_setup(args):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from device_check import CLASSES, TEMPLATE, import_open_clip, own_labels, random_images

    import_open_clip()
    from mmrobust.models.zeroshot import ZeroShotClassifier
    from mmrobust.models import load_model

    model = load_model("open_clip:ViT-B-32", device="cpu").eval()
    classifier = ZeroShotClassifier.from_prompts(model, CLASSES, [TEMPLATE])
    images_u8 = random_images(args.n_vit, 224, 5)
    labels = own_labels(classifier, images_u8, torch.device("cpu"))
    return (f"open_clip ViT-B-32 (random weights) on {args.n_vit} random 224 px images", classifier,
            images_u8.float() / 255, labels, list(range(args.n_vit)))


def compare(args, title, classifier, images, labels, ids) -> list[str]:
    from mmrobust.attacks.protocol import AttackContext
    from mmrobust.attacks.registry import build_attacks

    lines = [f"### {title}", "", "| attack | precision | robust acc | agreement with fp32 | seconds (median) |",
             "|---|---|---|---|---|"]
    for name in args.attacks.split(","):
        options = {"eps": args.eps / 255, "norm": "Linf", "steps": args.steps, "restarts": 1,
                   "target_classes": 9}
        attack = build_attacks([name], options)[0]
        attack.prepare(AttackContext(None, classifier, [], [], [], torch.device("cpu"), seed=args.seed,
                                     progress=False))
        times = {p: [] for p in PRECISIONS}
        correct = {}
        for repeat in range(args.repeats):
            for precision in (PRECISIONS if repeat % 2 == 0 else PRECISIONS[::-1]):
                t0 = time.perf_counter()
                adv, _ = attack.adversarial(images, labels, ids, precision=precision)
                times[precision].append(time.perf_counter() - t0)
                with torch.no_grad():
                    correct[precision] = classifier(adv).argmax(dim=1) == labels
        n = len(labels)
        for precision in PRECISIONS:
            agree = int((correct[precision] == correct["fp32"]).sum())
            lines.append(f"| {name} | {precision} | {100 * correct[precision].float().mean():.1f} % "
                         f"({int(correct[precision].sum())}/{n}) | {agree}/{n} | "
                         f"{statistics.median(times[precision]):.1f} |")
        print("\n".join(lines[-3:]), flush=True)
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--proxy", default="proxy:tinyimagenet")
    parser.add_argument("--data-root", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--proxy-dataset", default="cifar10")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--n-proxy", type=int, default=200)
    parser.add_argument("--n-vit", type=int, default=8)
    parser.add_argument("--eps", type=float, default=1.0, help="L-inf budget K (K/255)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--attacks", default="pgd,apgd-ce")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="proxy,vit")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    text = [f"eps {args.eps:g}/255, {args.steps} steps, attacks {args.attacks}, {args.repeats} interleaved repeat(s), "
            f"torch {torch.__version__} on {platform.machine()} ({torch.get_num_threads()} threads); "
            "CPU: tf32 is a no-op (exactly fp32), bf16 is CPU autocast.", ""]
    for key in args.models.split(","):
        title, classifier, images, labels, ids = (proxy_setup if key == "proxy" else vit_setup)(args)
        text += compare(args, title, classifier, images, labels, ids)
    text.append(f"load average at the end: {os.getloadavg()}")
    print("\n".join(text))
    if args.out:
        Path(args.out).write_text("\n".join(text) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
