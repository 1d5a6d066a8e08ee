"""The transport of an association (its ``protocol``) over loopback, against a raw peer: reading pauses
nest, ``drain`` waits while the write buffer is full and wakes when it empties, and a closed connection
says so instead of hanging.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from aiodicom.dimse import Command, CommandField
from aiodicom.net.association import Association
from aiodicom.net.client import open_association
from aiodicom.net.transport import DicomProtocol
from tests.interop.rawpeer import RawAcceptor, RawPeer, accept_association

CHUNK = b"\0" * (1 << 20)
HIGH_WATER = 64 * 1024


@asynccontextmanager
async def association(
    then: Callable[[RawPeer], Awaitable[None]],
) -> AsyncIterator[tuple[Association, DicomProtocol]]:
    """An association with a raw acceptor that runs ``then(peer)`` once it has accepted."""

    async def script(peer: RawPeer) -> None:
        await accept_association(peer)
        await then(peer)

    async with RawAcceptor(script) as acceptor:
        assoc = await open_association(f"127.0.0.1:{acceptor.port}")
        try:
            assert assoc.protocol is not None
            yield assoc, assoc.protocol
        finally:
            assoc.abort()
            await assoc.wait_closed(5.0)
        assert acceptor.errors == []


def fill(protocol: DicomProtocol) -> int:
    """Write raw bytes until the transport holds more than its high-water mark; returns how many."""
    transport = protocol.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, HIGH_WATER)  # fill it sooner
    transport.set_write_buffer_limits(high=HIGH_WATER, low=HIGH_WATER // 4)
    written = 0
    for _ in range(128):  # the peer's socket and reader take a few MiB before the sender backs up
        protocol.write([CHUNK])
        written += len(CHUNK)
        if transport.get_write_buffer_size() > HIGH_WATER:
            return written
    raise AssertionError(f"the write buffer never filled after {written} bytes")


async def settle() -> None:
    await asyncio.sleep(0.1)


async def test_pauses_nest_and_nothing_is_read_until_the_last_resume() -> None:
    send_now, sent = asyncio.Event(), asyncio.Event()

    async def send_echo(peer: RawPeer) -> None:
        await asyncio.wait_for(send_now.wait(), 10.0)
        await peer.send_command(1, Command.c_echo_rq(7))
        sent.set()
        await peer.wait_closed(10.0)

    async with association(send_echo) as (assoc, protocol):
        protocol.pause_reading()
        protocol.pause_reading()
        before = protocol.bytes_received
        send_now.set()
        await asyncio.wait_for(sent.wait(), 5.0)
        await settle()
        assert protocol.reading_paused and protocol.bytes_received == before
        protocol.resume_reading()  # one pause is left
        await settle()
        assert protocol.reading_paused and protocol.bytes_received == before
        protocol.resume_reading()
        assert not protocol.reading_paused
        message = await assoc.receive(timeout=5.0)  # the bytes waited in the socket, whole
        assert message is not None and message.command.command_field == CommandField.C_ECHO_RQ
        assert protocol.bytes_received > before
        protocol.resume_reading()  # one resume too many does not count ahead...
        protocol.pause_reading()
        assert protocol.reading_paused  # ...so the next pause still pauses
        protocol.resume_reading()


async def test_drain_waits_while_the_write_buffer_is_full_and_wakes_when_it_empties() -> None:
    read_now = asyncio.Event()
    expected: list[int] = []

    async def read_later(peer: RawPeer) -> None:
        await asyncio.wait_for(read_now.wait(), 10.0)
        await peer.read_exactly(expected[0], timeout=10.0)
        await peer.wait_closed(10.0)

    async with association(read_later) as (_, protocol):
        assert protocol.transport is not None
        await protocol.drain()  # nothing written yet: returns at once
        expected.append(fill(protocol))
        draining = asyncio.ensure_future(protocol.drain())
        await settle()
        assert not draining.done()  # the peer reads nothing: the buffer stays full
        read_now.set()
        await asyncio.wait_for(draining, 10.0)
        assert protocol.transport.get_write_buffer_size() <= HIGH_WATER // 4


async def test_a_drain_waiting_when_the_connection_is_lost_raises() -> None:
    reset_now = asyncio.Event()

    async def reset_later(peer: RawPeer) -> None:
        await asyncio.wait_for(reset_now.wait(), 10.0)
        peer.writer.transport.abort()  # a reset, what a crashed peer leaves

    async with association(reset_later) as (_, protocol):
        fill(protocol)
        draining = asyncio.ensure_future(protocol.drain())
        await settle()
        assert not draining.done()
        reset_now.set()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(draining, 10.0)
        await asyncio.wait_for(protocol.closed, 5.0)


async def test_after_close_drain_raises_and_the_rest_is_harmless() -> None:
    async def wait(peer: RawPeer) -> None:
        await peer.wait_closed(10.0)

    async with association(wait) as (_, protocol):
        protocol.close()
        await asyncio.wait_for(protocol.closed, 5.0)
        with pytest.raises(ConnectionResetError, match="closed"):
            await protocol.drain()
        protocol.write([b"late"])  # dropped, not an error
        protocol.pause_reading()
        protocol.resume_reading()
        protocol.close()
