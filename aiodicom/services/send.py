"""Sending a batch of instances with C-STORE: plans, concurrent associations, per-file outcomes and events.

The engine behind :class:`~aiodicom.scu.store.StoreScu`, which queues the files and hands them over with
its settings. Files are grouped into associations of at most 128 presentation contexts; each file goes out
as it is stored (from disk or S3, PDV by PDV), or converted (:class:`~aiodicom.services.transcode.Transcoder`)
to the syntax forced, or, when the peer accepted none of its own, losslessly to the best one it accepted.
Nothing is silently lost: every file ends as a success, a warning or a failure with its reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import logging
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiodicom.dataset.codecs import lossless_fallback, syntax_label
from aiodicom.dataset.files import InstanceHeader, dicom_bytes, read_header, read_small_file, unreadable
from aiodicom.dataset.tags import uid_name
from aiodicom.dimse import Command, is_success, is_warning, status_name
from aiodicom.errors import (
    AssociationAborted,
    AssociationRejected,
    DicomError,
    DimseError,
    IdentityNotConfirmed,
    NoAcceptableContext,
    PeerUnreachable,
)
from aiodicom.net.address import Address
from aiodicom.net.association import Association
from aiodicom.net.client import open_association
from aiodicom.net.options import AssociationOptions
from aiodicom.services.contexts import Plan, plan_contexts, rejection_reason
from aiodicom.services.send_window import put_back as _put_back, send_windowed
from aiodicom.services.transcode import Transcoder

if TYPE_CHECKING:
    from aiodicom.storage.s3 import S3Bucket

log = logging.getLogger("aiodicom.send")

#: Files up to this size are converted in memory; larger ones through a temporary file.
_CONVERT_IN_MEMORY = 8 << 20
#: The events of a send, in the order they can come.
EVENTS = ("transfer_started", "file_sending", "file_sent", "file_error", "transfer_completed")


# ------------------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class TransferStarted:
    total_files: int

    @property
    def message(self) -> str:
        return f"sending {self.total_files} files"


@dataclass(frozen=True, slots=True)
class FileSending:
    file: str
    sop_instance_uid: str
    sop_class_uid: str

    @property
    def message(self) -> str:
        return f"sending {self.file}"


@dataclass(frozen=True, slots=True)
class FileSent:
    """A file the peer answered with a success or warning status. ``transfer_syntax_uid`` and
    ``sop_instance_uid`` are those of the instance sent; when it was converted, ``file_transfer_syntax`` and
    ``original_sop_instance_uid`` are the file's (the UID differs only after a lossy conversion)."""

    file: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    status: int
    duration_seconds: float
    file_transfer_syntax: str | None = None
    original_sop_instance_uid: str | None = None

    @property
    def converted(self) -> bool:
        """The file was sent in another transfer syntax than its own."""
        return self.file_transfer_syntax not in (None, self.transfer_syntax_uid)

    @property
    def message(self) -> str:
        how = ""
        if self.converted:
            how = f" (converted from {uid_name(self.file_transfer_syntax or '')} to "
            how += f"{uid_name(self.transfer_syntax_uid)}"
            if self.original_sop_instance_uid not in (None, self.sop_instance_uid):
                how += f", a new instance {self.sop_instance_uid}"
            how += ")"
        return f"sent {self.file}{how}: {status_name(self.status)}"


@dataclass(frozen=True, slots=True)
class FileError:
    file: str
    error: str
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    file_transfer_syntax: str | None = None
    status: int | None = None

    @property
    def message(self) -> str:
        return f"failed to send {self.file}: {self.error}"


@dataclass(frozen=True, slots=True)
class TransferCompleted:
    total_files: int
    successful: int
    failed: int
    warnings: int
    duration_seconds: float

    @property
    def message(self) -> str:
        return (
            f"{self.successful} of {self.total_files} files sent ({self.warnings} with warnings), "
            f"{self.failed} failed, in {self.duration_seconds:.2f} s"
        )


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """How one file ended. ``sop_instance_uid`` is the instance the peer got (new after a lossy
    conversion, with the file's own in ``original_sop_instance_uid``); ``transfer_syntax`` is the syntax it
    was sent in."""

    file: str
    sop_instance_uid: str | None
    status: int | None
    error: str | None
    transfer_syntax: str | None = None
    original_sop_instance_uid: str | None = None


@dataclass
class SendResult:
    """``successful`` counts success and warning statuses; ``successful + failed == total_files``."""

    total_files: int = 0
    successful: int = 0
    failed: int = 0
    warnings: list[tuple[str, str | None, int, str]] = field(default_factory=list)
    duration_seconds: float = 0.0
    files: list[FileOutcome] = field(default_factory=list)
    #: With ``StoreScu(commit=True)``: the storage commitment report of what was sent successfully (a
    #: :class:`~aiodicom.services.commitment.CommitResult`), or why there is none in ``commit_error``.
    commit: Any = None
    commit_error: str | None = None


# ------------------------------------------------------------------------------------------- items


@dataclass
class QueuedFile:
    """One instance queued for sending: a file, bytes in memory, or an S3 object (``key``)."""

    name: str
    path: str | None = None
    data: bytes | None = None
    key: str | None = None  # an S3 object
    listed: bool = False  # found under a prefix, not named by the caller
    header: InstanceHeader | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class SendSettings:
    """How a batch is sent: where, how (the association options), how many associations at once, the pause
    between files, a forced transfer syntax (lossy only with ``allow_lossy``), whether a file the peer takes
    in none of its own syntaxes may be converted (not with ``never_transcode``), how many conversions run at
    once, retries of a failed association, and whether the first failed file stops the batch.

    ``retries``: how many times an association is tried again after a transient rejection (A-ASSOCIATE-RJ
    with result 2, e.g. a full server) or a connection error, waiting ``retry_backoff`` seconds, then twice
    as long each time (with jitter, so that many refused senders do not come back at once), at most
    ``RETRY_BUDGET`` seconds of waiting in all. A permanent rejection is never retried."""

    address: Address
    options: AssociationOptions
    concurrency: int = 1
    throttle_delay_ms: int = 0
    transfer_syntax: str | None = None
    allow_lossy: bool = False
    never_transcode: bool = False
    max_transcode_workers: int | None = None
    transcoder: Transcoder | None = None  # the caller's, shared between batches (not closed here)
    retries: int = 3
    retry_backoff: float = 1.0
    fail_first: bool = False


#: The longest a sender waits in all between the attempts to open one association (seconds).
RETRY_BUDGET = 10.0


def retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed: a transient rejection or a connection error, never a
    permanent rejection nor an identity the peer did not confirm."""
    if isinstance(exc, AssociationRejected):
        return exc.result == 2
    if isinstance(exc, IdentityNotConfirmed):
        return False
    return isinstance(exc, PeerUnreachable | AssociationAborted | OSError)


def retry_delays(retries: int, backoff: float, budget: float = RETRY_BUDGET) -> list[float]:
    """The waits before each retry: ``backoff`` doubling, each drawn in its upper half (jitter), cut to
    ``budget`` seconds in all."""
    delays, left = [], budget
    for attempt in range(retries):
        delay = min(backoff * 2**attempt * random.uniform(0.5, 1.0), left)
        delays.append(delay)
        left -= delay
    return delays


#: Files up to this size are read whole while the file before them is being answered.
PREFETCH_LIMIT = 1 << 20


@dataclass
class Outgoing:
    """What goes out for one file: the syntax, the source (a path, bytes, or an S3 stream of the data set),
    its header when known, the UID sent, and the temporary file to remove after."""

    syntax: str
    source: str | bytes | AsyncIterator[bytes]
    header: InstanceHeader | None
    sop_instance_uid: str
    temporary: str | None = None


class SendBatch:
    """One send of queued files: per (SOP class, transfer syntax) plan, ``concurrency`` associations pull
    from one queue; every file ends as a success, a warning or a failure in the result, and its events go
    to ``emit(name, event)`` (``transfer_started``, ``file_sending``, ``file_sent``, ``file_error``,
    ``transfer_completed``). ``connected(assoc)`` is told of each association established."""

    def __init__(
        self,
        settings: SendSettings,
        emit: Callable[[str, object], Awaitable[None]],
        *,
        s3: S3Bucket | None = None,
        connected: Callable[[Association], None] = lambda assoc: None,
        logger: logging.Logger = log,
    ) -> None:
        self.settings = settings
        self.emit = emit
        self.s3 = s3
        self.on_connected = connected
        self.log = logger
        self.result = SendResult()
        self.started = time.perf_counter()
        self.connected = False
        self.first_error: BaseException | None = None
        self._transcoder: Transcoder | None = None

    async def run(self, queued: Sequence[QueuedFile], s3_prefixes: Sequence[str] = ()) -> SendResult:
        """Send ``queued`` (and, with S3, every object under ``s3_prefixes``, listed now)."""
        try:
            if self.s3 is not None:
                await self.s3.open()
                try:
                    items = await _s3_items(self.s3, list(queued), list(s3_prefixes))
                    return await self._go(await _read_s3_headers(self.s3, items))
                finally:
                    await self.s3.close()
            return await self._go(list(queued))
        finally:
            if self._transcoder is not None:
                await self._transcoder.close()

    async def _go(self, items: list[QueuedFile]) -> SendResult:
        self.result.total_files = len(items)
        if self.settings.transfer_syntax:  # every file converts: start the worker processes it may need now
            self.transcoder().warm(self.settings.transfer_syntax)
        await self.emit("transfer_started", TransferStarted(len(items)))
        if self.s3 is None:  # asyncio's threads, not anyio's: only S3 sources need anyio
            await asyncio.to_thread(_read_headers, items)
        ready = []
        for item in items:
            if item.header is None:
                await self.fail(item, item.error or "not a DICOM instance")
            else:
                ready.append(item)
        try:
            for plan in plan_contexts(ready, self.settings.transfer_syntax, self.settings.never_transcode):
                await self.send_plan(plan)
        finally:
            self.result.duration_seconds = time.perf_counter() - self.started
        if (
            ready
            and not self.connected
            and isinstance(self.first_error, PeerUnreachable | AssociationRejected | IdentityNotConfirmed)
        ):
            raise self.first_error
        r = self.result
        await self.emit(
            "transfer_completed",
            TransferCompleted(r.total_files, r.successful, r.failed, len(r.warnings), r.duration_seconds),
        )
        return r

    async def send_plan(self, plan: Plan) -> None:
        contexts, items = plan
        queue: asyncio.Queue[QueuedFile] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        workers = min(self.settings.concurrency, len(items))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(self.worker(contexts, queue))
        while not queue.empty():  # every worker gave up: nothing is silently lost
            await self.fail(queue.get_nowait(), f"no association: {self.first_error}")

    async def connect(self, contexts: list[tuple[str, list[str]]]) -> Association | None:
        settings = self.settings
        delays = retry_delays(settings.retries, settings.retry_backoff)
        for attempt in range(settings.retries + 1):
            try:
                assoc = await open_association(
                    settings.address,
                    contexts=contexts,
                    options=settings.options,
                    require_accepted_context=False,
                )
            except (DicomError, OSError) as exc:
                self.first_error = self.first_error or exc
                if not retryable(exc) or attempt == settings.retries:
                    self.log.warning("association with %s failed: %s", settings.address, exc)
                    return None
                self.log.info(
                    "association with %s failed (%s): trying again in %.1f s",
                    settings.address,
                    exc,
                    delays[attempt],
                )
                await asyncio.sleep(delays[attempt])
                continue
            self.connected = True
            self.on_connected(assoc)
            return assoc
        return None

    async def worker(self, contexts: list[tuple[str, list[str]]], queue: asyncio.Queue[QueuedFile]) -> None:
        assoc: Association | None = None
        # The next files are prepared (converted) while one is sent: a receiver that takes one association
        # at a time would otherwise leave every transcoding worker but one idle.
        ahead: collections.deque[tuple[QueuedFile, asyncio.Task[Outgoing]]] = collections.deque()
        lookahead = 1 + self.transcoder().max_workers  # the pool is made here, started on first use
        others = self.settings.concurrency - 1
        try:
            while ahead or not queue.empty():
                if assoc is None or not assoc.is_open:
                    _put_back(ahead, queue)
                    assoc = await self.connect(contexts)
                    if assoc is None:
                        return
                # ahead only from what the other workers would not take (one file each)
                while len(ahead) < lookahead and queue.qsize() > (others if ahead else 0):
                    item = queue.get_nowait()
                    ahead.append((item, asyncio.ensure_future(self.outgoing(assoc, item))))
                if not ahead:  # the other workers took the rest while this one connected
                    break
                if assoc.max_ops_invoked > 1:  # a window: several files in flight until the queue is empty
                    await send_windowed(self, assoc, queue, ahead, lookahead)
                    continue
                item, prepared = ahead.popleft()
                await self.send_one(assoc, item, prepared)
                if self.settings.throttle_delay_ms and (ahead or not queue.empty()):
                    await asyncio.sleep(self.settings.throttle_delay_ms / 1000)
        finally:
            _put_back(ahead, queue)
            if assoc is not None and assoc.is_open:
                await assoc.release(self.settings.options.acse_timeout)

    async def send_one(
        self, assoc: Association, item: QueuedFile, prepared: Awaitable[Outgoing] | None = None
    ) -> None:
        await self.sending(item)
        began = time.perf_counter()
        timeout = self.settings.options.dimse_timeout
        try:
            out = await (prepared if prepared is not None else self.outgoing(assoc, item))
            try:
                response = await assoc.c_store_response(out.source, header=out.header, timeout=timeout)
            finally:
                if out.temporary is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(out.temporary)
        except TimeoutError:  # the association was aborted: a late response would answer another file
            await self.fail(item, f"no C-STORE response within {timeout:g} s (dimse_timeout)")
            return
        except (DicomError, OSError, ValueError) as exc:
            await self.fail(item, str(exc))
            return
        await self.answered(item, out.syntax, out.sop_instance_uid, response, began)

    async def sending(self, item: QueuedFile) -> None:
        """Tell that ``item`` goes out now (the ``file_sending`` event)."""
        assert item.header is not None
        await self.emit(
            "file_sending", FileSending(item.name, item.header.sop_instance_uid, item.header.sop_class_uid)
        )

    async def answered(
        self, item: QueuedFile, syntax: str, sent_uid: str, response: Command, began: float
    ) -> None:
        """Count the peer's answer to ``item`` (sent in ``syntax`` as ``sent_uid``): sent, or failed."""
        header = item.header
        assert header is not None
        status = response.status if response.status is not None else 0xC000
        comment = (response.error_comment or "").strip()
        described = f"{status_name(status)} (0x{status:04X})" + (f": {comment}" if comment else "")
        if not (is_success(status) or is_warning(status)):
            await self.fail(item, described, status)
            return
        self.result.successful += 1
        if is_warning(status):
            self.result.warnings.append((item.name, sent_uid, status, described))
        self.result.files.append(
            FileOutcome(item.name, sent_uid, status, None, syntax, header.sop_instance_uid)
        )
        elapsed, own = time.perf_counter() - began, (header.transfer_syntax_uid, header.sop_instance_uid)
        event = FileSent(item.name, sent_uid, header.sop_class_uid, syntax, status, elapsed, *own)
        self.log.info("%s", event.message)
        await self.emit("file_sent", event)

    async def outgoing(self, assoc: Association, item: QueuedFile) -> Outgoing:
        """What to send for ``item``: the file as it is when the peer accepted its syntax (and none was
        forced), else the file converted to the syntax forced or to the best lossless one accepted."""
        header = item.header
        assert header is not None
        own = header.transfer_syntax_uid
        accepted = [
            c.transfer_syntax for c in assoc.accepted.values() if c.abstract_syntax == header.sop_class_uid
        ]
        forced = self.settings.transfer_syntax
        if not accepted:
            raise NoAcceptableContext(await rejection_reason(assoc, header.sop_class_uid, forced))

        def what() -> str:  # for an error only: naming UIDs costs more than sending a small file
            offered = ", ".join(syntax_label(ts) for ts in dict.fromkeys(accepted))
            return f"the peer accepted SOP class {uid_name(header.sop_class_uid)} only in {offered}"

        if forced:
            if forced not in accepted:
                raise NoAcceptableContext(f"{what()}, not {syntax_label(forced)} (forced)")
            target = forced
        elif own in accepted:
            target = own
        else:
            fallback = lossless_fallback(accepted)
            if fallback is None:
                raise NoAcceptableContext(
                    f"{what()}; the file is {syntax_label(own)}: none of them can be encoded here"
                )
            if self.settings.never_transcode:
                raise NoAcceptableContext(
                    f"{what()}; the file is {syntax_label(own)} and would need converting to "
                    f"{uid_name(fallback)}: never_transcode is set"
                )
            target = fallback
        if target == own:
            if item.key is not None:
                assert self.s3 is not None
                return Outgoing(
                    own, self.s3.stream(item.key, header.data_offset), header, header.sop_instance_uid
                )
            source = item.path if item.path is not None else item.data
            if item.path is not None:
                # A small file is read here, ahead (this runs while the previous file's response is
                # awaited): the sender's work overlaps the receiver's instead of following it.
                source = read_small_file(item.path, PREFETCH_LIMIT) or item.path
            assert source is not None
            return Outgoing(own, source, header, header.sop_instance_uid)
        return await self.convert(item, target, allow_lossy=self.settings.allow_lossy and target == forced)

    def transcoder(self) -> Transcoder:
        if self.settings.transcoder is not None:
            return self.settings.transcoder
        if self._transcoder is None:
            self._transcoder = Transcoder(self.settings.max_transcode_workers)
        return self._transcoder

    async def convert(self, item: QueuedFile, target: str, *, allow_lossy: bool) -> Outgoing:
        """``item`` converted to ``target``: in memory when it is small, else through a temporary file (an
        S3 object is downloaded to one first), so that a large instance is never held whole in memory."""
        transcoder = self.transcoder()
        downloaded: str | None = None
        try:
            path = item.path
            if item.key is not None:
                assert self.s3 is not None
                downloaded = path = await _download(self.s3, item.key)
            if path is None or os.path.getsize(path) <= _CONVERT_IN_MEMORY:
                source = path if path is not None else item.data
                assert source is not None
                data, done = await transcoder.transcode(source, target, allow_lossy=allow_lossy)
                return Outgoing(target, data, None, done.sop_instance_uid)
            fd, temporary = tempfile.mkstemp(prefix="aiodicom-send-", suffix=".dcm")
            os.close(fd)
            try:
                done = await transcoder.transcode_file(path, target, temporary, allow_lossy=allow_lossy)
                header = await asyncio.to_thread(read_header, temporary)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            return Outgoing(target, temporary, header, done.sop_instance_uid, temporary)
        finally:
            if downloaded is not None:
                with contextlib.suppress(OSError):
                    os.unlink(downloaded)

    async def fail(self, item: QueuedFile, error: str, status: int | None = None) -> None:
        header = item.header
        self.result.failed += 1
        uid = header.sop_instance_uid if header else None
        self.result.files.append(FileOutcome(item.name, uid, status, error))
        event = FileError(
            item.name,
            error,
            uid,
            header.sop_class_uid if header else None,
            header.transfer_syntax_uid if header else None,
            status,
        )
        self.log.warning("%s", event.message)
        await self.emit("file_error", event)
        if self.settings.fail_first:
            raise DimseError(event.message, status)


def _read_headers(items: Iterable[QueuedFile]) -> None:
    for item in items:
        try:
            item.header = read_header(item.path if item.path is not None else io.BytesIO(item.data or b""))
        except unreadable(OSError, ValueError, EOFError) as exc:
            item.error = f"cannot read {item.name}: {exc}"
        except Exception as exc:  # a broken file is a per-file failure, whatever pydicom raises
            item.error = f"cannot read {item.name}: {type(exc).__name__}: {exc}"


async def _s3_items(bucket: S3Bucket, queued: list[QueuedFile], prefixes: list[str]) -> list[QueuedFile]:
    """The queued items, with every object under the queued prefixes (listed now, page by page)."""
    items = list(queued)
    for prefix in prefixes:
        async for key, size in bucket.list_keys(prefix):
            if key.rsplit("/", 1)[-1].upper() == "DICOMDIR" or size < 8:
                continue
            items.append(QueuedFile(bucket.config.uri(key), key=key, listed=True))
    return items


async def _read_s3_headers(bucket: S3Bucket, items: list[QueuedFile], parallel: int = 16) -> list[QueuedFile]:
    """Read each object's header with a ranged GET; objects under a prefix that are not DICOM are dropped
    (as files in a folder are), keys given one by one fail on their own."""
    gate = asyncio.Semaphore(parallel)
    not_dicom: set[int] = set()

    async def one(item: QueuedFile) -> None:
        assert item.key is not None
        async with gate:
            try:
                for size in (64 << 10, 4 << 20):
                    head = await bucket.read_range(item.key, 0, size)
                    if not dicom_bytes(head):
                        item.error = f"{item.name} is not a DICOM instance"
                        not_dicom.add(id(item))
                        return
                    try:
                        item.header = read_header(io.BytesIO(head))
                        return
                    except unreadable(EOFError, ValueError) as exc:
                        if len(head) < size:  # the whole object, and still unreadable
                            item.error = f"cannot read {item.name}: {exc}"
                            return
            except DicomError as exc:
                item.error = str(exc)

    await asyncio.gather(*(one(item) for item in items if item.key is not None))
    for item in items:
        if item.listed and id(item) in not_dicom:
            log.debug("skipping %s: not a DICOM instance", item.name)
    return [item for item in items if not (item.listed and id(item) in not_dicom)]


async def _download(bucket: S3Bucket, key: str) -> str:
    """The object ``key`` in a temporary file (the caller removes it)."""
    import anyio.to_thread  # here, not at the top: only S3 sources need it

    fd, path = tempfile.mkstemp(prefix="aiodicom-s3-", suffix=".dcm")
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in bucket.stream(key):
                await anyio.to_thread.run_sync(out.write, chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path
