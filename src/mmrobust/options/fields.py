"""One declaration per option: a dataclass field carries its CLI flag, short flag, unit and help.

Why: the same option used to be copied flat into four configs and re-declared by three command modules, and
the copies drifted (``--templates`` None in one command and "study" in another, ``-n`` meaning two things).
Now an option is a field of one option group (``RunOptions``, ``TextSettings``, ``TrainingOptions``,
``MMCoAOptions`` ...), declared with :func:`option`; configs are composed from the groups (dataclass
inheritance, so the report's flat keys and every attribute stay as they were), and
:func:`mmrobust.cli.options.flags` generates every command's flags from the same fields.

Units: a field with ``unit="k/255"`` holds a fraction of the [0, 1] pixel range in the Python API; its flag
reads K/255 (or a literal fraction such as ``4/255``) under L-inf, the raw radius under L2 — the CLI is the
only place that reads K/255 (:func:`mmrobust.options.parse.parse_budget`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

#: the only unit a flag converts: K/255 under L-inf, the raw radius under L2
BUDGET = "k/255"


@dataclass(frozen=True)
class OptionInfo:
    """What the CLI needs to know of one field (stored in the field's metadata under ``"option"``)."""

    help: str
    #: the long flag; None = ``--`` + the field name with dashes. A switch may give ``"--on/--off"``.
    flag: str | None = None
    short: str | None = None
    #: :data:`BUDGET` for pixel budgets (the flag reads K/255), else None
    unit: str | None = None
    #: the norm a budget flag is always read in (e.g. ``"linf"`` for the L-inf counterattack of a test-time
    #: defense, whatever the attacks' ``--norm``); None = the command's ``--norm``
    budget_norm: str | None = None
    #: the flag is the negation of the field (``--quiet`` for ``progress``, ``--no-sanity`` for ``sanity``)
    inverted: bool = False
    #: name of the command parameter (default: the field name; inverted switches need their own)
    param: str | None = None
    #: the flag takes a comma-separated list turned into this field's tuple
    listing: bool = False
    #: the flag may be repeated (``--model a --model b``), giving this field's tuple
    repeat: bool = False
    #: the field is set by the program (never a flag), e.g. a derived value
    cli: bool = True
    #: the command cannot run without it (the Python API may still default it, e.g. a benchmark's output)
    required: bool = False

    def long_flag(self, name: str) -> str:
        return self.flag or "--" + name.replace("_", "-")

    def param_name(self, name: str) -> str:
        return self.param or name


def option(default: Any = dataclasses.MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
           **info: Any) -> Any:
    """A dataclass field with its option metadata (``help``, ``flag``, ``short``, ``unit``, ...)."""
    metadata = {"option": OptionInfo(help=help, **info)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option_info(field: dataclasses.Field) -> OptionInfo | None:
    return field.metadata.get("option")


def group_fields(group: type) -> list[tuple[dataclasses.Field, OptionInfo, Any]]:
    """(field, its OptionInfo, its resolved type) of every declared option of a group class, in order."""
    hints = typing.get_type_hints(group)
    return [(f, option_info(f), hints[f.name]) for f in dataclasses.fields(group) if option_info(f) is not None]


def field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def group_values(group: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are fields of ``group`` (any dataclass), ``None`` left out."""
    names = {f.name for f in dataclasses.fields(group)}
    return {k: v for k, v in values.items() if k in names and v is not None}


def flag_of(group: type, name: str) -> str:
    """The flag of field ``name`` of ``group`` (error messages name what the user typed)."""
    for field in dataclasses.fields(group):
        info = option_info(field)
        if field.name == name and info is not None:
            return info.long_flag(name).split("/")[0]
    return "--" + name.replace("_", "-")
