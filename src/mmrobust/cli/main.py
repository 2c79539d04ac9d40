"""The ``mmrobust`` command. Each command lives in its own module and is registered here."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from .errors import EXIT_USER_ERROR
from .eval_cmd import eval_command
from .listing import datasets_command, models_command


#: click's exception classes as typer uses them (recent typer vendors click; older ones import it)
_CLICK = sys.modules[typer.BadParameter.__module__]


class OneLineErrorsGroup(TyperGroup):
    """The top-level group: a usage error (unknown option, ``-b abc``) is one ``error:`` line and exit 2.

    Why: click/rich print a multi-line box for these, while every other bad input in mmrobust is one line;
    scripts and the option tests (issue 9) rely on one shape for every refusal.
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _CLICK.UsageError as exc:
            if not standalone_mode:
                raise
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            typer.echo(f"error: {exc.format_message()}{where}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except _CLICK.ClickException as exc:
            if not standalone_mode:
                raise
            typer.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=OneLineErrorsGroup,
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
        ("mmrobust.cli.benchmark_cmd", "benchmark_command", "benchmark"),
        ("mmrobust.cli.report_cmd", "report_command", "report"),
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
