"""Filesystem storage: a temporary file in ``out_dir``, renamed into place only when complete and accepted.

Writes are plain blocking writes on the event loop (the page cache absorbs them quickly); ``fsync`` of the
file and of its directory, which can take milliseconds to seconds, runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from aiodicom.errors import StorageError

log = logging.getLogger("aiodicom.storage")

_WRITE_BUFFER = 1 << 20
_SPARES = 2


class Duplicates(StrEnum):
    """What to do when an instance with the same path is stored again."""

    REPLACE = "replace"  # atomically, with a warning in the log
    KEEP = "keep"  # keep the first copy, drop the new one (answered success)
    REJECT = "reject"  # keep the first copy, answer a failure


class FileSink:
    """One instance being written to a temporary file; :meth:`commit` renames it to its final path."""

    def __init__(self, storage: FilesystemStorage, fd: int, name: str) -> None:
        self.storage = storage
        self.temp_path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=_WRITE_BUFFER)
        self.size = 0
        self.meta_length = 0  # bytes of file meta written first, when the owner writes one
        self.head = bytearray()  # the first bytes after the meta, kept to parse the leading elements
        self._head_room = 0
        #: Called with :attr:`head` each time it grows, until it returns an awaitable (which pauses the
        #: association's reading until done) or is removed: the owner's early look at the leading elements.
        self.head_watcher: Callable[[bytearray], Awaitable[None] | None] | None = None
        self.state: Any = None  # what the owner learnt from the head (parsed leading elements...)

    def keep_head(self, size: int) -> None:
        """Keep a copy of the next ``size`` bytes written (the start of the data set) in :attr:`head`."""
        self._head_room = size

    def flush(self) -> None:
        """Make everything written so far visible to readers of :attr:`temp_path`."""
        self._file.flush()

    def reopen(self) -> None:
        """Follow a new file that replaced :attr:`temp_path` (after a rewrite), appending to it."""
        self._file.close()
        self._file = open(self.temp_path, "ab", buffering=_WRITE_BUFFER)  # noqa: SIM115

    def write(self, data: bytes | bytearray | memoryview) -> Awaitable[None] | None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise StorageError(f"cannot write {self.temp_path}: {exc.strerror or exc}") from exc
        self.size += len(data)
        if self._head_room:
            piece = data[: self._head_room]
            self.head += piece
            self._head_room -= len(piece)
            if self.head_watcher is not None:
                pending = self.head_watcher(self.head)
                if pending is not None or not self._head_room:
                    self.head_watcher = None
                return pending
        return None

    async def commit(self, relative_path: str | Path) -> Path:
        """Close, sync (when the storage says so) and rename into ``out_dir / relative_path``.

        Returns the final path. Raises :class:`StorageError` (the temporary file is removed) on failure and
        :class:`FileExistsError` when the duplicate policy is ``reject`` and the path exists.
        """
        target = self.storage.out_dir / relative_path
        try:
            self._file.flush()
            if self.storage.fsync:
                await anyio.to_thread.run_sync(os.fsync, self._file.fileno(), limiter=self.storage.limiter)
            self._file.close()
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                policy = self.storage.duplicates
                if policy is not Duplicates.REPLACE:
                    self._discard()
                    if policy is Duplicates.REJECT:
                        raise FileExistsError(f"{target} exists already")
                    log.warning("%s exists already: kept the first copy", target)
                    return target
                log.warning("%s exists already: replaced by the new copy", target)
            os.replace(self.temp_path, target)
            if self.storage.fsync:
                await anyio.to_thread.run_sync(_fsync_dir, target.parent, limiter=self.storage.limiter)
        except OSError as exc:
            self._discard()
            if isinstance(exc, FileExistsError):
                raise
            raise StorageError(f"cannot store {target}: {exc.strerror or exc}") from exc
        return target

    async def abort(self) -> None:
        self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self.temp_path.unlink(missing_ok=True)


class FilesystemStorage:
    """Instances under ``out_dir``; ``fsync=True`` syncs each file and its directory before commit returns."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        fsync: bool = True,
        duplicates: Duplicates | str = Duplicates.REPLACE,
        max_threads: int = 8,
    ) -> None:
        self.out_dir = Path(out_dir).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.duplicates = Duplicates(duplicates.lower() if isinstance(duplicates, str) else duplicates)
        self.limiter = anyio.CapacityLimiter(max_threads)
        # Temporary files created ahead of need by a worker thread: creating a file can block for a
        # while on a busy disk, and the event loop should not wait for it.
        self._spares: collections.deque[tuple[int, str]] = collections.deque()
        self._refilling = False
        self._closed = False
        self.temp_dir = self.out_dir / ".incoming"
        self.temp_dir.mkdir(exist_ok=True)

    def open(self) -> FileSink:
        """A new temporary file in ``out_dir`` for one instance."""
        try:
            fd, name = self._spares.popleft() if self._spares else self._create()
        except OSError as exc:
            raise StorageError(f"cannot create a file in {self.out_dir}: {exc.strerror or exc}") from exc
        if not self._closed:
            self._refill()
        return FileSink(self, fd, name)

    def open_sync(self) -> FileSink:
        """A new temporary file, created by the calling thread (for work already off the event loop)."""
        return FileSink(self, *self._create())

    def _create(self) -> tuple[int, str]:
        return tempfile.mkstemp(dir=self.temp_dir, suffix=".part")

    def _refill(self) -> None:
        if self._refilling or len(self._spares) >= _SPARES:
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

        loop.run_in_executor(None, create)

    def close(self) -> None:
        """Remove the temporary files created ahead of need."""
        self._closed = True
        while self._spares:
            fd, name = self._spares.popleft()
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
