"""Memory is bounded by what arrived, never by what a header claims: the CLI receiver in a subprocess,
probed by connections that promise gigabytes and send a few bytes, its RSS measured with psutil.

The probes are opened in batches and the RSS is checked after each: a server that allocates what headers
declare fails the test early instead of taking the machine's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import select
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]
import pytest
from pydicom.data import get_testdata_file

import aiodicom
from aiodicom.scu.store import StoreScu
from tests.interop.peers import stop
from tests.interop.rawpeer import A_ASSOCIATE_RQ, IMPLICIT_LE, P_DATA_TF, VERIFICATION, RawPeer, pdu_header

MB = 1 << 20
LIMIT = 50 * MB
CT = str(get_testdata_file("CT_small.dcm"))
CT_CONTEXT = ("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1"])


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)


def raise_open_files_limit(wanted: int = 4096) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``aiodicom storescp`` with room for the 64 associated probes (all from 127.0.0.1, so without the
    per-peer limit) and a pending limit of 200, all of which 127.0.0.1 may hold (its default share would be
    50: the probes measure what 200 unassociated connections cost)."""
    raise_open_files_limit()
    out = tmp_path_factory.mktemp("memory") / "in"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "storescp", "--port", "0", "--host", "127.0.0.1",
         "--out-dir", str(out), "--no-fsync", "--json", "--max-associations", "70", "--max-pending", "200",
         "--max-associations-per-peer", "0", "--max-pending-per-peer", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            raise AssertionError(f"the receiver did not start: {proc.stderr.read()[-2000:]}")
        started = json.loads(line)
        assert started["event"] == "server_started", started
        yield Server(proc, int(started["port"]))
    finally:
        stop(proc)  # type: ignore[arg-type]


async def store_with_store_scu(port: int) -> None:
    scu = StoreScu(f"127.0.0.1:{port}")
    scu.add_file(CT)
    result = await asyncio.wait_for(scu.send(), 30)
    assert result.successful == 1 and result.failed == 0, result


async def warm(server: Server) -> int:
    """Run one C-ECHO and one C-STORE first (their imports and buffers are not what is measured);
    returns the RSS afterwards."""
    await asyncio.wait_for(aiodicom.EchoScu(f"127.0.0.1:{server.port}").echo(), 30)
    await store_with_store_scu(server.port)
    await asyncio.sleep(0.3)
    return server.rss


def check(server: Server, baseline: int, what: str) -> None:
    grown = server.rss - baseline
    assert grown < LIMIT, f"{what}: the receiver's RSS grew by {grown / MB:.0f} MB"


async def associated_probe(port: int, declared: int, rest: bytes = b"") -> RawPeer:
    """An association (Verification), then the header of a P-DATA-TF declaring ``declared`` bytes and,
    in a second write (the receiver reads again), ``rest``."""
    peer = await RawPeer.connect(port)
    await peer.associate([(1, VERIFICATION, [IMPLICIT_LE])])
    await peer.send(pdu_header(P_DATA_TF, declared))
    if rest:
        await asyncio.sleep(0.02)
        with contextlib.suppress(OSError):  # a receiver may refuse what the header declares
            await peer.send(rest)
    return peer


async def pending_probe(port: int) -> RawPeer | None:
    """A connection that sends the 6-byte header of an A-ASSOCIATE-RQ declaring 1 MiB, then, in a second
    write, the first byte of that body; None when the server refused it (the pending limit)."""
    try:
        peer = await RawPeer.connect(port, timeout=3)
        await peer.send(pdu_header(A_ASSOCIATE_RQ, MB))
        await asyncio.sleep(0.02)
        await peer.send(b"\x00")
    except (OSError, TimeoutError):
        return None
    return peer


async def until_serving(port: int, seconds: float = 5.0) -> None:
    """Wait (bounded) until the receiver has seen the probes close and frees their pending slots: closing
    1,000 connections takes it a moment, and until then new connections are over the pending limit."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            await asyncio.wait_for(aiodicom.EchoScu(f"127.0.0.1:{port}").echo(), 5)
            return
        except (aiodicom.DicomError, OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def close_all(peers: list[RawPeer]) -> None:
    await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)


async def settle(server: Server, baseline: int, seconds: float = 3.0) -> int:
    """The RSS growth once it stops falling (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    grown = server.rss - baseline
    while grown >= LIMIT and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        grown = server.rss - baseline
    return grown


async def test_13_byte_probes_cost_what_arrived_and_give_it_back(server: Server) -> None:
    """8 associations that each send 13 bytes: a P-DATA-TF header declaring 64 MiB, a PDV header and one
    byte of value. The receiver grows by what arrived, and gives it back when they close."""
    baseline = await warm(server)
    declared = 64 * MB
    probes: list[RawPeer] = []
    try:
        for _ in range(8):
            pdv_header = struct.pack(">IBB", declared - 4, 1, 0)  # 6 + 7 bytes in two writes
            probes.append(await associated_probe(server.port, declared, pdv_header + b"\x00"))
            await asyncio.sleep(0.1)
            check(server, baseline, f"{len(probes)} probes of 13 bytes")
        during = server.rss
    finally:
        await close_all(probes)
    after = await settle(server, baseline)
    print(
        f"receiver RSS: {baseline / MB:.0f} MB before, {during / MB:.0f} MB with 8 probes, "
        f"+{after / MB:.0f} MB after they closed"
    )
    assert after < LIMIT, f"{after / MB:.0f} MB still held after the probes closed"
    await store_with_store_scu(server.port)


async def test_1064_hostile_connections_cost_less_than_50_mb(server: Server) -> None:
    """64 associations that each send a P-DATA-TF header declaring 4 GiB (and one byte), then 1,000
    connections that each send an A-ASSOCIATE-RQ header declaring 1 MiB (and one byte); meanwhile a real
    C-STORE succeeds, and once they have closed the receiver still serves (StoreScu)."""
    baseline = await warm(server)
    associated: list[RawPeer] = []
    pending: list[RawPeer] = []
    refused = 0
    try:
        for _ in range(8):
            batch = [associated_probe(server.port, 0xFFFFFFFF, b"\x00") for _ in range(8)]
            associated += await asyncio.gather(*batch)
            await asyncio.sleep(0.1)
            check(server, baseline, f"{len(associated)} associated probes")
        # a real sender, associated before the flood of unassociated connections (which the pending
        # limit may refuse): its C-STORE runs while they are all held
        async with aiodicom.connect(f"127.0.0.1:{server.port}", contexts=[CT_CONTEXT]) as real:
            for _ in range(10):
                batch_ = await asyncio.gather(*(pending_probe(server.port) for _ in range(100)))
                pending += [p for p in batch_ if p is not None]
                refused += sum(p is None for p in batch_)
                await asyncio.sleep(0.05)
                check(server, baseline, f"{len(associated)} associated and {len(pending)} pending probes")
            await asyncio.sleep(1.0)  # let the receiver read what every probe sent
            peak = server.rss
            check(server, baseline, "all probes held")
            assert await asyncio.wait_for(real.c_store(CT), 30) == 0
    finally:
        await close_all(associated + pending)
    print(
        f"receiver RSS: {baseline / MB:.0f} MB before, {peak / MB:.0f} MB with 64 associated and "
        f"{len(pending)} unassociated probes connected ({refused} refused at connect)"
    )
    after = await settle(server, baseline)
    assert after < LIMIT
    await until_serving(server.port)
    await store_with_store_scu(server.port)
