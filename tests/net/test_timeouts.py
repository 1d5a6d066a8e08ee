"""Timeouts measure silence, not work: ARTIM, the server's idle timeout and the SCU's DIMSE timeout.

ARTIM is a deadline from connect to a complete A-ASSOCIATE-RQ that bytes do not extend; ``idle_timeout`` and
``dimse_timeout`` end only a peer that sends nothing for that long, however long its message takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from aiodicom.dimse import Command, encode_command
from aiodicom.errors import DicomError
from aiodicom.scp.store import StoreScp
from aiodicom.scu.echo import EchoScu
from aiodicom.ul import encode_pdu
from aiodicom.ul.pdu import AAbort, AReleaseRP, AReleaseRQ
from tests.interop.rawpeer import (
    A_ASSOCIATE_RQ,
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    VERIFICATION,
    RawAcceptor,
    RawPeer,
    accept_association,
    ct_image,
    fragments,
    pdu_header,
)

CONTEXTS = [(1, VERIFICATION, [IMPLICIT_LE]), (3, CT_IMAGE_STORAGE, [EXPLICIT_LE])]


def server(tmp_path: Path, **options: Any) -> StoreScp:
    return StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, **options)


async def closed_after(peer: RawPeer, started: float, timeout: float = 6.0) -> float:
    """Seconds from ``started`` until the server closes the connection."""
    await peer.wait_closed(timeout)
    return time.monotonic() - started


# -------------------------------------------------------------------------------------------- ARTIM


async def test_artim_closes_a_silent_connection(tmp_path: Path) -> None:
    async with server(tmp_path, artim_timeout=1.0) as scp:
        started = time.monotonic()
        async with await RawPeer.connect(scp.port) as peer:
            took = await closed_after(peer, started)
    assert 0.8 <= took <= 2.0, f"closed after {took:.2f} s"


async def test_artim_is_not_extended_by_a_trickling_request(tmp_path: Path) -> None:
    """The header of an A-ASSOCIATE-RQ, then one byte every 0.2 s: closed about 1 s after connect."""
    async with server(tmp_path, artim_timeout=1.0) as scp:
        started = time.monotonic()
        async with await RawPeer.connect(scp.port) as peer:

            async def trickle() -> None:
                await peer.send(pdu_header(A_ASSOCIATE_RQ, 200))
                for _ in range(25):  # 5 s at most
                    await asyncio.sleep(0.2)
                    peer.writer.write(b"\x00")

            sender = asyncio.ensure_future(trickle())
            try:
                took = await closed_after(peer, started)
            finally:
                sender.cancel()
                with contextlib.suppress(BaseException):
                    await sender
    assert took <= 2.0, f"closed after {took:.2f} s: each byte extended ARTIM"
    assert took >= 0.8, f"closed after {took:.2f} s, before ARTIM"


# ------------------------------------------------------------------------------------ idle timeout


async def test_a_slow_data_set_is_not_cut_by_the_idle_timeout(tmp_path: Path) -> None:
    """A PDV every 0.25 s for about 4 s, with ``idle_timeout=2``: never silent, so stored Success."""
    inst = ct_image(17 * 64 - 200)
    pdvs = fragments(3, False, inst.data, -(-len(inst.data) // 17))
    assert len(pdvs) == 17
    async with server(tmp_path, idle_timeout=2.0) as scp, await RawPeer.connect(scp.port) as peer:
        await peer.associate(CONTEXTS)
        await peer.send_command(3, Command.c_store_rq(1, inst.sop_class, inst.sop_instance))
        started = time.monotonic()
        try:
            for pdv in pdvs:
                await peer.send_pdvs(pdv)
                if not pdv.is_last:
                    await asyncio.sleep(0.25)
        except ConnectionError as exc:
            cut = time.monotonic() - started
            raise AssertionError(f"the server cut the data set off after {cut:.1f} s ({exc})") from None
        took = time.monotonic() - started
        try:
            rsp = (await peer.receive_message()).command
        except AssertionError as exc:
            raise AssertionError(f"the data set took {took:.1f} s to send: {exc}") from None
        assert rsp.status == 0, f"0x{rsp.status or 0:04X} {rsp.error_comment!r}"
        await peer.release()
    assert took >= 3.8
    stored = tmp_path / "out" / inst.relative_path
    assert stored.read_bytes().endswith(inst.data)


async def test_a_silent_association_is_aborted_after_the_idle_timeout(tmp_path: Path) -> None:
    async with server(tmp_path, idle_timeout=2.0) as scp, await RawPeer.connect(scp.port) as peer:
        await peer.associate(CONTEXTS)
        started = time.monotonic()
        answer = await peer.read_pdu(timeout=6.0)
        took = time.monotonic() - started
        assert isinstance(answer, AAbort), answer
        assert await peer.closes_within(2.0)
    assert 1.5 <= took <= 3.5, f"aborted after {took:.2f} s"


# ------------------------------------------------------------------------------ requestor: dimse_timeout


async def answer_release(peer: RawPeer) -> None:
    """After the exchange: answer an A-RELEASE-RQ; an A-ABORT or a close ends it too."""
    with contextlib.suppress(Exception):
        pdu = await peer.read_pdu(timeout=5.0)
        if isinstance(pdu, AReleaseRQ):
            await peer.send(encode_pdu(AReleaseRP()))
            await peer.wait_closed(timeout=5.0)


async def test_dimse_timeout_is_not_reached_by_a_response_arriving_in_slow_fragments() -> None:
    """The C-ECHO-RSP command in 9 fragments 0.3 s apart (2.4 s in all), with ``dimse_timeout=1``."""

    async def slow_acceptor(peer: RawPeer) -> None:
        await accept_association(peer)
        message = await peer.receive_message()
        request = message.command
        assert request.message_id is not None
        raw = encode_command(Command.c_echo_rsp(request.message_id, 0))
        pieces = fragments(message.context_id, True, raw, -(-len(raw) // 9))
        assert len(pieces) == 9
        for i, pdv in enumerate(pieces):
            if i:
                await asyncio.sleep(0.3)
            await peer.send_pdvs(pdv)
        await answer_release(peer)

    async with RawAcceptor(slow_acceptor) as acceptor:
        started = time.monotonic()
        try:
            result = await EchoScu(f"127.0.0.1:{acceptor.port}", dimse_timeout=1.0).echo()
        except (TimeoutError, DicomError) as exc:
            took = time.monotonic() - started
            raise AssertionError(f"{exc!r} after {took:.1f} s, with a fragment every 0.3 s") from None
        took = time.monotonic() - started
    assert result.count == 1 and took >= 2.3
    assert not acceptor.errors, acceptor.errors


async def test_dimse_timeout_ends_a_silent_acceptor() -> None:
    async def silent_acceptor(peer: RawPeer) -> None:
        await accept_association(peer)
        await peer.receive_message()
        await answer_release(peer)  # says nothing: only reads what the requestor sends next

    async with RawAcceptor(silent_acceptor) as acceptor:
        started = time.monotonic()
        with pytest.raises((TimeoutError, DicomError)) as caught:
            await asyncio.wait_for(EchoScu(f"127.0.0.1:{acceptor.port}", dimse_timeout=1.0).echo(), 10)
        took = time.monotonic() - started
    error = caught.value
    assert isinstance(error, TimeoutError) or any(
        word in str(error).lower() for word in ("timeout", "timed out", "no response", "within")
    ), f"not a timeout error: {error!r}"
    assert 0.9 <= took <= 3.0, f"failed after {took:.2f} s"
