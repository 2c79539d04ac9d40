"""Measured effect of the released BERT-Attack's departures: text accuracy under ``bert-attack-released`` vs
``bert-attack`` (the corrected algorithm), paired on the same images, per dataset and seed.

The study's text attack (test.py mode 2) perturbs the class prompts "This is a photo of a {class}" once and
classifies clean images against them. Both recipes attack the same prompts with the same masked LM; images
are the same, so the difference of accuracies is paired (exact McNemar test and paired bootstrap interval,
:mod:`mmrobust.stats`), and the seeds aggregate with :func:`mmrobust.studies.intervals.aggregate_seeds`-style
mean ± t interval. No pretrained masked LM exists on this machine: the MLM is a seeded *random*
``BertForMaskedLM(BertConfig())`` on the bert-base-uncased vocabulary (seed = the run's seed), so this
measures the mechanics (positions, round trip, filters), not what a pretrained BERT would propose.

    OMP_NUM_THREADS=1 .venv/bin/python bench/released_text_effect.py --model proxy:tinyimagenet \\
        --data-root /work/shared/data -n 300 --seeds 0,1,2 --out bench/released_text_effect.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

TEMPLATE = "This is a photo of a {}"  # the released test.py's class prompt


def seeded_mlm(seed: int):
    import torchvision_shim  # noqa: F401  (transformers' BERT imports torchvision, whose wheel needs it here)
    import transformers

    from mmrobust.attacks.text.mlm import MaskedLanguageModel
    from mmrobust.models.tokenizers import minilm_model_dir

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_model_dir()), local_files_only=True)
    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(transformers.BertConfig()).eval()
    return MaskedLanguageModel(model, tokenizer, f"random-bert-base seed {seed}")


@torch.no_grad()
def image_features(model, dataset, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(dataset), size=min(n, len(dataset)), replace=False))
    feats, labels = [], []
    for start in range(0, len(index), 64):
        batch = [dataset[int(i)] for i in index[start : start + 64]]
        images = torch.stack([b[0] for b in batch])
        feats.append(model.encode_image(images, normalize=True).float())
        labels += [int(b[1]) for b in batch]
    return torch.cat(feats), np.asarray(labels)


@torch.no_grad()
def correct(model, prompts: list[str], feats: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    text = model.encode_text(prompts, normalize=True).float()
    return (feats @ text.t()).argmax(dim=-1).numpy() == labels


def run(model, dataset_name: str, root: str, n: int, seed: int) -> dict:
    from mmrobust.attacks.text.recipes import build_text_attack
    from mmrobust.data import load_dataset
    from mmrobust.stats import mcnemar_exact, paired_bootstrap

    dataset = load_dataset(dataset_name, root=root)
    prompts = [TEMPLATE.format(c) for c in dataset.classes]
    feats, labels = image_features(model, dataset, n, seed)
    mlm = seeded_mlm(seed)
    row = {"dataset": dataset_name, "classes": len(prompts), "n": int(len(labels)), "seed": seed}
    outcomes = {"clean": correct(model, prompts, feats, labels)}
    for recipe in ("bert-attack", "bert-attack-released"):
        started = time.perf_counter()
        attacker = build_text_attack(recipe, model, mlm=mlm)
        adversarial = [r.perturbed for r in attacker.attack(prompts)]
        outcomes[recipe] = correct(model, adversarial, feats, labels)
        row[recipe] = {"accuracy": float(outcomes[recipe].mean()), "changed": sum(a != p for a, p in zip(adversarial, prompts)),
                       "examples": [f"{p} -> {a}" for p, a in list(zip(prompts, adversarial))[:5]],
                       "cost": attacker.last_cost.to_dict(), "seconds": round(time.perf_counter() - started, 1)}
    row["clean"] = float(outcomes["clean"].mean())
    diff = paired_bootstrap(outcomes["bert-attack-released"], outcomes["bert-attack"], n_resamples=5000, seed=0)
    test = mcnemar_exact(outcomes["bert-attack-released"], outcomes["bert-attack"])
    row["released_minus_corrected"] = {"difference": diff.difference, "low": diff.low, "high": diff.high,
                                       "mcnemar_p": test.p_value, "b": test.b, "c": test.c}
    print(json.dumps({k: v for k, v in row.items() if k not in ("bert-attack", "bert-attack-released")}), flush=True)
    return row


def summarize(rows: list[dict]) -> dict:
    from mmrobust.stats import t_quantile_975

    out = {}
    for name in sorted({r["dataset"] for r in rows}):
        d = np.asarray([r["released_minus_corrected"]["difference"] for r in rows if r["dataset"] == name])
        half = t_quantile_975(len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        out[name] = {"seeds": len(d), "mean_difference": float(d.mean()), "t95_low": float(d.mean() - half),
                     "t95_high": float(d.mean() + half)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="proxy:tinyimagenet")
    parser.add_argument("--data-root", default="/work/shared/data")
    parser.add_argument("--datasets", default="cifar10,tinyimagenet")
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("bench/released_text_effect.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from mmrobust.models import load_model

    model = load_model(args.model, "cpu").eval()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.datasets.split(","):
            rows.append(run(model, name, args.data_root, args.n, seed))
            args.out.write_text(json.dumps({"model": args.model, "rows": rows, "summary": summarize(rows)}, indent=1) + "\n")
    print(json.dumps(summarize(rows), indent=1))


if __name__ == "__main__":
    main()
