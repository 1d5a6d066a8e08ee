"""C-GET, the acceptor's side: each instance a handler yields goes back as a C-STORE sub-operation on the
same association.

A sub-operation goes on a context of the instance's SOP class for which the requestor took the SCP role
(role selection, answered per SOP class), in the instance's own transfer syntax when the requestor accepted
it, else converted losslessly to one it did; with no such context it fails. A file is sent from disk PDV by
PDV. A C-CANCEL is read while a sub-operation's response is awaited and between sub-operations; it takes
effect before the next one (0xFE00 with the counts). A requestor that aborts ends the retrieve: the
handler's generator is closed and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any

from aiodicom.dataset.files import open_instance
from aiodicom.dimse import Command, CommandField
from aiodicom.errors import DicomError, DimseError, NoAcceptableContext
from aiodicom.net.association import Association, DimseMessage
from aiodicom.services.query import QueryModel
from aiodicom.services.send import Outgoing
from aiodicom.services.serve_common import HandlerStream, QueryHandler
from aiodicom.services.serve_retrieve import (
    Failed,
    Retrieve,
    RetrieveSettings,
    open_item,
    removing,
    run_retrieve,
)

log = logging.getLogger("aiodicom.services.serve_get")


async def serve_get(
    assoc: Association,
    message: DimseMessage,
    handler: QueryHandler,
    *,
    model: QueryModel,
    ae_title: str,
    settings: RetrieveSettings,
    logger: logging.Logger = log,
) -> int:
    """Answer one C-GET-RQ with the instances ``handler(query, context)`` yields; returns the final status.

    Raises only when the association ends (the handler's generator is closed first).
    """
    run = Retrieve(assoc, message, settings, logger)
    timeout = settings.options.dimse_timeout

    async def prepare(item: Any) -> _Ready | _Unsent:
        """The next sub-operation, read and checked; or why it cannot be sent."""
        uid: str | None = None
        try:
            queued = await open_item(item, settings)
            assert queued.header is not None
            uid = queued.header.sop_instance_uid
            sop_class = queued.header.sop_class_uid
            if not any(c.abstract_syntax == sop_class and c.scp_role for c in assoc.accepted.values()):
                raise Failed(f"the requestor took no SCP role for SOP class {sop_class} ({uid})", uid)
            return _Ready(await run.outgoing(assoc, queued), uid)
        except Failed as exc:
            return _Unsent(exc.sop_instance_uid or uid, str(exc))
        except (NoAcceptableContext, OSError, ValueError) as exc:
            return _Unsent(uid, f"{uid}: {exc}")
        except DicomError as exc:
            if not assoc.is_open:
                raise
            return _Unsent(uid, f"{uid}: {exc}")  # a conversion that failed

    async def body(stream: HandlerStream) -> None:
        # One sub-operation ahead: the next instance is read (and the handler asked for it) while the
        # requestor stores the one just sent, not after its response.
        items = aiter(stream)
        ahead: Awaitable[_Ready | _Unsent | None] | None = _next(items, prepare)
        try:
            while ahead is not None:
                current = await ahead
                ahead = None
                if current is None:
                    return
                if isinstance(current, _Unsent):
                    await run.record(None, current.uid, current.error)
                else:
                    with removing(current.out):
                        try:
                            message_id = await _send_store(assoc, current.out, run)
                            ahead = _Started(_next(items, prepare))
                            status = await _response(assoc, message_id, run, timeout)
                        except (NoAcceptableContext, OSError, ValueError) as exc:
                            await run.record(None, current.uid, f"{current.uid}: {exc}")
                        except DicomError as exc:
                            if not assoc.is_open:
                                raise
                            await run.record(None, current.uid, f"{current.uid}: {exc}")
                        else:
                            await run.record(status, current.uid)
                if run.check_cancel():
                    return
                if ahead is None:
                    ahead = _next(items, prepare)
        finally:
            if isinstance(ahead, _Started):
                await ahead.discard()

    return await run_retrieve(run, model, ae_title, lambda q, c: HandlerStream(handler, q, c), body)


@dataclass
class _Ready:
    """A sub-operation ready to send."""

    out: Outgoing
    uid: str


@dataclass
class _Unsent:
    """An instance that cannot be sent, and why (recorded as a failed sub-operation in its turn)."""

    uid: str | None
    error: str


async def _next(
    items: AsyncIterator[Any], prepare: Callable[[Any], Awaitable[_Ready | _Unsent]]
) -> _Ready | _Unsent | None:
    """The next item of the handler's stream, prepared; None at its end."""
    try:
        item = await anext(items)
    except StopAsyncIteration:
        return None
    return await prepare(item)


class _Started:
    """The next sub-operation, prepared as far as it gets while the current one's response is awaited.

    Its first steps run at once (a coroutine stepped until it waits: a page of the index, say); awaiting
    it finishes it. An exception it raises (the handler's) comes out where it is awaited, in its turn."""

    def __init__(self, coro: Coroutine[Any, Any, _Ready | _Unsent | None]) -> None:
        self._task = asyncio.ensure_future(coro)

    def __await__(self) -> Generator[Any, None, _Ready | _Unsent | None]:
        return self._task.__await__()

    async def discard(self) -> None:
        """Not sent after all (a cancel, an abort): stop it, and remove a conversion it wrote."""
        task = self._task
        if not task.done():
            task.cancel()
        await asyncio.wait({task})  # our own cancellation still comes through
        if task.cancelled() or task.exception() is not None:
            return  # nothing to send either way: the handler's error ends the retrieve already
        ready = task.result()
        if isinstance(ready, _Ready):
            with removing(ready.out):
                pass


async def _send_store(assoc: Association, out: Outgoing, run: Retrieve) -> int:
    """Send one C-STORE sub-operation on the requestor's association; returns its message ID."""
    header, dataset = open_instance(out.source, out.header)
    try:
        ctx = assoc.context_for(header.sop_class_uid, header.transfer_syntax_uid)
        if not ctx.scp_role:
            raise NoAcceptableContext(f"the requestor took no SCP role for {header.sop_class_uid}")
        message_id = assoc.next_message_id()
        command = Command.c_store_rq(
            message_id, header.sop_class_uid, header.sop_instance_uid, run.request.priority or 0
        )
        await assoc.send(ctx.context_id, command, dataset)
    finally:
        if isinstance(dataset, io.IOBase):
            dataset.close()
    return message_id


async def _response(assoc: Association, message_id: int, run: Retrieve, timeout: float | None) -> int:
    """The status of the sub-operation ``message_id``; a C-CANCEL of the C-GET that arrives meanwhile is
    noted (it takes effect after this sub-operation)."""
    while True:
        try:
            message = await assoc.receive(timeout)
        except TimeoutError:
            assoc.abort(f"no C-STORE response within {timeout:g} s")
            raise
        if message is None:
            assoc.abort()
            raise DimseError("the requestor asked to release the association during a C-GET")
        if message.dataset is not None:
            await message.dataset.abort()
        command = message.command
        if command.command_field == CommandField.C_STORE_RSP and (
            command.message_id_being_responded_to == message_id
        ):
            return command.status if command.status is not None else 0xC000
        if command.command_field == CommandField.C_CANCEL_RQ:
            if command.message_id_being_responded_to == run.request.message_id:
                run.cancelled = True
            continue
        assoc.abort()
        raise DimseError(f"unexpected {command.name} while a C-GET sub-operation was answered")
