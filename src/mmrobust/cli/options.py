"""Every shared CLI flag, generated from the option groups' field metadata (:mod:`mmrobust.options`).

Why: the same option used to be re-declared per command and drifted (``--templates`` None in one command
and "study" in another, ``--text-attack`` meaning three things). Now an option is declared once, as a field
of its group with :func:`mmrobust.options.option`; :func:`flags` turns a group into a command's flags (name,
type, short flag, help, default: all from the field) and :func:`values_for` turns the parsed values back into
the group's fields — including the one unit conversion, K/255 -> a fraction (:func:`parse_budget`).

Adding an option: one field in its group. Every command that takes the group gets the flag.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional, Sequence

import typer

from ..options.fields import BUDGET, group_fields
from ..options.parse import parse_budget


@dataclass(frozen=True)
class Shared:
    """One declared option: parameter name, Python type, and its ``typer.Option``."""

    name: str
    annotation: Any
    info: Any


def with_options(*groups: Sequence[Shared], exclude: Sequence[str] = ()) -> Callable:
    """Add the groups' options to a command; the command receives them in ``**shared``."""

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        extra = [o for group in groups for o in group if o.name not in exclude]
        params = own + [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.info,
                                          annotation=o.annotation) for o in extra]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            return func(**kwargs)

        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**getattr(func, "__annotations__", {}), **{o.name: o.annotation for o in extra}}
        return wrapper

    return decorate


def _cli_type(annotation: Any, unit: str | None, listing: bool) -> Any:
    """The flag's type: budgets and lists are read as text (parsed by the one parser), ``X | None`` -> Optional."""
    if unit == BUDGET or listing:
        return Optional[str]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = type(None) in typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        base = args[0] if len(args) == 1 else str  # str | list[str] -> text
    else:
        base = annotation
    if typing.get_origin(base) is not None:  # list[...] / tuple[...]: comma-separated text
        base = str
    return Optional[base] if optional or base is not bool else bool


def flags(group: type, *, exclude: Sequence[str] = (), only: Sequence[str] | None = None,
          defaults: Any = None, unset: bool = False) -> tuple[Shared, ...]:
    """The flags of an option group's fields (those with :func:`~mmrobust.options.option` metadata).

    ``defaults``: an instance of the group whose values are the command's defaults (a config that composes the
    group with other defaults, e.g. the studies' CPU-sized training budget); None = the fields' own.
    ``unset``: the flags default to None (the help states the field's default), so a command can tell which
    values the user gave — a method's hyperparameters, refused for a method that does not read them.
    """
    out = []
    for field, info, annotation in group_fields(group):
        if not info.cli or field.name in exclude or (only is not None and field.name not in only):
            continue
        default = getattr(defaults, field.name) if defaults is not None else _default(field)
        if default is dataclasses.MISSING or info.required:
            default = ...
        cli_type = List[str] if info.repeat else _cli_type(annotation, info.unit, info.listing)
        if info.inverted:
            default, cli_type = (not default) if isinstance(default, bool) else default, bool
        elif info.unit == BUDGET and isinstance(default, float):
            default = _budget_text(default)
        elif info.listing and isinstance(default, (tuple, list)):
            default = ",".join(map(str, default))
        elif info.repeat and isinstance(default, tuple):
            default = list(default)
        help_text = info.help
        if unset and cli_type is not bool:
            help_text, default, cli_type = f"{info.help} Default: {default}.", None, Optional[cli_type]
        decls = [info.long_flag(field.name)] + ([info.short] if info.short else [])
        out.append(Shared(info.param_name(field.name), cli_type, typer.Option(default, *decls, help=help_text)))
    return tuple(out)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _budget_text(value: float) -> str:
    k = value * 255.0
    return f"{k:g}" if abs(k - round(k, 6)) < 1e-9 else f"{value:g}/1"


def values_for(group: type, shared: Mapping[str, Any], *, norm: Any = None) -> dict[str, Any]:
    """The group's field values from a command's parsed flags: switches un-inverted, budgets -> fractions,
    lists -> tuples; flags the command left at None are left out (the group's default applies)."""
    out: dict[str, Any] = {}
    for field, info, _ in group_fields(group):
        param = info.param_name(field.name)
        if param not in shared:
            continue
        value = shared[param]
        if info.inverted:
            value = not value
        elif info.unit == BUDGET:
            read_in = info.budget_norm or (norm if norm is not None else shared.get("norm"))
            value = parse_budget(value, read_in, info.long_flag(field.name))
        elif info.listing and isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        elif info.repeat and isinstance(value, list):
            value = tuple(value)
        if value is not None:
            out[field.name] = value
    return out


def group_flags(groups: Sequence[type], **kwargs: Any) -> tuple[Shared, ...]:
    """The flags of several groups (one declaration each; a field two groups share is listed once)."""
    out: dict[str, Shared] = {}
    for group in groups:
        for shared in flags(group, **kwargs):
            out.setdefault(shared.name, shared)
    return tuple(out.values())


def method_flags() -> tuple[Shared, ...]:
    """Every method's hyperparameters (:mod:`mmrobust.training.method_options`), given-or-not (``unset``)."""
    from ..training.methods import method_option_classes

    return group_flags(method_option_classes(), unset=True)


def method_values(shared: Mapping[str, Any]) -> dict[str, Any]:
    """The method hyperparameters the user gave (the method's spec refuses those it does not read)."""
    from ..training.methods import method_option_classes

    given: dict[str, Any] = {}
    for group in method_option_classes():
        given.update({k: v for k, v in values_for(group, shared).items() if v is not False})
    return given
