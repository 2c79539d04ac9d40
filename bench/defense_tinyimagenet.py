"""Defense comparison on proxy:tinyimagenet: fine-tune on CIFAR-10 train, score IID and zero-shot OOD.

The paper's two tasks at proxy scale: every method (clean fine-tuning, TeCoA, MMCoA; equal budgets) is
fine-tuned on the real CIFAR-10 training images in ../shared/data (5,085 available), then the undefended and
the fine-tuned models are scored on CIFAR-10 test (the fine-tuning distribution) and zero-shot on
Tiny-ImageNet val (200 other classes) under clean / image (PGD) / text (embed-sub) / multimodal (sep) attacks.

    .venv/bin/python bench/defense_tinyimagenet.py --data-root ../shared/data --output-dir /tmp/defense_tin

Needs a built ``proxy:tinyimagenet`` (``mmrobust proxy build tinyimagenet --data-root ../shared/data``);
exits with status 3 and says so otherwise. Prints a markdown table (pasted into bench/RESULTS_defense.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mmrobust.demo import COLUMNS, COLUMN_TITLES, demo_row
from mmrobust.studies.runner import pin_model, row_from_report
from mmrobust.errors import ModelLoadError
from mmrobust.eval.run import EvalConfig, run_evaluation
from mmrobust.training import TrainConfig, train
from mmrobust.utils.files import write_json_atomic

EVAL_SETS = (("cifar10", "test"), ("tinyimagenet", "val"))


def markdown(rows_by_set: dict[str, list[dict]]) -> str:
    lines = []
    for key, rows in rows_by_set.items():
        lines.append(f"\n**{key}** (n={rows[0]['n']})\n")
        lines.append("| method | " + " | ".join(COLUMN_TITLES[c] for c in COLUMNS) + " |")
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for row in rows:
            cells = " | ".join(f"{100 * row[c]:.1f}" if row[c] is not None else "-" for c in COLUMNS)
            lines.append(f"| {row['method']} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--output-dir", default="/tmp/mmrobust-defense-tin")
    parser.add_argument("--model", default="proxy:tinyimagenet")
    parser.add_argument("--methods", default="clean,tecoa,mmcoa")
    parser.add_argument("--eps", type=float, default=1.0, help="evaluation PGD k/255 (the paper's 1/255; 4/255 drives the proxy to 0 %%)")
    parser.add_argument("--train-eps", type=float, default=1.0, help="training PGD k/255 (MMCoA: 1/255)")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--eval-steps", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--n-train", type=int, default=None, help="default: all 5,085 CIFAR-10 training images")
    parser.add_argument("--n-eval", type=int, default=200)
    parser.add_argument("--n-eval-tin", type=int, default=200)
    parser.add_argument("--tin-attacks", default="pgd,embed-sub,sep")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        spec = pin_model(args.model, out / "base_model").pinned_spec
    except ModelLoadError as exc:
        print(f"cannot run the bench: {exc}", file=sys.stderr)
        return 3
    timings: dict[str, float] = {}

    def evaluate(model_spec: str, name: str) -> dict[str, dict]:
        reports = {}
        for dataset, split in EVAL_SETS:
            tin = dataset == "tinyimagenet"
            t = time.perf_counter()
            reports[f"{dataset}/{split}"] = run_evaluation(EvalConfig(
                model=model_spec, dataset=dataset, data_root=args.data_root, split=split,
                n_samples=args.n_eval_tin if tin else args.n_eval, batch_size=100, seed=args.seed,
                templates="study", attacks=(args.tin_attacks if tin else "pgd,embed-sub,sep"), eps=args.eps / 255,
                steps=args.eval_steps, sanity=False, resume=False, progress=False, ensemble="each",
                output=str(out / f"eval_{name}_{dataset}.json"),
            ))
            timings[f"eval_{name}_{dataset}_s"] = round(time.perf_counter() - t, 1)
            print(f"[{name}] {dataset}/{split}: {reports[f'{dataset}/{split}']['metrics']['by_modality']}", flush=True)
        return reports

    rows: dict[str, list[dict]] = {f"{d}/{s}": [] for d, s in EVAL_SETS}
    for key, report in evaluate(spec, "none").items():
        rows[key].append(demo_row("none", row_from_report(report), None))
    training = {}
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        t = time.perf_counter()
        report = train(TrainConfig(
            model=spec, method=method, dataset="cifar10", data_root=args.data_root, output_dir=str(out / "runs" / method),
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, train="full", eps=args.train_eps / 255,
            steps=args.train_steps, templates="study", n_train=args.n_train,
            n_eval=args.n_eval, seed=args.seed, progress=False,
        ))
        timings[f"train_{method}_s"] = round(time.perf_counter() - t, 1)
        training[method] = {"trainable": report["trainable"], "history": report["history"],
                            "train_s": timings[f"train_{method}_s"]}
        print(f"[{method}] trained in {timings[f'train_{method}_s']} s", flush=True)
        for key, ev in evaluate(f"ckpt:{report['final_checkpoint']}", method).items():
            rows[key].append(demo_row(method, row_from_report(ev), report))
    timings["total_s"] = round(time.perf_counter() - t0, 1)
    table = markdown(rows)
    print(table)
    write_json_atomic(out / "defense_tinyimagenet.json", {"args": vars(args), "rows": rows, "training": training,
                                                         "timings": timings, "table": table})
    print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
