"""Slow and idle peers: 1,000 silent connections and 1,000 that send an A-ASSOCIATE-RQ one byte per second do
not keep a real client from storing, and the ARTIM timer closes every one of them.

The attackers connect from 127.0.0.2 (a distinct loopback source), the real client from 127.0.0.1. ARTIM is
short here (4 s): the pending connections must all be closed by the server after about that long, not
before, and the client's associations, opened while all 2,000 are pending, must each store within a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import aiodicom
from aiodicom.scp.store import StoreScp
from aiodicom.ul import encode_pdu
from tests.interop.rawpeer import CT_IMAGE_STORAGE, EXPLICIT_LE, associate_rq
from tests.scp.part10 import part10, small_ct

SILENT = 1000
TRICKLING = 1000
ARTIM = 4.0
#: The longest a client's association (connect, C-STORE, release) may take while the attack goes on.
STORE_BOUND = 3.0
ATTACKER = "127.0.0.2"


def raise_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        pytest.skip(f"needs {needed} open files; the hard limit is {hard}")


@pytest.fixture
async def scp(tmp_path: Path) -> AsyncIterator[StoreScp]:
    raise_open_file_limit(2 * (SILENT + TRICKLING) + 300)  # both ends of every connection
    server = StoreScp(
        port=0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        fsync=False,
        artim_timeout=ARTIM,
        max_pending_connections=SILENT + TRICKLING + 100,
        # every attacker is 127.0.0.2: without this its share (a quarter) would close 1,475 of them at
        # once; what is tested here is that the server can hold them all until ARTIM and still serve
        # (tests/net/test_pending_per_peer.py tests the share)
        max_pending_per_peer=SILENT + TRICKLING + 100,
    )
    async with server:
        yield server


class Pending:
    """One attacker's connection: connected when, closed by the server when (None: still open)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.connected = time.monotonic()
        self.closed: float | None = None

    async def watch(self, bound: float) -> None:
        """Wait (at most ``bound`` seconds) for the server to close the connection."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound):
                while True:
                    try:
                        chunk = await self.reader.read(4096)
                    except ConnectionError:
                        chunk = b""
                    if not chunk:
                        self.closed = time.monotonic()
                        return
        self.writer.close()


async def open_pending(port: int, count: int, gate: asyncio.Semaphore) -> list[Pending]:
    async def one() -> Pending:
        async with gate:  # the listen backlog is small: do not send thousands of SYNs at once
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0)), 30
            )
        return Pending(reader, writer)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def trickle(peer: Pending, request: bytes) -> None:
    """The request one byte a second, until the server closes (ARTIM) or the request is out."""
    for byte in request:
        if peer.closed is not None or peer.writer.is_closing():
            return
        try:
            peer.writer.write(bytes([byte]))
        except (ConnectionError, RuntimeError):
            return
        await asyncio.sleep(1.0)


async def store_once(port: int) -> float:
    """One real association storing one instance; returns how long it took."""
    image = small_ct()
    started = time.monotonic()
    async with aiodicom.connect(
        f"STORE-SCP@127.0.0.1:{port}", contexts=[(CT_IMAGE_STORAGE, [EXPLICIT_LE])], acse_timeout=10
    ) as assoc:
        assert await assoc.c_store(part10(image), timeout=10) == 0
    return time.monotonic() - started


async def test_silent_and_trickling_connections_do_not_stop_a_client(scp: StoreScp) -> None:
    gate = asyncio.Semaphore(64)
    silent = await open_pending(scp.port, SILENT, gate)
    trickling = await open_pending(scp.port, TRICKLING, gate)
    attackers = silent + trickling
    request = encode_pdu(associate_rq([(1, CT_IMAGE_STORAGE, [EXPLICIT_LE])]))
    tricklers = [asyncio.ensure_future(trickle(p, request)) for p in trickling]
    watchers = [asyncio.ensure_future(p.watch(ARTIM + 15)) for p in attackers]
    try:
        all_open = time.monotonic()
        assert all(p.closed is None for p in attackers), "closed before ARTIM"
        # the client stores while all 2,000 are pending (well within ARTIM of the last connection)
        durations = [await asyncio.wait_for(store_once(scp.port), STORE_BOUND * 2) for _ in range(10)]
        stored_by = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*watchers), ARTIM + 20)
    finally:
        for task in tricklers + watchers:
            task.cancel()
        await asyncio.gather(*tricklers, *watchers, return_exceptions=True)
        for peer in attackers:
            peer.writer.close()
    assert max(durations) <= STORE_BOUND, f"client associations took {[f'{d:.2f}' for d in durations]}"
    first_connect = min(p.connected for p in attackers)
    assert stored_by < first_connect + ARTIM, "the client stored only after ARTIM had begun closing them"
    assert stored_by - all_open < ARTIM
    still_open = [p for p in attackers if p.closed is None]
    assert not still_open, f"{len(still_open)} pending connections not closed by ARTIM"
    lifetimes = sorted(p.closed - p.connected for p in attackers if p.closed is not None)
    early = [t for t in lifetimes if t < ARTIM - 0.5]
    assert not early, f"{len(early)} closed before ARTIM (after {early[:5]} s)"
    assert lifetimes[-1] < ARTIM + 10, f"the last one closed {lifetimes[-1]:.1f} s after it connected"
    # the server answered nothing to the trickled requests, which never became whole: no association
    assert not scp.associations
    await store_once(scp.port)  # and it serves as before
