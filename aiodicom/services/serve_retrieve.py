"""What the acceptor sides of C-GET and C-MOVE share: reading the instances a handler yields, counting the
sub-operations, the pending and final responses, and the skeleton of one retrieve.

Each instance a handler yields (a path, Part 10 bytes, a pydicom Dataset, or a
:class:`~aiodicom.services.serve_common.StoredKey`) is opened by its header only; what goes out is chosen by
the sending engine (:meth:`aiodicom.services.send.SendBatch.outgoing`): the file as it is when the peer took
its transfer syntax, else converted losslessly to one it took (never when ``never_transcode``). Pending
responses (0xFF00) carry the counts (Remaining only when the handler returned a sized collection): one
after the first sub-operation, then one at most every ``pending_interval`` seconds (0.1 by default; 0:
after each); the final one is 0x0000, 0xB000 when some failed or warned, 0xA702 when all failed, 0xFE00
after a C-CANCEL, with the Failed SOP Instance UID List when any failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydicom import Dataset

from aiodicom.dataset.files import read_header, read_small_file, unreadable
from aiodicom.dimse import Command, CommandField, Status, is_failure, is_warning
from aiodicom.errors import AssociationAborted, QueryRejected
from aiodicom.net.address import Address
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.options import AssociationOptions
from aiodicom.services.query import QueryModel
from aiodicom.services.send import (
    PREFETCH_LIMIT,
    Outgoing,
    QueuedFile,
    SendBatch,
    SendSettings,
    _read_s3_headers,
)
from aiodicom.services.serve_common import (
    HandlerStream,
    QueryContext,
    QueryHandler,
    StoredKey,
    check_query,
    dataset_bytes,
    encode_response,
    error_comment,
    query_context,
    read_identifier,
)
from aiodicom.services.transcode import Transcoder

if TYPE_CHECKING:
    from aiodicom.storage.s3 import S3Bucket

log = logging.getLogger("aiodicom.services.serve_retrieve")

#: The longest Failed SOP Instance UID List sent (a UI value in explicit VR has a 16-bit length).
_MAX_FAILED_LIST = 0xFFFE
#: Ten progress reports a second at most, by default.
DEFAULT_PENDING_INTERVAL = 0.1


@dataclass(frozen=True, kw_only=True)
class RetrieveSettings:
    """How a server sends the instances of its C-GETs and C-MOVEs: its association options (C-MOVE
    associations are opened with them), whether an instance may be converted when the peer did not take
    its transfer syntax, the converter shared between retrieves, its S3 bucket (for
    :class:`~aiodicom.services.serve_common.StoredKey` instances), and how often a pending response
    is sent (see :attr:`pending_interval`)."""

    options: AssociationOptions
    never_transcode: bool = False
    transcoder: Transcoder | None = None
    bucket: S3Bucket | None = None
    #: Seconds between two pending responses: one goes out after the first sub-operation, then after
    #: the first to end this long after the last one sent (PS3.4 C.4.2.3 and C.4.3.3 make them optional;
    #: each costs both sides a message per instance). 0: one after every sub-operation.
    pending_interval: float = DEFAULT_PENDING_INTERVAL


class Failed(Exception):
    """A sub-operation that failed before or while sending: why, and the instance when it is known."""

    def __init__(self, message: str, sop_instance_uid: str | None = None) -> None:
        super().__init__(message)
        self.sop_instance_uid = sop_instance_uid


def _name(item: Any) -> str:
    if isinstance(item, StoredKey):
        return item.key
    if isinstance(item, str | os.PathLike):
        return os.fspath(item)
    if isinstance(item, Dataset):
        return f"data set {item.get('SOPInstanceUID', '?')}"
    return "instance in memory"


async def open_item(item: Any, settings: RetrieveSettings) -> QueuedFile:
    """The instance a handler yielded, with its header read (:class:`Failed` when it cannot be read)."""
    name = _name(item)
    if isinstance(item, StoredKey):
        if settings.bucket is None:
            raise Failed(f"{item.key}: this server has no S3 backend to read object keys from")
        queued = QueuedFile(settings.bucket.config.uri(item.key), key=item.key)
        await _read_s3_headers(settings.bucket, [queued])
        if queued.header is None:
            raise Failed(queued.error or f"cannot read {item.key}")
        return queued
    try:
        if isinstance(item, Dataset):
            queued = QueuedFile(name, data=dataset_bytes(item))
        elif isinstance(item, bytes | bytearray | memoryview):
            queued = QueuedFile(name, data=bytes(item))
        elif isinstance(item, str | os.PathLike):
            # a small file is read once, here: its header comes from the bytes that are then sent
            whole = read_small_file(item, PREFETCH_LIMIT)
            path = os.fspath(item)
            queued = QueuedFile(name, data=whole) if whole is not None else QueuedFile(name, path=path)
        else:
            raise Failed(
                f"a retrieve handler yields paths, bytes, Datasets or StoredKeys, not {type(item).__name__}"
            )
        source = queued.path if queued.path is not None else io.BytesIO(queued.data or b"")
        queued.header = read_header(source)
    except Failed:
        raise
    except unreadable(OSError, ValueError, EOFError, AttributeError) as exc:
        raise Failed(f"cannot read {name}: {exc}") from exc
    return queued


@dataclass
class Counts:
    """The sub-operations of one retrieve so far."""

    total: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.completed + self.failed + self.warning

    @property
    def remaining(self) -> int | None:
        return None if self.total is None else max(self.total - self.done, 0)

    def add(self, status: int | None, uid: str | None) -> None:
        """One sub-operation ended with ``status`` (None: it failed before a response)."""
        if status is None or is_failure(status):
            self.failed += 1
            if uid:
                self.failed_uids.append(uid)
        elif is_warning(status):
            self.warning += 1
        else:
            self.completed += 1

    def final_status(self) -> int:
        if not self.failed and not self.warning:
            return Status.SUCCESS
        if not self.completed and not self.warning:
            return Status.OUT_OF_RESOURCES_SUB_OPERATIONS  # 0xA702: every sub-operation failed
        return Status.SUB_OPERATIONS_COMPLETE_WITH_FAILURES  # 0xB000


class Retrieve:
    """One C-GET or C-MOVE being answered: its request, its counts, its responses."""

    def __init__(
        self,
        assoc: Association,
        message: DimseMessage,
        settings: RetrieveSettings,
        logger: logging.Logger,
    ) -> None:
        self.assoc = assoc
        self.message = message
        self.request = message.command
        self.settings = settings
        self.log = logger
        self.counts = Counts()
        self.cancelled = False
        self._last_pending: float | None = None  # when the last pending response went out
        self.syntax = assoc.accepted[message.context_id].transfer_syntax
        self.kind = "C-GET" if self.request.command_field == CommandField.C_GET_RQ else "C-MOVE"
        host, port = assoc.peer
        self.batch = SendBatch(
            SendSettings(
                address=Address(host or "127.0.0.1", port or 104),
                options=settings.options,
                never_transcode=settings.never_transcode,
                transcoder=settings.transcoder,
            ),
            _no_events,
            s3=settings.bucket,
            logger=logger,
        )

    def _response(self, status: int, *, remaining: bool, has_dataset: bool = False) -> Command:
        c = self.counts
        build = Command.c_get_rsp if self.kind == "C-GET" else Command.c_move_rsp
        return build(
            self.request,
            status,
            c.remaining if remaining else None,
            c.completed,
            c.failed,
            c.warning,
            has_dataset,
        )

    def check_cancel(self) -> bool:
        if not self.cancelled and self.assoc.take_cancel(self.request.message_id or 0):
            self.cancelled = True
        return self.cancelled

    async def record(self, status: int | None, uid: str | None, error: str | None = None) -> None:
        """Count one sub-operation and send a pending response when one is due (not once cancelled: the
        final one follows)."""
        self.counts.add(status, uid)
        if error is not None:
            self.log.warning("%s sub-operation failed: %s", self.kind, error)
        if self.check_cancel():
            return
        now = time.monotonic()
        if self._last_pending is not None and now - self._last_pending < self.settings.pending_interval:
            return
        self._last_pending = now
        await self.assoc.send_soon(self.message.context_id, self._response(Status.PENDING, remaining=True))

    async def outgoing(self, assoc: Association, item: QueuedFile) -> Outgoing:
        return await self.batch.outgoing(assoc, item)

    async def final(self, status: int | None = None, comment: str | None = None) -> int:
        """Send the final response: ``status`` when given (a failure of the retrieve itself), else what the
        counts say (0xFE00 after a C-CANCEL)."""
        c = self.counts
        if status is None:
            status = Status.CANCEL if self.cancelled else c.final_status()
        identifier = None
        if c.failed_uids:
            ds = Dataset()
            uids, size = [], 0
            for uid in c.failed_uids:
                size += len(uid) + 1
                if size > _MAX_FAILED_LIST:
                    break
                uids.append(uid)
            ds.FailedSOPInstanceUIDList = uids if len(uids) > 1 else uids[0]
            identifier = encode_response(ds, self.syntax)
        response = self._response(
            status, remaining=status == Status.CANCEL, has_dataset=identifier is not None
        )
        if comment:
            from dataclasses import replace

            response = replace(response, error_comment=error_comment(comment) or None)
        await self.assoc.send(self.message.context_id, response, identifier)
        self.log.info(
            "%s from %s: %d completed, %d warning, %d failed (0x%04X)",
            self.kind,
            self.assoc.calling_ae_title,
            c.completed,
            c.warning,
            c.failed,
            status,
        )
        return status


async def _no_events(name: str, event: object) -> None:
    pass


async def run_retrieve(
    run: Retrieve,
    model: QueryModel,
    ae_title: str,
    call: Callable[[Dataset, QueryContext], HandlerStream],
    body: Callable[[HandlerStream], Awaitable[None]],
    *,
    move_destination: str | None = None,
    check: Callable[[QueryContext], Awaitable[None]] | None = None,
) -> int:
    """The skeleton of one retrieve: read and check the identifier, start the handler's stream, let
    ``body`` do the sub-operations, close the stream whatever happens, send the final response."""
    assoc = run.assoc
    stream: HandlerStream | None = None
    status: int | None = None
    comment: str | None = None
    try:
        try:
            query = read_identifier(run.message, run.syntax)
            level = check_query(model, query, retrieve=True)
            context = query_context(assoc, run.request, model, level, ae_title, move_destination)
            if check is not None:
                await check(context)
            stream = call(query, context)
            await stream.start()
            run.counts.total = stream.total
            await body(stream)
        except QueryRejected as exc:
            status, comment = exc.status, exc.comment or str(exc)
            run.log.info("%s from %s answered 0x%04X: %s", run.kind, assoc.calling_ae_title, status, comment)
        except (asyncio.CancelledError, AssociationAborted):
            raise
        except Exception as exc:
            if not assoc.is_open:
                raise
            status, comment = Status.CANNOT_UNDERSTAND, f"{type(exc).__name__}: {exc}"
            run.log.exception("%s from %s: the handler failed", run.kind, assoc.calling_ae_title)
    finally:
        if stream is not None:
            await stream.aclose()
    if not assoc.is_open:
        raise AssociationAborted(f"the association ended during a {run.kind}")
    return await run.final(status, comment)


def handler_stream(handler: QueryHandler, *args: Any) -> HandlerStream:
    return HandlerStream(handler, *args)


async def opened_ahead(
    stream: AsyncIterable[Any], settings: RetrieveSettings
) -> AsyncGenerator[QueuedFile | Failed, None]:
    """The handler's instances opened (:func:`open_item`; one that cannot be is its :class:`Failed`), one
    ahead: the next is asked of the handler and read while the caller sends the current one and waits for
    its response, not after. An exception of the handler comes out in its turn. Close it
    (``contextlib.aclosing``) before the stream: the read ahead is stopped there."""
    items = aiter(stream)

    async def next_one() -> tuple[QueuedFile | Failed] | None:
        try:
            item = await anext(items)
        except StopAsyncIteration:
            return None
        try:
            return (await open_item(item, settings),)
        except Failed as exc:
            return (exc,)

    task = asyncio.ensure_future(next_one())
    try:
        while True:
            got = await task
            if got is None:
                return
            task = asyncio.ensure_future(next_one())
            yield got[0]
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait({task})  # our own cancellation still comes through
        if not task.cancelled():
            task.exception()  # retrieved: nothing more is sent after a cancel, an abort or a failure


@contextlib.contextmanager
def removing(out: Outgoing) -> Any:
    """Remove the temporary file a conversion wrote, once it was sent."""
    try:
        yield out
    finally:
        if out.temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(out.temporary)


__all__ = [
    "DEFAULT_PENDING_INTERVAL",
    "Counts",
    "Failed",
    "Retrieve",
    "RetrieveSettings",
    "open_item",
    "opened_ahead",
    "run_retrieve",
]
