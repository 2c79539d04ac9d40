"""Does ``--compile`` (torch.compile of the towers) pay off?  PGD-10 with and without, same model and images.

Two copies of one model, one with :func:`mmrobust.utils.compile.compile_towers`; the first (compiling) call is
timed separately, then steady-state PGD-10 calls are interleaved and the medians compared, and the
adversarial images must agree (compiled kernels may round differently, so agreement is per example).
Usage::

    PYTHONPATH=src python bench/bench_compile.py --model proxy:tinyimagenet --batch 64 --out bench/RESULTS_compile.md
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="proxy:tinyimagenet")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eps", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmrobust.attacks.image.pgd import PGD
    from mmrobust.attacks.image.streams import ExampleStreams
    from mmrobust.models.zeroshot import ZeroShotClassifier
    from mmrobust.models import load_model
    from mmrobust.utils.compile import compile_towers

    classes = [f"class {i}" for i in range(10)]
    plain = load_model(args.model, device="cpu").eval()
    compiled = compile_towers(copy.deepcopy(plain))
    classifiers = {"eager": ZeroShotClassifier.from_prompts(plain, classes, ["a photo of a {}"]),
                   "compiled": ZeroShotClassifier.from_prompts(compiled, classes, ["a photo of a {}"])}
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, 3, args.image_size, args.image_size, generator=generator)
    with torch.no_grad():
        labels = classifiers["eager"](images).argmax(dim=1)
    streams = ExampleStreams.for_examples(0, range(args.batch), "bench-compile")
    eps = args.eps / 255

    def run(name: str) -> tuple[float, torch.Tensor]:
        t0 = time.perf_counter()
        adv = PGD(classifiers[name], eps, eps / 4, 10, track_best=True)(images, labels, streams=streams)
        return time.perf_counter() - t0, adv

    first = {name: run(name)[0] for name in classifiers}  # eager warm-up / compilation
    times = {name: [] for name in classifiers}
    adv = {}
    for repeat in range(args.repeats):
        for name in (list(classifiers) if repeat % 2 == 0 else list(classifiers)[::-1]):
            seconds, adv[name] = run(name)
            times[name].append(seconds)
    with torch.no_grad():
        correct = {name: classifiers["eager"](a).argmax(dim=1) == labels for name, a in adv.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    lines = [
        f"model {args.model}, PGD-10 on {args.batch} random {args.image_size} px images, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats, load average {os.getloadavg()}", "",
        "| towers | first call s (incl. compile) | steady PGD-10 s (median) | img/s | robust acc |", "|---|---|---|---|---|",
    ]
    for name in classifiers:
        lines.append(f"| {name} | {first[name]:.1f} | {median[name]:.2f} | {args.batch / median[name]:.1f} | "
                     f"{100 * correct[name].float().mean():.1f} % |")
    agree = int((correct["eager"] == correct["compiled"]).sum())
    lines += ["", f"speed-up compiled/eager: {median['eager'] / median['compiled']:.2f}x; per-example agreement "
                  f"{agree}/{args.batch}; compile cost is repaid after "
                  f"{max(first['compiled'] - median['compiled'], 0) / max(median['eager'] - median['compiled'], 1e-9):.0f}"
                  " PGD-10 batches (when compiled is faster)"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
