"""Several requests outstanding on one association (the asynchronous operations window, PS3.7 D.3.3.3).

A requestor that was granted a window larger than one sends its next request without waiting for the
response to the previous; :class:`OperationsWindow` sends them one after another (one message's PDVs at a
time), keeps at most the window's size outstanding, and hands each response to the request it answers by
its Message ID Being Responded To, in whatever order the responses come. Anything else the peer sends
while requests are outstanding (a response to no outstanding request, a request, a release request) aborts
the association, as it does for one request at a time; so does a message only half sent. When the
association ends, every request still outstanding fails with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterable
from dataclasses import dataclass

from aiodicom.dataset.files import InstanceHeader, open_instance
from aiodicom.dimse import Command
from aiodicom.errors import AssociationAborted, DicomError, DimseError
from aiodicom.net.association import Association, Dataset, DimseMessage

__all__ = ["OperationsWindow"]


@dataclass(slots=True)
class _Outstanding:
    response_field: int
    future: asyncio.Future[DimseMessage]
    sent: bool = False  # its last PDV went out: from then on the peer's silence counts


class OperationsWindow:
    """Requests outstanding on ``assoc``, at most ``size`` at once (default: the window it negotiated).

    ``timeout`` (seconds, None: no limit) is the longest silence from the peer while a request that was
    sent whole awaits its response, counted from the last byte received or the last request sent, and
    not while this side holds the peer back (paused reading): then the association is aborted and every
    outstanding request fails with TimeoutError. One coroutine sends (:meth:`send_request`,
    :meth:`c_store`); any number may await the responses.
    """

    def __init__(self, assoc: Association, size: int | None = None, *, timeout: float | None = None) -> None:
        self.assoc = assoc
        self.size = max(1, size if size is not None else assoc.max_ops_invoked)
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._outstanding: dict[int, _Outstanding] = {}
        self._room: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_sent = self._loop.time()
        self._timed_out = False
        #: The most requests that were outstanding at once (for logs and tests).
        self.most_outstanding = 0

    @property
    def outstanding(self) -> int:
        """How many requests await their response."""
        return len(self._outstanding)

    async def wait_for_room(self) -> None:
        """Wait until another request may be sent (AssociationAborted once the association is over)."""
        while len(self._outstanding) >= self.size:
            self._room = room = self._loop.create_future()
            await room
        self._check_open()

    async def send_request(
        self, context_id: int, command: Command, dataset: Dataset | None = None
    ) -> asyncio.Future[DimseMessage]:
        """Send a request (waiting for room first) and return the future of its response.

        A send that fails part-way aborts the association (the rest of the message cannot follow) and
        raises; the future then fails for every other request outstanding too.
        """
        await self.wait_for_room()
        message_id = command.message_id
        if message_id is None or message_id in self._outstanding:
            raise ValueError(f"message ID {message_id} is missing or already outstanding")
        entry = _Outstanding(command.command_field | 0x8000, self._loop.create_future())
        entry.future.add_done_callback(_consume_exception)
        self._outstanding[message_id] = entry  # before sending: the response may come before send returns
        self.most_outstanding = max(self.most_outstanding, len(self._outstanding))
        if self._reader is None or self._reader.done():
            self._reader = self._loop.create_task(self._read())
        try:
            await self.assoc.send(context_id, command, dataset)
        except BaseException as exc:
            self._outstanding.pop(message_id, None)
            if self.assoc.is_open:
                self.assoc.abort(f"sending {command.name} failed part-way: {exc}")
            raise
        entry.sent = True
        self._last_sent = self._loop.time()
        self._arm()
        return entry.future

    async def c_store(
        self,
        source: str | os.PathLike[str] | bytes | AsyncIterable[bytes],
        *,
        header: InstanceHeader | None = None,
        priority: int = 0,
    ) -> asyncio.Future[DimseMessage]:
        """Send one instance with C-STORE as :meth:`Association.c_store` does, without waiting for its
        response: the future of the C-STORE-RSP message is returned once the data set went out."""
        await self.wait_for_room()
        header, dataset = open_instance(source, header)
        try:
            ctx = self.assoc.context_for(header.sop_class_uid, header.transfer_syntax_uid)
            command = Command.c_store_rq(
                self.assoc.next_message_id(), header.sop_class_uid, header.sop_instance_uid, priority
            )
            return await self.send_request(ctx.context_id, command, dataset)
        finally:
            if isinstance(dataset, io.IOBase):
                dataset.close()

    async def join(self) -> None:
        """Wait until no request is outstanding (their futures say how each ended)."""
        while self._outstanding:
            await asyncio.gather(
                *(e.future for e in list(self._outstanding.values())), return_exceptions=True
            )
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    # ------------------------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if not self.assoc.is_open:
            raise AssociationAborted("the association ended while requests were being sent")

    async def _read(self) -> None:
        """Route responses to their requests while any is outstanding."""
        try:
            while self._outstanding:
                message = await self.assoc.receive()
                if message is None:
                    self.assoc.abort()
                    raise DimseError(
                        f"the peer asked to release the association while {len(self._outstanding)} "
                        "responses were awaited"
                    )
                command = message.command
                entry = None
                if not command.is_request and command.message_id_being_responded_to is not None:
                    entry = self._outstanding.get(command.message_id_being_responded_to)
                if entry is None or entry.response_field != command.command_field:
                    self.assoc.abort()
                    raise DimseError(
                        f"received {command.name} to message {command.message_id_being_responded_to}, "
                        f"which is not outstanding ({len(self._outstanding)} requests are)"
                    )
                assert command.message_id_being_responded_to is not None
                del self._outstanding[command.message_id_being_responded_to]
                entry.future.set_result(message)
                self._wake()
        except (DicomError, OSError) as exc:
            error: Exception = exc
            if self._timed_out:
                error = TimeoutError(f"no response within {self.timeout:g} s")
            self._fail_all(error)
        finally:
            self._disarm()

    def _fail_all(self, exc: Exception) -> None:
        outstanding, self._outstanding = self._outstanding, {}
        for entry in outstanding.values():
            if not entry.future.done():
                entry.future.set_exception(exc)
        self._wake()

    def _wake(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def _arm(self) -> None:
        if self.timeout is not None and self._timer is None:
            self._timer = self._loop.call_at(self._last_sent + self.timeout, self._check_silence)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_silence(self) -> None:
        self._timer = None
        if self.timeout is None or not any(e.sent for e in self._outstanding.values()):
            return  # armed again when the next request has gone out
        now = self._loop.time()
        since = self._last_sent
        protocol = self.assoc.protocol
        if protocol is not None and protocol.reading_paused:
            since = now  # this side holds the peer back: not silence
        elif protocol is not None:
            since = max(since, protocol.last_received)
        if now - since >= self.timeout:
            self._timed_out = True
            self.assoc.abort(f"no response within {self.timeout:g} s")
            return
        self._timer = self._loop.call_at(since + self.timeout, self._check_silence)


def _consume_exception(future: asyncio.Future[DimseMessage]) -> None:
    if not future.cancelled():
        future.exception()  # a failed send may leave nobody waiting: do not log it as never retrieved
