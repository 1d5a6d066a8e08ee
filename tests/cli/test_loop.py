"""``aiodicom --loop asyncio|uvloop VERB``: the event loop the verbs run on (uvloop when installed)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

import aiodicom


def _echo(port: int, *loop: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiodicom", *loop, "echo", "--verbose", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("loop", "used"),
    [((), "uvloop"), (("--loop", "asyncio"), "asyncio"), (("--loop=uvloop",), "uvloop")],
)
async def test_the_verb_runs_on_the_loop_asked_for(loop: tuple[str, ...], used: str) -> None:
    pytest.importorskip("uvloop")
    async with aiodicom.EchoScp(0, host="127.0.0.1") as scp:
        done = await asyncio.to_thread(_echo, scp.port, *loop)
    assert done.returncode == 0, done.stderr
    assert f"event loop: {used}" in done.stderr


def test_an_unknown_loop_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiodicom", "--loop", "trio", "echo", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--loop takes asyncio or uvloop, not 'trio'" in done.stderr
