"""The acceptor's message loop (``serve_messages``) behind a real DicomServer on loopback, driven by a raw
peer: what it answers, what it does not, release, idle timeout, and a graceful stop that lets the message
being handled finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aiodicom.dimse import Command, CommandField
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.server import DicomServer
from aiodicom.services.dispatch import ServiceHandler, serve_messages
from aiodicom.services.echo import ECHO_HANDLERS
from aiodicom.ul.negotiation import ContextPolicy
from tests.interop.rawpeer import (
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    VERIFICATION,
    RawPeer,
    ct_image,
)

CT, ECHO = 1, 3  # context ids the raw peer proposes
CONTEXTS = [(CT, CT_IMAGE_STORAGE, [EXPLICIT_LE]), (ECHO, VERIFICATION, [IMPLICIT_LE])]
POLICY = ContextPolicy(abstract_syntaxes=frozenset({CT_IMAGE_STORAGE}), transfer_syntaxes=(EXPLICIT_LE,))


class Loop:
    """A server running ``serve_messages`` for each association; ``ended`` says how each loop ended."""

    def __init__(self, handlers: Mapping[int, ServiceHandler], **options: Any) -> None:
        self.handlers = handlers
        self.options = options
        self.ended: asyncio.Queue[str] = asyncio.Queue()
        self.server = DicomServer(self.serve, port=0, host="127.0.0.1", policy=POLICY)

    async def serve(self, assoc: Association) -> None:
        try:
            await serve_messages(assoc, self.handlers, host=self.server, **self.options)
        except BaseException as exc:
            self.ended.put_nowait(f"raised {exc!r}")
            raise
        self.ended.put_nowait("open" if assoc.is_open else "closed")

    async def end(self) -> str:
        return await asyncio.wait_for(self.ended.get(), 5.0)


@asynccontextmanager
async def running(handlers: Mapping[int, ServiceHandler], **options: Any) -> AsyncIterator[Loop]:
    loop = Loop(handlers, **options)
    async with loop.server:
        yield loop


@asynccontextmanager
async def associated(loop: Loop) -> AsyncIterator[RawPeer]:
    async with await RawPeer.connect(loop.server.port) as peer:
        ac = await peer.associate(CONTEXTS)
        assert [pc.result for pc in ac.presentation_contexts] == [0, 0]
        yield peer


async def test_a_request_without_a_service_is_answered_and_its_data_set_dropped() -> None:
    async with running(ECHO_HANDLERS) as loop, associated(loop) as peer:
        image = ct_image(20000)  # more than one PDV: the whole data set is read and dropped
        message_id = peer.next_message_id()
        command = Command.c_store_rq(message_id, image.sop_class, image.sop_instance)
        rsp = await peer.c_store(CT, image, command=command)
        assert rsp.command_field == CommandField.C_STORE_RSP
        assert rsp.status == 0x0211  # unrecognized operation
        assert rsp.message_id_being_responded_to == message_id
        assert rsp.affected_sop_class_uid == CT_IMAGE_STORAGE
        assert rsp.affected_sop_instance_uid == image.sop_instance
        assert (await peer.c_echo(ECHO)).status == 0  # the association goes on
        await peer.release()
        assert await loop.end() == "closed"


async def test_the_status_for_an_unsupported_request_can_be_chosen() -> None:
    async with running(ECHO_HANDLERS, unsupported_status=0x0122) as loop, associated(loop) as peer:
        rsp = await peer.c_store(CT, ct_image())
        assert rsp.status == 0x0122
        await peer.release()


async def test_cancels_and_stray_responses_are_not_answered() -> None:
    async with running(ECHO_HANDLERS) as loop, associated(loop) as peer:
        await peer.send_command(ECHO, Command.c_cancel_rq(41))
        await peer.send_command(ECHO, Command.c_echo_rsp(42, 0))  # a response nobody asked for
        # the next message is the answer to this echo: nothing was sent for the two before it
        message_id = peer.next_message_id()
        await peer.send_command(ECHO, Command.c_echo_rq(message_id))
        rsp = (await peer.receive_message()).command
        assert rsp.command_field == CommandField.C_ECHO_RSP
        assert rsp.message_id_being_responded_to == message_id
        await peer.release()
        assert await loop.end() == "closed"


async def test_a_request_for_another_sop_class_than_its_context_is_refused_unhandled() -> None:
    calls: list[int] = []

    async def store(assoc: Association, message: DimseMessage) -> None:
        calls.append(message.command.command_field)

    handlers = {**ECHO_HANDLERS, CommandField.C_STORE_RQ: store}
    async with running(handlers) as loop, associated(loop) as peer:
        rsp = await peer.c_store(ECHO, ct_image())  # a CT image on the Verification context
        assert rsp.status == 0x0122  # SOP class not supported
        assert rsp.error_comment and CT_IMAGE_STORAGE in rsp.error_comment
        assert len(rsp.error_comment) <= 64
        message_id = peer.next_message_id()
        await peer.send_command(CT, Command.c_echo_rq(message_id))  # an echo on the CT context
        rsp = (await peer.receive_message()).command
        assert rsp.command_field == CommandField.C_ECHO_RSP and rsp.status == 0x0122
        assert (await peer.c_echo(ECHO)).status == 0
        await peer.release()
    assert calls == []  # the handler never saw the refused requests


async def test_release_ends_the_loop() -> None:
    async with running(ECHO_HANDLERS) as loop, associated(loop) as peer:
        await peer.release()  # asserts the A-RELEASE-RP
        assert await loop.end() == "closed"


async def test_an_idle_association_is_aborted() -> None:
    async with running(ECHO_HANDLERS, idle_timeout=0.2) as loop, associated(loop) as peer:
        assert (await peer.c_echo(ECHO)).status == 0
        started = asyncio.get_running_loop().time()
        await peer.expect_abort(timeout=5.0)
        assert asyncio.get_running_loop().time() - started >= 0.2 - 0.02  # counted from the last message
        assert await peer.closes_within(5.0)
        assert await loop.end() == "closed"


async def test_a_handler_exception_aborts_the_association_and_the_server_goes_on() -> None:
    async def broken(assoc: Association, message: DimseMessage) -> None:
        raise RuntimeError("a bug in a service")

    async with running({CommandField.C_ECHO_RQ: broken}) as loop:
        async with associated(loop) as peer:
            await peer.send_command(ECHO, Command.c_echo_rq(peer.next_message_id()))
            await peer.expect_abort()
        assert (await loop.end()).startswith("raised RuntimeError")
        async with associated(loop) as peer:  # the next association is served
            await peer.send_command(ECHO, Command.c_echo_rq(peer.next_message_id()))
            await peer.expect_abort()


async def test_a_graceful_stop_lets_the_message_being_handled_finish() -> None:
    started, go_on = asyncio.Event(), asyncio.Event()

    async def slow_echo(assoc: Association, message: DimseMessage) -> None:
        started.set()
        await go_on.wait()
        assert message.command.message_id is not None
        await assoc.send(message.context_id, Command.c_echo_rsp(message.command.message_id, 0))

    async with running({CommandField.C_ECHO_RQ: slow_echo}) as loop:
        async with associated(loop) as busy, associated(loop) as idle:
            message_id = busy.next_message_id()
            await busy.send_command(ECHO, Command.c_echo_rq(message_id))
            await asyncio.wait_for(started.wait(), 5.0)
            stopping = asyncio.ensure_future(loop.server.stop(timeout=10.0))
            await idle.expect_abort()  # an association between messages is aborted at once
            await asyncio.sleep(0.1)
            assert not stopping.done()  # the busy one is waited for
            with pytest.raises(TimeoutError):
                await busy.read_pdu(timeout=0.1)  # and not interrupted
            go_on.set()
            rsp = (await busy.receive_message()).command  # its answer goes out whole...
            assert rsp.message_id_being_responded_to == message_id and rsp.status == 0
            await busy.expect_abort()  # ...then the association ends
            await asyncio.wait_for(stopping, 5.0)
        assert sorted([await loop.end(), await loop.end()]) == ["closed", "closed"]
        assert not loop.server.is_serving
