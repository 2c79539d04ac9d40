"""Golden fixtures of one training step of the study's released ``MMCoA.py`` (ElleZWQ/MMCoA), run as released.

Runs the reference's OWN code from a checkout outside the project -- its ``clip.load`` / ``build_model``
(``replace/clip.py``, ``replace/model.py``), ``attack_pgd`` (``attacks.py``), ``clip_img_preprocessing`` /
``multiGPU_CLIP`` (``models/model.py``), ``Image_Text_attack`` and the BertAttack it builds (``MMCoA.py``,
``attack/bert_attack.py``), and the training loop's own statements, compiled from ``MMCoA.py``'s source at run
time -- on a seeded random-weight small CLIP in OpenAI's format and four fixed images (labels 3/7/0/5, or 3/3/0/5),
in four cases (image term only, both terms, a class twice, two steps), and writes only what came out (the gradients and the parameter update as digests, the adversarial images and captions,
the loss) to ``tests/fixtures/released/mmcoa_step.json``. ``tests/test_released_golden_step.py`` loads the
same state dict into mmrobust and checks that a step of ``--method mmcoa-released`` gives the same update.
Made from ElleZWQ/MMCoA at commit 5217ba9 (the mirror's HEAD).
Nothing of the reference's code is kept in the project.

    git --git-dir=/work/.mirror/ElleZWQ+MMCoA/repo archive HEAD | tar x -C /tmp/mmcoa
    OMP_NUM_THREADS=1 .venv/bin/python bench/released_golden_step.py /tmp/mmcoa

How the reference is run (all patches live in this process only; the checkout is not modified):

* **CPU, fp32.** ``torch.Tensor.cuda`` and ``torch.nn.Module.cuda`` are made no-ops (``models/model.py``
  moves its mean/std to CUDA at import, ``attack_pgd`` its ``delta``, the loop its prompters); the released
  ``clip.load(path, "cpu")`` then runs ``model.float()`` itself, and ``convert_models_to_fp32`` runs as in
  ``__main__``.
  No autocast exists in ``MMCoA.py``, so fp32 is what it trains in. The PGD start ``delta.uniform_(-eps, eps)``
  therefore draws from torch's global CPU generator, which is seeded right before the step with the seed
  mmrobust's trainer gives that step's attack generator (``step_seed(seed, 0, 0, 0)``): both draw the same
  uniform noise, bit for bit (the fixture records it, and the test checks it).
* **The ``clip`` package.** The README installs OpenAI's ``clip`` and overwrites its ``clip.py`` and
  ``model.py`` with ``replace/``; here a ``clip`` package is assembled in ``sys.modules`` whose ``clip.clip``
  and ``clip.model`` are the checkout's ``replace/clip.py`` and ``replace/model.py``. OpenAI's
  ``simple_tokenizer`` (not in the checkout) is supplied by open_clip's ``SimpleTokenizer`` (the same BPE
  vocabulary and text cleaning), with OpenAI's names ``<|startoftext|>`` / ``<|endoftext|>`` added to its
  encoder for its ``<start_of_text>`` / ``<end_of_text>`` (the same ids, 49406 / 49407). ``pkg_resources`` (gone from current setuptools; ``replace/clip.py`` only
  reads ``pkg_resources.packaging.version``) is a stub holding the ``packaging`` module.
* **The weights.** The random state dict (``tests/openai_clip_weights.py``, fp16-representable values so the
  released fp16 cast inside ``build_model`` is lossless) is saved to a temporary file and loaded with the
  released ``clip.load(path, "cpu", jit=False, prompt_len=0)``, as ``MMCoA.py`` does with ``image_encoder``:
  ``build_model`` builds and loads it. ``clip.load`` first tries ``torch.jit.load`` on the open file (OpenAI's
  files are TorchScript archives) and, when that fails, ``torch.load`` on the same, now consumed, handle, which
  on torch 2 raises ``EOFError``; during that call ``torch.jit.load`` is made to fail at once without reading.
* **Unused imports.** ``ruamel.yaml`` (read only by the crashing config lines of ``__main__``) and ``einops``
  (``models/prompters.py``'s unused Transformer prompter) are empty stub modules. The ALBEF tokenizer gets
  the transformers-5 aliases of ``bench/released_parity_text.py`` (see there).
* **The BERT.** ``BertTokenizer.from_pretrained('bert-base-uncased')`` / ``BertForMaskedLM.from_pretrained``
  are replaced by the ALBEF tokenizer on the bert-base-uncased WordPiece vocabulary and the seeded random
  ``BertForMaskedLM`` of ``bench/released_parity_text.py`` (no pretrained weights here); the BertAttack runs
  unchanged (``cls=False``, its defaults: 1 word, k = 10).
* **The loop.** ``MMCoA.py``'s ``__main__`` cannot run as committed (``config = args.config`` is the path
  string, then ``config['output_dir']`` raises; ``args.resume`` does not exist), so it is not executed as a
  whole. ``MMCoA.py`` is imported as a module (its argparse reads the ``sys.argv`` set here: ``--lamda``,
  ``--lamda_advtxt``, ``--attack_domain both1``), its globals are set as ``__main__`` would set them (l.240-268:
  model, tokenizer, ``ref_model``, ``cls=False``, the ``NullPrompter`` / ``TokenPrompter(0)`` in
  ``DataParallel``, ``model.eval()``, ``Mulmodal_attacker = Image_Text_attack(device, **config)``), and then
  these statements of ``__main__`` are compiled from the file's own source and executed in the module's
  namespace: the ``if not config['full_tuning']`` block (``model.train()``, ``Adam(lr, betas=(0.9, 0.98),
  eps=1e-6, weight_decay=0.2)``), the ``loss_img`` / ``loss_txt`` / ``labels_texts`` / ``labels_texts_tokens``
  assignments, and the ``for images, images_ids, labels in pbar`` loop, with ``pbar`` one batch (two, the
  same one twice, in the ``both1-two-steps`` case: ``pbar`` then reseeds the global generator before each,
  with that step's ``step_seed(seed, 0, step, 0)``; the gradients and adversarial outputs recorded are the
  last step's, the update is the total over the steps).
  ``DataParallel`` on a machine without GPUs calls the module directly.
* **Observation.** ``optimizer.step`` is wrapped to record the gradients it applies, and
  ``Mulmodal_attacker.image_attack`` / ``text_attack`` to record their outputs; nothing else is changed.
"""

from __future__ import annotations

import argparse
import ast
import base64
import importlib
import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "tests" / "fixtures" / "released" / "mmcoa_step.json"

#: the training set's classes (mmrobust's built-in digits set, so the test needs no data) in MMCoA's template
CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LABELS = [3, 7, 0, 5]
WEIGHT_SEED, IMAGE_SEED, TRAIN_SEED, MLM_SEED = 0, 1, 0, 0
LR = 1e-4
#: Ad_cifar100_PGD.yaml's attack (eps 1, step 1, 10 iterations, in /255) and a small model's lr
CONFIG = {"epsilon": 1, "step_size": 1, "num_iters": 10, "norm_type": "l_inf", "full_tuning": True,
          "adv_train": True, "optimizer": {"opt": "adamW", "lr": LR}}
CASES = (
    {"name": "image-term", "lamda": 0.5, "lamda_advtxt": 0.0, "labels": LABELS},
    {"name": "both1", "lamda": 0.5, "lamda_advtxt": 0.5, "labels": LABELS},
    # a class twice: the released loop attacks and encodes the caption once per image, mmrobust once per class
    {"name": "both1-repeated-class", "lamda": 0.5, "lamda_advtxt": 0.5, "labels": [3, 3, 0, 5]},
    # two steps on the same batch: Adam's second step (moments, bias correction) on the once-updated model
    {"name": "both1-two-steps", "lamda": 0.5, "lamda_advtxt": 0.5, "labels": LABELS, "steps": 2},
)
#: small tensors whose whole update is stored
FULL = ("logit_scale", "ln_final.bias", "visual.ln_post.weight", "visual.class_embedding")
N_SAMPLES = 16


def images_and_labels(labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Four 32 x 32 images of 8-bit levels in [0, 1] (what ToTensor gives for CIFAR), seeded."""
    generator = torch.Generator().manual_seed(IMAGE_SEED)
    images = torch.randint(0, 256, (len(labels), 3, 32, 32), generator=generator).float() / 255
    return images, torch.tensor(labels)


def encode(t: torch.Tensor) -> str:
    return base64.b64encode(t.detach().float().contiguous().numpy().tobytes()).decode()


def sample_index(numel: int) -> torch.Tensor:
    """The flat positions whose entries a digest keeps: N_SAMPLES evenly spaced ones, first and last included."""
    return torch.linspace(0, numel - 1, min(N_SAMPLES, numel), dtype=torch.float64).round().long()


def digest(t: torch.Tensor) -> dict:
    """Sums, norms and the entries at :func:`sample_index` of one tensor (float64 sums of the float32 values)."""
    flat = t.detach().double().flatten()
    return {"shape": list(t.shape), "sum": float(flat.sum()), "abs_sum": float(flat.abs().sum()),
            "norm": float(flat.norm()), "values": flat[sample_index(flat.numel())].tolist()}


def _stub(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def install_reference(checkout: Path, case: dict):
    """Patch this process as the module doc says, then import the reference's MMCoA.py; (module, tokenizer)."""
    import torchvision_shim  # noqa: F401  (the torchvision wheel here needs it)
    import packaging.version

    import released_parity_text

    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    _stub("ruamel")
    sys.modules["ruamel"].yaml = _stub("ruamel.yaml")
    _stub("einops", rearrange=None, repeat=None)
    _stub("einops.layers")
    _stub("einops.layers.torch", Rearrange=None)
    _stub("pkg_resources", packaging=packaging)
    from open_clip.tokenizer import SimpleTokenizer

    class OpenAISimpleTokenizer(SimpleTokenizer):
        """open_clip's BPE tokenizer under OpenAI's names for the two special tokens (same ids, 49406 / 49407)."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder["<|startoftext|>"] = self.sot_token_id
            self.encoder["<|endoftext|>"] = self.eot_token_id

    clip = _stub("clip")
    clip.__path__ = [str(checkout / "replace")]
    _stub("clip.simple_tokenizer", SimpleTokenizer=OpenAISimpleTokenizer)
    clip_clip = _load_file("clip.clip", checkout / "replace" / "clip.py")
    clip.clip, clip.model = clip_clip, sys.modules["clip.model"]
    for name in clip_clip.__all__:  # OpenAI's clip/__init__.py: from .clip import *
        setattr(clip, name, getattr(clip_clip, name))
    _, tokenizer_class = released_parity_text.load_reference(checkout)  # sys.path += checkout, ALBEF aliases
    sys.argv = ["MMCoA.py", "--attack_domain", "both1", "--lamda", str(case["lamda"]),
                "--lamda_advtxt", str(case["lamda_advtxt"])]
    sys.modules.pop("MMCoA", None)
    return importlib.import_module("MMCoA"), tokenizer_class


def main_statements(source: str) -> tuple[list[ast.stmt], ast.For]:
    """The setup statements of ``__main__`` that this script executes, and the batch loop."""
    tree = ast.parse(source)
    main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    wanted = []
    for node in main.body:
        if isinstance(node, ast.If) and "full_tuning" in ast.unparse(node.test):
            wanted.append(node)
        elif isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) in (
                "loss_img", "loss_txt", "labels_texts", "labels_texts_tokens"):
            wanted.append(node)
    loop = next(n for n in ast.walk(main) if isinstance(n, ast.For) and ast.unparse(n.iter) == "pbar")
    assert len(wanted) == 5, [ast.unparse(n)[:40] for n in wanted]
    return wanted, loop


def not_a_jit_archive(*args, **kwargs):
    """``torch.jit.load`` on a plain state dict: raise at once, without reading the file (see the module doc)."""
    raise RuntimeError("not a TorchScript archive")


def run_case(checkout: Path, case: dict, state_dict: dict) -> dict:
    from mmrobust.training.trainer import step_seed

    from released_parity_text import SMALL, seeded_mlm, vocab_file

    mmcoa, tokenizer_class = install_reference(checkout, case)
    clip = sys.modules["clip"]
    ns = mmcoa.__dict__
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random_clip.pt"
        torch.save(dict(state_dict), path)
        jit_load = torch.jit.load
        torch.jit.load = not_a_jit_archive
        try:
            model, _ = clip.load(str(path), device, jit=False, prompt_len=0)  # MMCoA.py l.246
        finally:
            torch.jit.load = jit_load
    tokenizer = tokenizer_class(str(vocab_file()), clean_up_tokenization_spaces=True)  # l.245
    model.set_tokenizer(tokenizer)
    ref_model = seeded_mlm(SMALL, MLM_SEED).to(device)  # l.249
    mmcoa.convert_models_to_fp32(model)
    model = torch.nn.DataParallel(model)
    model.eval()
    prompter = torch.nn.DataParallel(mmcoa.NullPrompter()).cuda()
    add_prompter = torch.nn.DataParallel(mmcoa.TokenPrompter(0)).cuda()
    config = dict(CONFIG)
    for key, value in vars(mmcoa.args).items():  # l.231-232
        config[key] = value
    config["num_classes"] = len(CLASSES)
    ns.update(model=model, tokenizer=tokenizer, ref_model=ref_model, cls=False, prompter=prompter,
              add_prompter=add_prompter, config=config, device=device, adv_train=True, lr=LR,
              train_dataset=types.SimpleNamespace(text=[f"This is a photo of a {c}" for c in CLASSES]),
              test_dataset=types.SimpleNamespace(class_names=list(CLASSES)))
    attacker = mmcoa.Image_Text_attack(device=device, **config)
    ns["Mulmodal_attacker"] = attacker
    setup, loop = main_statements((checkout / "MMCoA.py").read_text())
    exec(compile(ast.Module(body=setup, type_ignores=[]), str(checkout / "MMCoA.py"), "exec"), ns)
    optimizer = ns["optimizer"]
    params = dict(model.module.named_parameters())
    before = {k: p.detach().clone() for k, p in params.items()}
    seen: dict = {}
    step = optimizer.step

    def recording_step(*args, **kwargs):
        seen["grads"] = {k: p.grad.detach().clone() for k, p in params.items() if p.grad is not None}
        return step(*args, **kwargs)

    optimizer.step = recording_step
    image_attack, text_attack = attacker.image_attack, attacker.text_attack

    def recording_image_attack(*args, **kwargs):
        seen["adv_images"] = image_attack(*args, **kwargs)
        return seen["adv_images"]

    def recording_text_attack(*args, **kwargs):
        seen["adv_texts"] = text_attack(*args, **kwargs)
        return seen["adv_texts"]

    attacker.image_attack, attacker.text_attack = recording_image_attack, recording_text_attack
    images, labels = images_and_labels(case["labels"])
    pgd_seed = step_seed(TRAIN_SEED, 0, 0, 0)
    torch.manual_seed(pgd_seed)
    start = torch.zeros_like(images).uniform_(-1 / 255, 1 / 255)  # the draw attack_pgd makes, for the record
    n_steps = case.get("steps", 1)

    def pbar():
        """The batches; before each, the global generator gets the seed mmrobust's trainer gives that step."""
        for i in range(n_steps):
            torch.manual_seed(step_seed(TRAIN_SEED, 0, i, 0))
            yield images, torch.arange(len(labels)), labels

    ns["pbar"] = pbar()
    exec(compile(ast.Module(body=[loop], type_ignores=[]), str(checkout / "MMCoA.py"), "exec"), ns)
    after = {k: p.detach().clone() for k, p in params.items()}
    update = {k: after[k] - before[k] for k in params}
    return {
        **case,
        "pgd_seed": pgd_seed,
        "optimizer": {"type": type(optimizer).__name__, **{k: (list(v) if isinstance(v, tuple) else v)
                                                           for k, v in optimizer.defaults.items()
                                                           if isinstance(v, (int, float, tuple, bool))},
                      "lr_at_step": optimizer.param_groups[0]["lr"]},
        "mode": "train" if model.training else "eval",
        "loss": float(ns["total_loss"].detach()),
        "pgd_start": digest(start),
        # the last step's; whole for a one-step case, else a digest (keeps the file small)
        **({"adv_images_b64": encode(seen["adv_images"])} if n_steps == 1 else {"adv_images": digest(seen["adv_images"])}),
        "adv_texts": list(seen["adv_texts"]),
        "grads": {k: digest(g) for k, g in seen["grads"].items()},
        "updates": {k: digest(u) for k, u in update.items()},
        "full_updates_b64": {k: encode(update[k]) for k in FULL},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of ElleZWQ/MMCoA (the whole tree)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from openai_clip_weights import SMALL_CLIP, openai_state_dict

    from released_parity_text import SMALL

    state_dict = openai_state_dict(SMALL_CLIP, WEIGHT_SEED)
    checkout = args.checkout.resolve()
    cases = [run_case(checkout, case, state_dict) for case in CASES]
    images, _ = images_and_labels(LABELS)
    for case in cases:
        print(f"{case['name']}: loss {case['loss']:.6f}, adversarial captions {case['adv_texts']}")
    import transformers

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "source": "ElleZWQ/MMCoA (5217ba9) MMCoA.py training loop (attack_domain both1, full_tuning), attacks.py attack_pgd, "
                  "replace/clip.py + replace/model.py; generated by bench/released_golden_step.py",
        "clip_config": SMALL_CLIP, "weight_seed": WEIGHT_SEED, "weights": "tests/openai_clip_weights.py",
        "image_seed": IMAGE_SEED, "classes": CLASSES, "template": "This is a photo of a {}",
        "train_seed": TRAIN_SEED, "config": CONFIG, "eps": CONFIG["epsilon"] / 255, "alpha": CONFIG["step_size"] / 255,
        "steps": CONFIG["num_iters"], "mlm_config": SMALL, "mlm_seed": MLM_SEED, "images_sum": float(images.sum()),
        "samples_per_tensor": N_SAMPLES,
        "torch": torch.__version__, "transformers": transformers.__version__, "cases": cases,
    }, separators=(",", ":")) + "\n")  # compact: the digests are data, read by the test
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
