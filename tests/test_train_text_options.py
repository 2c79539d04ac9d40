"""Issue 12 items 4-5: ``train``, the studies and the demo take eval's text validity options
(``--protect-classnames``, ``--min-similarity``, ``--text-chunk``) with one declaration and one meaning, and a
training run reports its caption attack's class-name collisions like an evaluation does."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from mmrobust.attacks.text.classnames import collisions, lower_words, name_words, occurrences
from mmrobust.cli.main import app
from mmrobust.attacks.settings import TextSettings
from mmrobust.cli.options import flags
from mmrobust.errors import ConfigError
from mmrobust.training import TrainConfig, Trainer
from test_text_validity import FixedSwap


def text_config(out: Path, **overrides) -> TrainConfig:
    """Text-only adversarial training of ``tiny`` on 16 digits: two steps of 8 images, 2 words per caption."""
    options = dict(model="tiny", method="text-at", dataset="digits", output_dir=str(out), epochs=1, batch_size=8,
                   n_train=16, n_eval=8, eval_batch_size=8, lr=1e-3, steps=1, progress=False, text_words=2)
    options.update(overrides)
    return TrainConfig(**options)


def recorded_run(config: TrainConfig, swap: FixedSwap | None = None) -> tuple[Trainer, list[tuple[str, str]], dict]:
    """Run ``config``, recording every (clean caption, adversarial caption) pair the objective got."""
    trainer = Trainer(config)
    trainer.setup()
    if swap is not None:  # candidates that include other classes' names: collisions are easy to make
        trainer.text_adversary.attacker.transformation = swap
    pairs: list[tuple[str, str]] = []
    adversary = trainer.objective.ctx.text_adversary

    def recording(texts):
        out = adversary(texts)
        pairs.extend(zip(texts, out))
        return out

    trainer.objective.ctx.text_adversary = recording
    return trainer, pairs, trainer.run()


def own_class(trainer: Trainer, caption: str) -> int:
    return [trainer.caption_template.format(c) for c in trainer.train_set.classes].index(caption)


def keeps_own_words(trainer: Trainer, clean: str, adversarial: str) -> bool:
    name = trainer.train_set.classes[own_class(trainer, clean)]
    return bool(occurrences(name_words(name), lower_words(adversarial)))


# ---------------------------------------------------------------------------------- one declaration
def test_prompt_options_are_one_declaration_on_train_eval_studies_and_demo() -> None:
    from mmrobust.cli import study_cmd
    from mmrobust.cli.demo_cmd import demo_command
    from mmrobust.cli.eval_cmd import eval_command
    from mmrobust.cli.train_cmd import train_command

    commands = [train_command, eval_command, demo_command, study_cmd.eps_command, study_cmd.classes_command,
                study_cmd.train_size_command, study_cmd.loss_ablation_command, study_cmd.params_command]
    for command in commands:
        parameters = inspect.signature(command).parameters
        for option in flags(TextSettings, only=("protect_classnames", "min_similarity", "text_chunk")):
            given = parameters[option.name].default  # generated from the one field: same flag, help and default
            assert (given.param_decls, given.help, given.default) == (
                option.info.param_decls, option.info.help, option.info.default), (command.__name__, option.name)
    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in ("--protect-classnames", "--min-similarity", "--text-chunk"):
        assert flag in result.output


# ---------------------------------------------------------------------------------- meaning in training
def test_protected_caption_attack_never_changes_class_words(tmp_path: Path) -> None:
    trainer, free, _ = recorded_run(text_config(tmp_path / "free"))
    # the test can fail: without protection the 2-word embed-sub attack does replace class words
    assert any(not keeps_own_words(trainer, clean, adv) for clean, adv in free)
    trainer, guarded, report = recorded_run(text_config(tmp_path / "guarded", protect_classnames=True))
    assert any(clean != adv for clean, adv in guarded)  # the attack still changed the captions
    classes = trainer.train_set.classes
    for clean, adv in guarded:
        assert keeps_own_words(trainer, clean, adv), (clean, adv)
        assert collisions(clean, adv, own_class(trainer, clean), classes) == []
    block = report["text_attack"]
    assert block["protect_classnames"] is True
    assert "protect-classnames" in [c["name"] for c in block["attacker"]["constraints"]]


def test_class_name_collisions_are_counted_and_forbidden(tmp_path: Path) -> None:
    swap = FixedSwap(["four", "seven", "image", "drawing"])
    trainer, pairs, report = recorded_run(text_config(tmp_path / "free"), swap)
    classes = trainer.train_set.classes
    expected = sum(bool(collisions(c, a, own_class(trainer, c), classes)) for c, a in pairs)
    block = report["text_attack"]
    assert expected > 0 and block["class_name_collisions"] == expected
    assert block["captions_attacked"] == len(pairs) == report["text_attack_cost"]["texts_attacked"]
    assert block["warnings"] and "--protect-classnames" in block["warnings"][0]
    log = [json.loads(line) for line in (tmp_path / "free" / "log.jsonl").read_text().splitlines()]
    assert log[0]["text_attack"]["class_name_collisions"] == expected
    _, pairs, report = recorded_run(text_config(tmp_path / "guarded", protect_classnames=True), swap)
    assert report["text_attack"]["class_name_collisions"] == 0 and not report["text_attack"]["warnings"]
    assert any(c != a for c, a in pairs)


# ---------------------------------------------------------------------------------- bad values, reports, resume
@pytest.mark.parametrize("command", [
    ["train", "-m", "tiny", "--method", "mmcoa", "-d", "digits"],
    ["study", "train-size", "-m", "tiny"],
    ["demo", "-m", "tiny"],
])
@pytest.mark.parametrize("bad, message", [
    (["--min-similarity", "2"], "--min-similarity is a cosine similarity in [-1, 1]"),
    (["--text-chunk", "0"], "--text-chunk must be an integer of at least 1"),
])
def test_bad_value_is_one_line_before_any_work(tmp_path: Path, command, bad, message) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, command + ["-o", str(out)] + bad)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not out.exists()


class CharacterCounts:
    """A stand-in sentence encoder (normalised letter counts) so the test does not load MiniLM; the constraint
    itself and the real encoder are tested in test_text_validity."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, texts):
        counts = torch.zeros(len(texts), 26)
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    counts[i, ord(ch) - 97] += 1
        return F.normalize(counts, dim=-1)


def test_report_records_the_options_and_resume_keeps_them(tmp_path: Path, monkeypatch) -> None:
    import mmrobust.attacks.text.similarity as similarity

    monkeypatch.setattr(similarity, "MiniLMSentenceEncoder", CharacterCounts)
    out = tmp_path / "run"
    options = dict(protect_classnames=True, min_similarity=0.5)
    Trainer(text_config(out, text_chunk=3, **options)).run()
    # the chunk size changes the cost only: a resume may change it; the validity options may not change
    report = Trainer(text_config(out, epochs=2, resume=True, text_chunk=5, **options)).run()
    config = report["config"]
    assert (config["protect_classnames"], config["min_similarity"], config["text_chunk"]) == (True, 0.5, 5)
    block = report["text_attack"]
    assert (block["protect_classnames"], block["min_similarity"], block["text_chunk"]) == (True, 0.5, 5)
    constraints = {c["name"]: c for c in block["attacker"]["constraints"]}
    assert constraints["min-similarity"]["min_similarity"] == 0.5 and "protect-classnames" in constraints
    # the run's counts include the epoch before the resume
    assert [h["epoch"] for h in report["history"]] == [1, 2]
    assert block["captions_attacked"] == sum(h["text_attack"]["captions_attacked"] for h in report["history"])
    assert report["history"][0]["text_attack"]["captions_attacked"] > 0
    for changed in ({"protect_classnames": False}, {"min_similarity": 0.9}):
        with pytest.raises(ConfigError, match=next(iter(changed))):
            Trainer(text_config(out, epochs=3, resume=True, **{**options, **changed})).run()


# ---------------------------------------------------------------------------------- studies and demo
def test_studies_and_demo_pass_the_options_to_their_fine_tunes(tmp_path: Path, monkeypatch) -> None:
    import mmrobust.training
    from mmrobust.demo import DemoConfig
    from mmrobust.studies import StudyOptions
    from mmrobust.studies.grid import Cell
    from mmrobust.studies.runner import PinnedModel, StudyContext, fine_tune

    options = StudyOptions(output_dir=str(tmp_path), models=("tiny",), n_eval=8, protect_classnames=True,
                           min_similarity=0.25, text_chunk=7).validate()
    ctx = StudyContext(name="train-size", options=options, args={}, out=tmp_path, trains=True,
                       pinned={"tiny": PinnedModel("tiny", "tiny", tmp_path, "0" * 64)})
    seen: list[TrainConfig] = []
    monkeypatch.setattr(mmrobust.training, "train", lambda config: seen.append(config.validate()) or {})
    cell = Cell("k", {"shots": 1}, "tiny")
    fine_tune(ctx, cell, "digest")
    assert (seen[0].protect_classnames, seen[0].min_similarity, seen[0].text_chunk) == (True, 0.25, 7)
    # the fine-tuned weights depend on the validity options, not on the chunk size
    other = StudyContext(name="train-size", options=dataclasses.replace(options, protect_classnames=False),
                         args={}, out=tmp_path, trains=True, pinned=ctx.pinned)
    chunk = StudyContext(name="train-size", options=dataclasses.replace(options, text_chunk=1),
                         args={}, out=tmp_path, trains=True, pinned=ctx.pinned)
    assert ctx.training_hash(cell) != other.training_hash(cell)
    assert ctx.training_hash(cell) == chunk.training_hash(cell)
    # a task-aware evaluation goal trains with the label-free goal: same weights, the run is reused
    goals = {goal: StudyContext(name="train-size", options=dataclasses.replace(options, text_goal=goal),
                                args={}, out=tmp_path, trains=True, pinned=ctx.pinned).training_hash(cell)
             for goal in ("embedding-kl", "zero-shot-margin", "embedding-cos")}
    assert goals["zero-shot-margin"] == goals["embedding-kl"] == ctx.training_hash(cell) != goals["embedding-cos"]
    demo = DemoConfig(output_dir=str(tmp_path / "demo"), protect_classnames=True, min_similarity=0.25, text_chunk=7)
    study = demo.validate().study_options()
    assert (study.protect_classnames, study.min_similarity, study.text_chunk) == (True, 0.25, 7)
