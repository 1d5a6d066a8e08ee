"""The C-STORE acceptor: each instance streams to a temporary file, is checked, passes the hook, then is
renamed into ``{study}/{series}/{sop}.dcm`` and answered.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydicom import Dataset

from aiodicom.dataset import (
    apply_changes,
    build_file_meta,
    copy_rest,
    encode_leading,
    extract,
    has_group_0002,
    raw_text,
    read_leading,
    read_leading_from,
    validate_uid,
)
from aiodicom.dimse import Command, CommandField, Status, status_name
from aiodicom.errors import DicomError, StorageError
from aiodicom.net.association import Association, DimseMessage
from aiodicom.storage.base import DatasetSink, MemorySink
from aiodicom.storage.filesystem import FileSink, FilesystemStorage
from aiodicom.tags import DEFAULT_TAGS
from aiodicom.ul.negotiation import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

log = logging.getLogger("aiodicom.store")

Hook = Callable[[dict[str, str]], Awaitable[Mapping[str, str | None]] | Mapping[str, str | None]]

#: Tags always parsed: they place and check the instance.
_PLACEMENT = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
_ERROR_COMMENT_LIMIT = 64
#: Bytes of each data set kept in memory to parse its leading elements without reading the file back.
_HEAD_BYTES = 64 * 1024


class StoreRejected(DicomError):
    """Raised by an ``on_before_store`` hook to refuse an instance with a status (default 0x0124)."""

    def __init__(
        self, message: str = "rejected by the receiver", status: int = Status.NOT_AUTHORIZED
    ) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """An instance that was stored: where, what, and the tags extracted from it."""

    file: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return f"stored {self.sop_instance_uid} as {self.file}"


@dataclass
class _Outcome:
    status: int
    comment: str | None = None


class StoreService:
    """What a StoreScp does with each C-STORE-RQ. ``on_stored`` is called for each stored instance."""

    def __init__(
        self,
        storage: FilesystemStorage,
        *,
        ae_title: str,
        store_with_file_meta: bool = True,
        extract_tags: Sequence[str] = (),
        custom_tags: Sequence[tuple[int, str]] = (),
        hook: Callable[[], Hook | None] = lambda: None,
        hook_timeout: float = 30.0,
        coercion_status: int = Status.COERCION_OF_DATA_ELEMENTS,
        on_stored: Callable[[StoredInstance, Association], None] = lambda instance, assoc: None,
        on_failure: Callable[[Exception, str, Association, str | None], None] = lambda *args: None,
    ) -> None:
        self.storage = storage
        self.ae_title = ae_title
        self.store_with_file_meta = store_with_file_meta
        self.extract_tags = tuple(extract_tags)
        self.custom_tags = tuple(custom_tags)
        self.custom_by_name = {name: tag for tag, name in custom_tags}
        self.hook = hook
        self.hook_timeout = hook_timeout
        self.coercion_status = coercion_status
        self.on_stored = on_stored
        self.on_failure = on_failure

    def sink_factory(self, assoc: Association) -> Callable[[int, Command], DatasetSink]:
        """Open a temporary file (with its file meta) for each C-STORE data set; memory for anything else."""

        def open_sink(context_id: int, command: Command) -> DatasetSink:
            if command.command_field != CommandField.C_STORE_RQ:
                return MemorySink()
            sink = self.storage.open()
            if self.store_with_file_meta:
                try:
                    meta = build_file_meta(
                        sop_class_uid=command.affected_sop_class_uid or "",
                        sop_instance_uid=command.affected_sop_instance_uid or "",
                        transfer_syntax_uid=assoc.accepted[context_id].transfer_syntax,
                        implementation_class_uid=IMPLEMENTATION_CLASS_UID,
                        implementation_version_name=IMPLEMENTATION_VERSION_NAME,
                        source_ae_title=assoc.calling_ae_title,
                        sending_ae_title=assoc.calling_ae_title,
                        receiving_ae_title=self.ae_title,
                    )
                    sink.write(meta)
                    sink.meta_length = len(meta)
                except Exception:
                    sink._discard()
                    raise
            sink.keep_head(_HEAD_BYTES)
            if self.hook() is not None:
                sink.head_watcher = self._early_hook(sink, assoc.accepted[context_id].transfer_syntax)
            return sink

        return open_sink

    def _early_hook(
        self, sink: FileSink, transfer_syntax: str
    ) -> Callable[[bytearray], Awaitable[None] | None]:
        """Run the hook as soon as the elements before Pixel Data have arrived; reading pauses meanwhile."""

        def watch(head: bytearray) -> Awaitable[None] | None:
            parsed = read_leading_from(head, None, transfer_syntax)
            hook = self.hook()
            if parsed is None or hook is None:
                return None
            ds, offset = parsed
            keywords = self.extract_tags or DEFAULT_TAGS
            tags = extract(ds, keywords, self.custom_tags)
            task = asyncio.ensure_future(self._run_hook(hook, tags))
            sink.state = (ds, offset, keywords, tags, task)
            return asyncio.ensure_future(_settled(task))

        return watch

    async def _run_hook(self, hook: Hook, tags: dict[str, str]) -> Mapping[str, str | None] | _Outcome:
        """The hook's answer, or the failure to send: its exceptions never escape."""
        try:
            changes = await asyncio.wait_for(_call(hook, dict(tags)), self.hook_timeout)
        except StoreRejected as exc:
            return _Outcome(exc.status, str(exc))
        except TimeoutError:
            return _Outcome(Status.CANNOT_UNDERSTAND, "on_before_store timed out")
        except Exception as exc:
            return _Outcome(Status.CANNOT_UNDERSTAND, f"on_before_store failed: {exc}")
        if not isinstance(changes, Mapping):
            return _Outcome(Status.CANNOT_UNDERSTAND, "on_before_store returned no dict")
        return changes

    async def handle(self, assoc: Association, message: DimseMessage) -> None:
        """Answer one C-STORE-RQ (its data set is complete in ``message.dataset``)."""
        command = message.command
        sink = message.dataset
        outcome: _Outcome
        if message.error is not None or not isinstance(sink, FileSink):
            error = message.error or StorageError("no data set received")
            self.on_failure(error, f"storage failed: {error}", assoc, command.affected_sop_instance_uid)
            outcome = _Outcome(Status.OUT_OF_RESOURCES, _comment(error))
            if sink is not None:
                await sink.abort()
        else:
            try:
                outcome = await self._store(assoc, message, sink)
            except Exception as exc:  # never leave a temporary file behind, never kill the association
                await sink.abort()
                log.exception("storing %s failed", command.affected_sop_instance_uid)
                self.on_failure(exc, f"storage failed: {exc}", assoc, command.affected_sop_instance_uid)
                outcome = _Outcome(Status.OUT_OF_RESOURCES, _comment(exc))
        await assoc.send(message.context_id, Command.c_store_rsp(command, outcome.status, outcome.comment))

    async def _store(self, assoc: Association, message: DimseMessage, sink: FileSink) -> _Outcome:
        command = message.command
        transfer_syntax = assoc.accepted[message.context_id].transfer_syntax
        meta_length = sink.meta_length
        early = sink.state
        if early is not None:  # parsed, and the hook run, while the data set was arriving
            parsed: tuple[Dataset, int] | None = early[0], early[1]
        else:
            parsed = read_leading_from(sink.head, sink.size - meta_length, transfer_syntax)
        if parsed is None:  # the leading elements are longer than the copy kept in memory: read the file
            sink.flush()
            with open(sink.temp_path, "rb") as fp:
                ds, pixel_offset = read_leading(fp, meta_length, transfer_syntax)
        else:
            ds, pixel_offset = parsed[0], meta_length + parsed[1]
        sop_instance = raw_text(ds, 0x00080018)
        sop_class = raw_text(ds, 0x00080016)
        if sop_instance != command.affected_sop_instance_uid or sop_class != command.affected_sop_class_uid:
            await sink.abort()
            return self._refuse(
                assoc,
                command,
                Status.DATASET_DOES_NOT_MATCH_SOP_CLASS,
                f"data set has SOP class {sop_class!r} / instance {sop_instance!r}, the command "
                f"{command.affected_sop_class_uid!r} / {command.affected_sop_instance_uid!r}",
            )
        try:
            study = validate_uid(raw_text(ds, 0x0020000D), "Study Instance UID")
            series = validate_uid(raw_text(ds, 0x0020000E), "Series Instance UID")
            sop = validate_uid(sop_instance, "SOP Instance UID")
        except ValueError as exc:
            await sink.abort()
            return self._refuse(assoc, command, Status.CANNOT_UNDERSTAND, str(exc))
        hook = self.hook()
        answer: Mapping[str, str | None] | _Outcome | None = None
        if early is not None:
            keywords, tags, answer = early[2], early[3], early[4].result()
        else:
            # a hook with nothing configured to extract sees the default tag set
            keywords = self.extract_tags or (DEFAULT_TAGS if hook is not None else ())
            tags = extract(ds, keywords, self.custom_tags)
            if hook is not None:
                answer = await self._run_hook(hook, tags)
        rewrite = has_group_0002(ds)
        coerced = False
        if isinstance(answer, _Outcome):
            await sink.abort()
            return self._refuse(assoc, command, answer.status, answer.comment or "refused")
        if answer is not None:
            changes = answer
            delta = {k: v for k, v in changes.items() if tags.get(k, _MISSING) != v}
            if delta.get("SOPInstanceUID", sop) != sop or (
                "SOPInstanceUID" in delta and delta["SOPInstanceUID"] is None
            ):
                await sink.abort()
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
                await sink.abort()
                return self._refuse(assoc, command, Status.CANNOT_UNDERSTAND, str(exc))
            if coerced:
                rewrite = True
                study = str(ds.StudyInstanceUID)
                series = str(ds.SeriesInstanceUID)
                tags = extract(ds, keywords, self.custom_tags)
        if rewrite:
            await anyio.to_thread.run_sync(
                self._rewrite,
                sink,
                ds,
                meta_length,
                pixel_offset,
                transfer_syntax,
                limiter=self.storage.limiter,
            )
        try:
            path = await sink.commit(Path(study) / series / f"{sop}.dcm")
        except FileExistsError as exc:
            return self._refuse(assoc, command, Status.OUT_OF_RESOURCES, str(exc))
        instance = StoredInstance(str(path), sop, sop_class, transfer_syntax, study, series, tags)
        self.on_stored(instance, assoc)
        status = self.coercion_status if coerced else Status.SUCCESS
        return _Outcome(status, "values coerced by the receiver" if coerced and status else None)

    def _refuse(self, assoc: Association, command: Command, status: int, reason: str) -> _Outcome:
        log.warning(
            "refused %s from %s (%s): %s",
            command.affected_sop_instance_uid,
            assoc.calling_ae_title,
            status_name(status),
            reason,
        )
        self.on_failure(StorageError(reason), reason, assoc, command.affected_sop_instance_uid)
        return _Outcome(status, reason[:_ERROR_COMMENT_LIMIT])

    def _rewrite(
        self, sink: FileSink, ds: Dataset, meta_length: int, pixel_offset: int, transfer_syntax: str
    ) -> None:
        """Write the leading elements again (changed, without stray group 0002); the rest is copied as is."""
        if pixel_offset < 0:
            raise StorageError("changing tags of a deflated data set is not supported")
        sink.flush()
        with open(sink.temp_path, "rb") as fp:
            head = fp.read(meta_length)
            replacement = sink.storage.open_sync()
            try:
                replacement.write(head)
                replacement.meta_length = meta_length
                replacement.write(encode_leading(ds, transfer_syntax))
                copy_rest(fp, pixel_offset, replacement._file)
                replacement._file.close()
            except Exception:
                replacement._discard()
                raise
        os.replace(replacement.temp_path, sink.temp_path)
        sink.reopen()


_MISSING = object()


async def _settled(task: asyncio.Future[Any]) -> None:
    await asyncio.wait([task])


async def _call(hook: Hook, tags: dict[str, str]) -> Any:
    result = hook(tags)
    if inspect.isawaitable(result):
        result = await result
    return result


def _comment(exc: BaseException) -> str:
    return str(exc)[:_ERROR_COMMENT_LIMIT] or type(exc).__name__
