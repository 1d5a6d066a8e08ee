"""aiodicom against aiodicom, and against scripted raw peers for the faults, over loopback."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import aiodicom
from aiodicom.errors import (
    AbortReason,
    AssociationAborted,
    AssociationRejected,
    NoAcceptableContext,
    PeerUnreachable,
)
from aiodicom.net.options import DEFAULT_MAX_PDU_LENGTH
from aiodicom.ul.negotiation import ContextPolicy, accept
from aiodicom.ul.pdu import AAbort, AReleaseRP, AReleaseRQ, decode_pdu, encode_pdu

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

RawPeer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def echo_scp() -> AsyncIterator[aiodicom.EchoScp]:
    async with aiodicom.EchoScp(
        0, host="127.0.0.1", ae_title="ECHO-SCP", require_called_ae_title=True
    ) as scp:
        yield scp


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(6)
    return header + await reader.readexactly(struct.unpack(">I", header[2:])[0])


async def raw_server(peer: RawPeer) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    return server, f"RAW@127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def answer_ac(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    rq = decode_pdu(await read_pdu(reader))
    ac, _ = accept(rq, ContextPolicy(), max_pdu_length=16384)  # type: ignore[arg-type]
    writer.write(encode_pdu(ac))
    await writer.drain()


async def test_echo_many_on_one_association(echo_scp: aiodicom.EchoScp) -> None:
    result = await aiodicom.EchoScu(f"ECHO-SCP@127.0.0.1:{echo_scp.port}").echo(count=50)
    assert result.count == 50 and result.status == 0


async def test_connect_yields_an_association_and_releases(echo_scp: aiodicom.EchoScp) -> None:
    async with aiodicom.connect(f"ECHO-SCP@127.0.0.1:{echo_scp.port}", calling_ae_title="ME") as assoc:
        assert assoc.calling_ae_title == "ME" and assoc.called_ae_title == "ECHO-SCP"
        assert await assoc.c_echo() == 0
        assert assoc.peer_max_pdu_length == DEFAULT_MAX_PDU_LENGTH  # what an aiodicom acceptor advertises
    assert not assoc.is_open
    for _ in range(100):
        if not echo_scp.associations:
            break
        await asyncio.sleep(0.01)
    assert not echo_scp.associations


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 support")
    async with aiodicom.EchoScp(0, host="::1", ae_title="V6") as scp:
        assert (await aiodicom.EchoScu(f"V6@[::1]:{scp.port}").echo()).count == 1


async def test_wrong_called_ae_title_is_rejected(echo_scp: aiodicom.EchoScp) -> None:
    with pytest.raises(AssociationRejected) as info:
        await aiodicom.EchoScu(f"SOMEONE-ELSE@127.0.0.1:{echo_scp.port}").echo()
    assert (info.value.result, info.value.source, info.value.reason) == (1, 1, 7)
    assert "called-AE-title-not-recognized" in str(info.value)


async def test_calling_ae_title_not_allowed_is_rejected() -> None:
    async with aiodicom.EchoScp(0, host="127.0.0.1", allowed_calling_ae_titles={"FRIEND"}) as scp:
        await aiodicom.EchoScu(f"127.0.0.1:{scp.port}", calling_ae_title="FRIEND").echo()
        with pytest.raises(AssociationRejected, match="calling-AE-title-not-recognized"):
            await aiodicom.EchoScu(f"127.0.0.1:{scp.port}", calling_ae_title="STRANGER").echo()


async def test_association_limit_rejects_transiently() -> None:
    async with (
        aiodicom.EchoScp(0, host="127.0.0.1", max_associations=1) as scp,
        aiodicom.connect(f"127.0.0.1:{scp.port}"),
    ):
        with pytest.raises(AssociationRejected) as info:
            await aiodicom.EchoScu(f"127.0.0.1:{scp.port}").echo()
        assert (info.value.result, info.value.source, info.value.reason) == (2, 3, 2)


async def test_no_acceptable_context(echo_scp: aiodicom.EchoScp) -> None:
    with pytest.raises(NoAcceptableContext, match="abstract-syntax-not-supported"):
        async with aiodicom.connect(f"ECHO-SCP@127.0.0.1:{echo_scp.port}", contexts=[CT_IMAGE_STORAGE]):
            pass


async def test_unsupported_service_is_answered_not_dropped(echo_scp: aiodicom.EchoScp) -> None:
    from aiodicom.dimse import Command, CommandField

    async with aiodicom.connect(f"ECHO-SCP@127.0.0.1:{echo_scp.port}") as assoc:
        await assoc.send(
            1, Command.c_find_rq(7, "1.2.840.10008.1.1"), b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY "
        )
        response = await assoc.receive_response(7, CommandField.C_FIND_RSP, timeout=5)
        assert response.command.status == 0x0211
        assert await assoc.c_echo() == 0  # the association goes on


async def test_connection_refused_is_peer_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PeerUnreachable, match="refused"):
        await aiodicom.EchoScu(f"127.0.0.1:{port}").echo()


async def test_peer_aborts() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_ac(reader, writer)
        await read_pdu(reader)  # the C-ECHO-RQ
        writer.write(encode_pdu(AAbort(0, 0)))
        await writer.drain()
        await reader.read()  # wait for our side to close
        writer.close()

    server, addr = await raw_server(peer)
    async with server:
        with pytest.raises(AssociationAborted, match="aborted by the peer"):
            await aiodicom.EchoScu(addr).echo()


async def test_peer_drops_the_connection_mid_pdu() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rq = decode_pdu(await read_pdu(reader))
        ac, _ = accept(rq, ContextPolicy(), max_pdu_length=16384)  # type: ignore[arg-type]
        writer.write(encode_pdu(ac)[:20])
        await writer.drain()
        writer.close()

    server, addr = await raw_server(peer)
    async with server:
        with pytest.raises(AssociationAborted, match="closed"):
            await aiodicom.EchoScu(addr).echo()


async def test_peer_that_never_answers_the_request() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads until we give up and close
        writer.close()

    server, addr = await raw_server(peer)
    async with server:
        started = time.monotonic()
        with pytest.raises(AssociationAborted, match="no answer"):
            await aiodicom.EchoScu(addr, acse_timeout=0.3).echo()
        assert time.monotonic() - started < 5


async def test_artim_closes_a_peer_that_never_sends_a_request() -> None:
    async with aiodicom.EchoScp(0, host="127.0.0.1", artim_timeout=0.3) as scp:
        started = time.monotonic()  # before connecting: the server's ARTIM starts once it accepted
        reader, writer = await asyncio.open_connection("127.0.0.1", scp.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server, nothing sent
        assert 0.29 < time.monotonic() - started < 5
        writer.close()


async def test_malformed_pdu_aborts_that_association_only(echo_scp: aiodicom.EchoScp) -> None:
    async with aiodicom.connect(f"ECHO-SCP@127.0.0.1:{echo_scp.port}") as good:
        reader, writer = await asyncio.open_connection("127.0.0.1", echo_scp.port)
        writer.write(b"\x0a\x00\x00\x00\x00\x02xx")  # no such PDU type
        abort = decode_pdu(await asyncio.wait_for(read_pdu(reader), 5))
        assert abort == AAbort(2, AbortReason.UNRECOGNIZED_PDU)
        writer.close()
        assert await good.c_echo() == 0


async def test_release_collision_as_requestor() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_ac(reader, writer)
        assert decode_pdu(await read_pdu(reader)) == AReleaseRQ()
        writer.write(encode_pdu(AReleaseRQ()))  # as if ours and theirs crossed on the wire
        await writer.drain()
        assert decode_pdu(await read_pdu(reader)) == AReleaseRP()  # we answer theirs (AR-9)
        writer.write(encode_pdu(AReleaseRP()))
        await writer.drain()
        await reader.read()
        writer.close()

    server, addr = await raw_server(peer)
    async with server:
        async with aiodicom.connect(addr) as assoc:
            pass
        assert assoc.state.value == "Sta1"


async def test_graceful_stop_aborts_idle_associations() -> None:
    scp = aiodicom.EchoScp(0, host="127.0.0.1")
    await scp.start()
    async with aiodicom.connect(f"127.0.0.1:{scp.port}") as assoc:
        await asyncio.wait_for(scp.stop(), 5)
        with pytest.raises(AssociationAborted):
            await assoc.c_echo(timeout=5)


async def test_port_in_use_is_a_clear_error(echo_scp: aiodicom.EchoScp) -> None:
    with pytest.raises(aiodicom.ListenError, match="already in use"):
        await aiodicom.EchoScp(echo_scp.port, host="127.0.0.1").start()


async def test_idle_association_is_aborted_by_the_server() -> None:
    async with (
        aiodicom.EchoScp(0, host="127.0.0.1", idle_timeout=0.3) as scp,
        aiodicom.connect(f"127.0.0.1:{scp.port}") as assoc,
    ):
        await asyncio.sleep(1.0)
        with pytest.raises(AssociationAborted):
            await assoc.c_echo(timeout=5)
