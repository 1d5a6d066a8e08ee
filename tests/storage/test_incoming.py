"""``out_dir/.incoming``: each filesystem storage keeps its temporary files in a folder of its own, held with
``flock``; a storage that starts removes the folders of dead processes and the loose files older versions left
there, never the folder of a live storage, in this process or another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from aiodicom.storage.filesystem import LOCK_NAME, FilesystemStorage
from aiodicom.storage.folders import spool_folder

#: A second process with a storage on the same out_dir, an instance half written; it prints its folder and
#: the temporary file, then waits (for stdin to close, or to be killed).
HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from aiodicom.storage.filesystem import FilesystemStorage

    async def main() -> None:
        storage = FilesystemStorage(sys.argv[1], fsync=False)
        await storage.start()
        sink = storage.open()
        sink.write(b"half an instance" * 1000)
        sink._file.flush()
        print(storage.temp_dir, sink.temp_path, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await sink.abort()
        await storage.stop()

    asyncio.run(main())
    """
)


def holder(out: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert len(line) == 2, f"the holder process said {line!r}"
    return proc, Path(line[0]), Path(line[1])


async def test_each_storage_has_its_own_locked_folder_removed_at_stop(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, second = FilesystemStorage(out, fsync=False), FilesystemStorage(out, fsync=False)
    await first.start()
    await second.start()  # its start sweeps .incoming: the first one's folder is live, and stays
    assert first.temp_dir != second.temp_dir
    assert first.temp_dir.parent == second.temp_dir.parent == out / ".incoming"
    assert first.temp_dir.name.startswith(f"{os.getpid()}-")
    for storage in (first, second):
        assert (storage.temp_dir / LOCK_NAME).exists()
        sink = storage.open()
        assert sink.temp_path.parent == storage.temp_dir
        await sink.abort()
    third = FilesystemStorage(out, fsync=False)
    await third.start()
    assert first.temp_dir.exists() and second.temp_dir.exists()
    for storage in (first, second, third):
        await storage.stop()
        assert not storage.temp_dir.exists()
    assert list((out / ".incoming").iterdir()) == []


async def test_a_live_process_keeps_its_folder_and_a_dead_ones_is_removed(tmp_path: Path) -> None:
    """Two processes share out_dir: one starting never removes the other's folder while it lives; once it
    is killed (kill -9: nothing of its own clean-up runs) the next start removes its folder and its
    half-written file."""
    out = tmp_path / "out"
    proc, folder, partial = holder(out)
    try:
        assert partial.parent == folder and partial.stat().st_size > 0
        assert folder.name.startswith(f"{proc.pid}-")
        here = FilesystemStorage(out, fsync=False)
        await here.start()
        assert partial.exists()  # alive: left alone
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert partial.exists()  # nobody removes it but the next start
        again = FilesystemStorage(out, fsync=False)
        await again.start()
        assert not folder.exists()
        assert here.temp_dir.exists()  # the live storage of this process is left alone too
        assert sorted((out / ".incoming").iterdir()) == sorted([here.temp_dir, again.temp_dir])
        await again.stop()
        await here.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert list((out / ".incoming").iterdir()) == []


async def test_a_process_that_ends_cleanly_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc, folder, _ = holder(out)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(20) == 0
    assert not folder.exists()
    assert list((out / ".incoming").iterdir()) == []


async def test_loose_files_of_older_versions_are_removed_at_start(tmp_path: Path) -> None:
    """Older versions wrote their temporary files (instances, spares, transcoding spools) directly into
    .incoming: a start removes them."""
    incoming = tmp_path / "out" / ".incoming"
    incoming.mkdir(parents=True)
    loose = [incoming / "tmpa1b2c3.part", incoming / "tmpempty.part", incoming / ".receipt-x1.part"]
    loose[0].write_bytes(b"x" * 41_000)
    loose[1].touch()
    loose[2].write_bytes(b"spooled")
    storage = FilesystemStorage(tmp_path / "out", fsync=False)
    await storage.start()
    assert [p for p in loose if p.exists()] == []
    await storage.stop()


async def test_a_folder_without_its_lock_is_left_alone_while_young(tmp_path: Path) -> None:
    """A folder whose lock file is not there yet is being made by another process (mkdir, then the lock):
    it stays; one that stayed so for minutes belonged to a process that died in between, and goes."""
    incoming = tmp_path / "out" / ".incoming"
    young, old = incoming / "123-young", incoming / "456-old"
    for folder in (young, old):
        folder.mkdir(parents=True)
        (folder / "tmp1.part").write_bytes(b"data")
    past = time.time() - 600
    os.utime(old, (past, past))
    storage = FilesystemStorage(tmp_path / "out", fsync=False)
    await storage.start()
    assert young.exists() and not old.exists()
    await storage.stop()


def test_spools_without_an_out_dir_sweep_their_own_folder_in_the_system_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay's and the S3 converter's spools live in ``$TMPDIR/aiodicom-spool``, one folder per user,
    swept the same way: a dead process's folder (its lock free) goes, with its spooled copy."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    dead = tmp_path / "aiodicom-spool" / "999999-dead"
    dead.mkdir(parents=True)
    (dead / LOCK_NAME).touch()  # nobody holds it
    (dead / "relay-abc.dcm").write_bytes(b"a spooled copy")
    folder = spool_folder()
    folder.acquire()
    assert folder.path.parent == tmp_path / "aiodicom-spool" and folder.path.is_dir()
    assert not dead.exists()
    other = spool_folder()
    other.acquire()  # a second one in this process: the first, held, stays
    assert folder.path.is_dir()
    for held in (folder, other):
        held.release()
        assert not held.path.exists()
