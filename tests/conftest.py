"""Shared fixtures: real DCMTK peers on free loopback ports."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import DCMTK_ENV, Peer, free_port, require_tool, stop, wait_for_port


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
