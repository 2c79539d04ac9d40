"""The ``mmrobust`` command. Each command lives in its own module and is registered here."""

from __future__ import annotations

import typer

from .eval_cmd import eval_command
from .listing import datasets_command, models_command

app = typer.Typer(
    name="mmrobust",
    help="Adversarial robustness of vision-language models under image, text and multimodal attacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("eval")(eval_command)
app.command("models")(models_command)
app.command("datasets")(datasets_command)


def _register_optional_groups() -> None:
    """Commands of later subsystems, one module each: a ``typer.Typer`` is a group, a function a command."""
    import importlib

    for module_name, attr, name in (
        ("mmrobust.cli.proxy_cmd", "proxy_app", "proxy"),
        ("mmrobust.cli.train_cmd", "train_command", "train"),
        ("mmrobust.cli.demo_cmd", "demo_command", "demo"),
        ("mmrobust.cli.attacks_cmd", "attacks_command", "attacks"),
        ("mmrobust.cli.study_cmd", "study_app", "study"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        target = getattr(module, attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


_register_optional_groups()

if __name__ == "__main__":
    app()
