"""Co-Attack with the published label-free caption goal vs the caption-only attacks' image-guided goal.

    python bench/retrieval_coattack_goal.py --model ckpt:DIR --data-root FIXTURE -o OUT.json

Why: the caption-only attacks (``embed-sub`` ...) lower each caption's similarity to its own image, while
published Co-Attack attacks captions label-free (embedding KL). Comparing Co-Attack to text-only attacks is
only fair with the same text part; this runs Co-Attack with ``co_attack_text_goal=pair-similarity``.
"""

from __future__ import annotations

import argparse

from mmrobust.eval.run import EvalConfig, run_evaluation
from mmrobust.eval.retrieval_summary import summary_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--eps", type=float, default=1.0, help="K/255")
    args = parser.parse_args()
    config = EvalConfig(model=args.model, dataset="flickr30k", data_root=args.data_root, task="retrieval",
                        attacks="co-attack", eps=args.eps / 255, output=args.output, progress=False,
                        co_attack_text_goal="pair-similarity")
    print("\n".join(summary_lines(run_evaluation(config))))


if __name__ == "__main__":
    main()
