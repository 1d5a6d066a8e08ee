"""The ``aiodicom`` command through its real entry point (a subprocess)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pydicom.data import get_testdata_file

from tests.peers import free_port, stop, wait_for_port


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiodicom", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
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
