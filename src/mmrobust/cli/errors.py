"""Turn user-facing errors into one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer

from ..errors import MMRobustError

F = TypeVar("F", bound=Callable[..., Any])

#: exit status for bad input / environment (argparse and typer use 2 for usage errors too)
EXIT_USER_ERROR = 2


def user_errors_exit(func: F) -> F:
    """Decorator for command functions: MMRobustError -> ``error: ...`` on stderr and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MMRobustError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
