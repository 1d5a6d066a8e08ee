"""Helpers for tests that talk to real peers: free loopback ports, DCMTK processes (TCP_NODELAY=1), and the
``dcmtk_storescp`` fixture."""

from __future__ import annotations

import functools
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: DCMTK waits on Nagle's algorithm without this: every figure and timeout would be meaningless.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


#: Ports handed out by free_port in this process: a port is handed out once, so two peers never share one.
_GIVEN: set[int] = set()
_RANDOM = random.Random()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback TCP port that nothing is bound to, for a peer to listen on later.

    Nothing holds the port between this call and the peer's bind, so it is taken outside the kernel's
    ephemeral range (no ``bind(("", 0))`` of another server and no client socket can be given it meanwhile)
    and never handed out twice in this process (a session-wide fixture's port stays free for its peer)."""
    low, high = _ephemeral_range()
    candidates = [p for p in range(10000, 65536) if not low <= p <= high]
    for _ in range(1000):
        port = _RANDOM.choice(candidates)
        if port in _GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError("no free loopback port found outside the ephemeral range")


def _listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on TCP ``port`` (any address), from /proc/net/tcp{,6}."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _process_tree(pid: int) -> set[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = set(), [pid]
    while todo:
        current = todo.pop()
        tree.add(current)
        todo.extend(parents.get(current, ()))
    return tree


def _held_by(inodes: set[str], pids: set[int]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    return True
            except OSError:
                continue
    return False


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0, log: Path | None = None
) -> None:
    """Until something listens on ``port`` (with ``proc``: until ``proc`` or a child of it does); a peer
    that exits first is an error with its output (its stdout pipe, or ``log`` when its output goes to a
    file), and so is a port another process listens on (the peer could not bind it, and a test would
    otherwise talk to a stranger)."""
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
                pass
        except OSError:
            time.sleep(0.05)
            continue
        if proc is None or sys.platform != "linux":
            return
        inodes = _listening_inodes(port)
        if _held_by(inodes, _process_tree(proc.pid)):
            return
        if inodes and _held_by(inodes, {int(p.name) for p in Path("/proc").glob("[0-9]*")}):
            raise RuntimeError(f"127.0.0.1:{port} is held by another process, not by the peer started")
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
