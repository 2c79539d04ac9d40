"""mmrobust vs AutoAttack (fra31/auto-attack) in one run: robust accuracy, per-example agreement, wall time.

Same model, images and budget for both: the zero-shot classifier of ``--model`` on ``--n`` CIFAR-10 test
images, L-inf ``--eps``/255, ``--steps`` iterations; APGD-CE, APGD-T (9 target classes) and the worst case
of the two (AutoAttack's cascade: APGD-T only on what APGD-CE left standing; mmrobust's ``--ensemble
cascade``). Both sides attack only the clean-correct images. mmrobust is timed through its real evaluation
loop (``mmrobust.eval.robust.run_attacks``: clean pass + attacks, images read from the dataset), AutoAttack
through ``run_standard_evaluation`` (clean pass + its checks + attacks) on the same images in memory.
Runs are interleaved (the order alternates per repeat) and the medians reported, with the load average.

AutoAttack is not on PyPI and is not a dependency: fetch the canonical repository and install it into the
venv from that local copy (``uv pip install --no-deps /path/to/auto-attack``); without it the bench exits
with a message. Usage::

    PYTHONPATH=src .venv/bin/python bench/bench_autoattack.py --model proxy:tinyimagenet \\
        --data-root ../shared/data --n 200 --eps 0.5 --steps 100 --repeats 3 --out bench/RESULTS_autoattack.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

CASES = {"apgd-ce": ["apgd-ce"], "apgd-t": ["apgd-t"], "worst case": ["apgd-ce", "apgd-t"]}


def load(args):
    from mmrobust.data import load_dataset, subsample_indices
    from mmrobust.models.zeroshot import ZeroShotClassifier
    from mmrobust.models import load_model

    model = load_model(args.model, device="cpu").eval()
    dataset = load_dataset(args.dataset, args.data_root if args.dataset != "digits" else None, "test")
    indices = subsample_indices(len(dataset), args.n, args.seed)
    classifier = ZeroShotClassifier.from_prompts(model, dataset.classes, dataset.templates).eval()
    items = [dataset[int(i)] for i in indices]
    images = torch.stack([image for image, _ in items])
    labels = torch.tensor([label for _, label in items])
    return model, classifier, dataset, indices, images, labels


def run_mmrobust(args, classifier, dataset, indices, names) -> tuple[float, torch.Tensor]:
    from mmrobust.attacks.protocol import AttackContext
    from mmrobust.eval.resume import EvalState
    from mmrobust.eval.robust import prepare_attacks, run_attacks, summarize
    from mmrobust.attacks.registry import build_attacks

    options = {"eps": args.eps / 255, "norm": "Linf", "steps": args.steps, "restarts": 1, "target_classes": 9,
               "precision": args.precision}
    attacks = build_attacks(names, options)
    ctx = AttackContext(classifier.model, classifier, list(dataset.classes), list(dataset.templates), [],
                        torch.device("cpu"), seed=args.seed, progress=False)
    state = EvalState(config_hash="bench")
    prepare_attacks(attacks, ctx, state)
    t0 = time.perf_counter()
    run_attacks(ctx, attacks, dataset, indices, args.batch, state, ensemble="cascade")
    seconds = time.perf_counter() - t0
    _, per_example = summarize(state, attacks, len(dataset.classes))
    return seconds, torch.tensor(per_example["worst_case"])


def run_autoattack(args, classifier, images, labels, names) -> tuple[float, torch.Tensor]:
    from autoattack import AutoAttack

    adversary = AutoAttack(classifier, norm="Linf", eps=args.eps / 255, version="custom", attacks_to_run=names,
                           device="cpu", verbose=False, seed=args.seed)
    adversary.apgd.n_restarts, adversary.apgd.n_iter = 1, args.steps
    adversary.apgd_targeted.n_restarts, adversary.apgd_targeted.n_iter = 1, args.steps
    adversary.apgd_targeted.n_target_classes = 9
    t0 = time.perf_counter()
    adv = adversary.run_standard_evaluation(images, labels, bs=args.batch)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        robust = classifier(adv).argmax(dim=1) == labels
    return seconds, robust


def table(args, results, clean_acc) -> str:
    n = args.n
    lines = [
        "| attack | mmrobust robust acc | AutoAttack robust acc | Δ images | per-example agreement | "
        "mmrobust s (median) | AutoAttack s (median) | time ratio mmrobust/AA |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case, r in results.items():
        mm, aa = r["mmrobust_robust"], r["autoattack_robust"]
        t_mm, t_aa = statistics.median(r["mmrobust_s"]), statistics.median(r["autoattack_s"])
        lines.append(
            f"| {case} | {100 * sum(mm) / n:.1f} % | {100 * sum(aa) / n:.1f} % | {sum(mm) - sum(aa):+d} | "
            f"{sum(a == b for a, b in zip(mm, aa))}/{n} | {t_mm:.1f} | {t_aa:.1f} | {t_mm / t_aa:.2f} |")
    return "\n".join(lines) + f"\n\nclean accuracy {100 * clean_acc:.1f} % (n={n})\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="proxy:tinyimagenet")
    parser.add_argument("--data-root", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--eps", type=float, default=0.5, help="L-inf budget K (K/255)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    parser.add_argument("--out", default=None, help="write the markdown table here (default: stdout only)")
    args = parser.parse_args(argv)
    try:
        import autoattack  # noqa: F401
    except ImportError:
        print("skipped: `autoattack` is not importable. Fetch github.com/fra31/auto-attack and install it into the "
              "venv from the local copy (uv pip install --no-deps PATH); it is not on PyPI and not a dependency.")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    model, classifier, dataset, indices, images, labels = load(args)
    with torch.no_grad():
        clean = classifier(images).argmax(dim=1) == labels
    cases = {name: CASES[name] for name in args.cases.split(",")}
    results = {case: {"mmrobust_s": [], "autoattack_s": []} for case in cases}
    for repeat in range(args.repeats):
        for case, names in cases.items():
            order = ("mmrobust", "autoattack") if repeat % 2 == 0 else ("autoattack", "mmrobust")
            for tool in order:
                if tool == "mmrobust":
                    seconds, robust = run_mmrobust(args, classifier, dataset, indices, names)
                else:
                    seconds, robust = run_autoattack(args, classifier, images, labels, names)
                results[case][f"{tool}_s"].append(round(seconds, 2))
                results[case][f"{tool}_robust"] = [bool(v) for v in robust.tolist()]  # deterministic per seed
                print(f"[repeat {repeat}] {case:<10} {tool:<10} {seconds:7.1f} s  robust {int(robust.sum())}/{args.n}"
                      f"  load {os.getloadavg()[0]:.2f}", flush=True)
            mm, aa = results[case]["mmrobust_robust"], results[case]["autoattack_robust"]
            print(f"[repeat {repeat}] {case:<10} per-example agreement {sum(a == b for a, b in zip(mm, aa))}/{args.n}",
                  flush=True)
    text = table(args, results, float(clean.float().mean()))
    header = (f"model {args.model}, {args.dataset} test n={args.n} (seed {args.seed}), L-inf {args.eps:g}/255, "
              f"{args.steps} iterations, batch {args.batch}, {args.repeats} interleaved repeats, "
              f"torch {torch.__version__} on {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} threads, load average at the end {os.getloadavg()}\n\n")
    print(header + text)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "clean": clean.tolist(), "results": results}, handle)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
