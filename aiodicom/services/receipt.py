"""Transcoding on receipt: a storage backend that converts each instance to one transfer syntax before it is
stored by another backend (the filesystem or S3).

Each instance is spooled to a temporary file as it arrives, given its hook's changes, converted in the
:class:`~aiodicom.services.transcode.Transcoder`'s pool (frame by frame: memory stays a few frames whatever
the instance's size), and only then written to the backend and committed, before the C-STORE response.
A conversion that fails stores nothing and is answered with a failure status, unless
``keep_original_on_failure`` stores the instance as it came (and the stored event says why).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from aiodicom.dataset.codecs import check_target, syntax_label
from aiodicom.dataset.rewrite import spliced
from aiodicom.dimse import Status
from aiodicom.errors import DimseError, StorageError, TranscodeError
from aiodicom.services.transcode import Transcoder
from aiodicom.storage.base import InstanceSink, Storage
from aiodicom.storage.filesystem import FilesystemStorage, write_temporary
from aiodicom.storage.folders import TemporaryFolder, spool_folder

if TYPE_CHECKING:
    from aiodicom.dataset.transcode import Transcoded

__all__ = ["TranscodeOnReceipt", "TranscodingSink", "TranscodingStorage", "converting"]

log = logging.getLogger("aiodicom.store")

_CHUNK = 1 << 20


@dataclass(frozen=True)
class TranscodeOnReceipt:
    """What a receiver converts what it receives to: ``transfer_syntax`` (a UID or a name; a lossy one only
    with ``allow_lossy``, and each instance so converted is stored as a new instance), whether an instance
    that cannot be converted is stored as it came (``keep_original_on_failure``) rather than refused, and how
    many conversions run at once (``max_workers``, default the number of CPUs)."""

    transfer_syntax: str
    allow_lossy: bool = False
    keep_original_on_failure: bool = False
    max_workers: int | None = None

    def __post_init__(self) -> None:
        # an unknown name, a lossy target without allow_lossy, a syntax nothing here encodes: said now
        uid = check_target(self.transfer_syntax, allow_lossy=self.allow_lossy)
        object.__setattr__(self, "transfer_syntax", uid)
        if self.max_workers is not None and self.max_workers < 1:
            raise ValueError("max_transcode_workers must be at least 1")

    @classmethod
    def of(
        cls,
        transfer_syntax: str | None,
        *,
        allow_lossy: bool = False,
        keep_original_on_failure: bool = False,
        max_workers: int | None = None,
    ) -> TranscodeOnReceipt | None:
        """The setting for a receiver's ``transcode_on_receipt`` option (None: store as received)."""
        if not transfer_syntax:
            return None
        return cls(transfer_syntax, allow_lossy, keep_original_on_failure, max_workers)


class TranscodingStorage:
    """``inner`` storing every instance converted to ``setting.transfer_syntax``. Temporary files go to
    ``spool_dir`` (default: a folder of this process's own in the system's temporary folder, removed at
    stop, or at the next start after a crash); put it on the same disk as the storage.

    The received instance always comes with its file meta (the converter reads its syntax there); with
    ``file_meta=False`` the stored instance is written without it.
    """

    streams = False  # the whole instance is needed before it can be converted

    def __init__(
        self,
        inner: Storage,
        setting: TranscodeOnReceipt,
        *,
        file_meta: bool = True,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.inner = inner
        self.setting = setting
        self.file_meta = file_meta
        # without a folder given, a folder of this process's own in the system's temporary folder
        self._folder: TemporaryFolder | None = None
        if spool_dir is None:
            self._folder = spool_folder()
            self.spool_dir = self._folder.path
        else:
            self.spool_dir = Path(spool_dir)
        self.transcoder = Transcoder(setting.max_workers)

    def open(self) -> TranscodingSink:
        try:
            if self._folder is not None and not self._folder.held:
                self._folder.acquire()
            fd, name = tempfile.mkstemp(prefix=".receipt-", suffix=".part", dir=self.spool_dir)
        except OSError as exc:
            raise StorageError(f"cannot create a temporary file: {exc.strerror or exc}") from exc
        return TranscodingSink(self, fd, name)

    async def start(self) -> None:
        # the inner storage first: a filesystem storage's own folder (the spool) is made and locked by it
        await self.inner.start()
        if self._folder is not None:
            await anyio.to_thread.run_sync(self._folder.acquire)
        else:
            self.spool_dir.mkdir(parents=True, exist_ok=True)

    async def stop(self) -> None:
        await self.transcoder.close()
        await self.inner.stop()
        if self._folder is not None:
            self._folder.release()

    def location(self, relative_path: str) -> str:
        return self.inner.location(relative_path)


class TranscodingSink(InstanceSink):
    """One instance: spooled, converted at :meth:`commit`, then handed to the inner backend's sink.

    After a commit, :attr:`converted` says what was stored (None when the original was kept, with
    :attr:`failure` saying why)."""

    def __init__(self, storage: TranscodingStorage, fd: int, name: str) -> None:
        super().__init__()
        self.storage = storage
        self.spool = Path(name)
        self._file = os.fdopen(fd, "w+b", buffering=_CHUNK)
        self._place: tuple[str, bytes | None, int, bool] | None = None
        self._temporary: list[Path] = [self.spool]
        self._inner: InstanceSink | None = None
        self._closed = False
        self.converted: Transcoded | None = None
        self.failure: str | None = None

    def write(self, data: bytes | bytearray | memoryview) -> Awaitable[None] | None:
        if self._closed:
            return None
        write_temporary(self._file, data)
        return None

    async def place(
        self,
        relative_path: str,
        leading: bytes | None = None,
        leading_end: int = 0,
        *,
        deflated: bool = False,
    ) -> None:
        self._place = (relative_path, leading, leading_end, deflated)

    async def commit(self) -> str:
        """Convert, then store through the inner backend. A conversion that fails raises a DimseError with
        a failure status (nothing stored), or stores the original with ``keep_original_on_failure``."""
        if self._place is None:
            raise StorageError("commit() before place()")
        relative_path, leading, leading_end, deflated = self._place
        setting = self.storage.setting
        try:
            self._file.flush()
            if leading is not None:
                await anyio.to_thread.run_sync(self._splice, leading, leading_end, deflated)
            self._file.close()
            converted = self._temporary_file(".converted")
            try:
                self.converted = await self.storage.transcoder.transcode_file(
                    self.spool,
                    setting.transfer_syntax,
                    converted,
                    allow_lossy=setting.allow_lossy,
                    file_meta=self.storage.file_meta,
                )
            except TranscodeError as exc:
                why = f"cannot convert to {syntax_label(setting.transfer_syntax)}: {exc}"
                if not setting.keep_original_on_failure:
                    raise DimseError(why, Status.CANNOT_UNDERSTAND) from exc
                self.failure = why
                log.warning("%s: stored as received", why)
                return await self._store(
                    self.spool, relative_path, skip=0 if self.storage.file_meta else None
                )
            if self.converted.sop_instance_uid != self.converted.original_sop_instance_uid:
                folder = relative_path.rpartition("/")[0]
                relative_path = f"{folder}/{self.converted.sop_instance_uid}.dcm"
            return await self._store(converted, relative_path, skip=0)
        finally:
            await self._cleanup()

    def _temporary_file(self, suffix: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=".receipt-", suffix=suffix, dir=self.storage.spool_dir)
        os.close(fd)
        path = Path(name)
        self._temporary.append(path)
        return path

    def _splice(self, leading: bytes, leading_end: int, deflated: bool) -> None:
        """Give the spooled instance the hook's leading elements (blocking: in a thread)."""
        target = self._temporary_file(".spliced")
        with open(self.spool, "rb") as fp, open(target, "wb") as out:
            for chunk in spliced(fp, self.meta_length, leading, leading_end, deflated=deflated):
                out.write(chunk)
        os.replace(target, self.spool)

    async def _store(self, path: Path, relative_path: str, *, skip: int | None) -> str:
        """Copy ``path`` (from ``skip``, or past the file meta when None) into the inner backend's sink."""
        sink = self._inner = self.storage.inner.open()
        await sink.place(relative_path)
        start = self.meta_length if skip is None else skip
        with open(path, "rb") as fp:
            fp.seek(start)
            while chunk := await anyio.to_thread.run_sync(fp.read, _CHUNK):
                pending = sink.write(chunk)
                if pending is not None:
                    await pending
        location = await sink.commit()
        self._inner = None
        return location

    async def abort(self) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._file.close()
        if self._inner is not None:
            inner, self._inner = self._inner, None
            await inner.abort()
        for path in self._temporary:
            with contextlib.suppress(OSError):
                path.unlink()
        self._temporary.clear()


def converting(storage: Storage, setting: TranscodeOnReceipt | None, *, file_meta: bool = True) -> Storage:
    """``storage`` converting on receipt when ``setting`` says so (spooling next to the files it stores, in
    the filesystem storage's own temporary folder)."""
    if setting is None:
        return storage
    spool = storage.temp_dir if isinstance(storage, FilesystemStorage) else None
    return TranscodingStorage(storage, setting, file_meta=file_meta, spool_dir=spool)
