"""DicomServer on loopback, driven by raw peers: the port it binds, a port in use, the association and
pending-connection limits, AE title checks, and stopping (a message being handled is finished first, see
tests/services/test_dispatch.py; here, what a stop does to handlers that never finish).
"""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from aiodicom.errors import DicomError, ListenError
from aiodicom.net.association import Association
from aiodicom.net.server import DicomServer
from aiodicom.services.dispatch import serve_messages
from aiodicom.services.echo import ECHO_HANDLERS
from aiodicom.ul.pdu import AAssociateAC, AAssociateRJ
from tests.interop.rawpeer import IMPLICIT_LE, VERIFICATION, RawPeer, associate_rq

ECHO_CONTEXT = [(1, VERIFICATION, [IMPLICIT_LE])]


async def echo(assoc: Association) -> None:
    await serve_messages(assoc, ECHO_HANDLERS)


def echo_server(**options: object) -> DicomServer:
    return DicomServer(echo, port=0, host="127.0.0.1", **options)  # type: ignore[arg-type]


async def test_port_0_binds_a_free_port_that_stays_known() -> None:
    server = echo_server()
    assert server.port == 0 and not server.is_serving
    await server.start()
    try:
        port = server.port
        assert port > 0 and server.is_serving
        await server.start()  # starting again changes nothing
        assert server.port == port
        async with await RawPeer.connect(port) as peer:
            await peer.associate(ECHO_CONTEXT)
            assert (await peer.c_echo(1)).status == 0
            await peer.release()
    finally:
        await server.stop()
    assert not server.is_serving and server.port == port
    with pytest.raises(OSError):
        await RawPeer.connect(port, timeout=2.0)


async def test_a_port_in_use_is_a_listen_error() -> None:
    async with echo_server() as first:
        with pytest.raises(ListenError, match="already in use") as info:
            await DicomServer(echo, port=first.port, host="127.0.0.1").start()
        assert isinstance(info.value, OSError) and isinstance(info.value, DicomError)
        assert info.value.errno == errno.EADDRINUSE
        assert f"127.0.0.1:{first.port}" in str(info.value)
        async with await RawPeer.connect(first.port) as peer:  # the first server is unharmed
            await peer.associate(ECHO_CONTEXT)
            await peer.release()


async def test_a_port_held_by_another_listener_is_a_listen_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ListenError, match="already in use"):
            await DicomServer(echo, port=port, host="127.0.0.1").start()


async def test_over_the_association_limit_is_rejected_transiently_until_one_ends() -> None:
    async with echo_server(max_associations=1) as server:
        async with await RawPeer.connect(server.port) as first:
            await first.associate(ECHO_CONTEXT)
            async with await RawPeer.connect(server.port) as second:
                rj = await second.request(ECHO_CONTEXT)
                assert rj == AAssociateRJ(2, 3, 2)  # transient, presentation, local limit exceeded
            assert (await first.c_echo(1)).status == 0  # the first is not disturbed
            await first.release()
        for _ in range(50):  # the limit frees up once the first association has ended
            async with await RawPeer.connect(server.port) as third:
                answer = await third.request(ECHO_CONTEXT)
                if isinstance(answer, AAssociateAC):
                    assert (await third.c_echo(1)).status == 0
                    await third.release()
                    break
                assert answer == AAssociateRJ(2, 3, 2)
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("still rejected after the first association ended")


async def test_connections_not_yet_associated_are_limited() -> None:
    async with (
        echo_server(max_associations=4, max_pending_connections=1) as server,
        await RawPeer.connect(server.port) as quiet,  # connected, sends nothing yet
    ):
        await asyncio.sleep(0.05)
        async with await RawPeer.connect(server.port) as extra:
            assert await extra.closes_within(5.0)  # over the pending limit: closed at once
        await quiet.associate(ECHO_CONTEXT)  # the pending one is still served
        assert (await quiet.c_echo(1)).status == 0
        async with await RawPeer.connect(server.port) as later:  # no longer pending: room again
            await later.associate(ECHO_CONTEXT)
            await later.release()
        await quiet.release()


async def test_only_allowed_calling_ae_titles_associate() -> None:
    async with echo_server(allowed_calling_ae_titles={"FRIEND"}) as server:
        async with await RawPeer.connect(server.port) as stranger:
            rj = await stranger.request(associate_rq(ECHO_CONTEXT, calling_ae_title="STRANGER"))
            assert rj == AAssociateRJ(1, 1, 3)  # permanent, service user, calling AE title not recognized
        async with await RawPeer.connect(server.port) as friend:
            await friend.associate(associate_rq(ECHO_CONTEXT, calling_ae_title="FRIEND"))
            assert (await friend.c_echo(1)).status == 0
            await friend.release()


async def test_the_called_ae_title_is_checked_when_required() -> None:
    async with echo_server(ae_title="THE-SCP", require_called_ae_title=True) as server:
        async with await RawPeer.connect(server.port) as peer:
            rj = await peer.request(associate_rq(ECHO_CONTEXT, called_ae_title="SOMEONE"))
            assert rj == AAssociateRJ(1, 1, 7)  # called AE title not recognized
        async with await RawPeer.connect(server.port) as peer:
            await peer.associate(associate_rq(ECHO_CONTEXT, called_ae_title="THE-SCP"))
            await peer.release()
    async with echo_server(ae_title="THE-SCP") as server, await RawPeer.connect(server.port) as peer:
        await peer.associate(associate_rq(ECHO_CONTEXT, called_ae_title="SOMEONE"))  # not required
        await peer.release()


async def test_stop_gives_up_on_a_handler_after_its_timeout() -> None:
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(assoc: Association) -> None:
        server.busy(assoc)  # busy with a message that never ends
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finally:
            server.idle(assoc)

    server = DicomServer(stuck, port=0, host="127.0.0.1")
    await server.start()
    async with await RawPeer.connect(server.port) as peer:
        await peer.associate(ECHO_CONTEXT)
        await asyncio.wait_for(entered.wait(), 5.0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(server.stop(timeout=0.3), 10.0)
        assert loop.time() - began >= 0.3 - 0.02  # the busy handler was given its time...
        assert cancelled.is_set()  # ...then cancelled
        assert await peer.closes_within(5.0)
    assert not server.is_serving


async def test_serve_forever_stops_when_cancelled() -> None:
    server = echo_server()
    task = asyncio.ensure_future(server.serve_forever())
    for _ in range(100):
        if server.is_serving:
            break
        await asyncio.sleep(0.01)
    async with await RawPeer.connect(server.port) as peer:
        await peer.associate(ECHO_CONTEXT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await peer.expect_abort()  # stop() ran: the idle association was aborted
    assert not server.is_serving


def test_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_associations"):
        DicomServer(echo, port=0, max_associations=0)
    with pytest.raises(ValueError, match="max_pending_connections"):
        DicomServer(echo, port=0, max_pending_connections=0)
