"""Command-line values converted without building a validator for each parameter.

Typer (0.2x) converts every parameter's value with a pydantic ``TypeAdapter`` that it builds on first use:
importing pydantic and building the adapters of one verb's twenty options costs more than the rest of
``aiodicom echo`` together. Most values need no conversion at all (an option left out is None, a string
option's value is the string typed), and the rest are plain numbers. :class:`Group` gives each parameter of
the verb being run a converter that returns those values itself, exactly as the adapter would, and hands
everything else (a malformed or out-of-range number, a path, a choice, a custom parser) to Typer's own
conversion, built only then, so the errors and their messages stay Typer's.

This relies on two attributes of Typer's parameters (``type_descriptor`` and ``_runtime_param``); where they
are missing (another Typer), the parameters are left as they are and convert as before.
"""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from typer.core import TyperGroup

_INT = re.compile(r"0|[1-9][0-9]{0,17}")
_FLOAT = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,15})?")
_MISSING = object()


def _number(value: Any, kind: type, info: Any) -> Any:
    """``value`` as ``kind`` when it is one already or is written plainly and lies within the parameter's
    bounds (what the adapter returns unchanged), else _MISSING."""
    if type(value) is kind:
        number = value
    elif type(value) is str and (_INT if kind is int else _FLOAT).fullmatch(value):
        number = kind(value)
    else:
        return _MISSING
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        return _MISSING  # the adapter's error (or its clamping) decides
    return number


def _plain_value(value: Any, annotation: Any, info: Any) -> Any:
    """The converted value when it needs no validator, else _MISSING."""
    if annotation is str:
        return value if type(value) is str else _MISSING
    if annotation is int or annotation is float:
        return _number(value, annotation, info)
    listed = get_origin(annotation) is list and get_args(annotation) == (str,)
    if listed and isinstance(value, list | tuple) and all(type(item) is str for item in value):
        return list(value)
    return _MISSING


class _Converter:
    """A parameter's conversion: the plain cases here, the rest by Typer's converter (built when needed)."""

    __slots__ = ("_descriptor", "_typer")

    def __init__(self, descriptor: Any) -> None:
        self._descriptor = descriptor
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:  # as Typer's RuntimeParam.coerce does, before any validator
            return () if param.multiple or param.nargs == -1 else None
        descriptor = self._descriptor
        if descriptor.parameter_info.parser is None and not (descriptor.is_choice or descriptor.is_file):
            plain = _plain_value(value, descriptor.annotation, descriptor.parameter_info)
            if plain is not _MISSING:
                return plain
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)


def prepare(command: Any, ctx: Any) -> None:
    """Give each parameter of ``command`` (its help option too) that has not converted a value yet a
    :class:`_Converter`."""
    for param in command.get_params(ctx):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and getattr(param, "_runtime_param", _MISSING) is None:
            param._runtime_param = _Converter(descriptor)


class Group(TyperGroup):
    """The ``aiodicom`` group: each verb's parameters get their converters when the verb is looked up."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            prepare(command, ctx)
        return command

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        prepare(self, ctx)
        return super().parse_args(ctx, args)
