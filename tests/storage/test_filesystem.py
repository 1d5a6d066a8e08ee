"""The filesystem backend on a real temporary directory: a sink is written, placed, then committed (renamed
into place) or aborted (nothing left); duplicates are replaced, kept or refused; ``fsync`` syncs the file
and its folder, or nothing; a folder removed meanwhile is made again.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from aiodicom.errors import StorageError
from aiodicom.storage.filesystem import LOCK_NAME, Duplicates, FilesystemStorage

META = b"M" * 16  # stands for the file meta the store service writes first
LEADING = b"<leading elements>"
REST = b"<the rest of the data set>" * 100


def stray_files(storage: FilesystemStorage) -> list[Path]:
    """Files of ``out_dir`` other than those of the stored instances (temporary files; not the lock)."""
    return sorted(p for p in storage.incoming.rglob("*") if p.is_file() and p.name != LOCK_NAME)


def wait_until_empty(storage: FilesystemStorage, timeout: float = 5.0) -> list[Path]:
    """Temporary files left after stop (spare files are removed by a worker thread that may be busy)."""
    deadline = time.monotonic() + timeout
    while (left := stray_files(storage)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


async def store(storage: FilesystemStorage, relative: str, data: bytes) -> str:
    sink = storage.open()
    sink.write(data)
    await sink.place(relative)
    return await sink.commit()


@pytest.fixture
async def storage(tmp_path: Path) -> FilesystemStorage:
    backend = FilesystemStorage(tmp_path / "out", fsync=False)
    await backend.start()
    return backend


async def test_commit_renames_the_whole_instance_into_place(storage: FilesystemStorage) -> None:
    sink = storage.open()
    assert sink.temp_path.parent == storage.temp_dir and sink.temp_path.exists()
    sink.write(META)
    sink.write(memoryview(LEADING))
    sink.write(bytearray(REST))
    await sink.place("1.2/1.2.3/1.2.3.4.dcm")
    target = storage.out_dir / "1.2/1.2.3/1.2.3.4.dcm"
    assert not target.exists()  # nothing visible before commit
    location = await sink.commit()
    assert location == str(target) == storage.location("1.2/1.2.3/1.2.3.4.dcm")
    assert target.read_bytes() == META + LEADING + REST
    assert not sink.temp_path.exists()
    await storage.stop()
    assert wait_until_empty(storage) == []


async def test_place_can_replace_the_leading_elements(storage: FilesystemStorage) -> None:
    sink = storage.open()
    sink.meta_length = len(META)
    sink.write(META + LEADING + REST)
    changed = b"<changed by a hook, and longer>"
    await sink.place("a/b/c.dcm", changed, len(META) + len(LEADING))
    assert (await sink.commit()).endswith("c.dcm")
    assert (storage.out_dir / "a/b/c.dcm").read_bytes() == META + changed + REST
    await storage.stop()
    assert wait_until_empty(storage) == []


async def test_abort_leaves_nothing_and_later_writes_are_ignored(storage: FilesystemStorage) -> None:
    sink = storage.open()
    sink.write(META + LEADING)
    await sink.place("x/y/z.dcm")
    await sink.abort()
    assert not sink.temp_path.exists()
    sink.write(REST)  # after abort: ignored, no error
    await sink.abort()  # twice: harmless
    unplaced = storage.open()
    unplaced.write(REST)
    await unplaced.abort()  # before place
    await storage.stop()
    assert wait_until_empty(storage) == []
    assert [p for p in storage.out_dir.rglob("*") if p.is_file()] == []
    assert not (storage.out_dir / "x").exists()


async def test_commit_before_place_is_an_error_and_removes_the_file(storage: FilesystemStorage) -> None:
    sink = storage.open()
    sink.write(REST)
    with pytest.raises(StorageError, match="before place"):
        await sink.commit()
    await sink.abort()
    assert not sink.temp_path.exists()


@pytest.mark.parametrize("policy", ["replace", "REPLACE", Duplicates.REPLACE])
async def test_a_duplicate_replaces_the_first_copy(tmp_path: Path, policy: str) -> None:
    storage = FilesystemStorage(tmp_path / "out", fsync=False, duplicates=policy)
    assert storage.duplicates is Duplicates.REPLACE
    first = await store(storage, "s/e/i.dcm", b"first")
    second = await store(storage, "s/e/i.dcm", b"second")
    assert first == second and Path(second).read_bytes() == b"second"
    storage.close()
    assert wait_until_empty(storage) == []


async def test_a_duplicate_is_dropped_with_keep(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "out", fsync=False, duplicates="keep")
    first = await store(storage, "s/e/i.dcm", b"first")
    assert await store(storage, "s/e/i.dcm", b"second") == first  # answered as stored
    assert Path(first).read_bytes() == b"first"
    storage.close()
    assert wait_until_empty(storage) == []


async def test_a_duplicate_is_refused_with_reject(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "out", fsync=False, duplicates="reject")
    first = await store(storage, "s/e/i.dcm", b"first")
    sink = storage.open()
    sink.write(b"second")
    await sink.place("s/e/i.dcm")
    with pytest.raises(FileExistsError):
        await sink.commit()
    assert Path(first).read_bytes() == b"first"
    assert not sink.temp_path.exists()
    storage.close()
    assert wait_until_empty(storage) == []


def test_an_unknown_duplicate_policy_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FilesystemStorage(tmp_path, duplicates="overwrite")


class Syncs:
    """Records what ``os.fsync`` is called on (as (device, inode)), then syncs it for real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.synced: list[tuple[int, int]] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            st = os.fstat(fd)
            self.synced.append((st.st_dev, st.st_ino))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)


def identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


async def test_fsync_syncs_the_file_and_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs = Syncs(monkeypatch)
    storage = FilesystemStorage(tmp_path / "out")  # fsync is on by default
    assert storage.fsync
    location = Path(await store(storage, "s/e/i.dcm", META + REST))
    assert location.read_bytes() == META + REST
    assert syncs.synced == [identity(location), identity(location.parent)]
    storage.close()


async def test_without_fsync_nothing_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs = Syncs(monkeypatch)
    storage = FilesystemStorage(tmp_path / "out", fsync=False)
    location = Path(await store(storage, "s/e/i.dcm", META + REST))
    sink = storage.open()
    sink.meta_length = len(META)
    sink.write(META + LEADING + REST)
    await sink.place("s/e/j.dcm", b"<new>", len(META) + len(LEADING))  # the rewrite path too
    await sink.commit()
    assert location.read_bytes() == META + REST
    assert syncs.synced == []
    storage.close()


async def test_a_folder_removed_meanwhile_is_made_again(storage: FilesystemStorage) -> None:
    first = Path(await store(storage, "study/series/1.dcm", b"one"))
    shutil.rmtree(storage.out_dir / "study")  # e.g. an operator cleaning up while the study arrives
    second = Path(await store(storage, "study/series/2.dcm", b"two"))
    assert second.read_bytes() == b"two" and not first.exists()
    await storage.stop()
    assert wait_until_empty(storage) == []


async def test_many_sinks_at_once(storage: FilesystemStorage) -> None:
    sinks = [storage.open() for _ in range(40)]  # more than the spare files made ahead of need
    assert len({s.temp_path for s in sinks}) == 40
    for k, sink in enumerate(sinks):
        sink.write(b"%d" % k)
        await sink.place(f"s/e/{k}.dcm")
    for sink in sinks[::2]:
        await sink.commit()
    for sink in sinks[1::2]:
        await sink.abort()
    stored = sorted(p.name for p in (storage.out_dir / "s/e").iterdir())
    assert stored == sorted(f"{k}.dcm" for k in range(0, 40, 2))
    await storage.stop()
    assert wait_until_empty(storage) == []


async def test_a_commit_that_fails_is_a_storage_error(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "out", fsync=False)
    sink = storage.open()
    sink.temp_path.unlink()  # the temporary file is gone: the rename cannot find it
    sink.write(b"data")
    await sink.place("s/e/i.dcm")
    with pytest.raises(StorageError, match="cannot store"):
        await sink.commit()
    assert not (storage.out_dir / "s/e/i.dcm").exists()
    storage.close()


@pytest.mark.parametrize("piece", [1, 7, 1000, 64 * 1024 - 1, 64 * 1024, 300_000])
async def test_pieces_of_any_size_are_stored_in_order(storage: FilesystemStorage, piece: int) -> None:
    """A peer may send PDVs of one byte (gathered, never more than writev takes at once) or of hundreds of
    kilobytes (written as they come); the file holds every byte in order, whatever the mix."""
    data = bytes(range(256)) * 1200  # 307,200 bytes
    sink = storage.open()
    sizes = [piece, 3, piece] * 2
    offset = 0
    while offset < len(data):
        for size in sizes:
            chunk = memoryview(bytearray(data[offset : offset + size]))  # a buffer that is reused after
            sink.write(chunk)
            chunk[:] = b"\xff" * len(chunk)
            offset += size
            if offset >= len(data):
                break
    await sink.place(f"s/e/piece-{piece}.dcm")
    assert Path(await sink.commit()).read_bytes() == data
