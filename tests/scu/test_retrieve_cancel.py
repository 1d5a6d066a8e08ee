"""Stopping a C-GET or C-MOVE early, against Orthanc and dcmqrscp: ``limit``, leaving the progress iterator,
and cancelling the task. The retrieve sends C-CANCEL; what still arrives is stored and counted until the
final response (0xFE00, or 0x0000/0xB000 when the cancel came too late); a cancelled task waits a bounded
time for it, aborts, and re-raises. Whatever the timing, the counts say what was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pydicom
import pytest

from aiodicom import FindScu, GetScu, MoveScu, RetrieveCompleted, RetrieveResult, StoreScp, SubOperation
from tests.interop.pacs import Pacs
from tests.interop.proxy import GET, RecordingProxy
from tests.interop.studies import QrData

pytestmark = pytest.mark.interop

QUERY = {"PatientID": "QR-PAT-1"}  # study A: 11 instances, 5 of them compressed (dcmqrscp fails those)
STATUSES = (0xFE00, 0x0000, 0xB000)


def stored(root: Path) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in root.rglob("*.dcm")}


def assert_consistent(result: RetrieveResult | RetrieveCompleted, root: Path, data: QrData) -> None:
    """What was stored is what the counts say, all of it from the query's patient, and whole."""
    files = stored(root)
    assert files <= {i.sop_instance_uid for i in data.a.instances}
    assert len(files) == result.completed + result.warning, (result, files)
    assert not list(root.rglob("*.part"))


async def assert_serving(pacs: Pacs) -> None:
    """The PACS still answers: the cancel left it in order."""
    found = await FindScu(pacs.address).find({"QueryRetrieveLevel": "STUDY", "PatientID": "QR-PAT-2"})
    assert len(found.matches) == 1


async def test_get_limit(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    async with RecordingProxy(qr_pacs.dicom_port) as proxy:
        scu = GetScu(f"{qr_pacs.ae_title}@127.0.0.1:{proxy.port}", out_dir=tmp_path)
        result = await scu.get_study(QUERY, limit=2)
    assert result.cancelled and result.status in STATUSES, result
    assert result.completed + result.failed + result.warning >= 2
    if result.status == 0xFE00:
        assert result.total < len(qr_data.a.instances)
    assert_consistent(result, tmp_path, qr_data)
    assert proxy.associations(*GET) == 1  # a cancelled retrieve asks for nothing again
    await assert_serving(qr_pacs)


async def test_get_leaving_the_iterator(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    events: list[SubOperation] = []
    scu = GetScu(qr_pacs.address, out_dir=tmp_path)
    async with contextlib.aclosing(scu.iter_get(QUERY)) as retrieve:
        async for event in retrieve:
            events.append(event)
            break
    result = retrieve.result
    assert result is not None and result.cancelled and result.status in STATUSES, result
    assert len(events) == 1 and events[0].file is not None
    assert_consistent(result, tmp_path, qr_data)
    await assert_serving(qr_pacs)


async def test_get_iterator_to_the_end_is_the_awaited_result(orthanc_qr: Pacs, tmp_path: Path) -> None:
    scu = GetScu(orthanc_qr.address, out_dir=tmp_path)
    retrieve = scu.iter_get({"PatientID": "QR-PAT-2"})
    events = [event async for event in retrieve]
    assert retrieve.result is not None and not retrieve.result.cancelled
    assert [e.completed for e in events] == [1, 2, 3] and retrieve.result.completed == 3
    assert sorted(e.file for e in events if e.file) == sorted(retrieve.result.files)


async def test_get_task_cancellation(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    first = asyncio.Event()
    completed: list[RetrieveCompleted] = []
    scu = GetScu(qr_pacs.address, out_dir=tmp_path, cancel_timeout=3.0)
    task = asyncio.create_task(
        scu.get_study(QUERY, on_sub_operation=lambda _: first.set(), on_completed=completed.append)
    )
    await asyncio.wait_for(first.wait(), 30)
    task.cancel()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 3.0 + 2.0
    # the C-CANCEL went out, and the final response came before the bounded wait ended
    assert len(completed) == 1 and completed[0].cancelled and completed[0].status in STATUSES
    assert_consistent(completed[0], tmp_path, qr_data)
    await assert_serving(qr_pacs)


def slow_receiver(pacs: Pacs, root: Path, seconds: float = 0.15) -> StoreScp:
    """The move destination, taking ``seconds`` per instance: the cancel lands before the end."""
    scp = StoreScp(
        pacs.dest_ports["AIODICOM-RCV"], host="127.0.0.1", ae_title="AIODICOM-RCV", out_dir=root, fsync=False
    )

    @scp.on_before_store
    async def slowly(tags: dict[str, str]) -> dict[str, str]:
        await asyncio.sleep(seconds)
        return {}

    return scp


async def test_move_limit(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    async with slow_receiver(qr_pacs, tmp_path) as scp:
        result = await MoveScu(qr_pacs.address).move_study(QUERY, "AIODICOM-RCV", receive=scp, limit=2)
        await asyncio.sleep(0.5)  # a sub-operation the PACS started before the cancel lands
    assert result.cancelled and result.status in STATUSES, result
    assert result.completed + result.failed + result.warning >= 2
    if result.status == 0xFE00:
        assert result.total < len(qr_data.a.instances)
    assert_consistent(result, tmp_path, qr_data)
    await assert_serving(qr_pacs)


async def test_move_leaving_the_iterator(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    async with slow_receiver(qr_pacs, tmp_path) as scp:
        scu = MoveScu(qr_pacs.address)
        async with contextlib.aclosing(scu.iter_move(QUERY, "AIODICOM-RCV", receive=scp)) as move:
            async for _ in move:
                break
        await asyncio.sleep(0.5)
    result = move.result
    assert result is not None and result.cancelled and result.status in STATUSES, result
    assert_consistent(result, tmp_path, qr_data)
    await assert_serving(qr_pacs)


async def test_move_task_cancellation(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    first = asyncio.Event()
    completed: list[RetrieveCompleted] = []
    loop = asyncio.get_running_loop()
    async with slow_receiver(qr_pacs, tmp_path) as scp:
        scu = MoveScu(qr_pacs.address, cancel_timeout=3.0)

        def progress(event: Any) -> None:
            first.set()

        task = asyncio.create_task(
            scu.move_study(
                QUERY, "AIODICOM-RCV", receive=scp, on_sub_operation=progress, on_completed=completed.append
            )
        )
        await asyncio.wait_for(first.wait(), 30)
        task.cancel()
        started = loop.time()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert loop.time() - started < 3.0 + 2.0
        await asyncio.sleep(0.5)
    # the C-CANCEL went out, and the final response came before the bounded wait ended
    assert len(completed) == 1 and completed[0].cancelled and completed[0].status in STATUSES
    assert_consistent(completed[0], tmp_path, qr_data)
    await assert_serving(qr_pacs)


def test_limit_is_checked() -> None:
    with pytest.raises(ValueError, match="limit"):
        GetScu("127.0.0.1:104", out_dir=".").iter_get({"PatientID": "P"}, limit=0)
    with pytest.raises(ValueError, match="cancel_timeout"):
        MoveScu("127.0.0.1:104", cancel_timeout=-1)
