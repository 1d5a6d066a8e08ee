"""examples/batch_send.py as a script (its own process) sending to a real StoreScp on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiodicom import StoreScp
from tests.examples import EXAMPLES, stored_uids, write_study


async def batch_send(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run the script; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "batch_send.py"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def scp(tmp_path: Path) -> AsyncIterator[StoreScp]:
    server = StoreScp(0, host="127.0.0.1", ae_title="BATCH-SCP", out_dir=tmp_path / "received", fsync=False)
    async with server:
        yield server


async def test_sends_every_file_and_exits_zero(scp: StoreScp, tmp_path: Path) -> None:
    _, first = write_study(tmp_path / "a", 30)
    _, second = write_study(tmp_path / "b" / "nested", 10)
    (tmp_path / "b" / "README.txt").write_text("not DICOM: skipped")
    status, out, err = await batch_send(
        f"BATCH-SCP@127.0.0.1:{scp.port}", str(tmp_path / "a"), str(tmp_path / "b"), "-j", "8", "--json"
    )
    assert status == 0, err
    report = json.loads(out)
    assert report["total_files"] == report["successful"] == 40 and report["failed"] == 0
    assert stored_uids(tmp_path / "received") == first | second


async def test_text_summary(scp: StoreScp, tmp_path: Path) -> None:
    write_study(tmp_path / "a", 5)
    status, out, err = await batch_send(f"BATCH-SCP@127.0.0.1:{scp.port}", str(tmp_path / "a"))
    assert status == 0, err
    assert out.startswith("5 of 5 files sent") and err == ""


async def test_unreachable_peer_exits_3(tmp_path: Path) -> None:
    write_study(tmp_path / "a", 2)
    closed = StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "unused")
    async with closed:
        port = closed.port
    status, _, err = await batch_send(f"X@127.0.0.1:{port}", str(tmp_path / "a"), "--retries", "0")
    assert status == 3
    assert err.count("\n") == 1 and err.startswith("batch_send: ")


async def test_bad_usage_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    status, _, err = await batch_send("X@127.0.0.1:104", str(tmp_path / "empty"))
    assert status == 2 and "no DICOM files" in err
    status, _, err = await batch_send("no-port", str(tmp_path / "empty"))
    assert status == 2 and "host:port" in err
