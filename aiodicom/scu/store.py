"""StoreScu: queue files, then send them with C-STORE over concurrent, throttled associations.

The user-facing half: options, the queue (files, folders, memory, S3 objects), callbacks and results. The
sending itself is :class:`aiodicom.services.send.SendBatch`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiodicom.dataset.codecs import lossy_target, syntax_label
from aiodicom.dataset.files import looks_like_dicom
from aiodicom.dataset.tags import resolve_transfer_syntax
from aiodicom.net.address import Address
from aiodicom.net.association import Association
from aiodicom.net.identity import UserIdentity, resolve_identity
from aiodicom.net.options import KEEP, AssociationOptions, Keep, Option, deprecated_positional
from aiodicom.net.tls import TlsContext
from aiodicom.scu.base import Scu, log_negotiation
from aiodicom.services.events import Callback, EventEmitter
from aiodicom.services.send import (
    EVENTS,
    FileError,
    FileOutcome,
    FileSending,
    FileSent,
    QueuedFile,
    SendBatch,
    SendResult,
    SendSettings,
    TransferCompleted,
    TransferStarted,
)
from aiodicom.services.transcode import Transcoder

if TYPE_CHECKING:
    from aiodicom.storage.s3 import S3Bucket

__all__ = [
    "FileError",
    "FileOutcome",
    "FileSending",
    "FileSent",
    "SendResult",
    "StoreScu",
    "TransferCompleted",
    "TransferStarted",
]

log = logging.getLogger("aiodicom.scu.store")

#: Positional arguments after ``addr`` that StoreScu took before they became keyword-only, in order.
_POSITIONAL = (
    "calling_ae_title",
    "called_ae_title",
    "max_pdu_length",
    "concurrency",
    "throttle_delay_ms",
    "transfer_syntax",
    "s3_config",
    "verbose",
)


class StoreScu(Scu):
    """Send files with C-STORE over ``concurrency`` associations pulling from one queue::

        scu = StoreScu("PACS@10.0.0.5:104", concurrency=4)
        scu.add_folder("./study")
        result = await scu.send(on_file_sent=lambda e: print(e.message))

    ``options`` and the association keywords (``calling_ae_title`` default ``STORE-SCU``,
    ``called_ae_title``, ``max_pdu_length``, timeouts, ``user_identity``, implementation) are as for every
    SCU (:class:`~aiodicom.scu.base.Scu`); ``max_send_pdu_length`` caps the PDUs we send. The separate
    ``username``, ``password``, ``kerberos_ticket``, ``saml_assertion``, ``jwt`` and
    ``identity_response_requested`` arguments, and positional arguments after ``addr``, still work but are
    deprecated.

    Transfer syntaxes: each file is proposed in its own syntax plus Explicit and Implicit VR Little Endian,
    and sent as it is when the peer accepts its syntax; when the peer accepts none of the file's own, it is
    converted losslessly to the best syntax accepted (decompressed for a peer that takes only uncompressed
    data), unless ``never_transcode=True`` makes that file a failure. ``transfer_syntax`` (a UID or a name)
    forces one syntax: every file is converted to it and only it is proposed; a lossy one (JPEG Baseline,
    JPEG 2000, ...) needs ``allow_lossy=True``, and each file so converted becomes a new instance (new SOP
    Instance UID, Lossy Image Compression attributes, Image Type DERIVED). Conversions run in a pool of
    ``max_transcode_workers`` (default: the number of CPUs) and need the ``aiodicom[codecs]`` extra for
    compressed syntaxes. Each :meth:`send` starts its own pool and shuts it down at the end; a sender that
    sends again and again (a web backend, a forwarding service) passes ``transcoder=`` a
    :class:`~aiodicom.services.transcode.Transcoder` of its own instead, whose worker processes then start
    once and stay (it closes it itself).

    An association that cannot be opened because the peer is busy (a transient A-ASSOCIATE-RJ, such as a
    full server's (2, 3, 2)) or because the connection failed is tried again ``retries`` times (default 3),
    after ``retry_backoff`` seconds, doubling, with jitter, at most 10 s of waiting in all; a permanent
    rejection is never retried. ``retries=0`` gives up at once.

    ``max_ops_invoked`` (1-65535; default None: not proposed) proposes an asynchronous operations window
    (PS3.7 D.3.3.3): up to that many C-STOREs unanswered on one association, each response matched to its
    file by Message ID. The window used is what the peer grants, at most this; a peer that grants none (or
    1) gets one file at a time, as without. ``concurrency`` still sets the number of associations and
    ``throttle_delay_ms`` the pause before each C-STORE. When an association ends with files unanswered,
    each of them fails (the peer may or may not have stored it) and the rest go on a new association.

    ``commit=True`` asks the peer, once the files are sent, to commit every instance it answered with
    success or a warning (Storage Commitment Push Model:
    :class:`~aiodicom.scu.commitment.StorageCommitmentScu`, with ``commit_receive`` and
    ``commit_timeout`` as its ``receive`` and ``timeout``): the report is the result's ``commit``
    (``commit_error`` says why there is none: refused, no report in time).
    """

    default_calling_ae_title = "STORE-SCU"
    kind = "store"
    max_send_pdu_length: Option[int | None] = Option("max_send_pdu_length")
    max_ops_invoked: Option[int | None] = Option("max_ops_invoked")

    def __init__(
        self,
        addr: str | Address,
        *args: Any,
        options: AssociationOptions | None = None,
        calling_ae_title: str | Keep = KEEP,
        called_ae_title: str | Keep | None = KEEP,
        max_pdu_length: int | Keep = KEEP,
        concurrency: int = 1,
        throttle_delay_ms: int = 0,
        transfer_syntax: str | None = None,
        s3_config: object = None,
        verbose: bool = False,
        max_send_pdu_length: int | Keep | None = KEEP,
        max_ops_invoked: int | Keep | None = KEEP,
        connect_timeout: float | Keep = KEEP,
        acse_timeout: float | Keep = KEEP,
        dimse_timeout: float | Keep | None = KEEP,
        fail_first: bool = False,
        never_transcode: bool = False,
        allow_lossy: bool = False,
        max_transcode_workers: int | None = None,
        transcoder: Transcoder | None = None,
        retries: int = 3,
        retry_backoff: float = 1.0,
        user_identity: UserIdentity | Keep | None = KEEP,
        implementation_class_uid: str | Keep = KEEP,
        implementation_version_name: str | Keep = KEEP,
        tls: TlsContext | Keep | None = KEEP,
        username: str | None = None,
        password: str | None = None,
        kerberos_ticket: bytes | None = None,
        saml_assertion: str | None = None,
        jwt: str | None = None,
        identity_response_requested: bool | None = None,
        commit: bool = False,
        commit_receive: Any = None,
        commit_timeout: float = 60.0,
    ) -> None:
        if args:
            given = deprecated_positional("StoreScu", _POSITIONAL, args)
            calling_ae_title = given.get("calling_ae_title", calling_ae_title)
            called_ae_title = given.get("called_ae_title", called_ae_title)
            max_pdu_length = given.get("max_pdu_length", max_pdu_length)
            concurrency = given.get("concurrency", concurrency)
            throttle_delay_ms = given.get("throttle_delay_ms", throttle_delay_ms)
            transfer_syntax = given.get("transfer_syntax", transfer_syntax)
            s3_config = given.get("s3_config", s3_config)
            verbose = given.get("verbose", verbose)
        if any(v is not None for v in (username, password, kerberos_ticket, saml_assertion, jwt)) or (
            identity_response_requested is not None
        ):
            user_identity = resolve_identity(
                None if isinstance(user_identity, Keep) else user_identity,
                username=username,
                password=password,
                kerberos_ticket=kerberos_ticket,
                saml_assertion=saml_assertion,
                jwt=jwt,
                identity_response_requested=identity_response_requested,
            )
        super().__init__(
            addr,
            options=options,
            calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title,
            max_pdu_length=max_pdu_length,
            connect_timeout=connect_timeout,
            acse_timeout=acse_timeout,
            dimse_timeout=dimse_timeout,
            verbose=verbose,
            user_identity=user_identity,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
            tls=tls,
        )
        self.options = self.options.replace(
            max_send_pdu_length=max_send_pdu_length, max_ops_invoked=max_ops_invoked
        )
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if throttle_delay_ms < 0:
            raise ValueError("throttle_delay_ms cannot be negative")
        if retries < 0 or retry_backoff < 0:
            raise ValueError("retries and retry_backoff cannot be negative")
        self.s3: S3Bucket | None = None
        if s3_config is not None:
            from aiodicom.storage.s3 import S3Bucket, S3Config

            self.s3 = S3Bucket(S3Config.from_value(s3_config))  # type: ignore[arg-type]
        self.concurrency = concurrency
        self.throttle_delay_ms = throttle_delay_ms
        self.transfer_syntax = resolve_transfer_syntax(transfer_syntax) if transfer_syntax else None
        if self.transfer_syntax and lossy_target(self.transfer_syntax) and not allow_lossy:
            raise ValueError(
                f"{syntax_label(self.transfer_syntax)} is lossy: forcing it needs allow_lossy=True "
                "(--allow-lossy), and each file converted becomes a new instance"
            )
        if max_transcode_workers is not None and max_transcode_workers < 1:
            raise ValueError("max_transcode_workers must be at least 1")
        if transcoder is not None and max_transcode_workers not in (None, transcoder.max_workers):
            raise ValueError("max_transcode_workers is the transcoder's own max_workers: give one of them")
        self.fail_first = fail_first
        self.never_transcode = never_transcode
        self.allow_lossy = allow_lossy
        self.max_transcode_workers = max_transcode_workers
        self.transcoder = transcoder
        self.retries, self.retry_backoff = retries, retry_backoff
        self._items: list[QueuedFile] = []
        self._s3_prefixes: list[str] = []
        self._events = EventEmitter(EVENTS)
        if commit_timeout <= 0:
            raise ValueError("commit_timeout must be positive")
        self.commit, self.commit_receive, self.commit_timeout = commit, commit_receive, commit_timeout

    # ---------------------------------------------------------------------------------------- queue

    def add_file(self, path: str | os.PathLike[str]) -> None:
        """Queue one file (with or without a Part 10 header); with ``s3_config``, one object's key."""
        if self.s3 is not None:
            key = str(path)
            self._items.append(QueuedFile(self.s3.config.uri(key), key=key))
            return
        self._items.append(QueuedFile(str(path), path=str(path)))

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
                self.log.debug("skipping %s: not a DICOM instance", file)
                continue
            self.add_file(file)
            added += 1
        return added

    add_directory = add_folder

    def add_file_from_memory(self, data: bytes, name: str | None = None) -> None:
        """Queue an instance held in memory (the bytes of a file)."""
        self._items.append(QueuedFile(name or f"memory-{len(self._items) + 1}", data=bytes(data)))

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

    def events(self) -> AsyncIterator[object]:
        """The events of the next sends, as a stream (TransferStarted ... TransferCompleted), as every
        aiodicom class streams its events."""
        return self._events.stream()

    def send_events(self) -> AsyncIterator[object]:
        """Deprecated spelling of :meth:`events`."""
        warnings.warn("StoreScu.send_events() is now events()", DeprecationWarning, stacklevel=2)
        return self.events()

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

        sent: list[tuple[str, str]] = []

        async def emit(name: str, payload: object) -> None:
            # to the event stream, then to the callback: one that raises is logged, the batch goes on
            if isinstance(payload, FileSent):
                sent.append((payload.sop_class_uid, payload.sop_instance_uid))
            self._events.emit(name, payload)
            callback = callbacks.get(name)
            if callback is not None:
                await callback.notify(payload)

        settings = SendSettings(
            address=self.address,
            options=self.options,
            concurrency=self.concurrency,
            throttle_delay_ms=self.throttle_delay_ms,
            transfer_syntax=self.transfer_syntax,
            allow_lossy=self.allow_lossy,
            never_transcode=self.never_transcode,
            max_transcode_workers=self.max_transcode_workers,
            transcoder=self.transcoder,
            retries=self.retries,
            retry_backoff=self.retry_backoff,
            fail_first=self.fail_first,
        )
        batch = SendBatch(settings, emit, s3=self.s3, connected=self._connected, logger=self.log)
        result = await batch.run(self._items, self._s3_prefixes)
        if self.commit and sent:
            await self._request_commitment(result, sent)
        return result

    async def _request_commitment(self, result: SendResult, sent: list[tuple[str, str]]) -> None:
        from aiodicom.errors import DicomError
        from aiodicom.scu.commitment import StorageCommitmentScu

        scu = StorageCommitmentScu(
            self.address, options=self.options, receive=self.commit_receive, timeout=self.commit_timeout
        )
        scu.log = self.log
        try:
            result.commit = await scu.commit(sent)
        except (DicomError, TimeoutError, OSError) as exc:
            result.commit_error = str(exc)
            self.log.error("storage commitment of %d instances failed: %s", len(sent), exc)

    def _connected(self, assoc: Association) -> None:
        log_negotiation(assoc, self.address, self.log)
