"""C-ECHO against real DCMTK processes over loopback (TCP_NODELAY=1 on every DCMTK process)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

import aiodicom
from tests.interop.peers import DCMTK_ENV, Peer, free_port, require_tool, stop, wait_for_port

pytestmark = pytest.mark.interop


async def run_tool(*args: str, timeout: float = 60.0) -> tuple[int, str]:
    exe = require_tool(args[0])
    proc = await asyncio.create_subprocess_exec(
        exe, *args[1:], env=DCMTK_ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_dcmtk_echoscu_against_our_echo_scp() -> None:
    async with aiodicom.EchoScp(
        0, host="127.0.0.1", ae_title="ECHO-SCP", require_called_ae_title=True
    ) as scp:
        code, out = await run_tool(
            "echoscu", "-aet", "DCMTK", "-aec", "ECHO-SCP", "--repeat", "5", "127.0.0.1", str(scp.port)
        )
        assert code == 0, out


async def test_dcmtk_echoscu_with_wrong_called_ae_is_rejected_by_us() -> None:
    async with aiodicom.EchoScp(
        0, host="127.0.0.1", ae_title="ECHO-SCP", require_called_ae_title=True
    ) as scp:
        code, out = await run_tool("echoscu", "-v", "-aec", "WRONG", "127.0.0.1", str(scp.port))
        assert code != 0
        assert "Called AE Title Not Recognized" in out, out


async def test_our_echo_against_dcmtk_storescp(dcmtk_storescp: Peer) -> None:
    result = await aiodicom.EchoScu(f"STORESCP@{dcmtk_storescp.address}").echo(count=20)
    assert result.count == 20


async def test_low_level_association_against_dcmtk(dcmtk_storescp: Peer) -> None:
    async with aiodicom.connect(
        dcmtk_storescp.address, called_ae_title="STORESCP", max_pdu_length=65536
    ) as assoc:
        assert assoc.accepted and assoc.peer_max_pdu_length > 0
        assert await assoc.c_echo() == 0
        assert await assoc.c_echo() == 0


def test_cli_echo_against_dcmtk_storescp(dcmtk_storescp: Peer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aiodicom", "echo", f"STORESCP@{dcmtk_storescp.address}", "--count", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 x Success" in proc.stdout


def test_dcmtk_echoscu_against_cli_echoscp() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "echoscp", "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, server)
        exe = require_tool("echoscu")
        proc = subprocess.run(
            [exe, "-aec", "ECHO-SCP", "127.0.0.1", str(port)],
            env=DCMTK_ENV,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        stop(server)  # type: ignore[arg-type]
