"""The ``aiodicom`` command through its real entry point (a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from aiodicom.errors import AssociationAborted
from aiodicom.net.client import open_association
from tests.interop import pynetdicom_peer as creds
from tests.interop.peers import free_port, stop, wait_for_port
from tests.interop.pynetdicom_peer import IdentityPeer, start_identity_peer


def run(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiodicom", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("aiodicom ")


def test_echo_refused_exits_3_with_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run("echo", f"127.0.0.1:{port}")
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "refused" in proc.stderr


def test_bad_address_exits_2() -> None:
    proc = run("echo", "no-port-here")
    assert proc.returncode == 2
    assert "host:port" in proc.stderr


def test_echo_rejected_and_json() -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiodicom",
            "echoscp",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--ae-title",
            "MINE",
            "--require-called-ae",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, server)  # type: ignore[arg-type]
        rejected = run("echo", f"OTHER@127.0.0.1:{port}")
        assert rejected.returncode == 1
        assert "rejected" in rejected.stderr and "called-AE-title-not-recognized" in rejected.stderr
        ok = run("echo", f"MINE@127.0.0.1:{port}", "--count", "4", "--json")
        assert ok.returncode == 0, ok.stderr
        payload = json.loads(ok.stdout)
        assert payload["count"] == 4 and payload["status"] == 0 and payload["called_ae_title"] == "MINE"
    finally:
        stop(server)  # type: ignore[arg-type]


def test_echoscp_port_in_use_exits_non_zero() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        proc = run("echoscp", "--port", str(sock.getsockname()[1]), "--host", "127.0.0.1")
    assert proc.returncode != 0 and "already in use" in proc.stderr


def test_echo_timeout_exits_non_zero_with_one_line() -> None:
    with socket.socket() as sock:  # accepts connections (backlog) and never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        proc = run("echo", f"127.0.0.1:{sock.getsockname()[1]}", "--timeout", "0.5")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no answer" in proc.stderr


def test_echoscp_json_says_where_it_listens_and_answers() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "echoscp", "--port", "0", "--host", "127.0.0.1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["event"] == "server_started" and started["ae_title"] == "ECHO-SCP"
        echo = run("echo", f"ECHO-SCP@127.0.0.1:{started['port']}", "--json")
        assert echo.returncode == 0 and json.loads(echo.stdout)["count"] == 1
    finally:
        stop(proc)  # type: ignore[arg-type]


def test_storescp_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM is the stop signal of systemd and containers: the receiver stops cleanly and exits 0."""
    port = free_port()
    out = tmp_path / "in"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "storescp", "--port", str(port), "--host", "127.0.0.1",
         "--out-dir", str(out), "--study-timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        sent = run("store", f"127.0.0.1:{port}", get_testdata_file("CT_small.dcm"))
        assert sent.returncode == 0, sent.stderr
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        stop(proc)  # type: ignore[arg-type]
    assert proc.returncode == 0, err
    assert "stopped (SIGTERM)" in err
    assert len(list(out.rglob("*.dcm"))) == 1


# ----------------------------------------------------------------- user identity and timeout options


@pytest.fixture(scope="module")
def identity_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityPeer]:
    with start_identity_peer(tmp_path_factory.mktemp("identity-peer")) as peer:
        yield peer


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("secrets")
    (folder / "password").write_text(f"{creds.PASSWORD}\nsecond line, ignored\n")
    (folder / "wrong").write_text("guess\n")
    (folder / "empty").write_text("\n")
    (folder / "token.jwt").write_text(creds.JWT + "\n")
    return folder


def _usage_cases(secrets: Path) -> dict[tuple[str, ...], str]:
    missing = str(secrets / "missing")
    return {
        ("echo", "--password-file", str(secrets / "password")): "--password-file needs --username",
        ("echo", "--identity-type", "jwt"): "go together",
        ("echo", "--identity-type", "username", "--identity-file", missing): "kerberos, saml or jwt",
        ("echo", "--identity-type", "pgp", "--identity-file", missing): "unknown user identity type",
        ("echo", "--username", "a", "--identity-type", "jwt", "--identity-file", missing): "not both",
        ("echo", "--username", "a", "--password-file", missing): "cannot read",
        ("echo", "--username", "a", "--password-file", str(secrets / "empty")): "no password",
        ("echo", "--dimse-timeout", "0"): "--dimse-timeout must be more than 0",
        ("store", "--identity-response", "x.dcm"): "needs an identity",
        ("find", "--identity-response"): "needs an identity",
        ("get", "--identity-response", "-o", missing): "needs an identity",
        ("move", "--identity-response", "--dest", "X"): "needs an identity",
        ("store", "--dimse-timeout", "-1", "x.dcm"): "--dimse-timeout must be more than 0",
        ("find", "--dimse-timeout", "0"): "--dimse-timeout must be more than 0",
        ("get", "--dimse-timeout", "0", "-o", missing): "--dimse-timeout must be more than 0",
        ("move", "--dimse-timeout", "0", "--dest", "X"): "--dimse-timeout must be more than 0",
        ("echoscp", "--port", "0", "--idle-timeout", "-1"): "cannot be negative",
        ("storescp", "--port", "0", "-o", missing, "--idle-timeout", "-1"): "cannot be negative",
        ("echoscp", "--port", "0", "--max-associations", "0"): "--max-associations",
        ("storescp", "--port", "0", "-o", missing, "--max-associations", "0"): "--max-associations",
        ("echoscp", "--port", "0", "--drain-timeout", "-1"): "--drain-timeout",
        ("storescp", "--port", "0", "-o", missing, "--drain-timeout", "-1"): "--drain-timeout",
    }


def _argv(args: tuple[str, ...]) -> list[str]:
    verb, *rest = args
    return [verb, *([] if verb.endswith("scp") else ["127.0.0.1:9"]), *rest]


def test_argument_errors_exit_2_without_a_peer(secrets: Path) -> None:
    """Every client verb has the identity and timeout options, the servers theirs; wrong values and
    combinations are usage errors, found before anything connects or listens."""
    from typer.testing import CliRunner

    from aiodicom.cli import app

    for args, expected in _usage_cases(secrets).items():
        result = CliRunner().invoke(app, _argv(args))
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output, (args, result.output)


def test_argument_errors_through_the_entry_point(secrets: Path) -> None:
    """A few of them through ``python -m aiodicom``; there is no --password option at all."""
    cases = {
        ("echo", "--password", "s3cret"): "No such option",
        ("store", "--identity-response", "x.dcm"): "needs an identity",
        ("get", "--dimse-timeout", "0", "-o", str(secrets)): "--dimse-timeout must be more than 0",
        ("storescp", "--port", "0", "-o", str(secrets), "--idle-timeout", "-1"): "cannot be negative",
    }
    procs = {
        args: subprocess.Popen(
            [sys.executable, "-m", "aiodicom", *_argv(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in cases
    }
    for args, expected in cases.items():
        out, err = procs[args].communicate(timeout=60)
        assert procs[args].returncode == 2, (args, out, err)
        assert expected in err, (args, err)


@pytest.mark.interop
def test_identity_options_against_a_peer_that_checks_them(identity_peer: IdentityPeer, secrets: Path) -> None:
    addr = identity_peer.address
    password = ["--username", creds.USERNAME, "--password-file", str(secrets / "password")]
    mark = identity_peer.mark()
    ok = run("echo", addr, *password, "--json")
    assert ok.returncode == 0, ok.stderr
    (record,) = identity_peer.wait_records(mark)
    assert (record["identity_type"], record["primary"], record["secondary"]) == (2, "alice", "s3cret")

    wrong = run("echo", addr, "--username", creds.USERNAME, "--password-file", str(secrets / "wrong"))
    assert wrong.returncode == 1 and "rejected" in wrong.stderr

    from_env = run("echo", addr, "--username", creds.USERNAME, env={"AIODICOM_PASSWORD": creds.PASSWORD})
    assert from_env.returncode == 0, from_env.stderr

    jwt = ["--identity-type", "jwt", "--identity-file", str(secrets / "token.jwt"), "--identity-response"]
    assert run("echo", addr, *jwt).returncode == 0

    unconfirmed = run("echo", addr, *password, "--identity-response")
    assert unconfirmed.returncode == 1
    assert unconfirmed.stderr.count("\n") == 1 and "did not confirm the user identity" in unconfirmed.stderr


@pytest.mark.interop
def test_every_client_verb_sends_the_identity(identity_peer: IdentityPeer, tmp_path: Path) -> None:
    addr = identity_peer.address
    env = {"AIODICOM_PASSWORD": creds.PASSWORD}
    identity = ["--username", creds.USERNAME, "--dimse-timeout", "20"]
    query = ["-k", "StudyInstanceUID=1.2.3"]
    commands = {
        "store": ["store", addr, get_testdata_file("CT_small.dcm"), *identity],
        "find": ["find", addr, *query, *identity],
        "get": ["get", addr, *query, "-o", str(tmp_path), *identity],
        "move": ["move", addr, *query, "--dest", "ELSEWHERE", *identity],
    }
    for verb, args in commands.items():
        mark = identity_peer.mark()
        proc = run(*args, env=env)
        # the peer holds no study: get and move find nothing to retrieve (exit 4) once their survey ran
        assert proc.returncode == (4 if verb in ("get", "move") else 0), (verb, proc.stderr)
        records = identity_peer.wait_records(mark)
        assert records, verb
        assert all((r["identity_type"], r["secondary"]) == (2, creds.PASSWORD) for r in records), verb


@pytest.mark.interop
def test_a_failed_file_shows_the_peers_error_comment(identity_peer: IdentityPeer) -> None:
    ct = get_testdata_file("CT_small.dcm")
    proc = run("store", identity_peer.address, ct, "-aet", "REFUSE-SCU", "--json")
    assert proc.returncode == 1 and "1 of 1 files failed" in proc.stderr
    (outcome,) = json.loads(proc.stdout)["files"]
    assert outcome["status"] == 0xA700
    assert outcome["error"] == "Refused: Out of Resources (0xA700): disk full on the peer"


@pytest.mark.interop
def test_dimse_timeout_gives_up_on_a_silent_peer(identity_peer: IdentityPeer) -> None:
    """The peer answers SLOW-SCU's C-ECHO after 3 s: --dimse-timeout 0.5 gives up first, --timeout stays."""
    started = time.monotonic()
    proc = run("echo", identity_peer.address, "-aet", "SLOW-SCU", "--timeout", "30", "--dimse-timeout", "0.5")
    elapsed = time.monotonic() - started
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert elapsed < 2.8  # the answer comes after 3 s

    ct = get_testdata_file("CT_small.dcm")
    store = run("store", identity_peer.address, ct, "-aet", "SLOW-SCU", "--dimse-timeout", "0.5", "--json")
    assert store.returncode == 1 and "1 of 1 files failed" in store.stderr
    (outcome,) = json.loads(store.stdout)["files"]
    assert outcome["error"] == "no C-STORE response within 0.5 s (dimse_timeout)"


@pytest.mark.parametrize("verb", ["echoscp", "storescp"])
async def test_idle_timeout_and_max_associations_on_the_servers(verb: str, tmp_path: Path) -> None:
    port = free_port()
    extra = ["--out-dir", str(tmp_path)] if verb == "storescp" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", verb, "--port", str(port), "--host", "127.0.0.1",
         "--idle-timeout", "1", "--max-associations", "1", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.to_thread(wait_for_port, port, proc)  # type: ignore[arg-type]
        assoc = await open_association(f"127.0.0.1:{port}")
        refusing = asyncio.ensure_future(asyncio.to_thread(run, "echo", f"127.0.0.1:{port}"))
        while not refusing.done():  # keep the one slot taken (and not idle) however slow the client starts
            assert await assoc.c_echo(timeout=10) == 0
            last = time.monotonic()
            await asyncio.sleep(0.2)
        refused = await refusing
        assert refused.returncode == 1 and "local-limit-exceeded" in refused.stderr, refused.stderr
        with pytest.raises(AssociationAborted):  # silent for 1 s: the server aborts it
            await assoc.receive(timeout=10)
        assert 0.9 <= time.monotonic() - last < 5
        again = await asyncio.to_thread(run, "echo", f"127.0.0.1:{port}")
        assert again.returncode == 0, again.stderr
    finally:
        stop(proc)  # type: ignore[arg-type]
