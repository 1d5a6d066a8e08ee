"""The composite-service calls of an association (C-ECHO, C-STORE), on top of its send and receive."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING

from aiodicom.dataset.files import InstanceHeader, open_instance
from aiodicom.dimse import Command, CommandField
from aiodicom.dimse.commands import VERIFICATION_SOP_CLASS

if TYPE_CHECKING:
    from aiodicom.net.association import DimseMessage
    from aiodicom.net.sending import DataSource
    from aiodicom.ul.negotiation import AcceptedContext


class ServiceCalls:
    """C-ECHO and C-STORE as one call each: a base of :class:`~aiodicom.net.association.Association`."""

    if TYPE_CHECKING:  # what the association provides

        async def send(
            self, context_id: int, command: Command, dataset: DataSource | None = None
        ) -> None: ...

        async def receive_response(
            self, message_id: int, command_field: CommandField, timeout: float | None = None
        ) -> DimseMessage: ...

        def context_for(
            self, abstract_syntax: str, transfer_syntax: str | None = None
        ) -> AcceptedContext: ...

        def next_message_id(self) -> int: ...

        def abort(self, message: str = "aborted locally") -> None: ...

    async def c_echo(self, timeout: float | None = None) -> int:
        """Send a C-ECHO-RQ on the Verification context; returns the response status."""
        ctx = self.context_for(VERIFICATION_SOP_CLASS)
        message_id = self.next_message_id()
        await self.send(ctx.context_id, Command.c_echo_rq(message_id))
        response = await self.receive_response(message_id, CommandField.C_ECHO_RSP, timeout)
        return response.command.status or 0

    async def c_store(
        self,
        source: str | os.PathLike[str] | bytes | AsyncIterable[bytes],
        *,
        priority: int = 0,
        move_originator_ae_title: str | None = None,
        move_originator_message_id: int | None = None,
        timeout: float | None = None,
        header: InstanceHeader | None = None,
    ) -> int:
        """Send one instance (a file path, or the bytes of a file) with C-STORE; returns the response status.

        The data set goes out as it is in the file, PDV by PDV, on a context accepted for its SOP class and
        transfer syntax (:class:`NoAcceptableContext` otherwise). ``source`` may also be an async iterable
        of the data set's bytes (from its first byte after the file meta), with its ``header`` given.
        :meth:`c_store_response` gives the whole response (the peer's Error Comment with the status).
        """
        response = await self.c_store_response(
            source,
            priority=priority,
            move_originator_ae_title=move_originator_ae_title,
            move_originator_message_id=move_originator_message_id,
            timeout=timeout,
            header=header,
        )
        return response.status if response.status is not None else 0xC000

    async def c_store_response(
        self,
        source: str | os.PathLike[str] | bytes | AsyncIterable[bytes],
        *,
        priority: int = 0,
        move_originator_ae_title: str | None = None,
        move_originator_message_id: int | None = None,
        timeout: float | None = None,
        header: InstanceHeader | None = None,
    ) -> Command:
        """:meth:`c_store`, answering with the C-STORE-RSP command. A response that does not come within
        ``timeout`` (of silence) aborts the association (a late one would answer the wrong request) and
        raises TimeoutError."""
        header, dataset = open_instance(source, header)
        try:
            ctx = self.context_for(header.sop_class_uid, header.transfer_syntax_uid)
            message_id = self.next_message_id()
            command = Command.c_store_rq(
                message_id,
                header.sop_class_uid,
                header.sop_instance_uid,
                priority,
                move_originator_ae_title,
                move_originator_message_id,
            )
            await self.send(ctx.context_id, command, dataset)
        finally:
            if isinstance(dataset, io.IOBase):
                dataset.close()
        try:
            response = await self.receive_response(message_id, CommandField.C_STORE_RSP, timeout)
        except TimeoutError:
            self.abort(f"no C-STORE response within {timeout:g} s")
            raise
        return response.command
