"""C-FIND served from handlers: aiodicom's FindScu, pynetdicom and DCMTK findscu as requestors; cancel,
bad identifiers, failing handlers; the server goes on serving after each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset

from aiodicom import FindScu, QueryBuilder, QueryRetrieveScp
from aiodicom.dimse import Command, CommandField
from aiodicom.errors import DimseError, QueryRejected
from aiodicom.net.client import connect
from aiodicom.services.serve_common import QueryContext
from tests.interop.peers import run_dcmtk
from tests.interop.studies import QrData
from tests.services.serving import Catalog

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **handlers: Any) -> AsyncIterator[QueryRetrieveScp]:
    scp = QueryRetrieveScp(port=0, host="127.0.0.1", out_dir=tmp_path / "in", archive=False, **handlers)
    async with scp:
        yield scp


async def test_find_matches_come_back_with_level_retrieve_ae_and_context(
    tmp_path: Path, qr_data: QrData
) -> None:
    catalog = Catalog(qr_data)
    async with serving(tmp_path, on_find=catalog.matches) as scp:
        scu = FindScu(f"QR-SCP@127.0.0.1:{scp.port}", calling_ae_title="FINDER")
        result = await scu.find(QueryBuilder.study().patient_id("QR-PAT-1").returning("PatientName"))
        assert result.status == 0
        assert [m["StudyInstanceUID"] for m in result.matches] == [qr_data.a.study_instance_uid]
        match = result.matches[0]
        assert match["QueryRetrieveLevel"] == "STUDY"
        assert match["RetrieveAETitle"] == "QR-SCP"
        assert match["PatientName"] == "QR^Alpha"
        series = await scu.find(QueryBuilder.series().study_instance_uid(qr_data.a.study_instance_uid))
        assert {m["SeriesInstanceUID"] for m in series.matches} == {
            s.series_instance_uid for s in qr_data.a.series
        }
        patients = await scu.find(QueryBuilder.patient().patient_id("QR-PAT-2"), "patient_root")
        assert [m["PatientID"] for m in patients.matches] == ["QR-PAT-2"]
    first, _, third = catalog.calls
    assert first.calling_ae_title == "FINDER" and first.called_ae_title == "QR-SCP"
    assert first.sop_class_uid == STUDY_FIND and first.level == "STUDY" and first.ae_title == "QR-SCP"
    assert first.peer_host == "127.0.0.1" and first.move_destination is None
    assert third.sop_class_uid == PATIENT_FIND and third.level == "PATIENT"


async def test_every_kind_of_handler_is_read(tmp_path: Path) -> None:
    def one(uid: str) -> dict[str, str]:
        return {"PatientID": "P", "StudyInstanceUID": uid}

    async def async_gen(query: Dataset, context: QueryContext) -> AsyncIterator[dict[str, str]]:
        yield one("1.1")
        await asyncio.sleep(0)
        yield one("1.2")

    def plain_gen(query: Dataset, context: QueryContext) -> Any:
        yield one("2.1")

    async def returns_list(query: Dataset, context: QueryContext) -> list[Any]:
        ds = Dataset()
        ds.PatientID, ds.StudyInstanceUID = "P", "3.1"
        return [ds, (one("3.2"), 0xFF01)]

    for handler, expected in (
        (async_gen, ["1.1", "1.2"]),
        (plain_gen, ["2.1"]),
        (returns_list, ["3.1", "3.2"]),
        (lambda q, c: [], []),
    ):
        async with serving(tmp_path, on_find=handler) as scp:
            result = await FindScu(f"127.0.0.1:{scp.port}").find(QueryBuilder.study())
            assert [m["StudyInstanceUID"] for m in result.matches] == expected
            assert result.status == 0


async def test_non_ascii_match_goes_out_as_utf8(tmp_path: Path) -> None:
    def handler(query: Dataset, context: QueryContext) -> list[Dataset]:
        ds = Dataset()
        ds.PatientName, ds.StudyInstanceUID = "Müller^Jürgen", "1.2.3"
        return [ds]

    async with serving(tmp_path, on_find=handler) as scp:
        result = await FindScu(f"127.0.0.1:{scp.port}").find(QueryBuilder.study(), as_dataset=True)
    (match,) = result.matches
    assert isinstance(match, Dataset)
    assert match.SpecificCharacterSet == "ISO_IR 192" and str(match.PatientName) == "Müller^Jürgen"


async def test_cancel_closes_the_generator_and_answers_fe00(tmp_path: Path) -> None:
    closed = asyncio.Event()
    produced = 0

    async def endless(query: Dataset, context: QueryContext) -> AsyncIterator[dict[str, str]]:
        nonlocal produced
        try:
            while produced < 10_000:
                produced += 1
                yield {"StudyInstanceUID": f"1.2.{produced}"}
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    async with serving(tmp_path, on_find=endless) as scp:
        scu = FindScu(f"127.0.0.1:{scp.port}")
        result = await scu.find(QueryBuilder.study(), limit=3)
        assert result.cancelled and result.status == 0xFE00
        assert len(result.matches) >= 3
        await asyncio.wait_for(closed.wait(), 10)
        assert produced < 10_000
        again = await FindScu(f"127.0.0.1:{scp.port}").find(QueryBuilder.study(), limit=1)
        assert again.status == 0xFE00  # still serving


async def _raw_find(port: int, identifier: bytes, sop_class: str = STUDY_FIND) -> Command:
    implicit = "1.2.840.10008.1.2"
    async with connect(f"127.0.0.1:{port}", contexts=[(sop_class, [implicit])]) as assoc:
        ctx = assoc.context_for(sop_class)
        await assoc.send(ctx.context_id, Command.c_find_rq(7, sop_class), identifier)
        while True:
            message = await assoc.receive_response(7, CommandField.C_FIND_RSP, 10)
            if message.command.status not in (0xFF00, 0xFF01):
                return message.command


async def test_bad_queries_get_their_status_and_the_server_goes_on(tmp_path: Path, qr_data: QrData) -> None:
    catalog = Catalog(qr_data)
    async with serving(tmp_path, on_find=catalog.matches) as scp:
        scu = FindScu(f"127.0.0.1:{scp.port}")
        with pytest.raises(DimseError) as unknown:
            await scu.find({"QueryRetrieveLevel": "PATIENT", "PatientID": ""})  # study root has no PATIENT
        assert unknown.value.status == 0xA900
        # a key beneath the level is ignored, as dcmqrscp and Orthanc do: the handler never sees it
        below = await scu.find({"QueryRetrieveLevel": "STUDY", "PatientID": "QR-PAT-2", "Modality": "MR"})
        assert [m["PatientID"] for m in below.matches] == ["QR-PAT-2"]
        assert "Modality" not in catalog.queries.pop() and catalog.calls.pop()
        missing = await _raw_find(scp.port, b"\x10\x00\x20\x00\x02\x00\x00\x00P1")  # no level
        assert missing.status == 0xA900 and missing.error_comment
        broken = await _raw_find(scp.port, b"\x08\x00\x52\x00\xff\xff\x00\x00STUDY")  # runs past the end
        assert broken.status == 0xC000 and "identifier" in (broken.error_comment or "")
        assert catalog.calls == []  # none of these reached the handler
        ok = await scu.find(QueryBuilder.study().patient_id("QR-PAT-2"))
        assert [m["PatientID"] for m in ok.matches] == ["QR-PAT-2"]


async def test_handler_failures_are_answered_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(query: Dataset, context: QueryContext) -> AsyncIterator[dict[str, str]]:
        yield {"StudyInstanceUID": "1.2.3"}
        if query.get("PatientID") == "REJECT":
            raise QueryRejected(0xA700, "out of resources")
        raise RuntimeError("the index is gone " + "x" * 100)

    async with serving(tmp_path, on_find=failing) as scp:
        rejected = await _raw_find(
            scp.port, _identifier({"QueryRetrieveLevel": "STUDY", "PatientID": "REJECT"})
        )
        assert rejected.status == 0xA700 and rejected.error_comment == "out of resources"
        failed = await _raw_find(scp.port, _identifier({"QueryRetrieveLevel": "STUDY"}))
        assert failed.status == 0xC000
        assert failed.error_comment and len(failed.error_comment) <= 64
        assert failed.error_comment.startswith("RuntimeError: the index is gone")
    assert "the handler failed" in caplog.text


def _identifier(query: dict[str, Any]) -> bytes:
    from aiodicom.services.query import encode_identifier

    return encode_identifier(query, "1.2.840.10008.1.2")


async def test_no_handler_no_context_and_worklist_separate(tmp_path: Path) -> None:
    async with serving(tmp_path) as scp:  # nothing registered: query classes are not accepted
        with pytest.raises(Exception, match="accepted none"):
            await FindScu(f"127.0.0.1:{scp.port}").find(QueryBuilder.study())
        scp.on_worklist(lambda query, context: [{"PatientID": "W1", "ScheduledProcedureStepSequence": [{}]}])
        items = await FindScu(f"127.0.0.1:{scp.port}").find(QueryBuilder.modality_worklist())
        assert [m["PatientID"] for m in items.matches] == ["W1"]
        assert "QueryRetrieveLevel" not in items.matches[0]


# ----------------------------------------------------------------------------------- other requestors


@pytest.mark.interop
async def test_pynetdicom_find_and_cancel(tmp_path: Path, qr_data: QrData) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]

    catalog = Catalog(qr_data)

    async def slow(query: Dataset, context: QueryContext) -> AsyncIterator[dict[str, str]]:
        for i in range(1000):
            yield {"StudyInstanceUID": f"1.2.{i}", "PatientID": "P"}
            await asyncio.sleep(0.002)

    def client(port: int, cancel: bool) -> list[int]:
        ae = AE(ae_title="PYNETDICOM")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = ae.associate("127.0.0.1", port, ae_title="QR-SCP")
        assert assoc.is_established
        query = Dataset()
        query.QueryRetrieveLevel, query.PatientID, query.StudyInstanceUID = "STUDY", "QR-PAT-1", ""
        statuses = []
        try:
            for index, (status, _identifier) in enumerate(
                assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind, msg_id=9)
            ):
                statuses.append(int(status.Status))
                if cancel and index == 2:
                    assoc.send_c_cancel(9, query_model=StudyRootQueryRetrieveInformationModelFind)
        finally:
            assoc.release()
        return statuses

    async with serving(tmp_path, on_find=catalog.matches) as scp:
        statuses = await asyncio.to_thread(client, scp.port, False)
        assert statuses == [0xFF00, 0x0000]
        scp.on_find(slow)
        statuses = await asyncio.to_thread(client, scp.port, True)
        assert statuses[-1] == 0xFE00 and len(statuses) < 100


@pytest.mark.interop
async def test_dcmtk_findscu(tmp_path: Path, qr_data: QrData) -> None:
    catalog = Catalog(qr_data)
    async with serving(tmp_path, on_find=catalog.matches) as scp:
        proc = await asyncio.to_thread(
            run_dcmtk,
            "findscu", "-S", "-aec", "QR-SCP", "-k", "QueryRetrieveLevel=SERIES",
            "-k", f"StudyInstanceUID={qr_data.b.study_instance_uid}", "-k", "SeriesInstanceUID",
            "-k", "Modality", "127.0.0.1", str(scp.port),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert qr_data.b.series[0].series_instance_uid in output
    assert output.count("Find Response:") == 1 and "CT" in output
