"""C-GET served from handlers: aiodicom's GetScu (every instance back byte for byte), pynetdicom (cancel,
abort mid-retrieve) and DCMTK getscu; failed sub-operations, bad queries, failing handlers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread

from aiodicom import GetScu, QueryRetrieveScp
from aiodicom.dimse import Command, CommandField
from aiodicom.errors import DimseError
from aiodicom.net.client import connect
from aiodicom.services.query import encode_identifier
from aiodicom.services.serve_common import QueryContext
from tests.dataset.samples import split_meta
from tests.interop.peers import run_dcmtk
from tests.interop.studies import Instance, QrData
from tests.services.serving import Catalog


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **handlers: Any) -> AsyncIterator[QueryRetrieveScp]:
    scp = QueryRetrieveScp(port=0, host="127.0.0.1", out_dir=tmp_path / "in", archive=False, **handlers)
    async with scp:
        yield scp


def body(data: bytes) -> bytes:
    return data[split_meta(data)[1] :]


def received(root: Path, inst: Instance) -> Path:
    return root / inst.study_instance_uid / inst.series_instance_uid / f"{inst.sop_instance_uid}.dcm"


async def test_get_brings_every_instance_back_byte_for_byte(tmp_path: Path, qr_data: QrData) -> None:
    catalog = Catalog(qr_data)
    async with serving(tmp_path, on_find=catalog.matches, on_get=lambda q, c: catalog.paths(q)) as scp:
        out = tmp_path / "got"
        scu = GetScu(f"QR-SCP@127.0.0.1:{scp.port}", out_dir=out)
        events: list[Any] = []
        result = await scu.get_study({"PatientID": "QR-PAT-1"}, on_sub_operation=events.append)
    study = qr_data.a
    assert result.status == 0 and result.completed == len(study.instances) and result.failed == 0
    for inst in study.instances:
        assert body(received(out, inst).read_bytes()) == body(inst.path.read_bytes()), inst.source
    assert events[-1].remaining == 0  # a list: its length was the total


async def test_instances_as_bytes_datasets_and_a_generator(tmp_path: Path, qr_data: QrData) -> None:
    a, b, c = qr_data.b.instances

    async def handler(query: Dataset, context: QueryContext) -> AsyncIterator[Any]:
        yield a.path.read_bytes()
        yield dcmread(b.path)
        yield str(c.path)

    async with serving(tmp_path, on_get=handler) as scp:
        out = tmp_path / "got"
        scu = GetScu(f"127.0.0.1:{scp.port}", out_dir=out, sop_classes=[a.sop_class_uid])
        result = await scu.get_study({"StudyInstanceUID": qr_data.b.study_instance_uid})
    assert result.completed == 3 and result.status == 0
    assert body(received(out, a).read_bytes()) == body(a.path.read_bytes())
    assert body(received(out, c).read_bytes()) == body(c.path.read_bytes())
    assert dcmread(received(out, b)) == dcmread(b.path)


async def test_failed_sub_operations_are_counted_and_listed(tmp_path: Path, qr_data: QrData) -> None:
    ct = qr_data.b.instances[0]
    mr = next(i for i in qr_data.a.instances if i.modality == "MR")
    missing = tmp_path / "gone.dcm"

    def handler(query: Dataset, context: QueryContext) -> list[Any]:
        if query.StudyInstanceUID == "9.9":
            return [missing, mr.path]  # nothing gets through: 0xA702
        return [ct.path, missing, mr.path]  # an unreadable file, a class without the SCP role

    async with serving(tmp_path, on_get=handler) as scp:
        scu = GetScu(f"127.0.0.1:{scp.port}", out_dir=tmp_path / "got", sop_classes=[ct.sop_class_uid])
        result = await scu.get_study({"StudyInstanceUID": "1.2.3"})
        assert (result.completed, result.failed, result.status) == (1, 2, 0xB000)
        assert result.failed_sop_instance_uids == [mr.sop_instance_uid]
        none = await scu.get_study({"StudyInstanceUID": "9.9"})
        assert (none.completed, none.failed, none.status) == (0, 2, 0xA702)


async def test_bad_query_and_failing_handler(tmp_path: Path, qr_data: QrData) -> None:
    def handler(query: Dataset, context: QueryContext) -> Any:
        raise RuntimeError("broken index")

    async with serving(tmp_path, on_get=handler) as scp:
        scu = GetScu(
            f"127.0.0.1:{scp.port}", out_dir=tmp_path / "got", sop_classes=["1.2.840.10008.5.1.4.1.1.2"]
        )
        with pytest.raises(DimseError) as failed:
            await scu.get_study({"StudyInstanceUID": "1.2.3"})
        assert failed.value.status == 0xC000
        level = await _raw_get(scp.port, {"QueryRetrieveLevel": "PATIENT", "PatientID": "X"})
        assert level.status == 0xA900 and "PATIENT" in (level.error_comment or "")
        below = await _raw_get(scp.port, {"QueryRetrieveLevel": "STUDY", "SOPInstanceUID": "1.2"})
        assert below.status == 0xA900


async def _raw_get(port: int, query: dict[str, Any]) -> Command:
    sop_class = "1.2.840.10008.5.1.4.1.2.2.3"
    async with connect(f"127.0.0.1:{port}", contexts=[sop_class]) as assoc:
        ctx = assoc.context_for(sop_class)
        identifier = encode_identifier(query, ctx.transfer_syntax)
        await assoc.send(ctx.context_id, Command.c_get_rq(3, sop_class), identifier)
        message = await assoc.receive_response(3, CommandField.C_GET_RSP, 10)
        return message.command


# ----------------------------------------------------------------------------------- pynetdicom, DCMTK


def _pynetdicom_get(port: int, study: str, *, cancel_after: int = 0, abort_after: int = 0) -> list[int]:
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        CTImageStorage,
        StudyRootQueryRetrieveInformationModelGet,
    )

    stored: list[int] = []

    def on_store(event: Any) -> int:
        stored.append(1)
        return 0

    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="QR-SCP",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", study
    statuses = []
    try:
        for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet, msg_id=5):
            statuses.append(int(status.Status))
            if abort_after and len(statuses) == abort_after:
                assoc.abort()
                return statuses
            if cancel_after and len(statuses) == cancel_after:
                assoc.send_c_cancel(5, query_model=StudyRootQueryRetrieveInformationModelGet)
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


@pytest.mark.interop
async def test_pynetdicom_get_cancel_and_abort(tmp_path: Path, qr_data: QrData) -> None:
    ct = qr_data.b.instances[0]
    closed: list[str] = []

    async def many(query: Dataset, context: QueryContext) -> AsyncIterator[Any]:
        try:
            for _ in range(200):
                yield ct.path
        finally:
            closed.append(query.StudyInstanceUID)

    async with serving(tmp_path, on_get=many) as scp:
        statuses = await asyncio.to_thread(_pynetdicom_get, scp.port, "1.1", cancel_after=2)
        assert statuses[-1] == 0xFE00 and len(statuses) < 50
        statuses = await asyncio.to_thread(_pynetdicom_get, scp.port, "2.2", abort_after=3)
        async with asyncio.timeout(10):
            while "2.2" not in closed:
                await asyncio.sleep(0.02)
        assert closed == ["1.1", "2.2"]
        while scp.associations:  # the aborted association is gone
            await asyncio.sleep(0.02)
        scp.on_get(lambda q, c: [ct.path])
        assert await asyncio.to_thread(_pynetdicom_get, scp.port, "3.3") == [0xFF00, 0x0000]


@pytest.mark.interop
async def test_dcmtk_getscu(tmp_path: Path, qr_data: QrData) -> None:
    catalog = Catalog(qr_data)
    out = tmp_path / "dcmtk"
    out.mkdir()
    async with serving(tmp_path, on_get=lambda q, c: catalog.paths(q)) as scp:
        proc = await asyncio.to_thread(
            run_dcmtk,
            "getscu", "-S", "-aec", "QR-SCP", "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={qr_data.b.study_instance_uid}", "127.0.0.1", str(scp.port),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    files = sorted(out.iterdir())
    assert len(files) == 3
    got = {dcmread(f).SOPInstanceUID: f for f in files}
    for inst in qr_data.b.instances:
        assert dcmread(got[inst.sop_instance_uid]) == dcmread(inst.path)
