"""Every ``mmrobust ...`` command in the README parses, and the runnable ones run as written (small n).

How (the substitutions, so a README example stays a real command):

* every command's options are parsed by the real CLI (click's ``make_context``): a renamed or removed flag
  in the code, or a typo in the README, fails here;
* commands are *run* when they need nothing absent from a test machine — no ``DATA`` folder, no hub model
  (``open_clip:``/``hf:``), no masked LM — and are not one of the multi-minute jobs (``demo``, ``study``,
  ``proxy build``), which ``test_demo``/``test_studies``/``test_proxy`` cover at small size;
* a run swaps ``proxy:digits`` for ``tiny`` (the same interface, built in code in a second), and appends
  small sizes (``-n 4`` and 2 attack steps for eval; one short epoch on 8 images for train), inside a temporary folder so
  ``runs/...`` paths land there; commands run in README order (the ``ckpt:runs/mmcoa/final`` example
  evaluates what the ``train`` example just wrote).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mmrobust.cli.main import app

README = Path(__file__).resolve().parents[1] / "README.md"
SLOW = (("demo",), ("study",), ("proxy", "build"))
NEEDS = ("DATA", "open_clip:", "hf:", "--mlm", "../shared")
SMALL = {"eval": ["-n", "4", "-b", "4", "--no-sanity", "-q"],
         "train": ["--epochs", "1", "--n-train", "8", "--n-eval", "4", "--batch-size", "4", "--steps", "1", "-q"]}


def readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    commands = []
    for block in blocks:
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            starts = [i for i, w in enumerate(words) if (w == "mmrobust" or w.endswith("/mmrobust"))
                      and (i == 0 or words[i - 1] == "&&")]
            for i in starts:
                end = words.index("&&", i) if "&&" in words[i:] else len(words)
                commands.append(words[i + 1 : end])
    return commands


COMMANDS = readme_commands()


def _command(args: list[str]) -> tuple[object, list[str]]:
    """The (sub)command the words name and the words left for it. Duck-typed on ``commands`` because recent
    typer vendors its own click, whose classes are not ``click.Group``."""
    command = typer.main.get_command(app)
    rest = list(args)
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def test_subcommands_are_resolved_so_their_options_are_checked():
    command, rest = _command(["study", "eps", "--eps", "2"])
    assert command.name == "eps" and rest == ["--eps", "2"]
    with pytest.raises(Exception, match="No such option"):
        command.make_context(command.name, ["--no-such-flag"])


def test_the_readme_has_examples_of_every_command():
    names = {args[0] for args in COMMANDS}
    assert {"eval", "train", "study", "demo", "proxy", "models", "datasets", "attacks"} <= names


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_every_readme_command_parses(args):
    command, rest = _command(args)
    command.make_context(command.name, rest)  # raises a usage error on an unknown or malformed option


def runnable(args: list[str]) -> bool:
    return (not any(args[: len(s)] == list(s) for s in SLOW)
            and not any(need in arg for arg in args for need in NEEDS))


def test_runnable_readme_commands_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ran = []
    for args in filter(runnable, COMMANDS):
        run = ["tiny" if a == "proxy:digits" else a for a in args] + SMALL.get(args[0], [])
        if "--steps" in args:
            run += ["--steps", "2"]  # the last value wins
        result = runner.invoke(app, run)
        assert result.exit_code == 0, f"mmrobust {' '.join(args)}\n{result.output}"
        ran.append(args[0])
    assert {"eval", "train", "models", "datasets", "attacks"} <= set(ran)
