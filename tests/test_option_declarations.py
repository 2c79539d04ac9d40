"""One declaration per option (issue 20): every shared flag comes from one field, with one default and help.

The flags are generated from the option groups' fields (:mod:`mmrobust.options`,
:func:`mmrobust.cli.options.flags`), so two commands that take a group get the same flag, help and default.
These tests read the commands as a user sees them (their click parameters) and fail when a command declares
a shared flag of its own, when two commands drift apart, or when an attack or a method has an option no flag
sets.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path

import pytest
from typer.main import get_command

from mmrobust.attacks.registry import SPECS
from mmrobust.attacks.retrieval.registry import SPECS as RETRIEVAL_SPECS
from mmrobust.cli.main import app
from mmrobust.training.methods import METHOD_SPECS

#: flags whose meaning is the command's own, each as the user reads it (the help says which)
CONTEXTUAL = {
    "--eps": "the budget of the command's attack: evaluation (eval, benchmark, demo), the training PGD (train); "
             "study eps: the grid of budgets",
    "--alpha": "the step of the command's PGD: evaluation (eval, benchmark) or training (train)",
    "--steps": "the iterations of the command's attack: evaluation (eval, benchmark) or training PGD (train)",
    "--batch-size": "the command's batch: evaluation (eval, benchmark, studies) or fine-tuning (train)",
    "-b": "the short flag of --batch-size",
    "--resume": "eval/benchmark: continue the attack state file (on by default); train: continue from a checkpoint",
    "--output": "what the command writes: eval a report file, benchmark a folder",
    "-o": "the short flag of the command's output (file or folder)",
    "--output-dir": "the folder the command writes (a run, a study, the demo), its contents named in the help",
    "--model": "one model (eval, train, demo) or several, repeated (benchmark, studies)",
    "-m": "the short flag of --model",
    "-d": "--dataset (one) or, in benchmark, --datasets (a list)",
    "--shots": "train: K images per class; study train-size: the grid of K",
    "--n-eval": "the held-out images scored by the command's own evaluation: train per epoch, the demo per model",
    "--eval-eps": "the evaluation budget: train's per-epoch score (default: --eps), the studies' attacks",
    "--eval-steps": "the evaluation PGD steps: train's per-epoch score, the studies' attacks",
}
#: flags whose default the studies and the demo size for proxy:digits on two CPU cores (the help is shared;
#: the defaults are declared once each, on StudyOptions and DemoConfig)
SIZED_DEFAULTS = {"--epochs", "--lr", "--n-train", "--n-samples", "-n", "--sanity", "--no-sanity", "--dataset",
                  "--method"}


def commands() -> dict[str, object]:
    out = {}

    def walk(command, prefix: str) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            out[prefix] = command

    walk(get_command(app), "")
    return out


def uses() -> dict[str, list[tuple[str, object, str]]]:
    """flag -> [(command, default, help)] over every command and subcommand."""
    found: dict[str, list[tuple[str, object, str]]] = defaultdict(list)
    for name, command in commands().items():
        for param in command.params:
            for flag in param.opts + param.secondary_opts:
                found[flag].append((name, param.default, param.help or ""))
    return found


def shared_flags() -> dict[str, list[tuple[str, object, str]]]:
    return {flag: rows for flag, rows in uses().items() if len({name for name, _, _ in rows}) > 1}


def test_flags_shared_by_commands_have_one_help() -> None:
    drift = {flag: {name: text for name, _, text in rows} for flag, rows in shared_flags().items()
             if flag not in CONTEXTUAL and len({text for _, _, text in rows}) > 1}
    assert not drift, drift


def test_flags_shared_by_commands_have_one_default() -> None:
    drift = {flag: {name: default for name, default, _ in rows} for flag, rows in shared_flags().items()
             if flag not in set(CONTEXTUAL) | SIZED_DEFAULTS and len({repr(d) for _, d, _ in rows}) > 1}
    assert not drift, drift


def test_the_exception_lists_are_not_stale() -> None:
    """Every listed exception is a flag two commands share and that differs there (else it must go)."""
    shared = shared_flags()
    for flag in CONTEXTUAL:
        assert flag in shared and len({(repr(d), t) for _, d, t in shared[flag]}) > 1, flag
    for flag in SIZED_DEFAULTS:
        assert flag in shared and len({repr(d) for _, d, _ in shared[flag]}) > 1, flag
        assert len({t for _, _, t in shared[flag]}) == 1, f"{flag}: one help wherever it appears"


def test_drift_is_caught() -> None:
    """The check above can fail: a hand-declared copy of a shared flag with its own default is drift."""
    import typer

    from mmrobust.cli.options import flags
    from mmrobust.options.run import RunOptions

    generated = {s.name: s.info for s in flags(RunOptions)}["templates"]
    copy = typer.Option("study", "--templates", help=generated.help)
    assert (copy.default, copy.help) != (generated.default, generated.help)


def _option_fields(options_class: type) -> set[str]:
    return {f.name for f in dataclasses.fields(options_class)}


def _flags_of(command: str) -> set[str]:
    return {flag for param in commands()[command].params for flag in param.opts + param.secondary_opts}


def _field_flags(config: type, names: set[str]) -> dict[str, str]:
    from mmrobust.options.fields import flag_of

    return {name: flag_of(config, name) for name in names}


@pytest.mark.parametrize("spec", [*SPECS, *RETRIEVAL_SPECS], ids=lambda s: s.name)
def test_every_attack_option_has_a_flag(spec) -> None:
    from mmrobust.eval.run import EvalConfig

    names = _option_fields(spec.options)
    config_fields = _option_fields(EvalConfig)
    assert names <= config_fields, f"{spec.name}: {sorted(names - config_fields)} is not an EvalConfig field"
    flags = _flags_of("eval")
    missing = {n: f for n, f in _field_flags(EvalConfig, names).items() if f not in flags}
    assert not missing, f"{spec.name}: no eval flag for {missing}"


@pytest.mark.parametrize("spec", [s for s in METHOD_SPECS.values() if s.options], ids=lambda s: s.name)
def test_every_method_option_has_a_flag(spec) -> None:
    flags = _flags_of("train")
    missing = {n: f for n, f in _field_flags(spec.options, _option_fields(spec.options)).items() if f not in flags}
    assert not missing, f"{spec.name}: no train flag for {missing}"


def test_command_modules_declare_no_shared_flag_by_hand() -> None:
    """A flag written out in a command module (``typer.Option(..., "--x")``) belongs to that command alone,
    or is one declaration several commands list (a ``Shared`` constant); shared options live on the groups."""
    cli = Path(__file__).resolve().parents[1] / "src" / "mmrobust" / "cli"
    by_command = uses()
    offenders = []
    for path in sorted(cli.glob("*_cmd.py")):
        text = path.read_text(encoding="utf-8")
        constants = re.findall(r'Shared\("\w+", [^,]+, typer\.Option\(\s*[^,]+,\s*"(--[a-z-]+)', text)
        for flag in re.findall(r'typer\.Option\(\s*[^,()]+,\s*"(--[a-z-]+)', text):
            users = {name for name, _, _ in by_command.get(flag, [])}
            if len(users) > 1 and flag not in constants and flag not in CONTEXTUAL:
                offenders.append(f"{path.name}: {flag} (also in {sorted(users)})")
    assert not offenders, offenders


def test_norm_l_inf_is_the_linf_budget(tmp_path: Path) -> None:
    """One norm parser: ``--norm l_inf`` is L-inf everywhere (it was announced as an L2 budget)."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["eval", "-m", "tiny", "-d", "digits", "-n", "2", "-a", "pgd", "--norm", "l_inf",
                                      "--eps", "4", "--steps", "1", "-q", "--no-sanity", "-o",
                                      str(tmp_path / "r.json")])
    assert "eps 4/255 L-inf" in result.output, result.output


def test_pmg_aft_weights_have_flags_and_reach_the_objective(tmp_path: Path) -> None:
    from mmrobust.training.config import TrainConfig
    from mmrobust.training.method_options import PMGAFTOptions

    from mmrobust.cli.options import method_values

    given = method_values({"pmg_alpha": 2.0, "pmg_beta": None, "lambda_img": None})
    config = TrainConfig(model="tiny", method="pmg-aft", dataset="digits", output_dir=str(tmp_path),
                         method_options=given).validate()
    assert config.method_options == PMGAFTOptions(pmg_alpha=2.0, pmg_beta=1.0)
    assert config.to_dict()["pmg_alpha"] == 2.0
    from mmrobust.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--pmg-alpha does not apply to --method mmcoa"):
        TrainConfig(model="tiny", method="mmcoa", dataset="digits", output_dir=str(tmp_path),
                    method_options={"pmg_alpha": 2.0}).validate()


def test_a_new_study_option_is_one_field(tmp_path: Path, monkeypatch) -> None:
    """``--train-alpha`` (added as the proof of issue 20, item 6): one StudyOptions field gives the flag of every
    fine-tuning study, reaches the fine-tune, and changes the cell hash only when set."""
    from typer.testing import CliRunner

    import mmrobust.training
    from mmrobust.studies.grid import Cell
    from mmrobust.studies.options import StudyOptions
    from mmrobust.studies.runner import PinnedModel, StudyContext, fine_tune

    for study in ("train-size", "loss-ablation", "params"):
        assert "--train-alpha" in _flags_of(f"study {study}")
    assert "--train-alpha" not in _flags_of("study eps")  # evaluation-only studies do not train
    seen = []
    monkeypatch.setattr(mmrobust.training, "train", lambda config: seen.append(config) or {})
    options = {}
    for alpha in (None, 2 / 255):
        o = StudyOptions(output_dir=str(tmp_path), models=("tiny",), train_alpha=alpha).validate()
        ctx = StudyContext(name="train-size", options=o, args={}, out=tmp_path, trains=True,
                           pinned={"tiny": PinnedModel("tiny", "tiny", tmp_path, "0" * 64)})
        fine_tune(ctx, Cell("k", {"shots": 1}, "tiny"), "digest")
        options[alpha] = o.hash_fields(training=True)
    assert seen[0].alpha is None and seen[1].alpha == 2 / 255
    assert "train_alpha" not in options[None] and options[2 / 255]["train_alpha"] == 2 / 255
    result = CliRunner().invoke(app, ["study", "train-size", "-o", str(tmp_path / "s"), "--train-alpha", "300"])
    assert result.exit_code == 2 and "--train-alpha 300 is absurd" in result.output
