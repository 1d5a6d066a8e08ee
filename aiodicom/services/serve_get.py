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

import contextlib
import io
import logging

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
    opened_ahead,
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

    async def body(stream: HandlerStream) -> None:
        async with contextlib.aclosing(opened_ahead(stream, settings)) as opened:
            async for queued in opened:
                uid: str | None = None
                try:
                    if isinstance(queued, Failed):
                        raise queued
                    assert queued.header is not None
                    uid = queued.header.sop_instance_uid
                    sop_class = queued.header.sop_class_uid
                    roles = (c.abstract_syntax == sop_class and c.scp_role for c in assoc.accepted.values())
                    if not any(roles):
                        raise Failed(f"the requestor took no SCP role for SOP class {sop_class} ({uid})", uid)
                    out = await run.outgoing(assoc, queued)
                    with removing(out):
                        status = await _store(assoc, out, run, timeout)
                except Failed as exc:
                    await run.record(None, exc.sop_instance_uid or uid, str(exc))
                except (NoAcceptableContext, OSError, ValueError) as exc:
                    await run.record(None, uid, f"{uid}: {exc}")
                except DicomError as exc:
                    if not assoc.is_open:
                        raise
                    await run.record(None, uid, f"{uid}: {exc}")  # a conversion that failed
                else:
                    await run.record(status, uid)
                if run.check_cancel():
                    return

    return await run_retrieve(run, model, ae_title, lambda q, c: HandlerStream(handler, q, c), body)


async def _store(assoc: Association, out: Outgoing, run: Retrieve, timeout: float | None) -> int:
    """One C-STORE sub-operation on the requestor's association; a C-CANCEL of the C-GET that arrives
    meanwhile is noted (it takes effect after this sub-operation)."""
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
