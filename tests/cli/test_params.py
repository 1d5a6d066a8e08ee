"""The plain option values converted without pydantic give what Typer's own conversion gives.

Each command line is parsed twice by the real Typer command of the verb: once as Typer builds it (every
parameter converted by its pydantic adapter) and once with the converters of aiodicom.cli.params. The values
handed to the verb, or the usage error and its message, must be the same.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from typer._click.exceptions import UsageError

from aiodicom.cli import app
from aiodicom.cli.params import _Converter, prepare

ADDR = "127.0.0.1:9"
CASES: list[list[str]] = [
    ["echo", ADDR],
    ["echo", ADDR, "-n", "3", "--timeout", "2.5", "--calling-ae", "ME", "--called-ae", "YOU"],
    ["echo", ADDR, "--count", "007"],  # leading zeros: left to pydantic
    ["echo", ADDR, "--count", "+3"],
    ["echo", ADDR, "--count", " 3 "],
    ["echo", ADDR, "--count", "1_000"],
    ["echo", ADDR, "--count", "x"],
    ["echo", ADDR, "--count", "0"],  # below min=1
    ["echo", ADDR, "--count", "99999999999999999999999"],
    ["echo", ADDR, "--timeout", "1e3"],
    ["echo", ADDR, "--timeout", "0.000001"],
    ["echo", ADDR, "--timeout", "inf"],
    ["echo", ADDR, "--timeout", "-2"],
    ["echo", ADDR, "--timeout", "30"],
    ["echo", ADDR, "--dimse-timeout", "5", "--tls", "--tls-ca", "ca.pem", "--json", "-v"],
    ["store", ADDR, "a.dcm", "b.dcm", "-j", "4", "--throttle-ms", "0", "--max-pdu", "65536"],
    ["store", ADDR, "a.dcm", "--retries", "-1"],
    ["store", ADDR, "a.dcm", "--transfer-syntax", "JPEGLSLossless", "--allow-lossy"],
    ["storescp", "--port", "11112", "-o", "out"],
    ["storescp", "--port", "65535", "-o", "out", "--extract-tags", "PatientID", "--extract-tags", "Modality"],
    ["storescp", "--port", "65536", "-o", "out"],  # above max
    ["storescp", "--port", "0", "-o", "out", "--allow-host", "10.0.0.0/8", "--drain-timeout", "0"],
    ["storescp", "--port", "1", "-o", "out", "--max-associations", "2", "--max-pending", "1"],
    ["echoscp", "--port", "104", "--idle-timeout", "0", "--artim-timeout", "1.5"],
    ["find", ADDR, "--level", "study", "-k", "PatientID=1", "-k", "Modality=CT"],
    ["get", ADDR, "-o", "out", "-k", "StudyInstanceUID=1.2"],
    ["move", ADDR, "--dest", "ME", "--receive-port", "11113"],
    ["demo", "--count", "5", "-j", "2"],
]


def _converters(command: Any, ctx: Any) -> list[Any]:
    return [p._runtime_param for p in command.get_params(ctx) if hasattr(p, "_runtime_param")]


def _parse(args: list[str], ours: bool) -> tuple[str, Any]:
    group = typer.main.get_command(app)  # a fresh command each time: nothing converted yet
    verb, *rest = args
    command = group.commands[verb]  # type: ignore[attr-defined]
    ctx = group.make_context("aiodicom", [verb], resilient_parsing=True)
    if ours:
        prepare(command, ctx)
    try:
        sub = command.make_context(verb, list(rest), parent=ctx)
        outcome: tuple[str, Any] = ("ok", sub.params)
    except UsageError as exc:
        outcome = ("error", (type(exc).__name__, exc.format_message()))
    kinds = {type(c) for c in _converters(command, ctx)}
    assert (kinds == {_Converter}) if ours else (_Converter not in kinds), kinds
    return outcome


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_same_values_and_errors_as_typer(args: list[str]) -> None:
    assert _parse(args, ours=True) == _parse(args, ours=False)


def test_plain_values_need_no_pydantic() -> None:
    """The values the fast path takes (what most command lines are) never build a pydantic adapter."""
    group = typer.main.get_command(app)
    ctx = group.make_context("aiodicom", ["storescp"], resilient_parsing=True)
    command = group.commands["storescp"]  # type: ignore[attr-defined]
    prepare(command, ctx)
    command.make_context(
        "storescp", ["--port", "104", "-o", "out", "--extract-tags", "PatientID"], parent=ctx
    )
    converters = [p._runtime_param for p in command.get_params(ctx) if hasattr(p, "_runtime_param")]
    assert converters and all(c._typer is None for c in converters)
