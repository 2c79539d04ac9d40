"""Does a text attack on the class prompts hurt more when there are more classes? (the study's finding 2)

Same model, same attack, two label sets: CIFAR-10 (10 classes) and Tiny-ImageNet-200 (200 classes), the
study's template "This is a photo of a {}", at most ``--text-words`` words changed per prompt. Accuracy
is measured clean, and robust accuracy as ``mmrobust eval`` defines it (correct with the clean prompts and
with the adversarial ones); the drop is the difference.

Two modes:

``--mode real`` (default ``--model proxy:tinyimagenet``)
    real images: CIFAR-10 test and Tiny-ImageNet val subsets from ``--data-root``. The task-aware goal
    (``zero-shot-margin``) uses ``--goal-images`` clean *training* images per class, never the scored ones.
``--mode oracle``
    no image model: the pretrained MiniLM text encoder (the proxies' text side) and "oracle" image
    features equal to the clean class embeddings (clean accuracy 100 % by construction). It isolates the
    text side: how often does a one-word change make a class prompt closer to another class than to
    its own images? Runs in about a minute, with nothing but PyPI packages and the class names.

``--protect-classnames`` forbids changing a prompt's own class words and introducing another class's name
(:class:`~mmrobust.attacks.text.classnames.ClassNameConstraint`); every table counts the adversarial prompts
that now name another class ("collisions") either way.

Results go to ``bench/RESULTS_text.md`` (one section per mode/model/protection, other sections kept).

    .venv/bin/python bench/class_count_text_attack.py --mode oracle
    .venv/bin/python bench/class_count_text_attack.py --mode real --model proxy:tinyimagenet --n-images 1000
    .venv/bin/python bench/class_count_text_attack.py --mode real --model proxy:tinyimagenet --protect-classnames
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from mmrobust.attacks.text.attacker import eval_mode
from mmrobust.attacks.text.classnames import ClassNameConstraint, collisions
from mmrobust.attacks.text.goals import ZeroShotMarginGoal
from mmrobust.attacks.text.recipes import build_text_attack
from mmrobust.data import templates as template_sets
from mmrobust.data.registry import load_dataset
from mmrobust.data.sampling import subsample_indices
from mmrobust.models.zeroshot import build_prompts, encode_class_prompts
from mmrobust.utils.files import atomic_write

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS_text.md"
DATASETS = (("cifar10", "test", "train"), ("tinyimagenet", "val", "train"))


# ---------------------------------------------------------------------------------------------- pieces
def class_features(model, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    with eval_mode(model), torch.no_grad():
        return torch.cat([model.encode_image(images[s : s + batch].to(model.device), normalize=True)
                          for s in range(0, len(images), batch)])


def correct(features: torch.Tensor, labels: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    return (features @ class_embeddings.t()).argmax(1).cpu() == labels.cpu()


def accuracy(features: torch.Tensor, labels: torch.Tensor, class_embeddings: torch.Tensor) -> float:
    return float(correct(features, labels, class_embeddings).float().mean())


def robust_accuracy(features: torch.Tensor, labels: torch.Tensor, clean_embeddings: torch.Tensor,
                    adversarial_embeddings: torch.Tensor) -> float:
    """Robust accuracy as ``mmrobust eval`` defines it: correct on clean prompts AND on the adversarial ones.
    (Accuracy under the adversarial prompts alone would also count images that the changed classifier now
    gets right by accident.)"""
    both = correct(features, labels, clean_embeddings) & correct(features, labels, adversarial_embeddings)
    return float(both.float().mean())


def prompt_embeddings(model, prompts: Sequence[Sequence[str]]) -> torch.Tensor:
    with eval_mode(model), torch.no_grad():
        return encode_class_prompts(model, prompts)


def attack_prompts(model, prompts, classes, recipe: str, goal: Any, args):
    """Adversarial prompts (same shape) + totals for the report."""
    extra = []
    if args.protect_classnames:
        extra.append(ClassNameConstraint(classes, {p: c for c, per_class in enumerate(prompts) for p in per_class}))
    attacker = build_text_attack(recipe, model, max_words=args.text_words, mlm=args.mlm, goal=goal, seed=args.seed,
                                 extra_constraints=extra)
    flat = [p for per_class in prompts for p in per_class]
    results = attacker.attack(flat, progress=True)
    per = len(prompts[0])
    adversarial = [[r.perturbed for r in results[c * per : (c + 1) * per]] for c in range(len(prompts))]
    collided = [r for i, r in enumerate(results) if collisions(r.original, r.perturbed, i // per, classes)]
    stats = {"changed": sum(r.n_changed > 0 for r in results), "n_prompts": len(results),
             "queries": sum(r.queries for r in results), "seconds": attacker.last_cost.seconds,
             "collisions": len(collided), "encoder_calls": attacker.last_cost.text_encoder_calls,
             "examples": [r.marked for r in results if r.n_changed][:3],
             "collision_examples": [r.marked for r in collided][:3]}
    return adversarial, stats


def images_per_class(dataset, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` images of each class in a seeded shuffle of ``dataset``."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    labels = [int(l) for l in dataset.labels]
    counts: dict[int, int] = {}
    keep = []
    for i in order:
        if counts.get(labels[i], 0) < per_class:
            counts[labels[i]] = counts.get(labels[i], 0) + 1
            keep.append(i)
    items = [dataset[i] for i in keep]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


# ---------------------------------------------------------------------------------------------- modes
def run_real(args) -> tuple[str, list[dict[str, Any]]]:
    from mmrobust.models.registry import load_model

    model = load_model(args.model)
    rows = []
    for name, split, train_split in DATASETS:
        dataset = load_dataset(name, args.data_root, split)
        indices = subsample_indices(len(dataset), min(args.n_images, len(dataset)), args.seed)
        items = [dataset[i] for i in indices]
        images, labels = torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
        features = class_features(model, images)
        prompts = build_prompts(dataset.classes, [template_sets.STUDY_TEMPLATE])
        clean_embeddings = prompt_embeddings(model, prompts)
        clean = accuracy(features, labels, clean_embeddings)
        goal_images = goal_labels = goal_features = None
        if "zero-shot-margin" in args.goals:
            goal_images, goal_labels = images_per_class(load_dataset(name, args.data_root, train_split),
                                                        args.goal_images, args.seed)
            goal_features = class_features(model, goal_images)
        for recipe in args.recipes:
            for goal_name in args.goals:
                goal: Any = goal_name
                if goal_name == "zero-shot-margin":
                    goal = ZeroShotMarginGoal(model, goal_features, goal_labels.to(model.device),
                                              len(prompts), len(prompts[0]))
                adversarial, stats = attack_prompts(model, prompts, dataset.classes, recipe, goal, args)
                attacked = robust_accuracy(features, labels, clean_embeddings, prompt_embeddings(model, adversarial))
                rows.append({"dataset": f"{name}/{split}", "classes": len(prompts), "images": len(labels),
                             "recipe": recipe, "goal": goal_name, "clean": clean, "attacked": attacked, **stats})
                print(rows[-1], file=sys.stderr)
    return f"real images, model `{args.model}`", rows


def run_oracle(args) -> tuple[str, list[dict[str, Any]]]:
    from mmrobust.proxy.architecture import build_proxy_model
    from mmrobust.proxy.recipes import get_recipe

    model = build_proxy_model(get_recipe("tinyimagenet"), 0, "minilm-oracle").eval()
    rows = []
    for name, split, _ in DATASETS:
        classes = load_dataset(name, args.data_root, split).classes
        prompts = build_prompts(classes, [template_sets.STUDY_TEMPLATE])
        clean_embeddings = prompt_embeddings(model, prompts)
        labels = torch.arange(len(classes))
        features = clean_embeddings.clone()  # oracle images: one per class, exactly at its clean class embedding
        clean = accuracy(features, labels, clean_embeddings)
        for recipe in args.recipes:
            for goal_name in args.goals:
                goal: Any = goal_name
                if goal_name == "zero-shot-margin":
                    goal = ZeroShotMarginGoal(model, features, labels, len(prompts), 1)
                adversarial, stats = attack_prompts(model, prompts, classes, recipe, goal, args)
                attacked = robust_accuracy(features, labels, clean_embeddings, prompt_embeddings(model, adversarial))
                rows.append({"dataset": f"{name} class names", "classes": len(prompts), "images": len(labels),
                             "recipe": recipe, "goal": goal_name, "clean": clean, "attacked": attacked, **stats})
                print(rows[-1], file=sys.stderr)
    return "oracle image features (= clean class embeddings), MiniLM-L6 text encoder", rows


# ---------------------------------------------------------------------------------------------- report
def section(title: str, rows: list[dict[str, Any]], args) -> str:
    lines = [
        f"## {title}",
        "",
        f"Template `{template_sets.STUDY_TEMPLATE}`, at most {args.text_words} word(s) changed per prompt, "
        f"seed {args.seed}, torch threads {torch.get_num_threads()}, run {time.strftime('%Y-%m-%d %H:%M')}, "
        f"--protect-classnames {'on' if args.protect_classnames else 'off'}, load average "
        f"{os.getloadavg()[0]:.1f}. Collisions = adversarial prompts that now contain another class's name.",
        "",
        "| label set | classes | images | attack | goal | clean acc | robust acc | drop (pts) | relative drop | "
        "prompts changed | collisions | queries | encode calls | attack time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        drop = r["clean"] - r["attacked"]
        relative = drop / r["clean"] if r["clean"] > 0 else float("nan")
        lines.append(
            f"| {r['dataset']} | {r['classes']} | {r['images']} | {r['recipe']} | {r['goal']} | {100 * r['clean']:.1f} | "
            f"{100 * r['attacked']:.1f} | {100 * drop:.1f} | {100 * relative:.0f} % | {r['changed']}/{r['n_prompts']} | "
            f"{r['collisions']} | {r['queries']} | {r['encoder_calls']} | {r['seconds']:.1f} |"
        )
    lines += ["", "Examples of adversarial prompts:", ""]
    seen = set()
    for r in rows:
        key = (r["dataset"], r["recipe"], r["goal"])
        if key not in seen and r["examples"]:
            seen.add(key)
            lines.append(f"- {r['dataset']}, {r['recipe']}/{r['goal']}: " + "; ".join(f"`{e}`" for e in r["examples"]))
            if r["collision_examples"]:
                lines.append("  - collisions: " + "; ".join(f"`{e}`" for e in r["collision_examples"]))
    return "\n".join(lines) + "\n"


def write_section(key: str, body: str) -> None:
    """Replace this run's section in RESULTS_text.md, keeping the others."""
    header = ("# Text attacks vs number of classes (bench/class_count_text_attack.py)\n\n"
              "Accuracy in %; drop = clean - attacked, in accuracy points. Regenerate with the command in the "
              "script's docstring.\n\n")
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else header
    block = f"<!-- run:{key} -->\n{body}<!-- end:{key} -->\n"
    pattern = re.compile(rf"<!-- run:{re.escape(key)} -->.*?<!-- end:{re.escape(key)} -->\n", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    atomic_write(RESULTS, lambda p: p.write_text(text, encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("real", "oracle"), default="real")
    parser.add_argument("--model", default="proxy:tinyimagenet")
    parser.add_argument("--data-root", default=os.environ.get("MMROBUST_SHARED_DATA", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--n-images", type=int, default=1000, help="scored images per label set (real mode)")
    parser.add_argument("--goal-images", type=int, default=4, help="train images per class for zero-shot-margin")
    parser.add_argument("--recipes", default="embed-sub,typo", help="comma list; add bert-attack with --mlm")
    parser.add_argument("--goals", default="embedding-kl,zero-shot-margin")
    parser.add_argument("--text-words", type=int, default=1)
    parser.add_argument("--mlm", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small encodes)")
    parser.add_argument("--protect-classnames", action="store_true",
                        help="forbid changing a prompt's class words or introducing another class's name")
    args = parser.parse_args(argv)
    args.recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    args.goals = [g.strip() for g in args.goals.split(",") if g.strip()]
    torch.set_num_threads(args.threads)
    title, rows = run_oracle(args) if args.mode == "oracle" else run_real(args)
    key = args.mode if args.mode == "oracle" else f"real-{args.model}"
    if args.protect_classnames:
        key += "-protected"
        title += ", --protect-classnames"
    write_section(key, section(title, rows, args))
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
