"""Crash safety of StoreScp in one process, against a scripted raw peer: nothing of an instance stays in
``.incoming`` during a run (pipelined requests, requests queued behind a handler that failed); a graceful
stop finishes the instance that is arriving and answers it, and its deadline leaves nothing; a full disk is
answered 0xA700 with nothing partial, and serving resumes when space returns."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodicom.dimse import Command, encode_command
from aiodicom.scp.store import StoreScp
from aiodicom.storage.filesystem import LOCK_NAME
from aiodicom.ul import encode_pdu
from aiodicom.ul.pdu import AAbort
from tests.interop.rawpeer import (
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    VERIFICATION,
    Instance,
    Pdv,
    RawPeer,
    ct_image,
    fragments,
    image_pixel,
    instance,
    native_pixels,
    pdata,
)

CONTEXTS = [(1, CT_IMAGE_STORAGE, [EXPLICIT_LE]), (3, VERIFICATION, [IMPLICIT_LE])]


def temporary_files(out: Path) -> list[Path]:
    """The files of ``out/.incoming`` but the lock files of running storages (spares and instances)."""
    return sorted(p for p in (out / ".incoming").rglob("*") if p.is_file() and p.name != LOCK_NAME)


def partial_files(out: Path) -> list[Path]:
    """Temporary files holding bytes of an instance (spare files created ahead of need are empty)."""
    return [p for p in temporary_files(out) if p.stat().st_size]


def stored(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.dcm") if ".incoming" not in p.parts)


def big(megabytes: float) -> Instance:
    """A CT instance of about ``megabytes`` MB of native pixels."""
    size = int(megabytes * (1 << 20)) & ~1
    return instance(image_pixel(rows=size // 2048 or 1, columns=1024) + native_pixels(size))


async def until(condition: object, timeout: float = 20.0, what: str = "") -> None:
    """Poll ``condition()`` until true (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


def store_request(message_id: int, inst: Instance) -> Command:
    return Command.c_store_rq(message_id, inst.sop_class, inst.sop_instance)


# ---------------------------------------------------------------------------- no leak during a run


async def test_pipelined_requests_leave_no_temporary_file(tmp_path: Path) -> None:
    """Found: a P-DATA-TF carrying the last data set PDV of one instance and the C-STORE-RQ of the next
    left one temporary file per instance. Each instance here is sent that way, all at once; once every one
    is answered, while the server still runs, no temporary file holds anything."""
    out = tmp_path / "out"
    instances = [ct_image(256) for _ in range(300)]
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False) as scp,
        await RawPeer.connect(scp.port) as peer,
    ):
        await peer.associate(CONTEXTS)
        stream = bytearray()
        previous: Pdv | None = None
        for number, inst in enumerate(instances, 1):
            command = Pdv(1, True, True, encode_command(store_request(number, inst)))
            stream += pdata(*([previous] if previous else []), command)
            previous = Pdv(1, False, True, inst.data)
        assert previous is not None
        stream += pdata(previous)
        await peer.send(bytes(stream), timeout=30)
        answers = [(await peer.receive_message(30)).command for _ in instances]
        assert [a.status for a in answers] == [0] * len(instances)
        assert [a.message_id_being_responded_to for a in answers] == list(range(1, len(instances) + 1))
        assert partial_files(out) == []  # during the run, not only once stopped
        assert len(temporary_files(out)) <= 16  # the spares created ahead of need, no more
        await peer.release()
    assert len(stored(out)) == len(instances)
    assert temporary_files(out) == []


async def test_requests_queued_behind_a_failed_handler_leave_nothing(tmp_path: Path) -> None:
    """Found: requests queued behind a handler that failed kept their temporary files. A peer sends five
    whole C-STOREs ahead and aborts in the same write: the first handler cannot answer (the association is
    gone) and fails; the four queued behind it are dropped, and nothing of them stays in .incoming."""
    out = tmp_path / "out"
    instances = [ct_image(4096) for _ in range(5)]
    async with StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False) as scp:
        for _ in range(3):  # a few times: the server keeps serving after each
            async with await RawPeer.connect(scp.port) as peer:
                await peer.associate(CONTEXTS)
                stream = b"".join(
                    pdata(Pdv(1, True, True, encode_command(store_request(n, inst))))
                    + pdata(*fragments(1, False, inst.data, peer.max_value))
                    for n, inst in enumerate(instances, 1)
                )
                await peer.send(stream + encode_pdu(AAbort(0, 0)))
                await peer.wait_closed()
            await until(lambda: not scp.associations, what="the association to end")
            assert partial_files(out) == []
        async with await RawPeer.connect(scp.port) as peer:
            await peer.associate(CONTEXTS)
            assert (await peer.c_store(1, ct_image())).status == 0
            await peer.release()
    assert temporary_files(out) == []


# ------------------------------------------------------------------------------------ graceful stop


async def test_stop_finishes_the_instance_that_is_arriving_and_answers_it(tmp_path: Path) -> None:
    """Found: a stop aborted an instance halfway in, as an association counted busy only once its data
    set had fully arrived. Now the instance is finished and answered Success, stored whole; an idle
    association is ended at once, not waited for."""
    out = tmp_path / "out"
    inst = big(4)
    scp = StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False)  # drain_timeout: 30 s by default
    await scp.start()
    try:
        idle = await RawPeer.connect(scp.port)
        await idle.associate(CONTEXTS)
        peer = await RawPeer.connect(scp.port)
        await peer.associate(CONTEXTS)
        await peer.send_command(1, store_request(1, inst))
        half = len(inst.data) // 2
        await peer.send_dataset(1, inst.data[:half], last=False)
        await until(lambda: sum(p.stat().st_size for p in partial_files(out)) > half // 2, what="bytes")
        stopping = asyncio.ensure_future(scp.stop())
        assert await idle.closes_within(5.0)  # nothing on its way in: ended at once
        assert not stopping.done()
        await peer.send_dataset(1, inst.data[half:])
        answer = await peer.receive_message(20)
        assert answer.command.status == 0
        assert await peer.closes_within(10.0)  # answered, then ended
        await asyncio.wait_for(stopping, 20)
        await idle.close()
        await peer.close()
    finally:
        await scp.stop()
    (path,) = stored(out)
    assert path.read_bytes().endswith(inst.data)
    assert temporary_files(out) == []


async def test_an_association_is_busy_from_the_first_pdv_of_a_command(tmp_path: Path) -> None:
    """A stop that comes between the two fragments of a C-STORE-RQ's command waits for that instance."""
    out = tmp_path / "out"
    inst = ct_image(2048)
    scp = StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False)
    await scp.start()
    try:
        async with await RawPeer.connect(scp.port) as peer:
            await peer.associate(CONTEXTS)
            raw = encode_command(store_request(1, inst))
            await peer.send_pdvs(Pdv(1, True, False, raw[:20]))
            await until(lambda: any(a.receiving for a in scp.associations), what="the first fragment")
            stopping = asyncio.ensure_future(scp.stop())
            await asyncio.sleep(0.2)
            assert not stopping.done()
            await peer.send_pdvs(Pdv(1, True, True, raw[20:]))
            await peer.send_dataset(1, inst.data)
            assert (await peer.receive_message(10)).command.status == 0
            await asyncio.wait_for(stopping, 20)
    finally:
        await scp.stop()
    assert len(stored(out)) == 1 and temporary_files(out) == []


async def test_an_instance_still_arriving_at_the_deadline_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    inst = big(2)
    scp = StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False, drain_timeout=0.5)
    await scp.start()
    try:
        async with await RawPeer.connect(scp.port) as peer:
            await peer.associate(CONTEXTS)
            await peer.send_command(1, store_request(1, inst))
            await peer.send_dataset(1, inst.data[: len(inst.data) // 2], last=False)
            await until(lambda: partial_files(out), what="the partial file")
            started = time.monotonic()
            await asyncio.wait_for(scp.stop(), 15)
            assert time.monotonic() - started < 10
            assert await peer.closes_within(5.0)
    finally:
        await scp.stop()
    assert stored(out) == [] and temporary_files(out) == []
    assert [p.name for p in out.iterdir()] == [".incoming"]


# ---------------------------------------------------------------------------------------- disk full


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only): skipped, saying why, where mounting is refused."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"mounting a small tmpfs to fill a disk is not permitted here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_a_full_disk_is_out_of_resources_nothing_partial_and_serving_resumes(tmp_path: Path) -> None:
    """8 MB of disk and 3 MB instances: the third is answered 0xA700 and leaves nothing partial; once a
    stored file is removed (space returns) the next instance on the same association is stored whole."""
    with small_disk(tmp_path / "disk", "8m") as disk:
        out = disk / "out"
        async with (
            StoreScp(0, host="127.0.0.1", out_dir=out, fsync=True) as scp,
            await RawPeer.connect(scp.port) as peer,
        ):
            await peer.associate(CONTEXTS)
            statuses = []
            for _ in range(4):
                rsp = await peer.c_store(1, big(3), timeout=20)
                statuses.append(rsp.status)
                if rsp.status == 0xA700:
                    assert rsp.error_comment and "space" in rsp.error_comment.lower(), rsp
                    break
            assert statuses[0] == 0 and statuses[-1] == 0xA700, statuses
            assert partial_files(out) == []
            whole = stored(out)
            assert len(whole) == len(statuses) - 1
            assert all(p.stat().st_size > 3 << 20 for p in whole)
            assert (await peer.c_echo(3)).status == 0  # the server kept serving
            whole[0].unlink()  # space returns
            again = big(3)
            assert (await peer.c_store(1, again, timeout=20)).status == 0
            (path,) = [p for p in stored(out) if p.name == f"{again.sop_instance}.dcm"]
            assert path.read_bytes().endswith(again.data)
            await peer.release()
        assert temporary_files(out) == []
