"""Write a CLIP_benchmark-layout webdataset folder from a local dataset, losslessly (PNG), for benchmarks.

    .venv/bin/python bench/make_wds_fixture.py --dataset cifar10 --data-root ../shared/data -o runs/wds_cifar10

The folder then works as ``--datasets wds:runs/wds_cifar10`` and gives exactly the accuracy of the original
loader on the same images (tests/test_wds.py checks this on the real CIFAR-10 test images).
"""

from __future__ import annotations

import argparse

from mmrobust.data import load_dataset
from mmrobust.data.wds_writer import write_wds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--split", default=None)
    parser.add_argument("--max-count", type=int, default=10_000, help="samples per shard")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.data_root, args.split)
    folder = write_wds(dataset, args.output, split="test", max_count=args.max_count)
    print(f"{len(dataset)} images of {args.dataset}/{dataset.split} -> {folder} (wds:{folder})")


if __name__ == "__main__":
    main()
