"""Helpers for tests that talk to real peers: free loopback ports, DCMTK processes (TCP_NODELAY=1), and the
``dcmtk_storescp`` fixture."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: DCMTK waits on Nagle's algorithm without this: every figure and timeout would be meaningless.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0, log: Path | None = None
) -> None:
    """Until something listens on ``port``; a peer that exits first is an error with its output (its
    stdout pipe, or ``log`` when its output goes to a file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            if log is not None:
                output = log.read_text(errors="replace")
            else:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"peer exited with status {proc.returncode} before listening: {output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@functools.cache
def find_dcmtk(name: str) -> str | None:
    """The DCMTK program ``name`` on PATH, skipping same-named programs of other packages (pynetdicom
    installs a ``storescp`` and an ``echoscu`` of its own)."""
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin"]:
        candidate = shutil.which(name, path=directory)
        if candidate is None:
            continue
        probe = subprocess.run(
            [candidate, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        if "dcmtk" in (probe.stdout + probe.stderr).lower():
            return candidate
    return None


def require_tool(name: str) -> str:
    """The path of a DCMTK program; the test fails (never skips) when it is missing."""
    path = find_dcmtk(name)
    if path is None:
        pytest.fail(
            f"DCMTK's {name} is not installed: scripts/test.sh installs DCMTK and Orthanc", pytrace=False
        )
    return path


@dataclass
class Peer:
    port: int
    out_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_dcmtk(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool with TCP_NODELAY=1 and a bounded time."""
    exe = require_tool(args[0])
    return subprocess.run(
        [exe, *args[1:]], env=DCMTK_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def dcmtk_storescp(tmp_path: Path) -> Iterator[Peer]:
    """DCMTK storescp on a free loopback port, AE title STORESCP, storing into a temporary directory."""
    exe = require_tool("storescp")
    port = free_port()
    out = tmp_path / "dcmtk-received"
    out.mkdir()
    proc = subprocess.Popen(
        [exe, "--aetitle", "STORESCP", "--output-directory", str(out), str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield Peer(port, out, proc)
    finally:
        stop(proc)
