"""What the ``aiodicom`` command loads to start: the modules, not the time.

Each check runs the command's own entry point (``aiodicom.cli.main``, what the console script and
``python -m aiodicom`` call) in a fresh interpreter and prints, when the interpreter exits, which of the heavy
packages ended up in ``sys.modules``: pydicom and numpy (0.3 s and 40 MB together) must not be among them for
``--version``, ``--help``, an echo, sending an ordinary file, or an idle receiver. Which of Typer, rich and
pydantic each one loads is asserted as well, so that a change shows here. Figures are in
benchmarks/startup.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from tests.interop.peers import DCMTK_ENV, Peer, free_port, require_tool, stop, wait_for_port

HEAVY = ("pydicom", "numpy", "rich", "pydantic", "typer", "anyio", "asyncio")

#: Runs the command's entry point with ARGS; at exit prints {"heavy": [...], "modules": N} as the last line.
_ENTRY = textwrap.dedent(
    f"""
    import atexit, json, sys

    def _report():
        tops = {{name.partition(".")[0] for name in sys.modules}}
        heavy = [name for name in {HEAVY!r} if name in tops]
        print(json.dumps({{"heavy": heavy, "modules": len(sys.modules)}}), flush=True)

    atexit.register(_report)
    sys.argv = ["aiodicom", *sys.argv[1:]]
    from aiodicom.cli import main
    main()
    """
)


def loaded_by(*args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The heavy packages that ``aiodicom ARGS`` loaded, and the finished process."""
    proc = subprocess.run(
        [sys.executable, "-c", _ENTRY, *args], capture_output=True, text=True, timeout=120, check=False
    )
    return _heavy(proc.stdout), proc


def _heavy(stdout: str) -> set[str]:
    last = stdout.strip().splitlines()[-1]
    return set(json.loads(last)["heavy"])


def test_version_loads_nothing_heavy() -> None:
    heavy, proc = loaded_by("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("aiodicom "), proc.stderr
    assert heavy == set(), heavy  # not even Typer or asyncio


def test_version_is_the_same_line_as_the_option_prints() -> None:
    """The shortcut for ``aiodicom --version`` prints what Typer's eager option does."""
    from aiodicom.cli import app

    through_typer = CliRunner().invoke(app, ["--version"])
    _, proc = loaded_by("--version")
    assert through_typer.exit_code == 0
    assert proc.stdout.splitlines()[0] == through_typer.stdout.strip()


def test_import_aiodicom_loads_nothing_heavy() -> None:
    code = f"import sys, aiodicom; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [("echo", "--help"), ("--help",), ("store", "--help")])
def test_help_loads_typer_and_rich_only(args: tuple[str, ...]) -> None:
    """Help is Typer's, drawn with rich (its panels): no pydicom, numpy, pydantic, nor an event loop."""
    heavy, proc = loaded_by(*args)
    assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr
    assert heavy == {"typer", "rich"}, heavy


def test_bad_usage_loads_no_pydicom() -> None:
    heavy, proc = loaded_by("echo", "127.0.0.1:9", "--count", "x")
    assert proc.returncode == 2 and "--count" in proc.stderr
    assert heavy.isdisjoint({"pydicom", "numpy", "asyncio"}), heavy


@pytest.fixture
def dcmtk_echo_peer(tmp_path: Path) -> Iterator[Peer]:
    """DCMTK storescp (it answers C-ECHO and stores) on a free loopback port, TCP_NODELAY=1."""
    port = free_port()
    proc = subprocess.Popen(
        [require_tool("storescp"), "--output-directory", str(tmp_path), str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield Peer(port, tmp_path, proc)
    finally:
        stop(proc)


@pytest.mark.interop
def test_echo_to_dcmtk_loads_no_pydicom_nor_pydantic(dcmtk_echo_peer: Peer) -> None:
    heavy, proc = loaded_by("echo", dcmtk_echo_peer.address)
    assert proc.returncode == 0 and "1 x Success" in proc.stdout, proc.stderr
    assert heavy == {"typer", "asyncio"}, heavy


@pytest.mark.interop
def test_store_of_an_ordinary_file_loads_no_pydicom(dcmtk_echo_peer: Peer) -> None:
    """Its header is read without pydicom, the fallback contexts are chosen without the codecs, and rich
    draws only the table (with --json: nothing of rich); the file arrives whole."""
    path = get_testdata_file("CT_small.dcm")
    heavy, proc = loaded_by("store", dcmtk_echo_peer.address, path, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["successful"] == 1
    assert heavy == {"typer", "asyncio"}, heavy
    heavy, proc = loaded_by("store", dcmtk_echo_peer.address, path)
    assert proc.returncode == 0 and "C-STORE to" in proc.stdout, proc.stderr
    assert heavy == {"typer", "asyncio", "rich"}, heavy
    received = [p for p in dcmtk_echo_peer.out_dir.iterdir() if p.is_file()]
    assert received and {dcmread(p).SOPInstanceUID for p in received} == {dcmread(path).SOPInstanceUID}


@pytest.mark.parametrize("verb", ["storescp", "echoscp"])
def test_idle_receiver_loads_no_pydicom(tmp_path: Path, verb: str) -> None:
    """The server as the command starts it, until SIGTERM: it listens with neither pydicom nor numpy (they
    load with the first instance that needs them)."""
    port = free_port()
    args = [verb, "--port", str(port), "--host", "127.0.0.1"]
    if verb == "storescp":
        args += ["--out-dir", str(tmp_path / "in")]
    proc = subprocess.Popen(
        [sys.executable, "-c", _ENTRY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)  # type: ignore[arg-type]
    assert proc.returncode == 0, err
    assert _heavy(out) == {"typer", "asyncio", "anyio"}, out


def test_each_verb_is_registered_by_the_module_main_loads_for_it() -> None:
    """``main`` imports only the verb's module: the table must name the module that defines each verb."""
    from aiodicom.cli import VERBS, app
    from aiodicom.cli.common import _verb_name

    registered = {_verb_name(c): c.callback.__module__ for c in app.registered_commands if c.callback}
    assert {verb: f"aiodicom.cli.{module}" for verb, module in VERBS.items()} == registered


@pytest.mark.parametrize("verb", ["echo", "store", "storescp", "echoscp", "find", "get", "move", "demo"])
def test_one_verb_app_runs_the_verb_as_the_whole_app_does(verb: str) -> None:
    """The app built with one verb gives the same help and the same usage errors as the whole app."""
    from aiodicom.cli import app
    from aiodicom.cli.common import verb_app

    runner = CliRunner()
    cases = [[verb, "--help"], [verb, "--no-such-option"]]
    if verb != "demo":  # the others need an argument or option: a usage error (the demo would run)
        cases.append([verb])
    for args in cases:
        whole = runner.invoke(app, args, prog_name="aiodicom")
        alone = runner.invoke(verb_app(verb), args, prog_name="aiodicom")
        assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output), args
    assert verb_app("no-such-verb") is app


def test_console_script_is_the_entry_point() -> None:
    """The installed ``aiodicom`` script calls the same ``main`` (so these checks hold for it too)."""
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "aiodicom"]
    assert script.value == "aiodicom.cli:main"
