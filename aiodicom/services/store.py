"""The C-STORE acceptor: each instance streams into a storage backend's sink, is checked, passes the hook,
is placed at ``{study}/{series}/{sop}.dcm`` (as soon as its leading elements are known), committed and
answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from aiodicom.dataset import (
    DEFAULT_MAX_INFLATED_SIZE,
    DatasetParseError,
    LeadingElements,
    apply_changes,
    build_file_meta,
    encode_leading,
    extract,
    has_group_0002,
    raw_text,
    validate_uid,
)
from aiodicom.dataset.tags import DEFAULT_TAGS, uid_name
from aiodicom.dimse import Command, CommandField, Status, status_name
from aiodicom.dimse.sink import DatasetSink, MemorySink
from aiodicom.errors import (
    DimseError,
    StorageError,
    StoreRejected as StoreRejected,  # also importable from here
)
from aiodicom.net.association import Association, DimseMessage
from aiodicom.services.events import call
from aiodicom.services.receipt import TranscodingSink, TranscodingStorage
from aiodicom.storage.base import InstanceSink, Storage
from aiodicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, is_dicom_transfer_syntax

if TYPE_CHECKING:
    from pydicom import Dataset

log = logging.getLogger("aiodicom.store")

Hook = Callable[[dict[str, str]], Awaitable[Mapping[str, str | None]] | Mapping[str, str | None]]

#: Tags always parsed: they place and check the instance.
_PLACEMENT = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
_ERROR_COMMENT_LIMIT = 64


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """An instance that was stored: where, what, and the tags extracted from it.

    ``transfer_syntax_uid`` and ``sop_instance_uid`` are those stored. When the receiver converts on receipt
    ``received_transfer_syntax`` is the syntax it came in and ``original_sop_instance_uid`` the UID it came
    with (a lossy conversion stores a new instance); ``transcode_error`` says why it was stored as received
    when converting failed and the original was kept."""

    file: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    tags: dict[str, str] = field(default_factory=dict)
    #: Set when the instance is a C-MOVE sub-operation (and the sender filled these optional fields in).
    move_originator_ae_title: str | None = None
    move_originator_message_id: int | None = None
    received_transfer_syntax: str | None = None
    original_sop_instance_uid: str | None = None
    transcode_error: str | None = None

    @property
    def converted(self) -> bool:
        """Stored in another syntax than it came in."""
        return self.received_transfer_syntax not in (None, self.transfer_syntax_uid)

    @property
    def message(self) -> str:
        text = f"stored {self.sop_instance_uid} as {self.file}"
        if self.converted:
            text += f" (converted from {uid_name(self.received_transfer_syntax or '')}"
            if self.original_sop_instance_uid not in (None, self.sop_instance_uid):
                text += f"; received as {self.original_sop_instance_uid}"
            text += ")"
        elif self.transcode_error:
            text += f" as received ({self.transcode_error})"
        return text


@dataclass
class StoreOutcome:
    """How one C-STORE ended: the status answered, its Error Comment, and either the stored instance or
    the error that stopped it (with a sentence saying what happened, for events and logs)."""

    status: int
    comment: str | None = None
    instance: StoredInstance | None = None
    error: Exception | None = None
    message: str | None = None


@dataclass
class _Placement:
    relative_path: str
    rewrite: bool
    coerced: bool
    sop: str
    sop_class: str
    study: str
    series: str
    tags: dict[str, str]
    dataset: Dataset | None = None  # the leading elements to encode again when ``rewrite``


class _Incoming:
    """One C-STORE data set on its way into a backend's sink, scanned as it arrives: its leading elements
    kept, its structure checked (so that nothing is answered Success unless it came whole), and, as soon as
    the leading elements are known, placed early when the hook or a streaming backend wants it."""

    def __init__(
        self, sink: InstanceSink, scanner: LeadingElements, early: Callable[[_Incoming], Task] | None
    ) -> None:
        self.sink = sink
        self.scanner = scanner
        self.placement: asyncio.Future[_Placement | StoreOutcome] | None = None
        self._early = early

    def write(self, data: memoryview) -> Awaitable[None] | None:
        scanner = self.scanner
        was_complete = scanner.complete
        scanner.feed(data)  # a malformed data set raises here: the association drops the rest of it
        pending = self.sink.write(data)
        if not was_complete and scanner.complete and self._early is not None:
            self.placement = task = self._early(self)
            settled = asyncio.ensure_future(_settled(task))
            return settled if pending is None else _both(pending, settled)
        return pending

    async def abort(self) -> None:
        if self.placement is not None and not self.placement.done():
            self.placement.cancel()
            await asyncio.wait([self.placement])
        await self.sink.abort()


Task = asyncio.Future[_Placement | StoreOutcome]


class StoreService:
    """What a StoreScp (and a GetScu's receiver) does with each C-STORE-RQ: :meth:`handle` answers it and
    returns the :class:`StoreOutcome`."""

    def __init__(
        self,
        storage: Storage,
        *,
        ae_title: str,
        store_with_file_meta: bool = True,
        extract_tags: Sequence[str] = (),
        custom_tags: Sequence[tuple[int, str]] = (),
        hook: Callable[[], Hook | None] = lambda: None,
        hook_timeout: float = 30.0,
        coercion_status: int = Status.COERCION_OF_DATA_ELEMENTS,
        max_inflated_size: int = DEFAULT_MAX_INFLATED_SIZE,
        implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
        implementation_version_name: str = IMPLEMENTATION_VERSION_NAME,
    ) -> None:
        self.storage = storage
        self.ae_title = ae_title
        # converting on receipt reads the syntax in the file meta: it is written, and dropped after if asked
        self.store_with_file_meta = store_with_file_meta or isinstance(storage, TranscodingStorage)
        self.extract_tags = tuple(extract_tags)
        self.custom_tags = tuple(custom_tags)
        self.custom_by_name = {name: tag for tag, name in custom_tags}
        self.hook = hook
        self.hook_timeout = hook_timeout
        self.coercion_status = coercion_status
        self.max_inflated_size = max_inflated_size
        self.implementation_class_uid = implementation_class_uid
        self.implementation_version_name = implementation_version_name
        #: Awaited with each instance stored, before its response (a server's index), when set.
        self.committed: Callable[[StoredInstance], Awaitable[None]] | None = None
        self._unchecked_syntaxes: set[str] = set()

    def sink_factory(self, assoc: Association) -> Callable[[int, Command], DatasetSink]:
        """Open a backend sink (with the file meta written first) for each C-STORE data set; memory for
        anything else. A C-STORE whose SOP Instance UID is not a UID is refused before its data set."""

        def open_sink(context_id: int, command: Command) -> DatasetSink:
            if command.command_field != CommandField.C_STORE_RQ:
                return MemorySink()
            try:
                validate_uid(command.affected_sop_instance_uid or "", "Affected SOP Instance UID")
                validate_uid(command.affected_sop_class_uid or "", "Affected SOP Class UID")
            except ValueError as exc:
                raise DimseError(str(exc), Status.CANNOT_UNDERSTAND) from None
            transfer_syntax = assoc.accepted[context_id].transfer_syntax
            whole = is_dicom_transfer_syntax(transfer_syntax)
            if not whole and transfer_syntax not in self._unchecked_syntaxes:
                self._unchecked_syntaxes.add(transfer_syntax)
                log.warning(
                    "transfer syntax %s is private: its data sets are stored as received, unchecked",
                    transfer_syntax,
                )
            scanner = LeadingElements(transfer_syntax, whole=whole, max_inflated_size=self.max_inflated_size)
            meta = b""
            if self.store_with_file_meta:
                meta = build_file_meta(
                    sop_class_uid=command.affected_sop_class_uid or "",
                    sop_instance_uid=command.affected_sop_instance_uid or "",
                    transfer_syntax_uid=transfer_syntax,
                    implementation_class_uid=self.implementation_class_uid,
                    implementation_version_name=self.implementation_version_name,
                    source_ae_title=assoc.peer_ae_title,
                    sending_ae_title=assoc.peer_ae_title,
                    receiving_ae_title=self.ae_title,
                )
            sink = self.storage.open()
            if meta:
                try:
                    sink.write(meta)
                except Exception:
                    _discard_later(sink)
                    raise
                sink.meta_length = len(meta)
            early = None
            if self.hook() is not None or self.storage.streams:
                early = self._early(assoc, command, transfer_syntax)
            return _Incoming(sink, scanner, early)

        return open_sink

    def _early(
        self, assoc: Association, command: Command, transfer_syntax: str
    ) -> Callable[[_Incoming], Task]:
        """Decide the instance's place (checks, hook) as soon as the elements before Pixel Data have
        arrived, so a streaming backend can start; reading from the association pauses meanwhile."""

        def start(incoming: _Incoming) -> Task:
            return asyncio.ensure_future(self._place(assoc, command, incoming, transfer_syntax))

        return start

    def _placement_only(self) -> bool:
        """Whether the four placing UIDs are all that is needed of the leading elements."""
        return self.hook() is None and not self.extract_tags and not self.custom_tags

    async def _run_hook(self, hook: Hook, tags: dict[str, str]) -> Mapping[str, str | None] | StoreOutcome:
        """The hook's answer, or the failure to send: its exceptions never escape."""
        try:
            changes = await asyncio.wait_for(call(hook, dict(tags)), self.hook_timeout)
        except StoreRejected as exc:
            return StoreOutcome(exc.status, str(exc))
        except TimeoutError:
            return StoreOutcome(Status.CANNOT_UNDERSTAND, "on_before_store timed out")
        except Exception as exc:
            return StoreOutcome(Status.CANNOT_UNDERSTAND, f"on_before_store failed: {exc}")
        if not isinstance(changes, Mapping):
            return StoreOutcome(Status.CANNOT_UNDERSTAND, "on_before_store returned no dict")
        return changes

    async def handle(self, assoc: Association, message: DimseMessage) -> StoreOutcome:
        """Answer one C-STORE-RQ (its data set complete in ``message.dataset``); returns how it ended."""
        command = message.command
        incoming = message.dataset
        outcome: StoreOutcome
        if message.error is None and incoming is None:  # the request said no data set follows
            outcome = self._refuse(assoc, command, Status.CANNOT_UNDERSTAND, "C-STORE-RQ without a data set")
        elif message.error is not None or not isinstance(incoming, _Incoming):
            error = message.error or StorageError("no data set received")
            outcome = self._failed(assoc, command, error)
            if incoming is not None:
                await incoming.abort()
        else:
            try:
                outcome = await self._store(assoc, message, incoming)
            except Exception as exc:  # never leave anything half-stored behind, never kill the association
                await incoming.abort()
                outcome = self._failed(assoc, command, exc)
            except BaseException:  # cancelled (a stop's deadline): nothing of it remains either
                await incoming.abort()
                raise
        if self.committed is not None and outcome.instance is not None:
            await self.committed(outcome.instance)  # before the response: what is answered is indexed
        await assoc.send(message.context_id, Command.c_store_rsp(command, outcome.status, outcome.comment))
        return outcome

    def _failed(self, assoc: Association, command: Command, error: BaseException) -> StoreOutcome:
        """The answer to an instance that could not be received or stored, said without local paths."""
        uid = command.affected_sop_instance_uid
        if isinstance(error, DatasetParseError):
            return self._refuse(assoc, command, Status.CANNOT_UNDERSTAND, f"malformed data set: {error}")
        if isinstance(error, DimseError) and error.status is not None:
            return self._refuse(assoc, command, error.status, str(error))
        if isinstance(error, StorageError):
            log.error("storing %s failed: %s", uid, error)
        else:
            log.exception("storing %s failed", uid, exc_info=error)
        error = error if isinstance(error, Exception) else StorageError(str(error))
        return StoreOutcome(
            Status.OUT_OF_RESOURCES, _comment(error), error=error, message=f"storage failed: {error}"
        )

    async def _store(self, assoc: Association, message: DimseMessage, incoming: _Incoming) -> StoreOutcome:
        command = message.command
        transfer_syntax = assoc.accepted[message.context_id].transfer_syntax
        scanner, sink = incoming.scanner, incoming.sink
        try:
            scanner.finish()
        except DatasetParseError as exc:
            await incoming.abort()
            return self._failed(assoc, command, exc)
        if incoming.placement is not None:  # placed while the data set was arriving
            decided = await incoming.placement
        else:
            decided = await self._place(assoc, command, incoming, transfer_syntax)
        if isinstance(decided, StoreOutcome):
            await sink.abort()
            return decided
        try:
            location = await sink.commit()
        except FileExistsError:
            return self._refuse(assoc, command, Status.OUT_OF_RESOURCES, "a copy exists already (kept)")
        p = decided
        stored_uid, stored_syntax = p.sop, transfer_syntax
        received_syntax = original_uid = failure = None
        if isinstance(sink, TranscodingSink):
            received_syntax, original_uid, failure = transfer_syntax, p.sop, sink.failure
            if sink.converted is not None:
                stored_uid, stored_syntax = sink.converted.sop_instance_uid, sink.converted.transfer_syntax
        instance = StoredInstance(
            location,
            stored_uid,
            p.sop_class,
            stored_syntax,
            p.study,
            p.series,
            p.tags,
            command.move_originator_ae_title,
            command.move_originator_message_id,
            received_syntax,
            original_uid,
            failure,
        )
        status = self.coercion_status if p.coerced else Status.SUCCESS
        comment = "values coerced by the receiver" if p.coerced and status else None
        return StoreOutcome(status, comment, instance=instance)

    async def _place(
        self, assoc: Association, command: Command, incoming: _Incoming, transfer_syntax: str
    ) -> _Placement | StoreOutcome:
        """Decide where the instance goes (or why it is refused) and tell the sink."""
        scanner = incoming.scanner
        uids = scanner.placement() if self._placement_only() else None
        ds: Dataset | None = None
        if uids is None:
            try:
                ds = scanner.dataset()
            except DatasetParseError as exc:
                return self._failed(assoc, command, exc)
        decided = await self._decide(assoc, command, ds, uids)
        if isinstance(decided, StoreOutcome):
            return decided
        leading = None
        deflated = scanner.prefix_length is None
        # where the leading elements end: in what was written, or in the inflated data set when deflated
        end = len(scanner.prefix) if deflated else incoming.sink.meta_length + (scanner.prefix_length or 0)
        if decided.rewrite:  # only the elements before Pixel Data are encoded again
            assert decided.dataset is not None
            leading = await anyio.to_thread.run_sync(encode_leading, decided.dataset, transfer_syntax)
        await incoming.sink.place(
            decided.relative_path, leading, end, deflated=deflated and leading is not None
        )
        return decided

    async def _decide(
        self, assoc: Association, command: Command, ds: Dataset | None, uids: Mapping[int, str] | None
    ) -> _Placement | StoreOutcome:
        """Check the leading elements (``ds``, or only the placing ``uids`` when nothing else is wanted)
        against the command, run the hook and merge its changes."""

        def text(tag: int) -> str:
            if uids is not None:
                return uids.get(tag, "")
            assert ds is not None
            return raw_text(ds, tag)

        sop_instance = text(0x00080018)
        sop_class = text(0x00080016)
        if sop_instance != command.affected_sop_instance_uid or sop_class != command.affected_sop_class_uid:
            return self._refuse(
                assoc,
                command,
                Status.DATASET_DOES_NOT_MATCH_SOP_CLASS,
                f"data set has SOP class {sop_class!r} / instance {sop_instance!r}, the command "
                f"{command.affected_sop_class_uid!r} / {command.affected_sop_instance_uid!r}",
            )
        try:
            study = validate_uid(text(0x0020000D), "Study Instance UID")
            series = validate_uid(text(0x0020000E), "Series Instance UID")
            sop = validate_uid(sop_instance, "SOP Instance UID")
        except ValueError as exc:
            return self._refuse(assoc, command, Status.CANNOT_UNDERSTAND, str(exc))
        if ds is None:  # no hook and nothing to extract
            return _Placement(f"{study}/{series}/{sop}.dcm", False, False, sop, sop_class, study, series, {})
        hook = self.hook()
        # a hook with nothing configured to extract sees the default tag set
        keywords = self.extract_tags or (DEFAULT_TAGS if hook is not None else ())
        tags = extract(ds, keywords, self.custom_tags)
        answer = await self._run_hook(hook, tags) if hook is not None else None
        if isinstance(answer, StoreOutcome):
            return self._refuse(assoc, command, answer.status, answer.comment or "refused")
        rewrite = has_group_0002(ds)
        coerced = False
        if answer is not None:
            delta = {k: v for k, v in answer.items() if tags.get(k, _MISSING) != v}
            if delta.get("SOPInstanceUID", sop) != sop or (
                "SOPInstanceUID" in delta and delta["SOPInstanceUID"] is None
            ):
                return self._refuse(
                    assoc,
                    command,
                    Status.CANNOT_UNDERSTAND,
                    "on_before_store may not change the SOP Instance UID",
                )
            try:
                for key in ("StudyInstanceUID", "SeriesInstanceUID"):
                    if key in delta:
                        delta[key] = validate_uid(str(delta[key]), key)
                ds, coerced = apply_changes(ds, tags, delta, custom=self.custom_by_name)
            except ValueError as exc:
                return self._refuse(assoc, command, Status.CANNOT_UNDERSTAND, str(exc))
            if coerced:
                rewrite = True
                study = str(ds.StudyInstanceUID)
                series = str(ds.SeriesInstanceUID)
                tags = extract(ds, keywords, self.custom_tags)
        return _Placement(
            f"{study}/{series}/{sop}.dcm", rewrite, coerced, sop, sop_class, study, series, tags, ds
        )

    def _refuse(self, assoc: Association, command: Command, status: int, reason: str) -> StoreOutcome:
        log.warning(
            "refused %s from %s (%s): %s",
            command.affected_sop_instance_uid,
            assoc.peer_ae_title,
            status_name(status),
            reason,
        )
        return StoreOutcome(status, reason[:_ERROR_COMMENT_LIMIT], error=StorageError(reason), message=reason)


_MISSING = object()


async def _settled(task: asyncio.Future[Any]) -> None:
    await asyncio.wait([task])


_pending: set[asyncio.Task[None]] = set()


def _discard_later(sink: InstanceSink) -> None:
    task = asyncio.ensure_future(sink.abort())
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _both(first: Awaitable[None], second: Awaitable[None]) -> None:
    await first
    await second


def _comment(exc: BaseException) -> str:
    """An Error Comment for a storage failure: the cause in a few words, never a local path."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return f"storage failed: {cause.strerror}"[:_ERROR_COMMENT_LIMIT]
    return "storage failed"
