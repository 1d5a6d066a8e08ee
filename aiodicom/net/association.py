"""An established association, for either role: send and receive DIMSE messages, release, abort.

Received PDVs are reassembled synchronously, in the transport's callback: commands are decoded, data set bytes
go straight into a :class:`~aiodicom.storage.base.DatasetSink` opened for the message, and complete messages
are queued for the service coroutine. Reading pauses while the queue is full or a sink asks to wait, so a slow
consumer costs no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiodicom.dimse import (
    DEFAULT_MAX_SEND_PDU,
    Command,
    CommandField,
    CommandReceived,
    InvalidCommand,
    MessageAssembler,
    encode_command,
    fragment,
    max_pdv_value,
    message_pdvs,
)
from aiodicom.dimse.refusal import wrong_context
from aiodicom.dimse.sink import DatasetSink, DiscardSink, MemorySink
from aiodicom.errors import (
    AbortReason,
    AbortSource,
    AssociationAborted,
    AssociationRejected,
    AssociationReleased,
    DimseError,
    NoAcceptableContext,
    ProtocolError,
    UsageError,
)
from aiodicom.net.calls import ServiceCalls
from aiodicom.net.options import AssociationOptions
from aiodicom.net.sending import DRAIN_EVERY, DataSource, send_data_set
from aiodicom.net.transport import DicomProtocol, wait_while_talking
from aiodicom.ul.connection import (
    AssociationRequestRefused,
    Connection,
    ConnectionEvent,
    PDVData,
    ProviderAbort,
    ReleaseComplete,
)
from aiodicom.ul.fsm import State
from aiodicom.ul.negotiation import (
    AcceptedContext,
    accepted_contexts,
    negotiated_max_pdu,
    negotiated_window,
)
from aiodicom.ul.pdu import (
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
)

log = logging.getLogger("aiodicom.association")

#: Complete messages queued before reading from the peer pauses.
_QUEUE_HIGH_WATER = 4

#: Bytes of data sets held by send_soon before they are written.
_DEFER_LIMIT = 8 * 1024
_MESSAGE_IDS = itertools.count()

SinkFactory = Callable[[int, Command], DatasetSink]
Dataset = DataSource


@dataclass(slots=True)
class DimseMessage:
    """A complete DIMSE message: its command and, when one followed, the sink that holds its data set.

    ``error`` is set when the sink failed while the data set arrived (the rest of it was discarded).
    """

    context_id: int
    command: Command
    dataset: DatasetSink | None = None
    error: Exception | None = None

    @property
    def data(self) -> bytes:
        """The data set bytes of a message received into memory (the default sink)."""
        if isinstance(self.dataset, MemorySink):
            return self.dataset.data
        raise UsageError("this message's data set was not received into memory")


class Association(ServiceCalls):
    """One association, requestor or acceptor. Made by :func:`aiodicom.connect` or by a server."""

    def __init__(
        self,
        role: Literal["requestor", "acceptor"],
        options: AssociationOptions,
        *,
        request: AAssociateRQ | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        # The one owner of the sans-IO connection: the transport only moves bytes to and from here.
        self._conn = Connection(
            role,
            max_pdu_length=options.max_pdu_length,
            strict=options.strict,
            artim_timeout=options.artim_timeout,
            acse_timeout=options.acse_timeout,
        )
        if request is not None:
            self._conn.associate(request, self._loop.time())
        self.protocol: DicomProtocol | None = None
        self.max_send_pdu_length = options.max_send_pdu_length
        self.accepted: dict[int, AcceptedContext] = {}
        self.peer_max_pdu_length = 0
        #: The asynchronous operations window negotiated (PS3.7 D.3.3.3): the requests a requestor may have
        #: outstanding at once, or those an acceptor granted; 1 without one (synchronous).
        self.max_ops_invoked = 1
        self.sink_factory: SinkFactory = lambda context_id, command: MemorySink()
        self._established: asyncio.Future[AAssociateAC] = self._loop.create_future()
        self._requested: asyncio.Future[AAssociateRQ] = self._loop.create_future()
        self._released: asyncio.Future[None] = self._loop.create_future()
        self._error: Exception | None = None
        self._release_requested = False  # the peer sent an A-RELEASE-RQ, not answered yet
        self._assembler = MessageAssembler()
        self._backlog: deque[tuple[int, bool, bool, memoryview | bytes]] = deque()
        self._sink: DatasetSink | None = None
        self._sink_command: tuple[int, Command] | None = None
        self._sink_error: Exception | None = None
        self._sink_wait = False
        self._messages: deque[DimseMessage | None] = deque()
        self._message_waiter: asyncio.Future[None] | None = None
        self._queue_paused = False
        self._send_lock = asyncio.Lock()
        self._deferred: list[bytes | memoryview] = []  # see send_soon
        self._deferred_bytes = 0
        self._max_value = DEFAULT_MAX_SEND_PDU - 6
        self._tasks: set[asyncio.Task[None]] = set()
        for future in (self._established, self._requested, self._released):
            future.add_done_callback(_consume_exception)

    def protocol_factory(self) -> DicomProtocol:
        """The transport's protocol for this association (for ``create_server``/``create_connection``)."""
        self.protocol = DicomProtocol(self)
        return self.protocol

    # ----------------------------------------------------------------------- the transport's calls

    def transport_ready(self, now: float) -> None:
        self._flush(self._conn.connection_made(now))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._conn.get_buffer(sizehint)

    def bytes_arrived(self, nbytes: int, now: float) -> None:
        self._handle(self._conn.buffer_updated(nbytes, now))

    def deadline_passed(self, now: float) -> None:
        self._handle(self._conn.handle_timer(now))

    def transport_lost(self, now: float) -> None:
        self._on_events(self._conn.connection_lost(now))
        self._fail(AssociationAborted("the connection closed"))

    def _handle(self, events: list[ConnectionEvent]) -> None:
        queued = self._conn.data_to_send()  # what the connection sent by itself (an A-ABORT...) goes first
        if queued:
            self._flush(queued)
        if events:
            self._on_events(events)
        self._flush(self._conn.data_to_send())

    def _flush(self, buffers: list[bytes | bytearray | memoryview]) -> None:
        """Write what the connection wants sent, close when it says so, arm its deadline."""
        protocol = self.protocol
        if protocol is None:
            return
        protocol.write(buffers)
        if self._conn.wants_close:
            protocol.close()
        protocol.set_deadline(self._conn.get_timer())

    # ---------------------------------------------------------------------------------- identity

    @property
    def request(self) -> AAssociateRQ:
        assert self._conn.request is not None
        return self._conn.request

    @property
    def calling_ae_title(self) -> str:
        return self.request.calling_ae_title

    @property
    def called_ae_title(self) -> str:
        return self.request.called_ae_title

    @property
    def peer_ae_title(self) -> str:
        """The other side's AE title: the calling AE for an acceptor, the called AE for a requestor."""
        return self.called_ae_title if self._conn.role == "requestor" else self.calling_ae_title

    @property
    def peer(self) -> tuple[str, int]:
        return self.protocol.peer if self.protocol is not None else ("", 0)

    @property
    def state(self) -> State:
        """The PS3.8 state of the association's connection (for logs and diagnostics)."""
        return self._conn.state

    @property
    def is_open(self) -> bool:
        return self._error is None and self._conn.established

    @property
    def receiving(self) -> bool:
        """Whether a message is on its way in (from the first PDV of its command) or waits for
        :meth:`receive`: a graceful stop lets such an association finish."""
        arriving = self._sink_wait or self._assembler.message_context_id is not None
        return arriving or bool(self._backlog) or any(m is not None for m in self._messages)

    def context_for(self, abstract_syntax: str, transfer_syntax: str | None = None) -> AcceptedContext:
        """The first accepted context for ``abstract_syntax`` (and ``transfer_syntax`` when given)."""
        for ctx in self.accepted.values():
            if ctx.abstract_syntax == abstract_syntax and transfer_syntax in (None, ctx.transfer_syntax):
                return ctx
        wanted = abstract_syntax + (f" with transfer syntax {transfer_syntax}" if transfer_syntax else "")
        raise NoAcceptableContext(f"the peer accepted no presentation context for {wanted}")

    def next_message_id(self) -> int:
        """A message ID from one process-wide counter: the Move Originator Message ID that ties arriving
        instances to a C-MOVE stays unique across concurrent associations."""
        return next(_MESSAGE_IDS) % 0xFFFF + 1

    # ------------------------------------------------------------------------------ establishment

    async def wait_established(self) -> AAssociateAC:
        return await self._established

    async def wait_request(self) -> AAssociateRQ:
        return await self._requested

    def accept(self, ac: AAssociateAC, accepted: dict[int, AcceptedContext]) -> None:
        """Acceptor: send the A-ASSOCIATE-AC built by :func:`aiodicom.ul.negotiation.accept`
        (:class:`AssociationAborted` if the association ended before)."""
        if not self._answerable():
            raise self._error or AssociationAborted("the association ended before it was accepted")
        self.accepted = accepted
        self._set_peer_max(negotiated_max_pdu(self.request.user_information))
        window = ac.user_information.async_ops_window
        self.max_ops_invoked = 1 if window is None else window.max_invoked
        self._send_pdu(ac)

    def reject(self, rj: AAssociateRJ) -> None:
        """Acceptor: send an A-ASSOCIATE-RJ; the peer closes the connection (or ARTIM does)."""
        if not self._answerable():
            return
        self._send_pdu(rj)
        self._fail(AssociationRejected(rj.result, rj.source, rj.reason))

    def _answerable(self) -> bool:
        """Whether the request still awaits our answer (Sta3): an invalid PDU or an A-ABORT in the same read
        ends the association first; then the connection closes at once (after our A-ABORT, if any)."""
        answerable = self._conn.state is State.STA3
        if not answerable:
            self.close()
        return answerable

    def _set_peer_max(self, peer_max: int) -> None:
        self.peer_max_pdu_length = peer_max
        self._max_value = max_pdv_value(peer_max, self.max_send_pdu_length)

    def _send_pdu(self, pdu: AAssociateAC | AAssociateRJ | AReleaseRQ | AReleaseRP | AAbort) -> None:
        self._flush(self._conn.send(pdu, self._loop.time()) + self._conn.data_to_send())

    # --------------------------------------------------------------------------------- receiving

    def _on_events(self, events: list[ConnectionEvent]) -> None:
        pieces = False
        for event in events:
            if isinstance(event, PDVData):
                self._backlog.append((event.context_id, event.is_command, event.is_last, event.data))
                pieces = True
                continue
            if pieces:  # what arrived before this event is handled before it
                self._process_backlog()
                pieces = False
            if isinstance(event, AAssociateAC):
                self.accepted = accepted_contexts(self.request, event)
                self._set_peer_max(negotiated_max_pdu(event.user_information))
                self.max_ops_invoked = negotiated_window(
                    self.request.user_information.async_ops_window, event.user_information.async_ops_window
                )
                _resolve(self._established, event)
            elif isinstance(event, AAssociateRJ):
                self._fail(AssociationRejected(event.result, event.source, event.reason))
            elif isinstance(event, AAssociateRQ):
                _resolve(self._requested, event)
            elif isinstance(event, AssociationRequestRefused):
                rj = event.rejection
                self._fail(AssociationRejected(rj.result, rj.source, rj.reason))
            elif isinstance(event, AReleaseRQ):
                self._release_requested = True
                self._queue(None)
            elif isinstance(event, ReleaseComplete):
                _resolve(self._released, None)
                self._fail(AssociationReleased("the association was released"), released=True)
            elif isinstance(event, AAbort):
                who = "the peer" if event.source == AbortSource.SERVICE_USER else "the peer's upper layer"
                self._fail(
                    AssociationAborted(
                        f"aborted by {who} (reason {event.reason})", event.source, event.reason
                    )
                )
            elif isinstance(event, ProviderAbort):
                self._fail(AssociationAborted(event.message, AbortSource.SERVICE_PROVIDER, event.reason))
        if pieces:
            self._process_backlog()

    def _process_backlog(self) -> None:
        while self._backlog and not self._sink_wait:
            context_id, is_command, is_last, data = self._backlog.popleft()
            try:
                if context_id not in self.accepted:
                    raise ProtocolError(
                        f"PDV for presentation context {context_id}, which was not accepted",
                        AbortReason.INVALID_PDU_PARAMETER_VALUE,
                    )
                for item in self._assembler.feed(context_id, is_command, is_last, data):
                    if isinstance(item, CommandReceived):
                        self._on_command(item.context_id, item.command)
                    else:
                        self._on_chunk(item.data, item.is_last)
            except InvalidCommand as exc:
                # a command that cannot be answered: DIMSE, the upper layer's user, aborts (source 0)
                self._backlog.clear()
                log.warning("aborting the association with %s:%s: %s", *self.peer, exc)
                self.abort(f"aborted: {exc}")
                return
            except ProtocolError as exc:
                self._backlog.clear()
                self._protocol_fault(exc)
                return

    def _on_command(self, context_id: int, command: Command) -> None:
        if command.is_request:
            missing = command.message_id is None
            if command.command_field == CommandField.C_CANCEL_RQ:
                missing = command.message_id_being_responded_to is None
        else:
            missing = command.message_id_being_responded_to is None
        if missing:
            raise InvalidCommand(f"{command.name} without the message ID it needs cannot be answered")
        refusal = wrong_context(command, self.accepted[context_id].abstract_syntax)
        if not command.has_dataset:
            self._queue(DimseMessage(context_id, command, error=refusal))
            return
        self._sink_command = (context_id, command)
        self._sink_error = refusal
        if refusal is not None:  # refused before its data set: the bytes are read and dropped
            self._sink = DiscardSink()
            return
        try:
            self._sink = self.sink_factory(context_id, command)
        except Exception as exc:  # the service could not open storage: answer it, discard the bytes
            self._sink_error = exc
            self._sink = DiscardSink()

    def _on_chunk(self, data: memoryview | bytes, is_last: bool) -> None:
        assert self._sink is not None and self._sink_command is not None
        try:
            pending = self._sink.write(data if isinstance(data, memoryview) else memoryview(data))
        except Exception as exc:
            self._sink_failed(exc)
            pending = None
        if is_last:
            context_id, command = self._sink_command
            sink = None if isinstance(self._sink, DiscardSink) else self._sink
            message = DimseMessage(context_id, command, sink, self._sink_error)
            self._sink = self._sink_command = None
            if pending is not None:  # the last write must finish before the message is handed over
                self._wait_for_sink(pending, then=message)
            else:
                self._queue(message)
        elif pending is not None:
            self._wait_for_sink(pending)

    def _sink_failed(self, exc: Exception) -> None:
        log.warning("data set storage failed: %s", exc)
        if self._sink is not None and not isinstance(self._sink, DiscardSink):
            self._spawn(self._sink.abort())
        self._sink_error = exc
        self._sink = DiscardSink()

    def _wait_for_sink(self, pending: Awaitable[None], then: DimseMessage | None = None) -> None:
        # Stop reading (and parsing the PDVs already received) until the sink has taken the bytes.
        self._sink_wait = True
        self._pause()

        async def wait() -> None:
            try:
                await pending
            except Exception as exc:
                if then is not None:
                    then.error = exc
                else:
                    self._sink_failed(exc)
            finally:
                self._sink_wait = False
                self._resume()
            if then is not None:
                self._queue(then)
            self._process_backlog()

        self._spawn(wait())

    def _queue(self, message: DimseMessage | None) -> None:
        self._messages.append(message)
        if self._message_waiter is not None and not self._message_waiter.done():
            self._message_waiter.set_result(None)
        if len(self._messages) >= _QUEUE_HIGH_WATER and not self._queue_paused:
            self._queue_paused = True
            self._pause()

    def _pause(self) -> None:
        if self.protocol is not None:
            self.protocol.pause_reading()

    def _resume(self) -> None:
        if self.protocol is not None:
            self.protocol.resume_reading()

    async def receive(self, timeout: float | None = None) -> DimseMessage | None:
        """The next complete DIMSE message; None when the peer asked to release the association.

        ``timeout`` measures the peer's silence, not the message's length: TimeoutError once no byte has
        arrived for ``timeout`` seconds (since the call, or since the last byte), while this side is not
        holding the peer back. A slow instance that keeps arriving is never cut short. Raises
        :class:`AssociationAborted` once the association is over.
        """
        while not self._messages:
            if self._error is not None:
                raise self._error
            self._message_waiter = waiter = self._loop.create_future()
            if timeout is None:
                await waiter
            else:
                await wait_while_talking(self._loop, waiter, timeout, self.protocol, self.peer)
        message = self._messages.popleft()
        if self._queue_paused and len(self._messages) < _QUEUE_HIGH_WATER // 2:
            self._queue_paused = False
            self._resume()
        return message

    def take_cancel(self, message_id: int) -> bool:
        """Whether a C-CANCEL-RQ for our operation ``message_id`` has arrived (taken from the queue, without
        waiting: an acceptor serving C-FIND/C-GET/C-MOVE asks between responses; the rest stays queued)."""
        for message in self._messages:
            if message is None or message.command.command_field != CommandField.C_CANCEL_RQ:
                return False
            if message.command.message_id_being_responded_to == message_id:  # others: answered already
                self._messages.remove(message)
                if self._queue_paused and len(self._messages) < _QUEUE_HIGH_WATER // 2:
                    self._queue_paused = False
                    self._resume()
                return True
        return False

    async def receive_response(
        self, message_id: int, command_field: CommandField, timeout: float | None = None
    ) -> DimseMessage:
        """The response to our request ``message_id``; anything else aborts the association."""
        message = await self.receive(timeout)
        if message is None:
            self.abort()
            raise DimseError(
                f"the peer asked to release the association while {command_field.name} was awaited"
            )
        command = message.command
        if command.command_field != command_field or command.message_id_being_responded_to != message_id:
            self.abort()
            raise DimseError(
                f"expected {command_field.name} to message {message_id}, received {command.name} "
                f"to message {command.message_id_being_responded_to}"
            )
        return message

    # ----------------------------------------------------------------------------------- sending

    async def send(self, context_id: int, command: Command | bytes, dataset: Dataset | None = None) -> None:
        """Send a DIMSE message: the command, then the data set fragmented to the peer's maximum PDU.

        The command is a :class:`Command` or its encoded command set (a server answering many matches
        with one command encodes it once). A data set is bytes (sent as memoryview slices), a binary file
        read one PDV at a time, or an async iterable of byte chunks (an object streaming from S3), re-cut
        into PDVs as they come.
        """
        if context_id not in self.accepted:
            raise NoAcceptableContext(f"presentation context {context_id} was not accepted")
        encoded = command if isinstance(command, bytes) else encode_command(command)
        async with self._send_lock:
            small = isinstance(dataset, bytes | bytearray | memoryview) and len(dataset) <= DRAIN_EVERY
            if small:  # a small data set goes out with its command in one write (one PDU when it fits)
                buffers = message_pdvs(context_id, encoded, dataset, self._max_value)  # type: ignore[arg-type]
            else:
                buffers = fragment(context_id, True, encoded, self._max_value)
            self.write_pdvs(buffers)
            if dataset is not None:
                await (self.drain() if small else send_data_set(self, context_id, dataset, self._max_value))

    async def send_soon(
        self, context_id: int, command: Command | bytes, dataset: bytes | None = None
    ) -> None:
        """Send a message (a command, and a small data set) with the next one, or at the latest once the
        loop runs again: a pending response and the next sub-operation, or C-FIND matches yielded
        together, go out in one system call. Held messages are written once they pass 8 KiB, so that
        the peer works on them while the next are made."""
        if self._send_lock.locked() or context_id not in self.accepted or len(dataset or b"") > _DEFER_LIMIT:
            await self.send(context_id, command, dataset)  # not between two fragments of another message
            return
        if not self._deferred:
            asyncio.get_running_loop().call_soon(self._flush_deferred)
        encoded = command if isinstance(command, bytes) else encode_command(command)
        self._deferred += message_pdvs(context_id, encoded, dataset, self._max_value)
        if dataset is not None:
            self._deferred_bytes += len(dataset)
        if self._deferred_bytes >= _DEFER_LIMIT:
            self.write_pdvs([])
            await self.drain()

    def _flush_deferred(self) -> None:
        if self._deferred and self._error is None and self.protocol is not None:
            self.write_pdvs([])

    def write_pdvs(self, buffers: list[bytes | memoryview]) -> None:
        """Write P-DATA-TF buffers as they are (a :class:`~aiodicom.net.sending.PdvWriter`)."""
        if self._error is not None:
            raise self._error
        assert self.protocol is not None
        if self._deferred:
            buffers, self._deferred, self._deferred_bytes = self._deferred + buffers, [], 0
        self.protocol.write(self._conn.send_data(buffers))  # the table decides; the buffers pass through

    async def drain(self) -> None:
        """Wait while the transport's write buffer is full (a :class:`~aiodicom.net.sending.PdvWriter`)."""
        assert self.protocol is not None
        try:
            await self.protocol.drain()
        except ConnectionError as exc:
            raise self._error or AssociationAborted("the connection closed while sending") from exc

    # ------------------------------------------------------------------------------ release/abort

    async def release(self, timeout: float = 30.0) -> None:
        """Release the association (A-RELEASE); aborts it if the peer does not answer in ``timeout``."""
        if self._error is not None or not self._conn.established:
            self.close()
            return
        if self._release_requested:  # the peer asked first: answer it
            self.answer_release()
            await self.wait_closed(timeout)
            return
        self._send_pdu(AReleaseRQ())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._released)
        except TimeoutError:
            log.warning("no A-RELEASE-RP from %s:%s in %.0f s: aborting", *self.peer, timeout)
            self.abort()
        except AssociationAborted:
            pass
        await self.wait_closed(timeout)

    def answer_release(self) -> None:
        """Answer the peer's A-RELEASE-RQ (after :meth:`receive` returned None)."""
        if self._release_requested:
            self._release_requested = False
            self._send_pdu(AReleaseRP())
        self._fail(AssociationReleased("the association was released"), released=True)

    def abort(self, message: str = "aborted locally") -> None:
        """Abort the association (A-ABORT, service-user) and close the connection."""
        if self.protocol is None:
            return
        with contextlib.suppress(UsageError):  # the table sends the A-ABORT where one makes sense
            self._send_pdu(AAbort(AbortSource.SERVICE_USER, 0))
        self.protocol.close()
        self._fail(AssociationAborted(message, AbortSource.SERVICE_USER, 0))

    def close(self) -> None:
        if self.protocol is not None:
            self.protocol.close()

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait for the connection to close and for sinks being aborted to finish; then drop the data sets
        of messages still queued, which nobody can answer any more (a peer sent them ahead and went away)."""
        if self.protocol is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self.protocol.closed)
            except TimeoutError:
                self.protocol.abort_transport()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._messages:
            if (message := self._messages.popleft()) is not None and message.dataset is not None:
                with contextlib.suppress(Exception):  # sinks say themselves what they could not remove
                    await message.dataset.abort()

    # ------------------------------------------------------------------------------------- ending

    def _protocol_fault(self, exc: ProtocolError) -> None:
        log.warning("aborting the association with %s:%s: %s", *self.peer, exc)
        self._handle(self._conn.abort(exc.reason, str(exc), self._loop.time()))

    def _fail(self, exc: Exception, *, released: bool = False) -> None:
        """The association is over: wake every waiter with ``exc`` and drop any half-received data set."""
        if self._error is not None:
            return
        self._error = exc
        if not released:
            for future in (self._established, self._requested, self._released):
                if not future.done():
                    future.set_exception(exc)
        if self._sink is not None:
            self._spawn(self._sink.abort())
            self._sink = None
        if self._message_waiter is not None and not self._message_waiter.done():
            self._message_waiter.set_result(None)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _resolve(future: asyncio.Future[Any], value: object) -> None:
    if not future.done():
        future.set_result(value)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # nobody may be waiting: do not log "exception never retrieved"
