"""StoreScp with ``workers=N``: N processes on one listening socket, the events, the studies and the limits in
the parent. Which worker receives a connection is the kernel's choice; a test that needs a given worker
pauses the other one (SIGSTOP: a stopped process does not accept, so the one running does) and the hook
notes which process received each instance (tests/scp/workerhooks.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiodicom.errors import StorageError
from aiodicom.net.tls import client_context, server_context
from aiodicom.scp.store import ConnectionOpened, ServerStarted, StoreErrorEvent, StoreScp
from aiodicom.services.store import StoredInstance
from aiodicom.services.studies import StudyCompleted
from aiodicom.ul.pdu import AAssociateRJ
from tests.cli.test_crash import send_slowly, wait_exit
from tests.interop.peers import free_port, stop
from tests.interop.rawpeer import (
    CT_IMAGE_STORAGE,
    Instance,
    RawPeer,
    fragments,
    image_pixel,
    native_pixels,
    new_uid,
    pdata,
    text,
)
from tests.scp import workerhooks
from tests.scp.test_crash import CONTEXTS, big, partial_files, stored, until

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
START = 120.0  # seconds for workers to start on a loaded machine (each imports pydicom)


def in_study(study: str, series: str, patient: str = "Split^Study") -> Instance:
    """A small CT image of ``study``/``series``."""
    sop = new_uid()
    head = b"".join(
        [
            text(0x00080016, "UI", CT_IMAGE_STORAGE),
            text(0x00080018, "UI", sop),
            text(0x00080060, "CS", "CT"),
            text(0x00100010, "PN", patient),
            text(0x00100020, "LO", "SPLIT1"),
            text(0x0020000D, "UI", study),
            text(0x0020000E, "UI", series),
        ]
    )
    return Instance(CT_IMAGE_STORAGE, sop, study, series, head + image_pixel() + native_pixels(512))


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The worker ``pid`` stopped (SIGSTOP) meanwhile: connections made now go to another worker."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def children(parent: int | None = None) -> set[int]:
    """The processes whose parent is ``parent`` (default: this one)."""
    me, found = parent or os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    found.add(int(entry.name))
    return found


async def store(port: int, inst: Instance, host: str = "127.0.0.1") -> int:
    """One association, one C-STORE, release: the status."""
    async with await RawPeer.connect(port, host) as peer:
        await peer.associate(CONTEXTS)
        status = (await peer.c_store(1, inst)).status
        await peer.release()
    assert status is not None
    return status


async def association(port: int, source: str = "127.0.0.1") -> tuple[RawPeer, object]:
    """A connection from ``source`` and the answer to its A-ASSOCIATE-RQ."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    peer = RawPeer(reader, writer)
    return peer, await peer.request(CONTEXTS)


def running(pids: set[int]) -> set[int]:
    """Those of ``pids`` that are still processes (zombies included: not reaped)."""
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def noted(notes: Path, name: str) -> int:
    return int((notes / name).read_text())


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the hooks of tests/scp/workerhooks.py write (the workers inherit the environment)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    monkeypatch.setenv(workerhooks.NOTES_ENV, str(folder))
    return folder


def two_workers(out: Path, **options: Any) -> StoreScp:
    scp = StoreScp(
        port=0,
        host="127.0.0.1",
        out_dir=out,
        fsync=False,
        workers=2,
        extract_tags=["SOPInstanceUID", "PatientName"],
        **options,
    )
    scp.on_before_store(workerhooks.record_pid)
    return scp


# ----------------------------------------------------------------------------- studies and events


async def test_a_study_split_across_workers_completes_once_and_every_event_reaches_the_parent(
    tmp_path: Path, notes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Four instances of one study, received alternately by each worker (the other one paused): the parent
    completes the study once, with all four; every stored instance, connection, refusal and the start are
    events in the parent (handlers and ``events()``), the hooks ran in the workers, and the workers' log
    records reach the parent's logging."""
    caplog.set_level("INFO", logger="aiodicom")
    out = tmp_path / "out"
    scp = two_workers(out, study_timeout=2.0, on_connection=workerhooks.note_connection, verbose=True)
    completed: list[StudyCompleted] = []
    files: list[StoredInstance] = []
    connections: list[ConnectionOpened] = []
    errors: list[StoreErrorEvent] = []
    scp.on_study_completed(completed.append)
    scp.on_file_stored(files.append)
    scp.on_connection(connections.append)
    scp.on_error(errors.append)
    streamed: list[object] = []

    async def stream() -> None:
        async for event in scp.events():
            streamed.append(event)

    study, series = new_uid(), new_uid()
    instances = [in_study(study, series) for _ in range(4)]
    refused = in_study(new_uid(), new_uid(), workerhooks.REFUSED_PATIENT)
    streaming = asyncio.ensure_future(stream())
    await asyncio.sleep(0)
    try:
        async with scp:
            assert scp.is_serving
            first, second = scp.worker_pids
            for holder, inst in zip([first, second, first, second], instances, strict=True):
                with paused(holder):
                    assert await store(scp.port, inst) == 0
            assert await store(scp.port, refused) == 0x0124
            with pytest.raises(RuntimeError, match="before start"):
                scp.on_before_store(workerhooks.record_pid)
            await until(lambda: completed, 30, "the study completed")
            await asyncio.sleep(0.5)  # a second completion (one per worker) would come at once
            assert len(completed) == 1
    finally:
        streaming.cancel()

    receivers = [noted(notes, inst.sop_instance) for inst in instances]
    assert receivers == [second, first, second, first]  # each worker received two, the hook ran there
    (study_event,) = completed  # and nothing more was flushed at stop
    assert study_event.study_instance_uid == study and study_event.instance_count == 4
    (series_summary,) = study_event.series
    assert {i.sop_instance_uid for i in series_summary.instances} == {i.sop_instance for i in instances}
    assert {f.sop_instance_uid for f in files} == {i.sop_instance for i in instances}
    assert all(Path(f.file).read_bytes().endswith(i.data) for f, i in zip(files, instances, strict=True))
    assert sorted(p.name for p in stored(out)) == sorted(f"{i.sop_instance}.dcm" for i in instances)
    # connections: five associations, accepted by the on_connection hook in the workers
    assert len(connections) == 5
    assert {noted(notes, f"connection-{c.peer_port}") for c in connections} == {first, second}
    (error,) = errors
    assert error.sop_instance_uid == refused.sop_instance and "refused by the test hook" in error.message
    kinds = [type(e) for e in streamed]
    assert kinds.count(ServerStarted) == 1 and kinds.count(StoredInstance) == 4
    assert kinds.count(ConnectionOpened) == 5 and kinds.count(StoreErrorEvent) == 1
    assert kinds.count(StudyCompleted) == 1
    # the workers' own log lines, as records of this process's logging, with the worker's pid
    logged = {r.process for r in caplog.records if r.getMessage().startswith("stored ")}
    assert logged == {first, second}
    assert running({first, second}) == set()  # stopped and reaped
    assert list((out / ".incoming").iterdir()) == []


async def test_limits_hold_for_the_whole_server(tmp_path: Path) -> None:
    """max_associations=3 and max_associations_per_peer=2 with an association on each worker: a third one
    from the same address is refused whichever worker takes it, another address fits once, then the server
    is full; when one ends, its slot is free again."""
    scp = two_workers(tmp_path / "out", max_associations=3, max_associations_per_peer=2)
    async with scp:
        first, second = scp.worker_pids
        held: list[RawPeer] = []
        try:
            for holder in (first, second):  # one on each worker
                with paused(holder):
                    peer, answer = await association(scp.port)
                    held.append(peer)
                    assert not isinstance(answer, AAssociateRJ)
            peer, answer = await association(scp.port)  # the same address: 2 already, across workers
            await peer.close()
            assert isinstance(answer, AAssociateRJ)
            assert (answer.result, answer.source, answer.reason) == (2, 3, 2)
            peer, answer = await association(scp.port, "127.0.0.2")
            held.append(peer)
            assert not isinstance(answer, AAssociateRJ)
            peer, answer = await association(scp.port, "127.0.0.3")  # 3 in all
            await peer.close()
            assert isinstance(answer, AAssociateRJ) and answer.reason == 2
            await held.pop(0).release()
            deadline = time.monotonic() + 30
            while True:  # the parent hears of the release a moment after the peer saw it
                peer, answer = await association(scp.port, "127.0.0.3")
                if not isinstance(answer, AAssociateRJ) or time.monotonic() > deadline:
                    break
                await peer.close()
                await asyncio.sleep(0.05)
            held.append(peer)
            assert not isinstance(answer, AAssociateRJ)
        finally:
            for peer in held:
                await peer.close()


# ------------------------------------------------------------------------------------- crashes


async def test_a_killed_worker_is_replaced_and_the_server_goes_on(tmp_path: Path, notes: Path) -> None:
    """kill -9 of a worker holding both associations of max_associations=2: a new worker starts, the dead
    one's associations no longer count, and both the new worker and the other one store."""
    scp = two_workers(tmp_path / "out", max_associations=2)
    async with scp:
        victim, survivor = scp.worker_pids
        held = []
        with paused(survivor):
            for _ in range(2):
                peer, answer = await association(scp.port)
                held.append(peer)
                assert not isinstance(answer, AAssociateRJ)
        os.kill(victim, signal.SIGKILL)
        for peer in held:
            assert await peer.closes_within(30)
        await until(lambda: len(scp.worker_pids) == 2 and victim not in scp.worker_pids, START, "a new one")
        (new,) = set(scp.worker_pids) - {survivor}
        for holder, receiver in ((survivor, new), (new, survivor)):
            with paused(holder):
                inst = in_study(new_uid(), new_uid())
                assert await store(scp.port, inst) == 0
                assert noted(notes, inst.sop_instance) == receiver
        peers = [await association(scp.port) for _ in range(2)]  # the two slots are free again
        try:
            assert not any(isinstance(answer, AAssociateRJ) for _, answer in peers)
        finally:
            for peer, _ in peers:
                await peer.close()
    assert running({victim, survivor, new}) == set()


async def until_refused(port: int, timeout: float = 30.0) -> None:
    """Until no process listens on ``port`` (a connection is refused)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        writer.close()
        await asyncio.sleep(0.05)
    raise AssertionError(f"127.0.0.1:{port} still accepts connections after {timeout} s")


def json_events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_cli_sigterm_drains_every_worker(tmp_path: Path) -> None:
    """``aiodicom storescp --workers 2``, an instance halfway in on each worker: SIGTERM, then the rest of
    both arrives; both are stored whole and answered Success, and the command exits 0."""
    out, log = tmp_path / "out", tmp_path / "storescp.log"
    port = free_port()
    with log.open("ab") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiodicom", "storescp", "--port", str(port), "--host", "127.0.0.1",
             "--out-dir", str(out), "--no-fsync", "--workers", "2", "--json"],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    peers: list[RawPeer] = []
    try:
        await until(
            lambda: any(e["event"] == "server_started" for e in json_events(log)) or proc.poll() is not None,
            START,
            "storescp --workers 2 started",
        )
        assert proc.poll() is None, log.read_text()
        workers = {int(folder.name.split("-")[0]) for folder in (out / ".incoming").iterdir()}
        assert len(workers) == 2 and workers == children(proc.pid)
        insts = [big(4), big(4)]
        half = len(insts[0].data) // 2

        def receiving() -> set[int]:
            return {int(p.parent.name.split("-")[0]) for p in partial_files(out)}

        peer = await RawPeer.connect(port)
        peers.append(peer)
        await peer.associate(CONTEXTS)
        await send_slowly(peer, insts[0], upto=half)
        await until(lambda: len(receiving()) == 1, 30, "the first instance halfway in")
        (first,) = receiving()
        with paused(first):
            peer = await RawPeer.connect(port)
            peers.append(peer)
            await peer.associate(CONTEXTS)
            await send_slowly(peer, insts[1], upto=half)
            await until(lambda: len(receiving()) == 2, 30, "the second instance halfway in on the other")
        assert receiving() == workers

        proc.send_signal(signal.SIGTERM)
        await until_refused(port)  # every worker stopped listening: each is stopping
        for peer, inst in zip(peers, insts, strict=True):
            rest = fragments(1, False, inst.data[half:], peer.max_value)
            await peer.send(b"".join(pdata(p) for p in rest), timeout=30)
        for peer in peers:
            answer = await peer.receive_message(30)
            assert answer.command.status == 0
            assert await peer.closes_within(30)
        assert await wait_exit(proc, 60) == 0, log.read_text()
    finally:
        for peer in peers:
            await peer.close()
        stop(proc)
    for inst in insts:
        (path,) = [p for p in stored(out) if p.name == f"{inst.sop_instance}.dcm"]
        assert path.read_bytes().endswith(inst.data)
    assert list((out / ".incoming").iterdir()) == []
    assert "stopped (SIGTERM)" in log.read_text()
    assert sum(e["event"] == "file_stored" for e in json_events(log)) == 2


# --------------------------------------------------------------------- one process, and what is refused


async def test_one_worker_is_this_process(tmp_path: Path) -> None:
    """workers=1 (the default) starts no process and serves as before."""
    before = children()
    async with StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        assert scp.workers == 1 and scp.worker_pids == []
        assert children() == before
        inst = in_study(new_uid(), new_uid())
        assert await store(scp.port, inst) == 0
        assert children() == before
    assert [p.name for p in stored(tmp_path / "out")] == [f"{inst.sop_instance}.dcm"]


def _from_main() -> Any:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def anonymize(tags):\n    return tags\n", namespace)
    return namespace["anonymize"]


@pytest.mark.parametrize(
    ("options", "hook", "says"),
    [
        ({}, lambda tags: tags, r"on_before_store: .*lambda"),
        ({}, _from_main(), r"on_before_store: anonymize is defined in the script being run \(__main__\)"),
        ({"on_connection": lambda peer: True}, None, r"on_connection: .*lambda"),
        (
            {"tls": ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)},
            None,
            r"tls: .*make it with aiodicom.net.tls.server_context",
        ),
    ],
    ids=["lambda-hook", "hook-in-main", "lambda-on-connection", "foreign-tls-context"],
)
async def test_what_cannot_go_to_a_worker_is_refused_at_start(
    tmp_path: Path, options: dict[str, Any], hook: Any, says: str
) -> None:
    before = children()
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", workers=2, **options)
    if hook is not None:
        scp.on_before_store(hook)
    with pytest.raises(ValueError, match=says):
        await scp.start()
    assert not scp.is_serving and children() == before
    await scp.stop()


async def test_a_hook_the_workers_cannot_import_fails_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook of a module that exists only in this process: the workers say they cannot load it."""
    module = types.ModuleType("made_in_this_process_only")
    exec("def hook(tags):\n    return tags\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    before = children()
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", workers=2)
    scp.on_before_store(module.hook)
    with pytest.raises(ValueError, match="cannot load the server's configuration: ModuleNotFoundError"):
        await scp.start()
    assert not scp.is_serving and children() == before


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_workers_must_be_a_whole_number(tmp_path: Path, workers: Any) -> None:
    with pytest.raises(ValueError, match="workers must be a whole number"):
        StoreScp(port=0, out_dir=tmp_path / "out", workers=workers)


# ----------------------------------------------------------------------- TLS, conversion, S3


async def test_tls_and_conversion_on_receipt_in_workers(tmp_path: Path, tls_certs: Any, notes: Path) -> None:
    """A context from server_context is made again in each worker; each converts what it receives."""
    tls = server_context(tls_certs.server_cert, tls_certs.server_key)
    scp = two_workers(tmp_path / "out", tls=tls, transcode_on_receipt="ImplicitVRLittleEndian")
    files: list[StoredInstance] = []
    scp.on_file_stored(files.append)
    client = client_context(tls_certs.ca)
    async with scp:
        for holder in scp.worker_pids:
            with paused(holder):
                reader, writer = await asyncio.open_connection("127.0.0.1", scp.port, ssl=client)
                async with RawPeer(reader, writer) as peer:
                    await peer.associate(CONTEXTS)
                    assert (await peer.c_store(1, in_study(new_uid(), new_uid()))).status == 0
                    await peer.release()
    assert len(files) == 2
    assert len({noted(notes, f.sop_instance_uid) for f in files}) == 2  # one by each worker
    for event in files:
        assert event.transfer_syntax_uid == IMPLICIT_LE and event.received_transfer_syntax == EXPLICIT_LE
        assert IMPLICIT_LE.encode() in Path(event.file).read_bytes()[:400]


@pytest.mark.s3
@pytest.mark.interop
async def test_s3_in_workers(
    tmp_path: Path, moto_endpoint: str, bucket: str, s3: Any, s3_env: None, notes: Path
) -> None:
    """Each worker uploads what it receives to the bucket."""
    from aiodicom.storage.s3 import S3Config

    scp = StoreScp(
        port=0,
        host="127.0.0.1",
        storage_backend="s3",
        s3_config=S3Config(bucket, endpoint=moto_endpoint, prefix="in/"),
        workers=2,
        extract_tags=["SOPInstanceUID"],
    )
    scp.on_before_store(workerhooks.record_pid)
    insts = [in_study(new_uid(), new_uid()) for _ in range(2)]
    async with scp:
        for holder, inst in zip(scp.worker_pids, insts, strict=True):
            with paused(holder):
                assert await store(scp.port, inst) == 0
    assert len({noted(notes, inst.sop_instance) for inst in insts}) == 2
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"in/{inst.relative_path}" for inst in insts}
    for inst in insts:
        body = s3.get_object(Bucket=bucket, Key=f"in/{inst.relative_path}")["Body"].read()
        assert body.endswith(inst.data)


@pytest.mark.s3
@pytest.mark.interop
async def test_a_worker_that_cannot_start_fails_start(moto_endpoint: str, s3_env: None) -> None:
    """A missing bucket fails start() with the worker's StorageError, as with one process; no process is
    left."""
    from aiodicom.storage.s3 import S3Config

    before = children()
    config = S3Config("no-such-bucket", endpoint=moto_endpoint)
    scp = StoreScp(port=0, host="127.0.0.1", storage_backend="s3", s3_config=config, workers=2)
    with pytest.raises(StorageError, match="does not exist"):
        await scp.start()
    assert not scp.is_serving and children() == before
