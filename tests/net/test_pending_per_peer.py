"""A per-peer share of the pending-connection limit (``max_pending_per_peer``): silent connections from one
address (127.0.0.2) hold at most their share of the slots for connections that have not associated yet,
so a real client from another address (127.0.0.3: pynetdicom, an independent implementation that can bind
a source address) still echoes and stores, over TCP and over TLS. Every way a pending connection ends
(associated, rejected, ARTIM, closed by the peer, a failed or timed-out TLS handshake, the server's stop)
gives its count back; the option is validated and the server verbs take ``--max-pending-per-peer``."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

import aiodicom
from aiodicom.net.server import DicomServer, default_pending_per_peer
from aiodicom.net.tls import client_context, server_context
from aiodicom.scp.echo import EchoScp
from aiodicom.scp.store import StoreScp
from aiodicom.ul.pdu import AAssociateAC, AAssociateRJ, encode_pdu
from tests.cli.test_commands import run
from tests.interop.certs import Certs
from tests.interop.rawpeer import IMPLICIT_LE, VERIFICATION, RawPeer, associate_rq
from tests.net.test_slow_peers import raise_open_file_limit

ATTACKER = "127.0.0.2"
OTHER = "127.0.0.3"
CT = str(get_testdata_file("CT_small.dcm"))
ECHO_CONTEXT = [(1, VERIFICATION, [IMPLICIT_LE])]
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def wait_for(predicate: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def open_silent(port: int, count: int, source: str = ATTACKER, **kwargs: object) -> list[Stream]:
    """``count`` connections from ``source`` that send nothing (the listen backlog is small: 32 at once)."""
    gate = asyncio.Semaphore(32)

    async def one() -> Stream:
        async with gate:
            return await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0), **kwargs),  # type: ignore[arg-type]
                30,
            )

    return list(await asyncio.gather(*(one() for _ in range(count))))


def closed(stream: Stream) -> bool:
    """Whether the server closed this silent connection (EOF, or a reset, with nothing left unread)."""
    reader = stream[0]
    return reader.at_eof() or reader.exception() is not None


async def close_all(streams: list[Stream]) -> None:
    for _, writer in streams:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in streams), return_exceptions=True)


def pynetdicom_echo_and_store(
    source: str, port: int, tls: ssl.SSLContext | None = None
) -> tuple[int | None, int | None]:
    """A C-ECHO and a C-STORE of CT_small.dcm by pynetdicom from ``source``, in one association: their
    statuses, (None, None) when it did not associate."""
    from pynetdicom import AE

    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    ds = dcmread(CT)
    ae = AE(ae_title="OTHER-SITE")
    ae.connection_timeout = ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(VERIFICATION)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    tls_args = (tls, "localhost") if tls is not None else None
    assoc = ae.associate("127.0.0.1", port, bind_address=(source, 0), tls_args=tls_args)
    if not assoc.is_established:
        return None, None
    try:
        echo = assoc.send_c_echo()
        store = assoc.send_c_store(ds)
        return int(echo.Status), int(store.Status)
    finally:
        assoc.release()


async def stored_files(out: Path, count: int) -> None:
    await wait_for(lambda: len(list(out.rglob("*.dcm"))) == count)


# --------------------------------------------------------------------------------- the lock-out, found


async def test_silent_connections_from_one_address_do_not_lock_out_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found: 256 silent connections from one address took every pending slot (the default 256) and locked
    every other client out until ARTIM closed them. Now that address holds its share (64) and the rest of
    its connections are closed at once, counted and logged once."""
    raise_open_file_limit(1200)
    caplog.set_level(logging.WARNING, "aiodicom")
    out = tmp_path / "out"
    async with StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False) as scp:  # the default limits
        attackers = await open_silent(scp.port, 256)
        try:
            # accepted after all 256 (the accept queue is in order), while they are all still silent
            statuses = await asyncio.to_thread(pynetdicom_echo_and_store, OTHER, scp.port)
            assert statuses == (0, 0), f"the client from {OTHER} was locked out: {statuses}"
            await stored_files(out, 1)
            assert scp.max_pending_connections == 256 and scp.max_pending_per_peer == 64
            await wait_for(lambda: scp.access.refused_pending == 192)
            assert scp.pending_by_peer == {ATTACKER: 64} and scp.pending_connections == 64
            await wait_for(lambda: sum(map(closed, attackers)) == 192)  # closed at once, not at ARTIM
            assert scp.access.refused_connections == 0  # a share, not an access refusal
        finally:
            await close_all(attackers)
        await wait_for(lambda: scp.pending_connections == 0 and not scp.pending_by_peer)
    lines = [
        r.getMessage() for r in caplog.records if f"refused a connection from {ATTACKER}" in r.getMessage()
    ]
    assert len(lines) == 1 and "max_pending_per_peer" in lines[0], lines  # once per address per minute


async def test_the_share_holds_over_tls(tls_certs: Certs, tmp_path: Path) -> None:
    """A TLS handshake counts as pending: 16 connections from 127.0.0.2 that never send a ClientHello hold
    4 (the share of 16), the others are closed at once, and a TLS client from 127.0.0.3 echoes and stores."""
    out = tmp_path / "out"
    tls = server_context(tls_certs.server_cert, tls_certs.server_key, tls_certs.ca)
    async with StoreScp(
        0, host="127.0.0.1", out_dir=out, fsync=False, max_associations=4, tls=tls, tls_handshake_timeout=60
    ) as scp:
        attackers = await open_silent(scp.port, 16)
        try:
            client = client_context(tls_certs.ca, tls_certs.client_cert, tls_certs.client_key)
            statuses = await asyncio.to_thread(pynetdicom_echo_and_store, OTHER, scp.port, client)
            assert statuses == (0, 0), f"the TLS client from {OTHER} was locked out: {statuses}"
            await stored_files(out, 1)
            assert scp.max_pending_connections == 16 and scp.max_pending_per_peer == 4
            await wait_for(lambda: scp.access.refused_pending == 12 and sum(map(closed, attackers)) == 12)
            assert scp.pending_by_peer == {ATTACKER: 4}
            assert scp._tls is not None and scp._tls.handshaking == 4  # holding the handshakes they opened
        finally:
            await close_all(attackers)
        await wait_for(lambda: scp.pending_connections == 0 and not scp.pending_by_peer)
        assert scp.tls_handshakes == 1 and sum(scp.tls_failures.values()) == 4


# ---------------------------------------------------------------------------- every end gives it back


async def test_counts_return_to_zero_after_every_kind_of_end() -> None:
    """Each connection is seen counted for its address, then released when it associates, is rejected,
    is closed by ARTIM, by the peer (silent, or halfway through its request), or sends garbage; one over
    the share is never counted; :meth:`stop` closes the pending ones at once (not after drain_timeout)."""
    scp = EchoScp(
        0, host="127.0.0.1", ae_title="ECHO-SCP", require_called_ae_title=True, artim_timeout=1.0,
        max_pending_per_peer=2, drain_timeout=30,
    )  # fmt: skip

    def counted(n: int, source: str = ATTACKER) -> Callable[[], bool]:
        return lambda: scp.pending_by_peer == ({source: n} if n else {}) and scp.pending_connections == n

    async with scp:
        request = encode_pdu(associate_rq(ECHO_CONTEXT, called_ae_title="ECHO-SCP"))
        # associated: it stops counting once accepted, while the association goes on
        (one,) = await open_silent(scp.port, 1)
        peer = RawPeer(*one)
        await wait_for(counted(1))
        assert isinstance(await peer.request(request), AAssociateAC)
        await wait_for(counted(0))
        assert len(scp.associations) == 1
        assert await peer.c_echo(1) is not None
        await peer.release()
        await peer.close()
        # rejected (another called AE title)
        (one,) = await open_silent(scp.port, 1)
        peer = RawPeer(*one)
        await wait_for(counted(1))
        wrong = encode_pdu(associate_rq(ECHO_CONTEXT, called_ae_title="SOMEONE-ELSE"))
        assert isinstance(await peer.request(wrong), AAssociateRJ)
        await wait_for(counted(0))
        await peer.close()
        # ARTIM: silent until the server closes it
        silent = await open_silent(scp.port, 1)
        await wait_for(counted(1))
        await wait_for(lambda: closed(silent[0]), 10)
        await wait_for(counted(0))
        await close_all(silent)
        # closed by the peer: silent, and halfway through its request
        silent = await open_silent(scp.port, 2)
        silent[1][1].write(request[:20])
        await wait_for(counted(2))
        await close_all(silent)
        await wait_for(counted(0))
        # garbage (not a PDU): the server aborts it
        (one,) = await open_silent(scp.port, 1)
        await wait_for(counted(1))
        one[1].write(b"\xff" * 16)
        await asyncio.wait_for(one[0].read(), 10)  # what it answered (an A-ABORT), then the end
        await wait_for(counted(0))
        await close_all([one])
        # over the share: closed at once and never counted; another address is counted apart
        silent = await open_silent(scp.port, 3)
        elsewhere = await open_silent(scp.port, 1, source=OTHER)
        await wait_for(
            lambda: scp.pending_by_peer == {ATTACKER: 2, OTHER: 1} and scp.pending_connections == 3
        )
        await wait_for(lambda: sum(map(closed, silent)) == 1 and scp.access.refused_pending == 1)
        # stop: the pending ones are closed at once
        started = time.monotonic()
        await scp.stop()
        assert time.monotonic() - started < 5, "stop() waited for connections that never associated"
        assert scp.pending_connections == 0 and not scp.pending_by_peer
        await wait_for(lambda: all(map(closed, silent + elsewhere)), 5)
        await close_all(silent + elsewhere)


async def test_counts_return_to_zero_through_the_screen() -> None:
    """With ``allowed_hosts`` and an async ``on_connection`` hook the connection is screened first, then
    counted for its address (the share holds), then released."""

    async def later(peer: tuple[str, int]) -> bool:
        await asyncio.sleep(0.01)
        return True

    scp = EchoScp(
        0, host="127.0.0.1", allowed_hosts=["127.0.0.0/8"], on_connection=later, max_pending_per_peer=1
    )
    async with scp:
        silent = await open_silent(scp.port, 2)
        await wait_for(lambda: scp.pending_by_peer == {ATTACKER: 1} and scp.access.refused_pending == 1)
        await close_all(silent)
        await wait_for(lambda: scp.pending_connections == 0 and not scp.pending_by_peer)
        async with aiodicom.connect(f"127.0.0.1:{scp.port}") as assoc:
            assert await assoc.c_echo() == 0
        assert scp.pending_connections == 0


def test_the_screen_keeps_what_uvloop_reads_before_the_verdict() -> None:
    """Found: on uvloop (the CLI's loop), which starts reading after ``connection_made`` even when it asked
    to pause, the A-ASSOCIATE-RQ that arrived while an async ``on_connection`` hook decided was dropped and
    the client got no answer. It now goes to the association, over TCP and through the share's count."""
    uvloop = pytest.importorskip("uvloop")

    async def later(peer: tuple[str, int]) -> bool:
        await asyncio.sleep(0.05)
        return True

    async def scenario() -> None:
        async with EchoScp(0, host="127.0.0.1", on_connection=later, artim_timeout=10) as scp:
            for _ in range(3):
                async with aiodicom.connect(f"127.0.0.1:{scp.port}", acse_timeout=5) as assoc:
                    assert await assoc.c_echo() == 0
            assert scp.pending_connections == 0 and not scp.pending_by_peer

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


async def test_counts_return_to_zero_after_every_tls_end(tls_certs: Certs) -> None:
    """Over TLS: a failed handshake (a plain client), a handshake timeout, one closed by the peer while it
    waits for a handshake slot, a completed handshake that associates, one that then sends nothing (ARTIM),
    and the stop of a server with handshakes running and waiting."""
    tls = server_context(tls_certs.server_cert, tls_certs.server_key, tls_certs.ca)
    client = client_context(tls_certs.ca, tls_certs.client_cert, tls_certs.client_key)
    scp = EchoScp(
        0, host="127.0.0.1", tls=tls, tls_handshake_timeout=1.0, artim_timeout=1.0, max_tls_handshakes=1,
        drain_timeout=30,
    )  # fmt: skip

    def counted(n: int) -> Callable[[], bool]:
        return lambda: scp.pending_by_peer == ({ATTACKER: n} if n else {}) and scp.pending_connections == n

    async with scp:
        assert scp._tls is None or scp._tls.handshaking == 0
        # a plain client: not TLS
        (plain,) = await open_silent(scp.port, 1)
        plain[1].write(encode_pdu(associate_rq(ECHO_CONTEXT)))
        await wait_for(lambda: scp.tls_failures["not_tls"] == 1)
        await wait_for(counted(0))
        await close_all([plain])
        # a handshake that never starts (no ClientHello) times out, and one waiting for its turn is
        # closed by its peer
        silent = await open_silent(scp.port, 2)
        await wait_for(counted(2))
        silent[1][1].close()
        await wait_for(lambda: scp.tls_failures["timeout"] == 1)
        await wait_for(counted(0))
        await close_all(silent)
        # a handshake done: it associates and stops counting
        async with aiodicom.connect(f"127.0.0.1:{scp.port}", tls=client) as assoc:
            assert scp.pending_connections == 0
            assert await assoc.c_echo() == 0
        # a handshake done, then nothing: ARTIM closes it
        (quiet,) = await open_silent(scp.port, 1, ssl=client, server_hostname="")
        await wait_for(lambda: scp.tls_handshakes == 2 and counted(1)())
        await wait_for(lambda: closed(quiet))
        await wait_for(counted(0))
        await close_all([quiet])
    # stop: one handshake running (it would take 60 s to time out), one waiting for a slot
    scp = EchoScp(
        0, host="127.0.0.1", tls=tls, tls_handshake_timeout=60, max_tls_handshakes=1, drain_timeout=30
    )
    async with scp:
        silent = await open_silent(scp.port, 2)
        await wait_for(lambda: counted(2)() and scp._tls is not None and scp._tls.handshaking == 1)
        started = time.monotonic()
        await scp.stop()
        assert time.monotonic() - started < 5, "stop() waited for TLS handshakes"
        assert scp.pending_connections == 0 and not scp.pending_by_peer
        await wait_for(lambda: all(map(closed, silent)), 5)
        await close_all(silent)


# --------------------------------------------------------------------------------------- the option


def test_the_option_defaults_to_a_quarter_of_the_pending_limit_and_is_validated(tmp_path: Path) -> None:
    def handler(assoc: object) -> asyncio.Future[None]:
        raise AssertionError("never called")

    assert default_pending_per_peer(256) == 64 and default_pending_per_peer(1000) == 250
    assert default_pending_per_peer(8) == 4 and default_pending_per_peer(1) == 4  # at least 4
    assert EchoScp(0).max_pending_per_peer == 64  # 4 x 64 associations, a quarter
    assert EchoScp(0, max_associations=10).max_pending_per_peer == 10
    assert EchoScp(0, max_pending_connections=100, max_pending_per_peer=7).max_pending_per_peer == 7
    assert StoreScp(0, out_dir=tmp_path, max_pending_per_peer=3).max_pending_per_peer == 3
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_pending_per_peer must be at least 1"):
            DicomServer(handler, port=0, max_pending_per_peer=bad)
        with pytest.raises(ValueError, match="max_pending_per_peer"):
            EchoScp(0, max_pending_per_peer=bad)


@pytest.mark.parametrize("verb", ["echoscp", "storescp"])
async def test_the_server_verbs_take_max_pending_per_peer(verb: str, tmp_path: Path) -> None:
    args = ["-o", str(tmp_path / "out"), "--no-fsync"] if verb == "storescp" else []
    refused = await asyncio.to_thread(run, verb, "--port", "0", "--max-pending-per-peer", "0", *args)
    assert refused.returncode == 2 and "--max-pending-per-peer" in refused.stderr, refused.stderr
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiodicom", verb, "--port", "0", "--host", "127.0.0.1", "--json",
        "--max-pending", "40", "--max-pending-per-peer", "2", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        started = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        port = int(started["port"])
        silent = await open_silent(port, 3)
        try:
            await wait_for(lambda: sum(map(closed, silent)) == 1)  # the third: over its share
            await asyncio.sleep(0.2)
            assert sum(map(closed, silent)) == 1
            result = await asyncio.wait_for(aiodicom.EchoScu(f"127.0.0.1:{port}").echo(), 20)
            assert result.count == 1  # from 127.0.0.1: another address
        finally:
            await close_all(silent)
    finally:
        if proc.returncode is None:
            proc.terminate()  # a graceful stop
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert "max_pending_per_peer" in err.decode(), err.decode()[-2000:]
