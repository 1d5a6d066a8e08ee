"""StoreScu: a concurrent, throttled batch sender that streams each file from disk, PDV by PDV."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio.to_thread
import pydicom

from aiodicom.dataset.files import InstanceHeader, dicom_bytes, looks_like_dicom, read_header
from aiodicom.dataset.tags import resolve_transfer_syntax
from aiodicom.dimse import Command, CommandField, is_success, is_warning, status_name
from aiodicom.errors import AssociationRejected, DicomError, DimseError, NoAcceptableContext, PeerUnreachable
from aiodicom.net.address import Address, parse_address, validate_ae_title
from aiodicom.net.association import Association
from aiodicom.net.client import open_association, validate_implementation
from aiodicom.net.identity import IdentityNotConfirmed, UserIdentity, resolve_identity
from aiodicom.scu.base import log_negotiation, uid_name
from aiodicom.services.events import Callback, EventEmitter
from aiodicom.ul.items import PresentationContextResult
from aiodicom.ul.negotiation import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    IMPLICIT_VR_LITTLE_ENDIAN,
    UNCOMPRESSED_TRANSFER_SYNTAXES,
)

if TYPE_CHECKING:
    from aiodicom.storage.s3 import S3Bucket

log = logging.getLogger("aiodicom.scu")

_MAX_CONTEXTS = 128
_EVENTS = ("transfer_started", "file_sending", "file_sent", "file_error", "transfer_completed")


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
    file: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    status: int
    duration_seconds: float

    @property
    def message(self) -> str:
        return f"sent {self.file}: {status_name(self.status)}"


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
    file: str
    sop_instance_uid: str | None
    status: int | None
    error: str | None


@dataclass
class SendResult:
    """``successful`` counts success and warning statuses; ``successful + failed == total_files``."""

    total_files: int = 0
    successful: int = 0
    failed: int = 0
    warnings: list[tuple[str, str | None, int, str]] = field(default_factory=list)
    duration_seconds: float = 0.0
    files: list[FileOutcome] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- items


@dataclass
class _Item:
    name: str
    path: str | None = None
    data: bytes | None = None
    key: str | None = None  # an S3 object
    listed: bool = False  # found under a prefix, not named by the caller
    header: InstanceHeader | None = None
    error: str | None = None


class StoreScu:
    """Send files with C-STORE over ``concurrency`` associations pulling from one queue::

    scu = StoreScu("PACS@10.0.0.5:104", concurrency=4)
    scu.add_folder("./study")
    result = await scu.send(on_file_sent=lambda e: print(e.message))

    ``user_identity`` (a :class:`~aiodicom.net.identity.UserIdentity`), ``implementation_class_uid`` and
    ``implementation_version_name`` are as for every SCU (:class:`~aiodicom.scu.Scu`). The separate
    ``username``, ``password``, ``kerberos_ticket``, ``saml_assertion``, ``jwt`` and
    ``identity_response_requested`` arguments still work but are deprecated.
    """

    def __init__(
        self,
        addr: str | Address,
        calling_ae_title: str = "STORE-SCU",
        called_ae_title: str | None = None,
        max_pdu_length: int = 16384,
        concurrency: int = 1,
        throttle_delay_ms: int = 0,
        transfer_syntax: str | None = None,
        s3_config: object = None,
        verbose: bool = False,
        *,
        max_send_pdu_length: int | None = None,
        connect_timeout: float = 30.0,
        acse_timeout: float = 30.0,
        dimse_timeout: float | None = 60.0,
        fail_first: bool = False,
        never_transcode: bool = True,
        retries: int = 0,
        retry_backoff: float = 1.0,
        user_identity: UserIdentity | None = None,
        implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
        implementation_version_name: str = IMPLEMENTATION_VERSION_NAME,
        username: str | None = None,
        password: str | None = None,
        kerberos_ticket: bytes | None = None,
        saml_assertion: str | None = None,
        jwt: str | None = None,
        identity_response_requested: bool | None = None,
    ) -> None:
        self.s3: S3Bucket | None = None
        if s3_config is not None:
            from aiodicom.storage.s3 import S3Bucket, S3Config

            self.s3 = S3Bucket(S3Config.from_value(s3_config))  # type: ignore[arg-type]
        self._s3_prefixes: list[str] = []
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if throttle_delay_ms < 0:
            raise ValueError("throttle_delay_ms cannot be negative")
        self.address = parse_address(addr)
        self.calling_ae_title = validate_ae_title(calling_ae_title, "calling AE title")
        self.called_ae_title = validate_ae_title(
            called_ae_title or self.address.ae_title or "ANY-SCP", "called AE title"
        )
        self.max_pdu_length = max_pdu_length
        self.max_send_pdu_length = max_send_pdu_length
        self.concurrency = concurrency
        self.throttle_delay_ms = throttle_delay_ms
        self.transfer_syntax = resolve_transfer_syntax(transfer_syntax) if transfer_syntax else None
        self.connect_timeout, self.acse_timeout, self.dimse_timeout = (
            connect_timeout,
            acse_timeout,
            dimse_timeout,
        )
        self.fail_first = fail_first
        self.never_transcode = never_transcode
        self.retries, self.retry_backoff = retries, retry_backoff
        self.user_identity: UserIdentity | None = resolve_identity(
            user_identity,
            username=username,
            password=password,
            kerberos_ticket=kerberos_ticket,
            saml_assertion=saml_assertion,
            jwt=jwt,
            identity_response_requested=identity_response_requested,
        )
        self.implementation_class_uid, self.implementation_version_name = validate_implementation(
            implementation_class_uid, implementation_version_name
        )
        self._items: list[_Item] = []
        self._events = EventEmitter(_EVENTS)
        if verbose:
            logging.getLogger("aiodicom").setLevel(logging.INFO)

    # ---------------------------------------------------------------------------------------- queue

    def add_file(self, path: str | os.PathLike[str]) -> None:
        """Queue one file (with or without a Part 10 header); with ``s3_config``, one object's key."""
        if self.s3 is not None:
            key = str(path)
            self._items.append(_Item(self.s3.config.uri(key), key=key))
            return
        self._items.append(_Item(str(path), path=str(path)))

    def add_folder(self, path: str | os.PathLike[str]) -> int:
        """Queue every DICOM file under ``path``, recursively, whatever its extension; returns how many.

        DICOMDIR and files that are not DICOM by content are skipped. With ``s3_config``, ``path`` is a
        key prefix (``""``: the whole bucket), listed when :meth:`send` runs (this returns 0).
        """
        if self.s3 is not None:
            self._s3_prefixes.append(str(path))
            return 0
        root = Path(path)
        if not root.is_dir():
            raise ValueError(f"{root} is not a folder")
        added = 0
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            if file.name.upper() == "DICOMDIR" or not looks_like_dicom(file):
                log.debug("skipping %s: not a DICOM instance", file)
                continue
            self.add_file(file)
            added += 1
        return added

    add_directory = add_folder

    def add_file_from_memory(self, data: bytes, name: str | None = None) -> None:
        """Queue an instance held in memory (the bytes of a file)."""
        self._items.append(_Item(name or f"memory-{len(self._items) + 1}", data=bytes(data)))

    def clean(self) -> None:
        """Empty the queue (files stay queued after :meth:`send` so that it can be called again)."""
        self._items.clear()
        self._s3_prefixes.clear()

    @property
    def queued(self) -> int:
        """Files waiting to be sent."""
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        """Their total size on disk or in memory."""
        total = 0
        for item in self._items:
            if item.data is not None:
                total += len(item.data)
            elif item.path is not None and os.path.isfile(item.path):
                total += os.path.getsize(item.path)
        return total

    # ------------------------------------------------------------------------------------------ send

    def send_events(self) -> AsyncIterator[object]:
        """The events of the next sends, as a stream (TransferStarted ... TransferCompleted)."""
        return self._events.stream()

    async def send(
        self,
        on_transfer_started: Callable[[TransferStarted], Any] | Callable[[], Any] | None = None,
        on_file_sending: Callable[[FileSending], Any] | Callable[[], Any] | None = None,
        on_file_sent: Callable[[FileSent], Any] | Callable[[], Any] | None = None,
        on_file_error: Callable[[FileError], Any] | Callable[[], Any] | None = None,
        on_transfer_completed: Callable[[TransferCompleted], Any] | Callable[[], Any] | None = None,
    ) -> SendResult:
        """Send every queued file. Raises :class:`PeerUnreachable`, :class:`AssociationRejected` or
        :class:`IdentityNotConfirmed` when no association can be established at all; other failures are
        per file, in the result (a refusal's Error Comment in ``FileError.error``).

        Each callback may be a plain function or a coroutine function, taking the event or nothing
        (``on_file_sent=lambda: ...``). A callback that raises is logged and the batch goes on."""
        given = {
            "transfer_started": on_transfer_started,
            "file_sending": on_file_sending,
            "file_sent": on_file_sent,
            "file_error": on_file_error,
            "transfer_completed": on_transfer_completed,
        }
        callbacks = {name: Callback(fn, f"on_{name}") for name, fn in given.items() if fn is not None}
        run = _Run(self, callbacks)
        return await run.go()


class _Run:
    """One call of :meth:`StoreScu.send`."""

    def __init__(self, scu: StoreScu, callbacks: dict[str, Callback]) -> None:
        self.scu = scu
        self.callbacks = callbacks
        self.result = SendResult()
        self.started = time.perf_counter()
        self.connected = False
        self.first_error: BaseException | None = None

    async def emit(self, name: str, payload: object) -> None:
        """To the event stream, then to the callback: a callback that raises is logged, the batch goes on."""
        self.scu._events.emit(name, payload)
        callback = self.callbacks.get(name)
        if callback is not None:
            await callback.notify(payload)

    async def go(self) -> SendResult:
        if self.scu.s3 is not None:
            await self.scu.s3.open()
            try:
                items = await _s3_items(self.scu.s3, self.scu._items, self.scu._s3_prefixes)
                return await self._go(await _read_s3_headers(self.scu.s3, items))
            finally:
                await self.scu.s3.close()
        return await self._go(list(self.scu._items))

    async def _go(self, items: list[_Item]) -> SendResult:
        self.result.total_files = len(items)
        await self.emit("transfer_started", TransferStarted(len(items)))
        if self.scu.s3 is None:
            await anyio.to_thread.run_sync(_read_headers, items)
        ready = []
        for item in items:
            if item.header is None:
                await self.fail(item, item.error or "not a DICOM instance")
            else:
                ready.append(item)
        try:
            for plan in _plans(ready, self.scu.transfer_syntax):
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

    async def send_plan(self, plan: tuple[list[tuple[str, list[str]]], list[_Item]]) -> None:
        contexts, items = plan
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        workers = min(self.scu.concurrency, len(items))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(self.worker(contexts, queue))
        while not queue.empty():  # every worker gave up: nothing is silently lost
            await self.fail(queue.get_nowait(), f"no association: {self.first_error}")

    async def connect(self, contexts: list[tuple[str, list[str]]]) -> Association | None:
        scu = self.scu
        for attempt in range(scu.retries + 1):
            try:
                assoc = await open_association(
                    scu.address,
                    calling_ae_title=scu.calling_ae_title,
                    called_ae_title=scu.called_ae_title,
                    contexts=contexts,
                    max_pdu_length=scu.max_pdu_length,
                    max_send_pdu_length=scu.max_send_pdu_length,
                    connect_timeout=scu.connect_timeout,
                    acse_timeout=scu.acse_timeout,
                    user_identity=scu.user_identity,
                    implementation_class_uid=scu.implementation_class_uid,
                    implementation_version_name=scu.implementation_version_name,
                    require_accepted_context=False,
                )
            except (DicomError, OSError) as exc:
                self.first_error = self.first_error or exc
                log.warning("association with %s failed: %s", scu.address, exc)
                if isinstance(exc, IdentityNotConfirmed):  # the same credentials will not do better
                    return None
                if attempt < scu.retries:
                    await asyncio.sleep(scu.retry_backoff * 2**attempt)
                continue
            self.connected = True
            log_negotiation(assoc, scu.address, log)
            return assoc
        return None

    async def worker(self, contexts: list[tuple[str, list[str]]], queue: asyncio.Queue[_Item]) -> None:
        assoc: Association | None = None
        try:
            while not queue.empty():
                if assoc is None or not assoc.is_open:
                    assoc = await self.connect(contexts)
                    if assoc is None:
                        return
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:  # the other workers took the rest while this one connected
                    break
                await self.send_one(assoc, item)
                if self.scu.throttle_delay_ms and not queue.empty():
                    await asyncio.sleep(self.scu.throttle_delay_ms / 1000)
        finally:
            if assoc is not None and assoc.is_open:
                await assoc.release(self.scu.acse_timeout)

    async def send_one(self, assoc: Association, item: _Item) -> None:
        header = item.header
        assert header is not None
        await self.emit("file_sending", FileSending(item.name, header.sop_instance_uid, header.sop_class_uid))
        began = time.perf_counter()
        try:
            syntax, payload = await self.payload(assoc, item)
            response = await _c_store(
                assoc,
                payload,
                header if not isinstance(payload, bytes) or payload is item.data else None,
                self.scu.dimse_timeout,
            )
        except (DicomError, OSError, ValueError) as exc:
            await self.fail(item, str(exc))
            return
        status = response.status if response.status is not None else 0xC000
        comment = (response.error_comment or "").strip()
        described = f"{status_name(status)} (0x{status:04X})" + (f": {comment}" if comment else "")
        if is_success(status) or is_warning(status):
            self.result.successful += 1
            if is_warning(status):
                self.result.warnings.append((item.name, header.sop_instance_uid, status, described))
            self.result.files.append(FileOutcome(item.name, header.sop_instance_uid, status, None))
            event = FileSent(
                item.name,
                header.sop_instance_uid,
                header.sop_class_uid,
                syntax,
                status,
                time.perf_counter() - began,
            )
            log.info("%s", event.message)
            await self.emit("file_sent", event)
        else:
            await self.fail(item, described, status)

    async def payload(
        self, assoc: Association, item: _Item
    ) -> tuple[str, str | bytes | AsyncIterator[bytes]]:
        """The transfer syntax to use and what to send: the file as it is, or converted when the peer accepted
        only another uncompressed syntax."""
        header = item.header
        assert header is not None
        wanted = self.scu.transfer_syntax or header.transfer_syntax_uid
        accepted = {
            c.transfer_syntax for c in assoc.accepted.values() if c.abstract_syntax == header.sop_class_uid
        }
        if wanted == header.transfer_syntax_uid and wanted in accepted:
            if item.key is not None:
                assert self.scu.s3 is not None
                return wanted, self.scu.s3.stream(item.key, header.data_offset)
            return wanted, item.path if item.path is not None else item.data  # type: ignore[return-value]
        if not accepted:
            raise NoAcceptableContext(await _rejection(assoc, header.sop_class_uid))
        source: str | bytes = item.path if item.path is not None else item.data  # type: ignore[assignment]
        if item.key is not None:  # converting parses the whole instance: it is downloaded for that
            assert self.scu.s3 is not None
            source = b"".join([chunk async for chunk in self.scu.s3.stream(item.key)])
        forced = self.scu.transfer_syntax
        targets = [forced] if forced else [ts for ts in UNCOMPRESSED_TRANSFER_SYNTAXES if ts in accepted]
        if header.transfer_syntax_uid in UNCOMPRESSED_TRANSFER_SYNTAXES:
            for target in targets:
                if target in UNCOMPRESSED_TRANSFER_SYNTAXES and target in accepted:
                    data = await anyio.to_thread.run_sync(_convert, source, target)
                    return target, data
        if header.transfer_syntax_uid not in UNCOMPRESSED_TRANSFER_SYNTAXES:
            why = "converting compressed data is not supported yet"
        elif forced and forced in accepted:
            why = f"converting to {uid_name(forced)} is not supported yet"
        else:
            why = f"it did not accept {uid_name(forced or wanted)}"
        raise NoAcceptableContext(
            f"the peer accepted SOP class {uid_name(header.sop_class_uid)} only in "
            f"{', '.join(f'{uid_name(ts)} ({ts})' for ts in sorted(accepted))}; the file is "
            f"{uid_name(header.transfer_syntax_uid)} ({header.transfer_syntax_uid}): {why}"
        )

    async def fail(self, item: _Item, error: str, status: int | None = None) -> None:
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
        log.warning("%s", event.message)
        await self.emit("file_error", event)
        if self.scu.fail_first:
            raise DimseError(event.message, status)


def _read_headers(items: Iterable[_Item]) -> None:
    for item in items:
        try:
            item.header = read_header(item.path if item.path is not None else io.BytesIO(item.data or b""))
        except (OSError, ValueError, EOFError, pydicom.errors.InvalidDicomError) as exc:
            item.error = f"cannot read {item.name}: {exc}"
        except Exception as exc:  # a broken file is a per-file failure, whatever pydicom raises
            item.error = f"cannot read {item.name}: {type(exc).__name__}: {exc}"


async def _s3_items(bucket: S3Bucket, queued: list[_Item], prefixes: list[str]) -> list[_Item]:
    """The queued items, with every object under the queued prefixes (listed now, page by page)."""
    items = list(queued)
    for prefix in prefixes:
        async for key, size in bucket.list_keys(prefix):
            if key.rsplit("/", 1)[-1].upper() == "DICOMDIR" or size < 8:
                continue
            items.append(_Item(bucket.config.uri(key), key=key, listed=True))
    return items


async def _read_s3_headers(bucket: S3Bucket, items: list[_Item], parallel: int = 16) -> list[_Item]:
    """Read each object's header with a ranged GET; objects under a prefix that are not DICOM are dropped
    (as files in a folder are), keys given one by one fail on their own."""
    gate = asyncio.Semaphore(parallel)
    not_dicom: set[int] = set()

    async def one(item: _Item) -> None:
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
                    except (EOFError, ValueError, pydicom.errors.InvalidDicomError) as exc:
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


def _plans(items: list[_Item], forced: str | None) -> list[tuple[list[tuple[str, list[str]]], list[_Item]]]:
    """Group files into associations of at most 128 presentation contexts.

    Each (SOP class, transfer syntax) of the batch is a context of its own (acceptors choose by their own
    preference within one context); each SOP class also gets an uncompressed fallback context.
    """
    by_class: dict[str, list[_Item]] = {}
    for item in items:
        assert item.header is not None
        by_class.setdefault(item.header.sop_class_uid, []).append(item)
    plans: list[tuple[list[tuple[str, list[str]]], list[_Item]]] = []
    contexts: list[tuple[str, list[str]]] = []
    members: list[_Item] = []
    for sop_class, group in by_class.items():
        syntaxes = [forced] if forced else list(dict.fromkeys(i.header.transfer_syntax_uid for i in group))  # type: ignore[union-attr]
        wanted = [(sop_class, [ts]) for ts in syntaxes]
        fallback = [ts for ts in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN) if ts not in syntaxes]
        if fallback:
            wanted.append((sop_class, fallback))
        if len(contexts) + len(wanted) > _MAX_CONTEXTS and contexts:
            plans.append((contexts, members))
            contexts, members = [], []
        contexts.extend(wanted)
        members.extend(group)
    if contexts:
        plans.append((contexts, members))
    return plans


def _convert(source: str | bytes, target: str) -> bytes:
    """Re-encode an uncompressed instance in another uncompressed syntax (lossless)."""
    ds = pydicom.dcmread(source if isinstance(source, str) else io.BytesIO(source), force=True)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(target)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


async def _c_store(
    assoc: Association,
    source: str | bytes | AsyncIterator[bytes],
    header: InstanceHeader | None,
    timeout: float | None,
) -> Command:
    """One C-STORE, as :meth:`Association.c_store` sends it, answering with the whole response command
    (its status and the peer's Error Comment)."""
    dataset: bytes | memoryview | BinaryIO | AsyncIterator[bytes]
    file: BinaryIO | None = None
    if isinstance(source, bytes):
        header = header or read_header(io.BytesIO(source))
        dataset = memoryview(source)[header.data_offset :]
    elif isinstance(source, str):
        header = header or read_header(source)
        file = dataset = open(source, "rb")  # noqa: SIM115 (closed below)
        file.seek(header.data_offset)
    else:
        if header is None:
            raise ValueError("a C-STORE of a stream needs the instance's header")
        dataset = source
    try:
        ctx = assoc.context_for(header.sop_class_uid, header.transfer_syntax_uid)
        message_id = assoc.next_message_id()
        command = Command.c_store_rq(message_id, header.sop_class_uid, header.sop_instance_uid)
        await assoc.send(ctx.context_id, command, dataset)
    finally:
        if file is not None:
            file.close()
    try:
        response = await assoc.receive_response(message_id, CommandField.C_STORE_RSP, timeout)
    except TimeoutError:  # a late response would answer the wrong request: this association is done
        assoc.abort()
        raise DimseError(f"no C-STORE response within {timeout:g} s (dimse_timeout)") from None
    return response.command


async def _rejection(assoc: Association, sop_class: str) -> str:
    """Why no context was accepted for ``sop_class``, in the peer's words (PS3.8 Table 9-18)."""
    ac = await assoc.wait_established()
    proposed = {
        pc.context_id for pc in assoc.request.presentation_contexts if pc.abstract_syntax == sop_class
    }
    results = {pc.result for pc in ac.presentation_contexts if pc.context_id in proposed}
    what = f"SOP class {uid_name(sop_class)} ({sop_class})"
    if not proposed:
        return f"{what} was not proposed on this association"
    if results == {PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED}:
        return f"the peer rejected {what}: abstract syntax not supported"
    if results == {PresentationContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED}:
        return f"the peer accepts {what} in none of the transfer syntaxes proposed"
    reasons = ", ".join(PresentationContextResult.NAMES.get(r, str(r)) for r in sorted(results))
    return f"the peer rejected {what} ({reasons or 'no answer for its contexts'})"
