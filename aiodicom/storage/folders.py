"""Temporary folders of a process's own, held with ``flock``, that outlive no process.

Each user (a filesystem storage, a relay's or a converter's spool) makes a folder of its own under a
shared parent (``out_dir/.incoming``, or one in the system's temporary folder) and holds an exclusive
``flock`` on the folder's lock file while it runs. The kernel releases the lock when its process dies,
however it dies (``kill -9``, an out-of-memory kill), so whoever acquires a folder there first removes
every folder whose lock is free: what dead processes left. A live process's folder, in this process or
another, is never touched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from aiodicom.errors import StorageError

log = logging.getLogger("aiodicom.storage")

#: The lock file in each temporary folder (it stays empty: the folder's name says whose it is).
LOCK_NAME = "lock"
#: A folder without a lock file is being made (mkdir, then the lock): it is left alone for this long.
_UNLOCKED_GRACE = 60.0
_ACQUIRE_ATTEMPTS = 50


class TemporaryFolder:
    """``parent/{pid}-{random}``: made and locked by :meth:`acquire` (which first sweeps ``parent``),
    removed by :meth:`release`. Everything directly in ``parent`` belongs to these folders: loose files
    there (older versions of aiodicom wrote their temporary files directly into ``.incoming``) are removed
    too."""

    def __init__(self, parent: str | os.PathLike[str]) -> None:
        self.parent = Path(parent)
        self.path = self.parent / f"{os.getpid()}-{secrets.token_hex(6)}"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Sweep ``parent``, then make this folder and hold its lock (blocking: a thread when it matters)."""
        if self._fd is not None:
            return
        self.parent.mkdir(parents=True, exist_ok=True)
        self.sweep()
        lock = self.path / LOCK_NAME
        for _ in range(_ACQUIRE_ATTEMPTS):
            self.path.mkdir(exist_ok=True)
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:  # another process's sweep removed the folder meanwhile: again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # a sweep may have removed the folder between our open and our lock: ours only if it stayed
                held = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except OSError:  # a sweep holds it for a moment while it removes the folder
                held = False
            if held:
                self._fd = fd
                return
            os.close(fd)
            time.sleep(0.01)
        raise StorageError(f"cannot lock a temporary folder in {self.parent}")

    def sweep(self) -> None:
        """Remove the folders of dead processes (their lock is free) and loose files in ``parent``."""
        try:
            entries = list(os.scandir(self.parent))
        except OSError as exc:
            log.warning("cannot look into %s: %s", self.parent, exc)
            return
        files = folders = 0
        for entry in entries:
            if entry.path == str(self.path):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders += _remove_if_dead(Path(entry.path))
                else:
                    os.unlink(entry.path)
                    files += 1
            except OSError as exc:
                log.warning("cannot remove %s: %s", entry.path, exc)
        if files or folders:
            log.info(
                "removed what stopped processes left in %s: %d temporary folders, %d loose files",
                self.parent,
                folders,
                files,
            )

    def release(self) -> None:
        """Remove this folder (when empty but for its lock) and release the lock.

        A file still there belongs to something never finished nor discarded: it stays, with a warning,
        and goes at the next acquire in ``parent`` (the lock is free then)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            left = [p for p in self.path.iterdir() if p.name != LOCK_NAME]
            if left:
                log.warning("%d temporary files left in %s at stop", len(left), self.path)
            else:
                (self.path / LOCK_NAME).unlink(missing_ok=True)
                self.path.rmdir()
        except OSError as exc:
            log.warning("cannot remove %s: %s", self.path, exc)
        finally:
            os.close(fd)


def spool_folder() -> TemporaryFolder:
    """A folder of this process's own in the system's temporary folder, for spools with no ``out_dir``."""
    return TemporaryFolder(Path(tempfile.gettempdir()) / "aiodicom-spool")


def _remove_if_dead(folder: Path) -> bool:
    """Remove ``folder`` if its lock is free (its process is gone); whether it was removed."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        # no lock file: a process is making it right now, or died in the moment between mkdir and lock
        if time.time() - folder.stat().st_mtime < _UNLOCKED_GRACE:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # alive
            return False
        shutil.rmtree(folder, ignore_errors=True)  # holding the lock: no one takes the folder meanwhile
        return True
    finally:
        os.close(fd)
