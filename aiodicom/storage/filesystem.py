"""Filesystem storage: a temporary file in ``out_dir``, renamed into place only when complete and accepted.

Writes are plain blocking writes on the event loop (the page cache absorbs them quickly); ``fsync`` of the
file and of its directory, which can take milliseconds to seconds, runs in a worker thread.

Temporary files live in a folder of each storage's own under ``out_dir/.incoming/``, held with an exclusive
``flock`` on its lock file for as long as the storage runs. The kernel releases the lock when its process
dies, however it dies (``kill -9``, a power cut's reboot), so at start a storage removes every folder whose
lock is free: what a dead process left behind. Several processes may share ``out_dir``; a live one's folder is
never touched.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from collections.abc import Awaitable
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from aiodicom.dataset.rewrite import spliced
from aiodicom.errors import StorageError
from aiodicom.storage.base import InstanceSink
from aiodicom.storage.folders import LOCK_NAME, TemporaryFolder

__all__ = ["LOCK_NAME", "Duplicates", "FileSink", "FilesystemStorage"]

log = logging.getLogger("aiodicom.storage")

_WRITE_BUFFER = 1 << 20
#: Received pieces smaller than this are gathered, and written with the next large one (one system call);
#: larger ones are written at once, as they arrive, rather than copied into a buffer and written at the end:
#: the end of an instance is when its sender waits for the answer.
_GATHER = 64 * 1024
#: ... and at most this many pieces (``writev`` takes at most IOV_MAX, 1,024 on Linux; a peer may send
#: PDVs of one byte).
_GATHER_PIECES = 256
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
#: Temporary files are created ahead of need in a worker thread, in batches: refilled to _SPARES when
#: fewer than _SPARES_LOW are left (one thread hop per batch, not one per instance). Creating a file on a
#: disk's filesystem takes long enough to slow a receiver by a third when it is done on the event loop
#: (`benchmarks/receive_warm.py`, small instances on ext4: 522 against 799 files/s); on tmpfs it is the same.
_SPARES = 16
_SPARES_LOW = 4


class Duplicates(StrEnum):
    """What to do when an instance with the same path is stored again."""

    REPLACE = "replace"  # atomically, with a warning in the log
    KEEP = "keep"  # keep the first copy, drop the new one (answered success)
    REJECT = "reject"  # keep the first copy, answer a failure


class FileSink(InstanceSink):
    """One instance being written to a temporary file; :meth:`commit` renames it to its final path."""

    def __init__(self, storage: FilesystemStorage, fd: int, name: str) -> None:
        super().__init__()
        self.storage = storage
        self._temp = name  # strings, not Paths: this runs once per received instance
        self._file = RawFile(fd)
        self._target: str | None = None
        self._leading: tuple[bytes, int, bool] | None = None
        self._closed = False

    @property
    def temp_path(self) -> Path:
        """The temporary file the instance is written to until :meth:`commit`."""
        return Path(self._temp)

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
        self._target = os.path.join(self.storage.root, relative_path)
        self._leading = (leading, leading_end, deflated) if leading is not None else None

    async def commit(self) -> str:
        """Rewrite the leading elements if asked, sync (when the storage says so), rename into place.

        Raises :class:`StorageError` (the temporary file is removed) on failure and :class:`FileExistsError`
        when the duplicate policy is ``reject`` and the path exists.
        """
        target = self._target
        if target is None:
            raise StorageError("commit() before place()")
        try:
            if self._leading is not None or self.storage.fsync:
                # one worker-thread hop for all the blocking steps: each hop costs a GIL handover
                await anyio.to_thread.run_sync(self._finish, target, limiter=self.storage.limiter)
            else:
                self._finish(target)
        except OSError as exc:
            self._discard()
            if isinstance(exc, FileExistsError):
                raise
            raise StorageError(f"cannot store {target}: {exc.strerror or exc}") from exc
        except BaseException:
            self._discard()
            raise
        return target

    def _finish(self, target: str) -> None:
        """Rewrite, sync, and rename into place (with the folder synced): blocking, in a thread when slow."""
        storage = self.storage
        if self._leading is not None:
            self._rewrite(*self._leading)
        self._file.flush()
        if storage.fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        parent = os.path.dirname(target)
        if parent not in storage.directories:
            os.makedirs(parent, exist_ok=True)
            storage.directories.add(parent)
        if os.path.exists(target):
            if storage.duplicates is not Duplicates.REPLACE:
                self._discard()
                if storage.duplicates is Duplicates.REJECT:
                    raise FileExistsError(f"{target} exists already")
                log.warning("%s exists already: kept the first copy", target)
                return
            log.warning("%s exists already: replaced by the new copy", target)
        try:
            os.replace(self._temp, target)
        except FileNotFoundError:  # its folder was removed since: create it again
            os.makedirs(parent, exist_ok=True)
            os.replace(self._temp, target)
        if storage.fsync:
            _fsync_dir(parent)

    def _rewrite(self, leading: bytes, leading_end: int, deflated: bool) -> None:
        """Write the file again with new leading elements; the rest is copied as it is, or for a deflated data
        set inflated and deflated again, a chunk at a time (in a thread)."""
        self._file.flush()
        with open(self._temp, "rb") as fp:
            fd, name = self.storage._create()
            try:
                with os.fdopen(fd, "wb", buffering=_WRITE_BUFFER) as out:
                    for chunk in spliced(fp, self.meta_length, leading, leading_end, deflated=deflated):
                        out.write(chunk)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name)
                raise
        os.replace(name, self._temp)
        self._file.close()
        self._file = RawFile(os.open(self._temp, os.O_WRONLY | os.O_APPEND))

    async def abort(self) -> None:
        self._discard()

    def _discard(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._file.close(write_held=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)


class FilesystemStorage:
    """Instances under ``out_dir``; ``fsync=True`` syncs each file and its directory before commit returns."""

    #: Whether sinks need their place before the data set is complete (to stream it out).
    streams = False

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        fsync: bool = True,
        duplicates: Duplicates | str = Duplicates.REPLACE,
        max_threads: int = 8,
    ) -> None:
        self.out_dir = Path(out_dir).resolve()
        self.root = str(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.duplicates = Duplicates(duplicates.lower() if isinstance(duplicates, str) else duplicates)
        self.limiter = anyio.CapacityLimiter(max_threads)
        # Temporary files created ahead of need by a worker thread: creating a file can block for a
        # while on a busy disk, and the event loop should not wait for it.
        self._spares: collections.deque[tuple[int, str]] = collections.deque()
        self._refilling = False
        self._serial = 0
        self._refill_done: asyncio.Future[None] | None = None
        self._closed = False
        self.directories: set[str] = set()  # known to exist (a study's instances share a few)
        #: Where every storage sharing ``out_dir`` keeps its temporary folder (nothing else goes there).
        self.incoming = self.out_dir / ".incoming"
        self.incoming.mkdir(exist_ok=True)
        self._folder = TemporaryFolder(self.incoming)
        #: This storage's own temporary folder (made and locked by :meth:`start`, or by the first
        #: :meth:`open`; removed by :meth:`stop`).
        self.temp_dir = self._folder.path

    def open(self) -> FileSink:
        """A new temporary file in ``out_dir`` for one instance."""
        try:
            if not self._folder.held:
                self._folder.acquire()
            fd, name = self._spares.popleft() if self._spares else self._create()
        except OSError as exc:
            raise StorageError(f"cannot create a file in {self.out_dir}: {exc.strerror or exc}") from exc
        if not self._closed:
            self._refill()
        return FileSink(self, fd, name)

    def _create(self) -> tuple[int, str]:
        # The folder is this storage's own: a serial number names a file as surely as mkstemp's random
        # name, without its Python work in the worker thread (which holds the GIL the event loop wants)
        while True:
            self._serial += 1
            name = f"{self.temp_dir}/{self._serial}.part"
            try:
                return os.open(name, _CREATE_FLAGS, 0o600), name
            except FileExistsError:
                continue

    def _refill(self) -> None:
        if self._refilling or len(self._spares) >= _SPARES_LOW:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refilling = True

        def create() -> None:
            try:
                while len(self._spares) < _SPARES and not self._closed:
                    self._spares.append(self._create())
                if self._closed:
                    self.close()
            except OSError as exc:
                log.warning("cannot create temporary files in %s: %s", self.out_dir, exc)
            finally:
                self._refilling = False

        self._refill_done = loop.run_in_executor(None, create)

    async def start(self) -> None:
        """Remove what dead processes left in ``.incoming``, then make and lock this storage's folder."""
        self._closed = False
        if not self._folder.held:
            try:
                await anyio.to_thread.run_sync(self._folder.acquire, limiter=self.limiter)
            except OSError as exc:
                raise StorageError(f"cannot use {self.incoming}: {exc.strerror or exc}") from exc

    async def stop(self) -> None:
        """Remove the spare temporary files and this storage's folder, and release its lock."""
        self.close()
        # A refill still running would leave its spare in .incoming until it noticed the close.
        if self._refill_done is not None:
            await asyncio.shield(self._refill_done)
            self.close()
        self._folder.release()

    def location(self, relative_path: str) -> str:
        """Where an instance placed at ``relative_path`` is stored."""
        return str(self.out_dir / relative_path)

    def close(self) -> None:
        """Remove the temporary files created ahead of need."""
        self._closed = True
        while self._spares:
            fd, name = self._spares.popleft()
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RawFile:
    """A file descriptor written without a buffer of its own: small pieces are gathered (copied) and go out
    with the next large piece in one ``writev``; a large piece is written as it is, not copied."""

    __slots__ = ("_fd", "_held", "_held_size")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._held: list[bytes] = []
        self._held_size = 0

    def fileno(self) -> int:
        return self._fd

    def write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size + self._held_size < _GATHER and len(self._held) < _GATHER_PIECES:
            self._held.append(bytes(data))  # the caller's buffer (a receive buffer) is reused
            self._held_size += size
            return size
        if self._held:
            parts: list[bytes | bytearray | memoryview] = [*self._held, data]
            self._held.clear()
            self._held_size = 0
            _write_all(self._fd, parts)
        else:
            _write_all(self._fd, [data])
        return size

    def flush(self) -> None:
        if self._held:
            parts: list[bytes | bytearray | memoryview] = list(self._held)
            self._held.clear()
            self._held_size = 0
            _write_all(self._fd, parts)

    def close(self, *, write_held: bool = True) -> None:
        """Write what is held (unless the file is being thrown away) and close the descriptor."""
        if self._fd < 0:
            return
        try:
            if write_held:
                self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1
            self._held.clear()


def _write_all(fd: int, parts: list[bytes | bytearray | memoryview]) -> None:
    """Write every byte of ``parts`` (a regular file takes it all at once but near a full disk)."""
    written = os.writev(fd, parts) if len(parts) > 1 else os.write(fd, parts[0])
    total = sum(len(part) if not isinstance(part, memoryview) else part.nbytes for part in parts)
    if written < total:
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def write_temporary(file: BinaryIO | RawFile, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to a temporary file; a failure (a full disk) is a StorageError."""
    try:
        file.write(data)
    except OSError as exc:
        raise StorageError(f"cannot write a temporary file: {exc.strerror or exc}") from exc
