"""The acceptor's message loop: receive a request, hand it to its service, repeat until release."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from aiodicom.dimse import Command, CommandField, Status
from aiodicom.dimse.commands import N_REQUESTS, echoable_uid
from aiodicom.errors import AssociationAborted, DimseError
from aiodicom.net.association import Association, DimseMessage

log = logging.getLogger("aiodicom.server")

ServiceHandler = Callable[[Association, DimseMessage], Awaitable[object]]


def failure_response(request: Command, status: int, error_comment: str | None = None) -> Command:
    """A response to any request, with no data set: the same SOP class and instance, the given status."""
    if request.command_field in N_REQUESTS:
        return Command.n_rsp(request, status, error_comment=error_comment)
    return Command(
        command_field=request.command_field | 0x8000,
        message_id_being_responded_to=request.message_id,
        affected_sop_class_uid=echoable_uid(request.affected_sop_class_uid),
        affected_sop_instance_uid=echoable_uid(request.affected_sop_instance_uid),
        status=status,
        error_comment=error_comment,
    )


class Host(Protocol):
    """The server of an association, for its graceful stop: a :class:`~aiodicom.net.server.DicomServer`."""

    @property
    def stopping(self) -> bool: ...

    def busy(self, assoc: Association) -> None: ...

    def idle(self, assoc: Association) -> None: ...


async def serve_messages(
    assoc: Association,
    handlers: Mapping[int, ServiceHandler],
    *,
    idle_timeout: float | None = None,
    unsupported_status: int = Status.UNRECOGNIZED_OPERATION,
    host: Host | None = None,
) -> None:
    """Serve requests until the peer releases the association (or aborts, or stays idle too long).

    A request for a service with no handler is answered ``unsupported_status`` (0x0211, unrecognized
    operation, by default); its data set, if any, is discarded. With ``host``, the server it belongs to,
    a graceful stop lets the message being handled finish, then aborts the association.
    """
    while True:
        try:
            message = await assoc.receive(idle_timeout)
        except TimeoutError:
            log.info("association with %s:%s idle for %.0f s: aborting", *assoc.peer, idle_timeout or 0)
            assoc.abort()
            return
        except AssociationAborted:
            return
        if message is None:
            assoc.answer_release()
            return
        refusal = message.error
        if isinstance(refusal, DimseError) and refusal.status is not None and message.command.is_request:
            await _refuse(assoc, message, refusal)
            continue
        handler = handlers.get(message.command.command_field)
        if handler is None:
            await _unsupported(assoc, message, unsupported_status)
            continue
        if host is None:
            await handler(assoc, message)
        else:
            host.busy(assoc)
            try:
                await handler(assoc, message)
            finally:
                host.idle(assoc)
        if host is not None and host.stopping:
            assoc.abort()
            return


async def _refuse(assoc: Association, message: DimseMessage, refusal: DimseError) -> None:
    """Answer a request the association refused on arrival (e.g. its SOP class is not its context's)."""
    log.info("refused %s from %s:%s: %s", message.command.name, *assoc.peer, refusal)
    if message.dataset is not None:
        await message.dataset.abort()
    status = refusal.status if refusal.status is not None else Status.CANNOT_UNDERSTAND
    await assoc.send(message.context_id, failure_response(message.command, status, str(refusal)[:64]))


async def _unsupported(assoc: Association, message: DimseMessage, status: int) -> None:
    command = message.command
    if message.dataset is not None:
        await message.dataset.abort()
    if not command.is_request or command.command_field == CommandField.C_CANCEL_RQ:
        log.debug("ignoring %s from %s:%s", command.name, *assoc.peer)
        return
    log.info("%s from %s:%s is not supported here", command.name, *assoc.peer)
    await assoc.send(message.context_id, failure_response(command, status))
