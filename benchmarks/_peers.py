"""Shared helpers for the benchmarks: DCMTK processes with TCP_NODELAY=1 on free loopback ports."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@functools.cache
def tool(name: str) -> str:
    """DCMTK's program (pynetdicom installs same-named ones: take the one that says it is DCMTK).

    Looked up once per name: probing a pynetdicom program on the way takes a Python start (1.7 s here),
    which a benchmark that called this inside its timed region counted in every run."""
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin"]:
        path = shutil.which(name, path=directory)
        if path:
            probe = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
            if "dcmtk" in (probe.stdout + probe.stderr).lower():
                return path
    sys.exit(f"DCMTK's {name} is not installed (apt-get install dcmtk)")


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@contextlib.contextmanager
def dcmtk_storescp(*extra: str) -> Iterator[int]:
    """A DCMTK storescp on a free loopback port; yields the port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.Popen(
            [tool("storescp"), "--aetitle", "STORESCP", "--output-directory", out, *extra, str(port)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def loops() -> list[str]:
    """The event loops to measure: asyncio, and uvloop when it is installed."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return ["asyncio"]
    return ["asyncio", "uvloop"]


def run_on(loop_name: str, coro: object) -> object:
    import asyncio

    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    return asyncio.run(coro)  # type: ignore[arg-type]


def stored_files(out: Path) -> int:
    """Instances a receiver stored under ``out`` (non-empty files outside its temporary folders)."""
    return sum(1 for p in out.rglob("*") if p.is_file() and p.stat().st_size and ".incoming" not in p.parts)


@contextlib.contextmanager
def worktree(repo: Path, rev: str) -> Iterator[Path]:
    """A detached checkout of ``rev`` of ``repo`` in a temporary folder, removed afterwards."""
    tree = Path(tempfile.mkdtemp(prefix="aiodicom-before-")) / "tree"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(tree), rev], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False)
