"""``--method mmcoa-released``: one training step equals the released ``MMCoA.py`` loop's own step.

The golden step in tests/fixtures/released/mmcoa_step.json was produced by the released code itself
(ElleZWQ/MMCoA ``MMCoA.py``'s loop statements, ``attacks.py``'s ``attack_pgd``, ``replace/clip.py``'s
``clip.load`` / ``build_model``, ``attack/bert_attack.py``), run by bench/released_golden_step.py on CPU in
fp32 on a seeded random-weight CLIP in OpenAI's format. Here the same state dict
(``tests/openai_clip_weights.py``) goes through open_clip's ``build_model_from_openai_state_dict`` into
mmrobust's open_clip adapter, and mmrobust's trainer runs one step (``Trainer._step``, the path a run takes)
of ``mmcoa-released`` with the same images, labels, class prompts, eps / step / iterations, lr and Adam
settings. The PGD start needs no hook: the released ``delta.uniform_(-eps, eps)`` drew from the global CPU
generator seeded with the seed mmrobust's trainer gives the step's attack generator, and the two draws are
bit-identical (checked below through the recorded start).

Four cases: ``image-term`` (``--lamda 0.5 --lamda_advtxt 0``: the adversarial-image term and the attack-gradient
leak; the released loop still runs the caption attack, at weight 0) and ``both1`` (the released defaults,
0.5 / 0.5, with the released BertAttack on the small seeded random BERT of bench/released_parity_text.py), and
``both1-repeated-class`` (the same with one class twice in the batch: the released loop attacks and encodes the
caption once per image, mmrobust once per distinct caption), and ``both1-two-steps`` (two steps on the batch:
Adam's second step, on the once-updated model; the gradients and adversarial outputs checked are the second
step's, the update is the total).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from openai_clip_weights import openai_state_dict

FIXTURE = Path(__file__).parent / "fixtures" / "released" / "mmcoa_step.json"
GOLDEN = json.loads(FIXTURE.read_text())
#: update entries, in units of the lr: Adam's m / (sqrt(v) + 1e-6) magnifies float32 gradient noise where a
#: gradient is near 1e-6 (measured worst 3e-4 lr after one step, 1.5e-3 lr after two)
UPDATE_ATOL = 5e-3


def _case(name: str) -> dict:
    return next(c for c in GOLDEN["cases"] if c["name"] == name)


def decode(text: str, shape) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.float32).copy()).reshape(shape)


def golden_model():
    """The fixture's random state dict in open_clip's CLIP, behind mmrobust's adapter (fp32, CPU)."""
    import torchvision_shim  # noqa: F401
    from open_clip.model import build_model_from_openai_state_dict
    from open_clip.tokenizer import SimpleTokenizer

    from mmrobust.models.open_clip_adapter import OpenClipModel

    state_dict = openai_state_dict(GOLDEN["clip_config"], GOLDEN["weight_seed"])
    model = build_model_from_openai_state_dict(dict(state_dict), quick_gelu=True, cast_dtype=None).float()
    loaded = dict(model.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in state_dict.items())  # fp16-representable: loaded exactly
    return OpenClipModel(model, SimpleTokenizer(context_length=77), "open_clip:openai-format-random",
                         {"golden": GOLDEN["clip_config"]})


def golden_batch(labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(GOLDEN["image_seed"])
    images = torch.randint(0, 256, (len(labels), 3, 32, 32), generator=generator).float() / 255
    assert float(images.sum()) == pytest.approx(GOLDEN["images_sum"], rel=1e-9)
    return images, torch.tensor(labels)


def save_mlm(folder: Path) -> Path:
    """The seeded random BERT the fixture's BertAttack ran with, saved where ``--mlm`` can load it."""
    import torchvision_shim  # noqa: F401
    import transformers

    from mmrobust.models.tokenizers import minilm_model_dir

    torch.manual_seed(GOLDEN["mlm_seed"])
    transformers.BertForMaskedLM(transformers.BertConfig(**GOLDEN["mlm_config"])).eval().save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(str(minilm_model_dir()), local_files_only=True).save_pretrained(folder)
    return folder


def one_step(tmp_path: Path, monkeypatch, case: dict) -> dict:
    """mmrobust's trainer: set up as the fixture's run, then one ``_step`` on the golden batch."""
    import mmrobust.training.trainer as trainer_module
    from mmrobust.training import TrainConfig, Trainer
    from mmrobust.training.checkpointing import Position

    model = golden_model()
    monkeypatch.setattr(trainer_module, "load_model", lambda spec, device: model)
    text = {"text_attack": "bert-attack-released", "mlm": str(save_mlm(tmp_path / "mlm"))} if case["lamda_advtxt"] else {}
    config = TrainConfig(
        model="open_clip:openai-format-random", method="mmcoa-released", dataset="digits",
        output_dir=str(tmp_path / "run"), epochs=1, batch_size=len(case["labels"]), n_train=16, n_eval=16,
        lr=GOLDEN["config"]["optimizer"]["lr"], weight_decay=0.2, grad_clip=0.0, eps=GOLDEN["eps"],
        alpha=GOLDEN["alpha"], steps=GOLDEN["steps"], seed=GOLDEN["train_seed"], templates="study",
        train="full", progress=False, text_words=1, text_candidates=10,
        method_options={"lambda_img": case["lamda"], "lambda_txt": case["lamda_advtxt"]}, **text,
    )
    trainer = Trainer(config)
    trainer.setup()
    assert list(trainer.train_set.classes) == GOLDEN["classes"] and trainer.caption_template == GOLDEN["template"]
    params = {name.removeprefix("model."): p for name, p in trainer.model.named_parameters()}
    before = {k: p.detach().clone() for k, p in params.items()}
    seen: dict = {}
    adversarial_inputs, step = trainer.objective.adversarial_inputs, trainer.optimizer.step

    def recording_inputs(batch):
        seen["adversarial"] = adversarial_inputs(batch)
        return seen["adversarial"]

    def recording_step(*args, **kwargs):
        seen["grads"] = {k: p.grad.detach().clone() for k, p in params.items() if p.grad is not None}
        seen["lr"] = trainer.optimizer.param_groups[0]["lr"]
        return step(*args, **kwargs)

    trainer.objective.adversarial_inputs, trainer.optimizer.step = recording_inputs, recording_step
    images, labels = golden_batch(case["labels"])
    for step_index in range(case.get("steps", 1)):  # the same batch each step, as the fixture's pbar
        stats = trainer._step(Position(0, step_index, step_index), list(range(len(labels))), images, labels)
    seen["update"] = {k: params[k].detach() - before[k] for k in params}
    # the released total_loss excludes the leak, which reaches .grad through the attack's own backward() calls
    seen["loss"] = (stats["loss"] - stats.get("attack_gradient_leak", 0.0)) / stats["n"]
    seen["optimizer"] = trainer.optimizer
    return seen


def assert_digest(tensor: torch.Tensor, golden: dict, rtol: float, atol: float, what: str) -> None:
    flat = tensor.detach().double().flatten()
    assert list(tensor.shape) == golden["shape"], what
    got = {"sum": float(flat.sum()), "abs_sum": float(flat.abs().sum()), "norm": float(flat.norm())}
    scale = atol * flat.numel() ** 0.5
    for key, value in got.items():  # a sum may cancel: its error is relative to the sum of magnitudes
        allowed = rtol * golden["abs_sum"] + atol * flat.numel() if key == "sum" else rtol * golden[key] + scale
        assert abs(value - golden[key]) <= allowed, f"{what} {key}: {value} vs {golden[key]} (allowed {allowed:.3g})"
    index = torch.linspace(0, flat.numel() - 1, min(GOLDEN["samples_per_tensor"], flat.numel()),
                           dtype=torch.float64).round().long()  # bench/released_golden_step.py's sample_index
    torch.testing.assert_close(flat[index], torch.tensor(golden["values"], dtype=torch.float64),
                               rtol=rtol, atol=atol, msg=lambda m: f"{what} sampled entries: {m}")


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    try:
        return {c["name"]: one_step(tmp_path_factory.mktemp(c["name"]), monkeypatch, c) for c in GOLDEN["cases"]}
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("name", [c["name"] for c in GOLDEN["cases"]])
def test_the_step_is_the_released_step(name, steps) -> None:
    case, seen = _case(name), steps[name]
    optimizer = seen["optimizer"]
    assert type(optimizer).__name__ == case["optimizer"]["type"] == "Adam"
    assert seen["lr"] == case["optimizer"]["lr_at_step"]  # no schedule in MMCoA.py; constant lr at step 1
    for key in ("betas", "eps", "weight_decay"):
        assert optimizer.defaults[key] == pytest.approx(case["optimizer"][key])
    adversarial = seen["adversarial"]
    # the PGD start: the trainer's step generator draws what the released global-RNG uniform_ drew
    generator = torch.Generator().manual_seed(case["pgd_seed"])
    start = (torch.rand((len(case["labels"]), 3, 32, 32), generator=generator) * 2 - 1) * GOLDEN["eps"]
    assert_digest(start, case["pgd_start"], rtol=0, atol=0, what="pgd start")
    if "adv_images_b64" in case:
        assert torch.equal(adversarial["images"], decode(case["adv_images_b64"], (len(case["labels"]), 3, 32, 32)))
    else:  # a later step: the model already differs by float rounding, so the last attack is compared closely
        assert_digest(adversarial["images"], case["adv_images"], rtol=1e-6, atol=1e-6, what="adversarial images")
    if case["lamda_advtxt"]:  # the released loop attacks one caption per image, mmrobust one per distinct caption
        captions = adversarial["captions"]
        assert [adversarial["adv_texts"][i] for i in captions.index.tolist()] == case["adv_texts"]
    assert seen["loss"] == pytest.approx(case["loss"], rel=1e-5)
    assert seen["grads"].keys() == case["grads"].keys()
    for key, golden in case["grads"].items():
        rms = golden["norm"] / max(1, np.prod(golden["shape"])) ** 0.5  # float32 summation order, at the tensor's scale
        assert_digest(seen["grads"][key], golden, rtol=1e-4, atol=1e-4 * rms, what=f"grad {key}")
    assert seen["update"].keys() == case["updates"].keys()
    lr = case["optimizer"]["lr_at_step"]
    for key, golden in case["updates"].items():
        assert_digest(seen["update"][key], golden, rtol=1e-4, atol=UPDATE_ATOL * lr, what=f"update {key}")
    for key, text in case["full_updates_b64"].items():
        torch.testing.assert_close(seen["update"][key], decode(text, seen["update"][key].shape),
                                   rtol=1e-4, atol=UPDATE_ATOL * lr)


def _update_matches(seen: dict, case: dict) -> bool:
    try:
        lr = case["optimizer"]["lr_at_step"]
        for key, golden in case["updates"].items():
            assert_digest(seen["update"][key], golden, rtol=1e-4, atol=UPDATE_ATOL * lr, what=key)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("departure", ["no-leak", "decoupled-adamw"])
def test_the_fixture_tells_each_departure_apart(departure, tmp_path, monkeypatch) -> None:
    """Negative controls: without the attack-gradient leak, or with AdamW's decoupled decay instead of the
    released coupled-L2 Adam, the same step no longer matches the released update."""
    from mmrobust.training.objectives import released

    if departure == "no-leak":
        monkeypatch.setattr(released, "with_leak", lambda objective, batch, terms, iterates: terms)
    else:
        monkeypatch.setattr(released.ReleasedMMCoA, "coupled_weight_decay", False)
    case = _case("image-term")
    seen = one_step(tmp_path, monkeypatch, case)
    assert torch.equal(seen["adversarial"]["images"], decode(case["adv_images_b64"], (len(case["labels"]), 3, 32, 32)))
    assert not _update_matches(seen, case)
