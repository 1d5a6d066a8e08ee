"""StoreScp: the C-STORE acceptor, its options, events and hook."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiodicom.dataset import DEFAULT_MAX_INFLATED_SIZE
from aiodicom.dataset.tags import (
    normalize_custom_tags,
    normalize_option,
    resolve_sop_class,
    resolve_transfer_syntax,
    storage_sop_classes,
    validate_keywords,
)
from aiodicom.dimse import CommandField, Status
from aiodicom.net.access import (
    DEFAULT_MAX_ASSOCIATIONS_PER_PEER,
    AllowedHost,
    AssociationHook,
    ConnectionHook,
    IdentityHook,
)
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.options import KEEP, AssociationOptions, Keep, deprecated_positional
from aiodicom.net.tls import TlsContext, TlsFailure
from aiodicom.scp.commitment import CommitmentServices
from aiodicom.scp.mpps import MppsServices
from aiodicom.scp.serving import QueryServices
from aiodicom.services.dispatch import ServiceHandler, serve_messages
from aiodicom.services.echo import handle_echo
from aiodicom.services.events import EventEmitter, instance_logger
from aiodicom.services.receipt import TranscodeOnReceipt, converting
from aiodicom.services.remote import remote_ae_table
from aiodicom.services.store import Hook, StoredInstance, StoreService
from aiodicom.services.studies import StudyTracker
from aiodicom.storage import make_storage
from aiodicom.storage.base import Storage
from aiodicom.storage.filesystem import FilesystemStorage
from aiodicom.uids import (
    UNCOMPRESSED_TRANSFER_SYNTAXES,
    is_dicom_transfer_syntax,
)
from aiodicom.ul.negotiation import ContextPolicy

if TYPE_CHECKING:
    from aiodicom.scp.workers import WorkerPool

log = logging.getLogger("aiodicom.scp")


# ------------------------------------------------------------------------------------------- StoreScp


@dataclass(frozen=True, slots=True)
class ServerStarted:
    host: str
    port: int
    ae_title: str

    @property
    def message(self) -> str:
        return f"listening on {self.host}:{self.port} as {self.ae_title}"


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    peer_host: str
    peer_port: int
    calling_ae_title: str
    called_ae_title: str

    @property
    def message(self) -> str:
        return f"association from {self.calling_ae_title} at {self.peer_host}:{self.peer_port}"


@dataclass(frozen=True, slots=True)
class StoreErrorEvent:
    error: Exception
    message: str
    peer: str
    sop_instance_uid: str | None


#: Positional arguments after ``port`` that StoreScp took before they became keyword-only, in order.
_POSITIONAL = (
    "host",
    "ae_title",
    "out_dir",
    "storage_backend",
    "s3_config",
    "store_with_file_meta",
    "strict",
    "max_pdu_length",
    "extract_tags",
    "extract_custom_tags",
    "study_timeout",
    "abstract_syntax_mode",
    "abstract_syntaxes",
    "transfer_syntax_mode",
    "transfer_syntaxes",
    "verbose",
)
_EVENTS = ("server_started", "connection", "file_stored", "study_completed", "error", "tls_failure")
_ABSTRACT_MODES = ("all_storage", "all", "custom")
_TRANSFER_MODES = ("all", "uncompressed_only", "custom")


class StoreScp(CommitmentServices, MppsServices, QueryServices):
    """A C-STORE SCP that streams every instance to ``{out_dir}/{Study}/{Series}/{SOP}.dcm``.

    Instances are written PDV by PDV to a temporary file and renamed into place only when complete, checked
    and accepted (``fsync=True`` syncs file and directory first). Hooks and event handlers may be plain
    functions or coroutine functions::

        scp = StoreScp(port=11112, out_dir="./received", extract_tags=["PatientName", "Modality"])

        @scp.on_before_store
        async def anonymize(tags: dict[str, str]) -> dict[str, str]:
            return {**tags, "PatientName": "ANONYMOUS"}

        scp.on_study_completed(lambda study: print(study.message))
        async with scp:
            await asyncio.Event().wait()

    ``transcode_on_receipt`` (a transfer syntax UID or name) stores every instance converted to that syntax,
    after the hook and before the commit and the response: the response waits for the conversion (see
    docs/receiving.md for what it costs). A lossy target needs ``allow_lossy=True`` and stores each instance
    under a new SOP Instance UID while the response echoes the received one. An instance that cannot be
    converted is refused with a failure status and nothing is stored, or, with
    ``keep_original_on_transcode_failure=True``, stored as received (the stored event says why).
    ``max_transcode_workers`` bounds the conversions running at once (default: the number of CPUs).

    Who may connect and the limits (``allowed_hosts``, the ``on_connection=`` / ``on_user_identity=`` /
    ``on_association_request=`` hooks, ``require_user_identity``, ``max_associations_per_peer``,
    ``max_pending_per_peer``) are those of :class:`~aiodicom.net.server.DicomServer`
    (docs/access-control.md). The ``on_connection=`` keyword
    screens a connection before anything is read; the :meth:`on_connection` method registers a handler of
    the :class:`ConnectionOpened` event, told of each association once it is accepted.

    ``tls`` (an ``ssl.SSLContext``, e.g. from :func:`aiodicom.net.tls.server_context`) makes every
    connection TLS; ``tls_handshake_timeout`` and ``max_tls_handshakes`` are as for
    :class:`~aiodicom.net.server.DicomServer`.

    ``max_ops_performed`` (default 1) is the asynchronous operations window granted to a sender that
    proposes one (PS3.7 D.3.3.3): how many C-STOREs it may send before the first is answered (0: as many
    as it proposed). They are received as they come (each into its own temporary file) and answered in
    their order of arrival, each once it is stored whole; reading pauses while four wait, so memory stays
    bounded whatever the window.

    ``workers=N`` (N > 1) receives in N processes that share the listening socket and ``out_dir``
    (:mod:`aiodicom.scp.workers`): hooks run in the process that received the instance, events and
    study completion here, and the limits hold for the whole server. What cannot go to another process
    (a hook that is a lambda or defined in the script being run, a TLS context not made by
    :func:`~aiodicom.net.tls.server_context`) is refused by :meth:`start` with a ValueError.

    ``storage_commitment=True`` serves the Storage Commitment Push Model (docs/storage-commitment.md):
    each reference is checked against what was stored and synced (so ``fsync=False`` is refused), and
    the report goes on the N-ACTION's association while it is open, else to the requestor's entry in
    ``remote_aes`` (``{"MODALITY": "10.0.0.7:104"}``, as for QueryRetrieveScp), tried again with backoff
    until answered; its state is kept in ``commitment_dir`` (default ``{out_dir}/.commitments``) and
    survives a restart.
    """

    def __init__(
        self,
        port: int,
        *args: Any,
        host: str | None = "0.0.0.0",
        ae_title: str | Keep = KEEP,
        out_dir: str | os.PathLike[str] | None = None,
        storage_backend: str = "filesystem",
        s3_config: object = None,
        store_with_file_meta: bool = True,
        strict: bool | Keep = KEEP,
        max_pdu_length: int | Keep = KEEP,
        extract_tags: Sequence[str] | None = None,
        extract_custom_tags: Iterable[Any] | None = None,
        study_timeout: float = 30.0,
        abstract_syntax_mode: str = "all_storage",
        abstract_syntaxes: Iterable[str] | None = None,
        transfer_syntax_mode: str = "all",
        transfer_syntaxes: Iterable[str] | None = None,
        verbose: bool = False,
        options: AssociationOptions | None = None,
        fsync: bool = True,
        duplicates: str = "replace",
        allowed_calling_ae_titles: Collection[str] | None = None,
        allowed_hosts: Iterable[AllowedHost] | None = None,
        on_connection: ConnectionHook | None = None,
        on_user_identity: IdentityHook | None = None,
        require_user_identity: bool = False,
        on_association_request: AssociationHook | None = None,
        max_associations_per_peer: int | None = DEFAULT_MAX_ASSOCIATIONS_PER_PEER,
        require_called_ae_title: bool = False,
        max_associations: int = 64,
        max_pending_connections: int | None = None,
        max_pending_per_peer: int | None = None,
        drain_timeout: float = 30.0,
        idle_timeout: float | Keep | None = KEEP,
        artim_timeout: float | Keep = KEEP,
        hook_timeout: float = 30.0,
        coercion_status: int = 0xB000,
        max_inflated_size: int = DEFAULT_MAX_INFLATED_SIZE,
        implementation_class_uid: str | Keep = KEEP,
        implementation_version_name: str | Keep = KEEP,
        tls: TlsContext | Keep | None = KEEP,
        tls_handshake_timeout: float | Keep = KEEP,
        max_tls_handshakes: int = 32,
        max_ops_performed: int | Keep = KEEP,
        transcode_on_receipt: str | None = None,
        allow_lossy: bool = False,
        keep_original_on_transcode_failure: bool = False,
        max_transcode_workers: int | None = None,
        workers: int = 1,
        mpps_dir: str | os.PathLike[str] | None = None,
        mpps_store: Any = None,
        storage_commitment: bool = False,
        remote_aes: Mapping[str, Any] | None = None,
        commitment_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if args:
            given = deprecated_positional("StoreScp", _POSITIONAL, args)
            host = given.get("host", host)
            ae_title = given.get("ae_title", ae_title)
            out_dir = given.get("out_dir", out_dir)
            storage_backend = given.get("storage_backend", storage_backend)
            s3_config = given.get("s3_config", s3_config)
            store_with_file_meta = given.get("store_with_file_meta", store_with_file_meta)
            strict = given.get("strict", strict)
            max_pdu_length = given.get("max_pdu_length", max_pdu_length)
            extract_tags = given.get("extract_tags", extract_tags)
            extract_custom_tags = given.get("extract_custom_tags", extract_custom_tags)
            study_timeout = given.get("study_timeout", study_timeout)
            abstract_syntax_mode = given.get("abstract_syntax_mode", abstract_syntax_mode)
            abstract_syntaxes = given.get("abstract_syntaxes", abstract_syntaxes)
            transfer_syntax_mode = given.get("transfer_syntax_mode", transfer_syntax_mode)
            transfer_syntaxes = given.get("transfer_syntaxes", transfer_syntaxes)
            verbose = given.get("verbose", verbose)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a whole number of at least 1, not {workers!r}")
        if workers > 1 and (mpps_dir is not None or mpps_store is not None):
            raise ValueError("MPPS (mpps_dir, mpps_store) is served in one process: give workers=1")
        if workers > 1 and os.name != "posix":
            raise ValueError("workers > 1 needs a POSIX system (it shares the listening socket)")
        # iterables are read once, here: worker processes are made with the same arguments
        allowed_hosts = None if allowed_hosts is None else list(allowed_hosts)
        extract_custom_tags = None if extract_custom_tags is None else list(extract_custom_tags)
        abstract_syntaxes = None if abstract_syntaxes is None else list(abstract_syntaxes)
        transfer_syntaxes = None if transfer_syntaxes is None else list(transfer_syntaxes)
        arguments = {name: value for name, value in locals().items() if name in _ARGUMENTS}
        # every option is checked before anything is made on disk (out_dir, its temporary files)
        backend = normalize_option(storage_backend, ("filesystem", "s3"), "storage_backend")
        keywords = validate_keywords(extract_tags or ())
        custom = normalize_custom_tags(extract_custom_tags, keywords)
        remote_table = remote_ae_table(remote_aes)
        if storage_commitment and not fsync:
            raise ValueError(
                "storage_commitment=True needs fsync=True: nothing is committed that was not synced "
                "(drop --no-fsync)"
            )
        policy = _policy(abstract_syntax_mode, abstract_syntaxes, transfer_syntax_mode, transfer_syntaxes)
        self.transcode_on_receipt = TranscodeOnReceipt.of(
            transcode_on_receipt,
            allow_lossy=allow_lossy,
            keep_original_on_failure=keep_original_on_transcode_failure,
            max_workers=max_transcode_workers,
        )
        self.log = instance_logger("aiodicom.scp.store", verbose)
        super().__init__(
            self._serve_association,
            port=port,
            host=host,
            options=(options or AssociationOptions(ae_title="STORE-SCP")).replace(
                max_ops_performed=max_ops_performed
            ),
            ae_title=ae_title,
            policy=policy,
            max_pdu_length=max_pdu_length,
            strict=strict,
            idle_timeout=idle_timeout,
            max_associations=max_associations,
            max_pending_connections=max_pending_connections,
            max_pending_per_peer=max_pending_per_peer,
            drain_timeout=drain_timeout,
            artim_timeout=artim_timeout,
            require_called_ae_title=require_called_ae_title,
            allowed_calling_ae_titles=allowed_calling_ae_titles,
            allowed_hosts=allowed_hosts,
            on_connection=on_connection,
            on_user_identity=on_user_identity,
            require_user_identity=require_user_identity,
            on_association_request=on_association_request,
            max_associations_per_peer=max_associations_per_peer,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
            tls=tls,
            tls_handshake_timeout=tls_handshake_timeout,
            max_tls_handshakes=max_tls_handshakes,
            logger=self.log,
        )
        storage = make_storage(backend, out_dir, s3_config, fsync=fsync, duplicates=duplicates)
        #: Where instances go: the resolved ``out_dir``, or None with S3.
        self.out_dir = storage.out_dir if isinstance(storage, FilesystemStorage) else None
        self.storage: Storage = converting(storage, self.transcode_on_receipt, file_meta=store_with_file_meta)
        self._events = EventEmitter(_EVENTS)
        self._hook: Hook | None = None
        self.studies = StudyTracker(study_timeout, lambda study: self._events.emit("study_completed", study))
        self.service = StoreService(
            self.storage,
            ae_title=self.ae_title,
            store_with_file_meta=store_with_file_meta,
            extract_tags=keywords,
            custom_tags=[(c.tag, c.name) for c in custom],
            hook=lambda: self._hook,
            hook_timeout=hook_timeout,
            coercion_status=coercion_status,
            max_inflated_size=max_inflated_size,
            implementation_class_uid=self.implementation_class_uid,
            implementation_version_name=self.implementation_version_name,
        )
        if type(self)._committed is not StoreScp._committed:
            self.service.committed = self._committed
        self._handlers: dict[int, ServiceHandler] = {
            CommandField.C_STORE_RQ: self._store,
            CommandField.C_ECHO_RQ: handle_echo,
        }
        # on_find, on_get, on_move, on_worklist (aiodicom.scp.serving)
        self.init_query_services(remote_aes=remote_table)
        #: The number of processes that receive (1: this one).
        self.workers = workers
        self.init_mpps(mpps_dir, mpps_store, fsync=fsync)  # aiodicom.scp.mpps
        self.init_storage_commitment(storage_commitment, fsync=fsync, commitment_dir=commitment_dir)
        #: What this server was made with, to make the same in worker processes.
        self.arguments: dict[str, Any] = arguments
        self._pool: WorkerPool | None = None

    # ---------------------------------------------------------------------------------- registration

    def on_before_store(self, hook: Hook) -> Hook:
        """Register the hook (also usable as a decorator): ``dict -> dict`` over the extracted tags."""
        if not callable(hook):
            raise TypeError("on_before_store takes a function")
        if self._pool is not None:
            raise RuntimeError("with workers, register on_before_store before start(): it runs in them")
        self._hook = hook
        return hook

    def on_file_stored(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return self._events.on("file_stored", handler)

    def remove_handler(self, event: str, handler: Callable[[Any], Any]) -> None:
        """Unregister a handler: ``event`` is ``file_stored``, ``study_completed``, ``server_started``,
        ``connection``, ``error`` or ``tls_failure``."""
        self._events.off(event, handler)

    def on_study_completed(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return self._events.on("study_completed", handler)

    def on_server_started(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return self._events.on("server_started", handler)

    def on_connection(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return self._events.on("connection", handler)

    def on_error(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return self._events.on("error", handler)

    def on_tls_failure(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Told of each TLS handshake that failed (:class:`~aiodicom.net.tls.TlsFailure`: the peer, the kind
        counted in :attr:`tls_failures`, the cause)."""
        return self._events.on("tls_failure", handler)

    def _tls_failed(self, failure: TlsFailure) -> None:
        self._events.emit("tls_failure", failure)

    def events(self) -> AsyncIterator[object]:
        """Every event (ServerStarted, ConnectionOpened, StoredInstance, StudyCompleted, StoreErrorEvent,
        TlsFailure)."""
        return self._events.stream()

    # ------------------------------------------------------------------------------------- lifecycle

    @property
    def is_serving(self) -> bool:
        return self._pool.serving if self._pool is not None else super().is_serving

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the worker processes running now (none with ``workers=1``)."""
        return self._pool.pids if self._pool is not None else []

    async def start(self) -> None:
        was_serving = self.is_serving
        if self.workers > 1:
            if self._pool is None:
                from aiodicom.scp.workers import WorkerPool

                pool = WorkerPool(self)
                await pool.start()  # each worker started its storage and listens
                self._pool = pool
        else:
            if not was_serving:
                await self.storage.start()  # an unreachable bucket fails here, not at the first instance
            await super().start()
        if not was_serving:
            event = ServerStarted(self.host or "*", self.port, self.ae_title)
            self.log.info(event.message)
            self._events.emit("server_started", event)

    async def stop(self, timeout: float | None = None) -> None:
        """Finish the instances in flight (for at most ``timeout`` seconds, default ``drain_timeout``),
        stop, and flush the studies still pending. With workers, every worker does so."""
        if self._pool is not None:
            await self._pool.stop(self.drain_timeout if timeout is None else timeout)
            self._pool = None
        elif self.workers == 1:
            await super().stop(timeout)
            await self.storage.stop()
        self.studies.flush()
        await self._events.drain()

    async def serve_forever(self) -> None:
        if self.workers == 1:
            return await super().serve_forever()
        await self.start()
        try:
            await asyncio.get_running_loop().create_future()  # the workers serve, until cancelled
        except asyncio.CancelledError:
            await self.stop()
            raise

    async def _serve_association(self, assoc: Association) -> None:
        host, port = assoc.peer
        self._events.emit(
            "connection", ConnectionOpened(host, port, assoc.calling_ae_title, assoc.called_ae_title)
        )
        assoc.sink_factory = self.service.sink_factory(assoc)
        await serve_messages(
            assoc,
            self._handlers,
            idle_timeout=self.idle_timeout,
            unsupported_status=Status.SOP_CLASS_NOT_SUPPORTED,
            host=self,
        )

    async def _committed(self, instance: StoredInstance) -> None:
        """Awaited with each instance stored, before its C-STORE response (a subclass indexes it here:
        :class:`~aiodicom.scp.qr.QueryRetrieveScp`); a subclass that overrides it is called."""

    async def _store(self, assoc: Association, message: DimseMessage) -> None:
        """Answer one C-STORE (the service does), then tell what happened: stored, or why not."""
        outcome = await self.service.handle(assoc, message)
        if outcome.instance is not None:
            instance = outcome.instance
            self.log.info("%s from %s", instance.message, assoc.calling_ae_title)
            self._events.emit("file_stored", instance)
            self.studies.add(instance)
        elif outcome.error is not None:
            host, port = assoc.peer
            uid = message.command.affected_sop_instance_uid
            event = StoreErrorEvent(
                outcome.error, outcome.message or str(outcome.error), f"{host}:{port}", uid
            )
            self._events.emit("error", event)


#: The arguments of StoreScp that its worker processes are made with (all but ``workers``).
_ARGUMENTS = frozenset(inspect.signature(StoreScp.__init__).parameters) - {"self", "args", "workers"}


def _policy(
    abstract_mode: str,
    abstract_syntaxes: Iterable[str] | None,
    transfer_mode: str,
    transfer_syntaxes: Iterable[str] | None,
) -> ContextPolicy:
    abstract_mode = normalize_option(abstract_mode, _ABSTRACT_MODES, "abstract_syntax_mode")
    transfer_mode = normalize_option(transfer_mode, _TRANSFER_MODES, "transfer_syntax_mode")
    if abstract_mode == "custom" and not abstract_syntaxes:
        raise ValueError("abstract_syntax_mode='custom' needs abstract_syntaxes")
    if transfer_mode == "custom" and not transfer_syntaxes:
        raise ValueError("transfer_syntax_mode='custom' needs transfer_syntaxes")
    abstract: frozenset[str] | None = {
        "all_storage": frozenset(storage_sop_classes()),
        "all": None,
        "custom": frozenset(resolve_sop_class(uid) for uid in abstract_syntaxes or ()),
    }[abstract_mode]
    listed = tuple(
        dict.fromkeys(resolve_transfer_syntax(ts, allow_private=True) for ts in transfer_syntaxes or ())
    )
    transfer: tuple[str, ...] | None = {
        "all": None,
        "uncompressed_only": UNCOMPRESSED_TRANSFER_SYNTAXES,
        "custom": listed,
    }[transfer_mode]
    # private transfer syntaxes are accepted only when listed, in any mode
    private = tuple(ts for ts in listed if not is_dicom_transfer_syntax(ts))
    return ContextPolicy(
        abstract_syntaxes=abstract, transfer_syntaxes=transfer, extra_transfer_syntaxes=private
    )
