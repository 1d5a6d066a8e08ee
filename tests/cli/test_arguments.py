"""Bad arguments of every verb are usage errors (exit 2), found before anything connects or listens.

Run in-process with typer's CliRunner against a loopback port nothing listens on: a check made only after
connecting would exit 3 (connection refused) instead, and a server that started would not return at all.
The identity and timeout options of every verb are in tests/cli/test_commands.py; a few cases also run
through the real entry point there.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiodicom.cli import app


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ADDR = f"127.0.0.1:{closed_port()}"


def usage_error(args: list[str]) -> str:
    """Run ``aiodicom ARGS``; it must exit 2 with nothing on stdout. Returns stderr."""
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, (args, result.output)
    assert result.stdout == "", (args, result.stdout)
    return result.stderr


def one_line(stderr: str) -> str:
    """The single line of an ``aiodicom: ...`` error (what every check of ours prints)."""
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    assert stderr.startswith("aiodicom: "), stderr
    return stderr.strip()


# ---------------------------------------------------------------- our checks: one line, saying what is wrong


def cases(tmp: Path) -> dict[tuple[str, ...], tuple[str, ...]]:
    """argv -> what the one line must contain."""
    out = str(tmp / "out")
    study = "StudyInstanceUID=1.2.3"
    return {
        # find
        ("find", ADDR, "-k", "=x"): ("-k", "KEY=VALUE"),
        ("find", ADDR, "-k", "PatientID=QR-PAT-1", "--level", "GALAXY"): ("GALAXY",),
        ("find", ADDR, "-k", "PatientID=QR-PAT-1", "--model", "nonsense_root"): ("nonsense_root",),
        ("find", ADDR, "-k", "NoSuchKeyword=1"): ("NoSuchKeyword",),  # checked before connecting
        # get
        ("get", ADDR, "-k", study, "--level", "GALAXY", "-o", out): ("GALAXY",),
        ("get", ADDR, "-k", study): ("--out-dir",),
        ("get", ADDR, "--out-dir", out): ("at least one key",),
        ("get", ADDR, "-k", "=x", "-o", out): ("KEY=VALUE",),
        ("get", ADDR, "-k", study, "--forward", "not an address"): ("not an address",),
        # move
        ("move", ADDR, "--dest", "AIODICOM-RCV", "-k", study, "-L", "GALAXY"): ("GALAXY",),
        ("move", ADDR, "--dest", "AIODICOM-RCV", "--receive-port", "11112", "-k", study): ("--out-dir",),
        ("move", ADDR, "--dest", "AIODICOM-RCV", "--out-dir", out, "-k", study): ("--receive-port",),
        ("move", ADDR, "--dest", "AIODICOM-RCV"): ("at least one key",),
        ("move", ADDR, "--dest", "THIS-AE-TITLE-IS-TOO-LONG", "-k", study): ("THIS-AE-TITLE-IS-TOO-LONG",),
        # echo
        ("echo", "no-port-here"): ("no-port-here",),
        ("echo", ADDR, "--calling-ae", "THIS-AE-TITLE-IS-TOO-LONG"): ("THIS-AE-TITLE-IS-TOO-LONG",),
        # store
        ("store", ADDR, str(tmp / "missing.dcm")): ("missing.dcm", "no such file"),
        ("store", ADDR, "--transfer-syntax", "NoSuchSyntax", str(tmp)): ("NoSuchSyntax",),
        ("store", ADDR, "--s3-endpoint", "http://127.0.0.1:9", str(tmp)): (
            "--s3-endpoint needs --s3-bucket",
        ),
        ("store", "[::1", str(tmp)): ("[::1",),
        # servers
        ("storescp", "--port", "0"): ("--out-dir",),
        ("storescp", "--port", "0", "-o", out, "--extract-tags", "NoSuchKeyword"): ("NoSuchKeyword",),
        ("storescp", "--port", "0", "-o", out, "--ae-title", "THIS-AE-TITLE-IS-TOO-LONG"): (
            "THIS-AE-TITLE-IS-TOO-LONG",
        ),
        ("echoscp", "--port", "0", "--ae-title", "THIS-AE-TITLE-IS-TOO-LONG"): ("THIS-AE-TITLE-IS-TOO-LONG",),
    }


def test_our_checks_give_one_line(tmp_path: Path) -> None:
    for args, expected in cases(tmp_path).items():
        line = one_line(usage_error(list(args)))
        for text in expected:
            assert text in line, (args, line)


def test_a_receiver_refused_at_start_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "never"
    for bad in (["--ae-title", ""], ["--extract-tags", "NoSuchKeyword"]):
        one_line(usage_error(["storescp", "--port", "0", "-o", str(out), *bad]))
        assert not out.exists(), bad


# ------------------------------------------------------------------- option parsing: typer's usage errors


@pytest.mark.parametrize(
    "args",
    [
        ["find", ADDR, "-k", "PatientID=QR-PAT-1", "--limit", "0"],
        ["echo", ADDR, "--count", "0"],
        ["echo", ADDR, "--timeout", "soon"],
        ["echo"],  # no address
        ["store", ADDR],  # no file
        ["store", ADDR, "--concurrency", "0", "x.dcm"],
        ["store", ADDR, "--throttle-ms", "-1", "x.dcm"],
        ["move", ADDR, "-k", "StudyInstanceUID=1.2.3"],  # no --dest
        ["move", ADDR, "--dest", "X", "--receive-port", "70000", "-k", "StudyInstanceUID=1.2.3"],
        ["echoscp"],  # no --port
        ["echoscp", "--port", "70000"],
        ["storescp", "--port", "-1", "-o", "x"],
        ["nosuchverb"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    stderr = usage_error(args)
    assert "Usage:" in stderr or "Error" in stderr, stderr
