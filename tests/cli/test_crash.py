"""``aiodicom storescp`` killed and stopped mid-instance, through its real entry point (a subprocess), fed
by a raw peer over loopback: after ``kill -9`` and a restart nothing is visible under study/series and nothing
stale stays in ``.incoming``; on SIGTERM the instance that is arriving is finished within the drain deadline
and stored whole, and one still arriving at the deadline leaves nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from aiodicom.dimse import Command
from aiodicom.storage.filesystem import LOCK_NAME
from tests.interop.peers import free_port, stop, wait_for_port
from tests.interop.rawpeer import RawPeer, fragments, pdata
from tests.scp.test_crash import CONTEXTS, Instance, big, partial_files, stored, temporary_files, until


@contextlib.contextmanager
def storescp(out: Path, log: Path, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    with log.open("ab") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiodicom", "storescp", "--port", str(port), "--host", "127.0.0.1",
             "--out-dir", str(out), "--no-fsync", *options],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, proc, timeout=30, log=log)
        yield proc, port
    finally:
        stop(proc)


async def send_slowly(peer: RawPeer, inst: Instance, *, upto: int | None = None, pause: float = 0.0) -> None:
    """The C-STORE-RQ, then the data set 1 MB at a time with ``pause`` seconds between (the first ``upto``
    bytes only, the last fragment unflagged, when given)."""
    await peer.send_command(1, Command.c_store_rq(1, inst.sop_class, inst.sop_instance))
    data = inst.data if upto is None else inst.data[:upto]
    pdvs = fragments(1, False, data, peer.max_value, last=upto is None)
    step = (1 << 20) // peer.max_value + 1
    for start in range(0, len(pdvs), step):
        await peer.send(b"".join(pdata(p) for p in pdvs[start : start + step]), timeout=30)
        if pause:
            await asyncio.sleep(pause)


def received(out: Path) -> int:
    return sum(p.stat().st_size for p in partial_files(out))


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"still running after {timeout} s"
        await asyncio.sleep(0.05)
    return proc.returncode


async def test_kill_9_mid_instance_then_restart_leaves_nothing_stale(tmp_path: Path) -> None:
    """Found: kill -9 left the partial file (41 MB there) and the spare files in .incoming, never removed.
    The restarted server removes them before it listens; nothing ever showed under study/series."""
    out, log = tmp_path / "out", tmp_path / "storescp.log"
    inst = big(48)
    with storescp(out, log) as (proc, port):
        peer = await RawPeer.connect(port)
        try:
            await peer.associate(CONTEXTS)
            await send_slowly(peer, inst, upto=40 << 20)
            await until(lambda: received(out) > 30 << 20, 30, "30 MB in the temporary file")
            proc.send_signal(signal.SIGKILL)
            assert await wait_exit(proc, 10) == -signal.SIGKILL
        finally:
            await peer.close()
    left = temporary_files(out)
    assert received(out) > 30 << 20 and len(left) > 1  # the partial file and the spares
    assert [p.name for p in out.iterdir()] == [".incoming"]  # nothing visible under study/series

    with storescp(out, log) as (again, port):
        # removed before it listened
        assert partial_files(out) == [] and not any(p.exists() for p in left)
        (live,) = (out / ".incoming").iterdir()  # only the folder of the live process
        assert live.name.startswith(f"{again.pid}-") and (live / LOCK_NAME).exists()
        assert [p.name for p in out.iterdir()] == [".incoming"]
        async with await RawPeer.connect(port) as peer:  # and it serves
            await peer.associate(CONTEXTS)
            small = big(0.1)
            assert (await peer.c_store(1, small)).status == 0
            await peer.release()
        again.send_signal(signal.SIGTERM)
        assert await wait_exit(again, 30) == 0, log.read_text()
    assert [p.name for p in stored(out)] == [f"{small.sop_instance}.dcm"]
    assert list((out / ".incoming").iterdir()) == []


async def test_sigterm_mid_instance_finishes_it_within_the_drain_deadline(tmp_path: Path) -> None:
    """Found: SIGTERM at 15.7 of 104.9 MB aborted the instance. A 100 MB instance sent slowly: SIGTERM
    once 15 MB are in; the rest still comes, is stored whole and answered Success; then the process exits."""
    out, log = tmp_path / "out", tmp_path / "storescp.log"
    inst = big(100)
    with storescp(out, log) as (proc, port):
        async with await RawPeer.connect(port) as peer:
            await peer.associate(CONTEXTS)
            sending = asyncio.ensure_future(send_slowly(peer, inst, pause=0.02))
            try:
                await until(lambda: received(out) > 15 << 20, 30, "15 MB in")
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                await asyncio.wait_for(sending, 60)
            finally:
                sending.cancel()
            answer = await peer.receive_message(30)
            assert answer.command.status == 0
            assert await peer.closes_within(10)
        assert await wait_exit(proc, 30) == 0, log.read_text()
        assert time.monotonic() - signalled < 30  # within the default drain deadline
    (path,) = stored(out)
    assert path.stat().st_size > len(inst.data)
    with path.open("rb") as fp:
        fp.seek(-len(inst.data), os.SEEK_END)
        assert fp.read() == inst.data
    assert list((out / ".incoming").iterdir()) == []
    assert "stopped (SIGTERM)" in log.read_text()


async def test_sigterm_an_instance_still_arriving_at_the_deadline_leaves_nothing(tmp_path: Path) -> None:
    """--drain-timeout 1 and an instance that needs several more seconds: cut at the deadline, nothing of it
    stored, nothing left in .incoming, and the process exits 0."""
    out, log = tmp_path / "out", tmp_path / "storescp.log"
    inst = big(16)
    with storescp(out, log, "--drain-timeout", "1") as (proc, port):
        async with await RawPeer.connect(port) as peer:
            await peer.associate(CONTEXTS)
            sending = asyncio.ensure_future(send_slowly(peer, inst, pause=0.4))
            try:
                await until(lambda: received(out) > 2 << 20, 30, "2 MB in")
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                assert await wait_exit(proc, 20) == 0, log.read_text()
                assert time.monotonic() - signalled < 10
                assert not sending.done()  # the instance was still coming when it was cut
            finally:
                sending.cancel()
                with contextlib.suppress(BaseException):
                    await sending
    assert stored(out) == []
    assert [p.name for p in out.iterdir()] == [".incoming"]
    assert list((out / ".incoming").iterdir()) == []
