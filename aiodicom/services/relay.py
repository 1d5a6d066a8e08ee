"""The forward backend: each C-STORE received is relayed to another node as it arrives, PDV by PDV.

Nothing goes to disk and no instance is ever whole in memory: the bytes of each PDV are queued (a bounded
queue, so a slow destination pauses reading from the source) and sent on one long-lived association to
the destination, re-fragmented to the destination's maximum PDU. An instance in a syntax the destination
did not accept is spooled to a temporary file (that one instance), converted losslessly to the best syntax
it accepted, and sent from there, unless ``never_transcode`` makes it a failed forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from aiodicom.dataset import DatasetParseError, LeadingElements, build_file_meta
from aiodicom.dataset.codecs import lossless_fallback, syntax_label
from aiodicom.dimse import Command, CommandField, Status, is_failure, status_name
from aiodicom.dimse.sink import DatasetSink, MemorySink
from aiodicom.errors import DicomError, DimseError, NoAcceptableContext, StorageError
from aiodicom.net.address import parse_address, validate_ae_title
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.client import open_association
from aiodicom.net.tls import TlsContext
from aiodicom.services.transcode import Transcoder
from aiodicom.storage.folders import spool_folder
from aiodicom.uids import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    IMPLICIT_VR_LITTLE_ENDIAN,
    is_dicom_transfer_syntax,
)

log = logging.getLogger("aiodicom.forward")

#: PDV chunks queued per instance before reading from the source pauses.
_QUEUE_CHUNKS = 16


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """Where a GetScu in forward mode relays what it receives.

    Also accepted as a dict with the reference documents' keys (``addr``, ``callingAeTitle``,
    ``calledAeTitle``, ``maxPduLength``). ``called_ae_title`` defaults to the AE in ``addr``, else
    ``ANY-SCP``. ``tls`` (an ``ssl.SSLContext``, key ``tls`` in a dict) makes the connection to it TLS.
    """

    addr: str
    calling_ae_title: str = "FORWARD-SCU"
    called_ae_title: str | None = None
    max_pdu_length: int = 262144
    tls: TlsContext | None = None

    def __post_init__(self) -> None:
        parse_address(self.addr)
        validate_ae_title(self.calling_ae_title, "forward calling AE title")
        if self.called_ae_title is not None:
            validate_ae_title(self.called_ae_title, "forward called AE title")

    @classmethod
    def from_value(cls, value: ForwardTarget | Mapping[str, Any]) -> ForwardTarget:
        if isinstance(value, ForwardTarget):
            return value
        names = {
            "addr": "addr",
            "callingaetitle": "calling_ae_title",
            "calling_ae_title": "calling_ae_title",
            "calledaetitle": "called_ae_title",
            "called_ae_title": "called_ae_title",
            "maxpdulength": "max_pdu_length",
            "max_pdu_length": "max_pdu_length",
            "tls": "tls",
        }
        kwargs: dict[str, Any] = {}
        for key, item in value.items():
            name = names.get(key.lower())
            if name is None:
                raise ValueError(f"unknown forward target option {key!r}")
            kwargs[name] = item
        if "addr" not in kwargs:
            raise ValueError("a forward target needs addr (host:port or AE@host:port)")
        return cls(**kwargs)

    @property
    def label(self) -> str:
        address = parse_address(self.addr)
        return f"{self.called_ae_title or address.ae_title or 'ANY-SCP'}@{address.host}:{address.port}"


@dataclass(frozen=True, slots=True)
class ForwardOutcome:
    """How relaying one instance went: the destination's status, or the error that stopped it."""

    sop_instance_uid: str
    forwarded_to: str
    status: int | None
    error: str | None
    #: The syntax it was sent to the destination in, and the one it came in when it was converted.
    transfer_syntax: str | None = None
    converted_from: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and not is_failure(self.status)


@dataclass(frozen=True, slots=True)
class RelayOutcome:
    """How relaying one C-STORE ended: the status answered to the source, and the forward's outcome."""

    status: int
    forward: ForwardOutcome | None


class _RelaySink:
    """One instance on its way to the destination: chunks queue up and stream into its C-STORE.

    The data set's structure is checked as it passes, and its last chunk is held back until the check has
    passed: a truncated or malformed instance aborts the destination's association instead, so the
    destination never gets a whole-looking instance (the last-fragment bit is never sent for it).
    """

    def __init__(self, dest: Association, context_id: int, command: Command, transfer_syntax: str) -> None:
        self.dest = dest
        self.context_id = context_id
        self.message_id = dest.next_message_id()
        self.command = command
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE_CHUNKS)
        self.error: Exception | None = None
        self.task: asyncio.Task[None] | None = None
        # a private transfer syntax cannot be checked: it is relayed as received
        self.scanner = (
            LeadingElements(transfer_syntax, whole=True)
            if is_dicom_transfer_syntax(transfer_syntax)
            else None
        )
        self._held: bytes | None = None

    def write(self, data: memoryview) -> Awaitable[None] | None:
        if self.scanner is not None:
            self.scanner.feed(data)  # a malformed data set raises: the association aborts this sink
        if self.task is None:
            self.task = asyncio.ensure_future(self._send())
        chunk, self._held = self._held, bytes(data)  # one copy: the receive buffer is reused on return
        if chunk is None:
            return None
        try:
            self.queue.put_nowait(chunk)
        except asyncio.QueueFull:
            return self.queue.put(chunk)
        return None

    async def _send(self) -> None:
        command = Command.c_store_rq(
            self.message_id,
            self.command.affected_sop_class_uid or "",
            self.command.affected_sop_instance_uid or "",
        )
        try:
            await self.dest.send(self.context_id, command, self._chunks())
        except Exception as exc:
            self.error = exc
            while await self.queue.get() is not None:  # keep taking chunks: the source must not stall
                pass

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self.queue.get()) is not None:
            yield chunk

    async def finish(self, timeout: float | None) -> int:
        """The destination's status for the instance, once its last bytes are sent."""
        if self.scanner is not None:
            try:
                self.scanner.finish()
            except DatasetParseError:
                await self.abort()
                raise
        if self.task is None:  # an empty data set
            self.task = asyncio.ensure_future(self._send())
        if self._held is not None:
            await self.queue.put(self._held)
            self._held = None
        await self.queue.put(None)
        await self.task
        if self.error is not None:
            raise self.error
        response = await self.dest.receive_response(self.message_id, CommandField.C_STORE_RSP, timeout)
        return response.command.status if response.command.status is not None else 0xC000

    async def abort(self) -> None:
        """The source gave up mid-instance: a half-sent message cannot be withdrawn, so abort it."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.dest.abort()


class _Refused:
    """An instance the destination cannot take: its bytes are read and dropped."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def write(self, data: memoryview) -> None:
        pass

    async def abort(self) -> None:
        pass


class _ConvertingSink:
    """An instance the destination takes only in another syntax: spooled to a temporary file as it arrives
    (checked as it passes), converted losslessly to ``target`` when complete, then sent from the file."""

    def __init__(
        self,
        dest: Association,
        command: Command,
        transfer_syntax: str,
        target: str,
        transcoder: Transcoder,
        spool: Path,
    ) -> None:
        self.dest = dest
        self.spool = spool
        self.command = command
        self.transfer_syntax = transfer_syntax
        self.target = target
        self.transcoder = transcoder
        self.scanner = LeadingElements(transfer_syntax, whole=True)
        fd, name = tempfile.mkstemp(prefix="relay-", suffix=".dcm", dir=self.spool)
        self.paths = [name]
        self.file = os.fdopen(fd, "wb", buffering=1 << 20)
        # the converter reads the syntax from the file meta
        self.file.write(
            build_file_meta(
                sop_class_uid=command.affected_sop_class_uid or "",
                sop_instance_uid=command.affected_sop_instance_uid or "",
                transfer_syntax_uid=transfer_syntax,
                implementation_class_uid=IMPLEMENTATION_CLASS_UID,
                implementation_version_name=IMPLEMENTATION_VERSION_NAME,
                source_ae_title=None,
                sending_ae_title=None,
                receiving_ae_title=None,
            )
        )

    def write(self, data: memoryview) -> None:
        self.scanner.feed(data)  # a malformed data set raises: the association aborts this sink
        self.file.write(data)

    async def finish(self, timeout: float | None) -> int:
        """Convert, send, and return the destination's status."""
        try:
            self.scanner.finish()
            self.file.close()
            fd, converted = tempfile.mkstemp(prefix="relay-", suffix=".dcm", dir=self.spool)
            os.close(fd)
            self.paths.append(converted)
            await self.transcoder.transcode_file(self.paths[0], self.target, converted)
            response = await self.dest.c_store_response(converted, timeout=timeout)
            return response.status if response.status is not None else 0xC000
        finally:
            await self.abort()

    async def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        for path in self.paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.paths.clear()


class Relay:
    """Relays the C-STORE sub-operations received on an association to a :class:`ForwardTarget`.

    :meth:`open` negotiates the destination's contexts (the same SOP class and transfer syntax pairs as
    proposed to the source) before anything is received; :meth:`handle` answers each sub-operation. With
    ``strict=False`` a failed forward is answered Success to the source (the instance was received) and
    reported; with ``strict=True`` it is answered with a failure status.

    An instance whose syntax the destination did not accept is converted losslessly to the best one it did
    (in a pool of ``max_transcode_workers``), unless ``never_transcode=True``.
    """

    def __init__(
        self,
        target: ForwardTarget,
        *,
        strict: bool = False,
        dimse_timeout: float | None = 60.0,
        connect_timeout: float = 30.0,
        never_transcode: bool = False,
        max_transcode_workers: int | None = None,
    ) -> None:
        self.target = target
        self.strict = strict
        self.dimse_timeout = dimse_timeout
        self.connect_timeout = connect_timeout
        self.never_transcode = never_transcode
        self.max_transcode_workers = max_transcode_workers
        self.dest: Association | None = None
        self._pairs: list[tuple[str, str]] = []
        self._transcoder: Transcoder | None = None
        # instances converted on the way spool here: a folder of this process's own (removed at close,
        # or after a crash by the next relay's open)
        self._spool = spool_folder()

    async def open(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Associate with the destination, one context per (SOP class, transfer syntax), with Explicit and
        Implicit VR Little Endian for every SOP class (first, so that an association's 128 contexts leave
        out compressed syntaxes, which convert, before any SOP class)."""
        given = list(dict.fromkeys(pairs))
        classes = dict.fromkeys(sop_class for sop_class, _ in given)
        plain = [(c, ts) for c in classes for ts in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)]
        wanted = list(dict.fromkeys([*plain, *given]))
        if len(wanted) > 128:  # left out: instances that convert, or of classes that fail to forward
            log.warning("%s: %d contexts wanted, an association holds 128", self.target.label, len(wanted))
        self._pairs = wanted[:128]
        await anyio.to_thread.run_sync(self._spool.acquire)
        await self._connect()

    async def _connect(self) -> None:
        self.dest = await open_association(
            self.target.addr,
            calling_ae_title=self.target.calling_ae_title,
            called_ae_title=self.target.called_ae_title,
            contexts=[(sop_class, [ts]) for sop_class, ts in self._pairs],
            max_pdu_length=self.target.max_pdu_length,
            connect_timeout=self.connect_timeout,
            tls=self.target.tls,
        )
        log.info(
            "forwarding to %s: %d of %d contexts accepted",
            self.target.label,
            len(self.dest.accepted),
            len(self._pairs),
        )

    async def close(self) -> None:
        if self._transcoder is not None:
            await self._transcoder.close()
        if self.dest is not None:
            if self.dest.is_open:
                await self.dest.release()
            else:
                self.dest.close()
                await self.dest.wait_closed(5.0)
        self._spool.release()

    def sink_factory(self, assoc: Association) -> Callable[[int, Any], DatasetSink]:
        def open_sink(context_id: int, command: Command) -> DatasetSink:
            if command.command_field != CommandField.C_STORE_RQ:
                return MemorySink()
            dest = self.dest
            if dest is None or not dest.is_open:
                return _Refused(StorageError(f"the association with {self.target.label} is closed"))
            syntax = assoc.accepted[context_id].transfer_syntax
            sop_class = command.affected_sop_class_uid or ""
            try:
                ctx = dest.context_for(sop_class, syntax)
            except NoAcceptableContext as exc:
                return self._converting(dest, command, syntax, exc)
            return _RelaySink(dest, ctx.context_id, command, syntax)

        return open_sink

    def _converting(
        self, dest: Association, command: Command, syntax: str, refused: NoAcceptableContext
    ) -> _ConvertingSink | _Refused:
        """A sink converting to the best syntax the destination accepted for the class (or why not)."""
        sop_class = command.affected_sop_class_uid or ""
        accepted = [c.transfer_syntax for c in dest.accepted.values() if c.abstract_syntax == sop_class]
        target = lossless_fallback(accepted) if accepted and is_dicom_transfer_syntax(syntax) else None
        if target is None:
            return _Refused(NoAcceptableContext(f"{self.target.label}: {refused}"))
        if self.never_transcode:
            why = f"it takes it only in {syntax_label(target)} and never_transcode is set"
            return _Refused(NoAcceptableContext(f"{self.target.label}: {refused}; {why}"))
        if self._transcoder is None:
            self._transcoder = Transcoder(self.max_transcode_workers)
        if not self._spool.held:
            self._spool.acquire()
        return _ConvertingSink(dest, command, syntax, target, self._transcoder, self._spool.path)

    async def handle(self, assoc: Association, message: DimseMessage) -> RelayOutcome:
        """Answer one C-STORE-RQ after relaying it; returns the status sent to the source and how the
        forward went (None when the instance was refused before it could be forwarded)."""
        command = message.command
        sink = message.dataset
        status: int | None = None
        error: Exception | None = message.error
        if isinstance(sink, _Refused):
            error = sink.error
        elif isinstance(sink, _RelaySink | _ConvertingSink) and error is None:
            try:
                status = await sink.finish(self.dimse_timeout)
            except (DicomError, OSError, TimeoutError, DatasetParseError) as exc:
                error = exc
        elif isinstance(sink, _ConvertingSink):  # it came with an error: its spooled copy goes
            await sink.abort()
        elif error is None:
            error = StorageError("no data set received")
        if isinstance(error, DatasetParseError | DimseError):  # not received whole: never Success
            refused = (
                error.status if isinstance(error, DimseError) and error.status else Status.CANNOT_UNDERSTAND
            )
            comment = f"malformed data set: {error}" if isinstance(error, DatasetParseError) else str(error)
            log.warning("refused %s: %s", command.affected_sop_instance_uid, comment)
            if isinstance(sink, _RelaySink | _ConvertingSink):
                await sink.abort()
            # associate with the destination again before answering: the source's next instance comes then
            if self.dest is not None and not self.dest.is_open:
                await self._reconnect()
            await assoc.send(message.context_id, Command.c_store_rsp(command, refused, comment[:64]))
            return RelayOutcome(refused, None)
        sent_in, converted_from = assoc.accepted[message.context_id].transfer_syntax, None
        if isinstance(sink, _ConvertingSink):
            sent_in, converted_from = sink.target, sink.transfer_syntax
        outcome = ForwardOutcome(
            command.affected_sop_instance_uid or "",
            self.target.label,
            status,
            str(error) if error is not None else None,
            sent_in,
            converted_from,
        )
        if outcome.ok:
            answer = status if status is not None else Status.SUCCESS
        else:
            reason = outcome.error or f"answered {status_name(status or 0)} (0x{status or 0:04X})"
            log.error("forwarding %s to %s failed: %s", outcome.sop_instance_uid, self.target.label, reason)
            if self.strict:
                answer = status if status is not None and is_failure(status) else Status.OUT_OF_RESOURCES
            else:
                answer = Status.SUCCESS
        if self.dest is not None and not self.dest.is_open:  # before answering, as above
            await self._reconnect()
        await assoc.send(message.context_id, Command.c_store_rsp(command, answer, None))
        return RelayOutcome(answer, outcome)

    async def _reconnect(self) -> None:
        try:
            await self._connect()
        except DicomError as exc:
            log.error("cannot associate with %s again: %s", self.target.label, exc)
