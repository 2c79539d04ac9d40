"""Benchmark: images/second of the evaluation batch pipeline on Tiny-ImageNet val, 0 vs N DataLoader workers.

Two measurements, each interleaved (0, N, 0, N, ...) in one process and reported as medians, so both
settings see the same machine load:
(a) decoding alone: every batch of ``--images`` val images through ``iterate_index_batches``;
(b) decoding + a consumer: the same batches through a clean zero-shot forward of a tiny CLIP built in code,
    the case where workers decode the next batches while the model works on the current one.
The batches are checked to be identical under both settings. Usage::

    .venv/bin/python bench/bench_data_loader.py --data-root ../shared/data [--workers 1,2 --images 2048]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def run_once(dataset, batches, workers, consumer=None) -> tuple[float, float]:
    from mmrobust.data.loader import iterate_index_batches

    checksum = 0.0
    t0 = time.perf_counter()
    for images, labels in iterate_index_batches(dataset, batches, workers):
        checksum += float(images[:, :, 0, 0].sum()) + float(labels.sum())
        if consumer is not None:
            with torch.no_grad():
                consumer(images)
    seconds = time.perf_counter() - t0
    return sum(len(b) for b in batches) / seconds, checksum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--workers", default="1,2", help="worker counts compared with 0, comma-separated")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = [0] + [int(w) for w in args.workers.split(",")]
    torch.set_num_threads(1)

    from mmrobust.data import load_dataset, subsample_indices
    from mmrobust.eval.zeroshot import ZeroShotClassifier
    from mmrobust.models.tiny import build_tiny

    dataset = load_dataset("tinyimagenet", args.data_root)
    indices = subsample_indices(len(dataset), args.images, seed=0)
    batches = [indices[i : i + args.batch] for i in range(0, len(indices), args.batch)]
    model = build_tiny(seed=0)
    classifier = ZeroShotClassifier.from_prompts(model, dataset.classes, ["a photo of a {}."])
    load_before = os.getloadavg()
    results: dict[tuple[str, int], list[float]] = {}
    sums: dict[tuple[str, int], set[float]] = {}
    for _ in range(args.repeats):
        for label, consumer in (("decode only", None), ("decode + tiny CLIP forward", classifier)):
            for workers in settings:
                rate, checksum = run_once(dataset, batches, workers, consumer)
                results.setdefault((label, workers), []).append(rate)
                sums.setdefault((label, workers), set()).add(round(checksum, 3))
    assert len({s for v in sums.values() for s in v}) == 1, "batches differ between worker settings"
    load_after = os.getloadavg()
    print(f"Tiny-ImageNet val, {args.images} images, batch {args.batch}, torch threads 1, "
          f"{os.cpu_count()} CPUs, load average before/after {load_before[0]:.2f}/{load_after[0]:.2f}")
    print()
    print("| pipeline | " + " | ".join(f"workers={w} (img/s)" for w in settings) + " | "
          + " | ".join(f"ratio {w}/0" for w in settings[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(settings) - 1))
    for label in ("decode only", "decode + tiny CLIP forward"):
        rates = [statistics.median(results[(label, w)]) for w in settings]
        print(f"| {label} | " + " | ".join(f"{r:.0f}" for r in rates) + " | "
              + " | ".join(f"{r / rates[0]:.2f}x" for r in rates[1:]) + " |")
    print()
    print("runs (img/s):", {f"{k[0]} w={k[1]}": [round(x) for x in v] for k, v in results.items()})


if __name__ == "__main__":
    main()
