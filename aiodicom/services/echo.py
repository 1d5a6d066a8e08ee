"""C-ECHO, the acceptor's side: every aiodicom server answers Verification (the requestor's is
:meth:`aiodicom.net.association.Association.c_echo`, which :class:`~aiodicom.scu.echo.EchoScu` uses)."""

from __future__ import annotations

from collections.abc import Mapping

from aiodicom.dimse import Command, CommandField
from aiodicom.net.association import Association, DimseMessage
from aiodicom.services.dispatch import ServiceHandler


async def handle_echo(assoc: Association, message: DimseMessage) -> None:
    """Answer a C-ECHO-RQ with Success (the association refused one without a Message ID already)."""
    assert message.command.message_id is not None
    await assoc.send(message.context_id, Command.c_echo_rsp(message.command.message_id, 0))


#: The handlers of a server that only answers C-ECHO.
ECHO_HANDLERS: Mapping[int, ServiceHandler] = {CommandField.C_ECHO_RQ: handle_echo}
