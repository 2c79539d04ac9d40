"""Write the "Tiny-ImageNet WordNet captions" retrieval fixture (Karpathy layout + webdataset) to a folder.

    python bench/make_retrieval_fixture.py --tinyimagenet-root ../shared/data --output /tmp/tin-captions

Real Tiny-ImageNet val photos (one per class, seeded), captions from WordNet names/synonyms; see
:mod:`mmrobust.data.retrieval_fixture`. Not Flickr30k: name it for what it is in any report.
"""

from __future__ import annotations

import argparse
import json

from mmrobust.data.retrieval_fixture import build_retrieval_fixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tinyimagenet-root", required=True, help="folder holding tiny-imagenet-200/")
    parser.add_argument("--output", required=True)
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--captions", type=int, default=5, help="captions per image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(build_retrieval_fixture(args.tinyimagenet_root, args.output, args.n_images, args.captions, args.seed),
                     indent=2))


if __name__ == "__main__":
    main()
