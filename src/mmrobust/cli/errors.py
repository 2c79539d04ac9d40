"""Turn user-facing errors into one line and a non-zero exit, never a traceback; interruptions likewise."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Mapping, TypeVar

import typer

from ..errors import MMRobustError
from .interrupts import INTERRUPTED, Terminated, exit_status, sigterm_raises

F = TypeVar("F", bound=Callable[..., Any])

#: exit status for bad input / environment (argparse and typer use 2 for usage errors too)
EXIT_USER_ERROR = 2

#: the line an interrupted command prints, from the command's parsed arguments (train: whether --resume is needed)
InterruptLine = Callable[[Mapping[str, Any]], str]


def user_errors_exit(func: F | None = None, *, interrupted: InterruptLine | None = None) -> Any:
    """Decorator for command functions: MMRobustError -> ``error: ...`` on stderr and exit 2; Ctrl-C or SIGTERM
    -> one line (:data:`~.interrupts.INTERRUPTED`, or ``interrupted(arguments)``) and exit 130 / 143.

    Use as ``@user_errors_exit`` or ``@user_errors_exit(interrupted=...)``."""
    if func is None:
        return lambda f: user_errors_exit(f, interrupted=interrupted)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_raises():
                return func(*args, **kwargs)
        except MMRobustError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except (KeyboardInterrupt, Terminated) as exc:
            line = interrupted(kwargs) if interrupted is not None else INTERRUPTED
            typer.echo(line, err=True)
            sys.exit(exit_status(exc))

    return wrapper
