"""FindScu against Orthanc, dcmqrscp and wlmscpfs on loopback."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from aiodicom import AssociationRejected, FindCompleted, FindScu, NoAcceptableContext, QueryBuilder
from tests.interop.pacs import Pacs, WorklistScp
from tests.interop.studies import QrData

pytestmark = pytest.mark.interop


async def test_study_level_by_patient_id_returns_the_study(qr_pacs: Pacs, qr_data: QrData) -> None:
    study = qr_data.a
    query = QueryBuilder.study().patient_id(study.patient_id).include_all_return_attributes()
    result = await FindScu(qr_pacs.address).find(query)
    assert [m["StudyInstanceUID"] for m in result.matches] == [study.study_instance_uid]
    match = result.matches[0]
    assert match["PatientName"] == study.patient_name
    assert match["StudyDate"] == study.study_date
    assert match["AccessionNumber"] == study.accession_number
    assert result.status == 0 and not result.cancelled


async def test_wildcards_and_date_ranges(qr_pacs: Pacs, qr_data: QrData) -> None:
    scu = FindScu(qr_pacs.address)

    async def studies(builder: QueryBuilder) -> set[str]:
        return {m["StudyInstanceUID"] for m in (await scu.find(builder)).matches}

    a, b = qr_data.a.study_instance_uid, qr_data.b.study_instance_uid
    assert await studies(QueryBuilder.study().patient_name("QR^*")) >= {a, b}
    assert await studies(QueryBuilder.study().patient_name("QR^Be*")) == {b}
    assert await studies(QueryBuilder.study().patient_id("QR-PAT-?")) >= {a, b}
    assert await studies(QueryBuilder.study().study_date_range("20240101", "20240131")) == {a}
    assert await studies(QueryBuilder.study().study_date_range("20240301", None)) == {b}
    assert await studies(QueryBuilder.study().study_date_range(None, "20231231")) == set()


async def test_series_and_image_levels(qr_pacs: Pacs, qr_data: QrData) -> None:
    study = qr_data.a
    scu = FindScu(qr_pacs.address)
    series = await scu.find(
        QueryBuilder.series()
        .study_instance_uid(study.study_instance_uid)
        .returning("Modality", "SeriesNumber")
    )
    assert {m["SeriesInstanceUID"] for m in series.matches} == {s.series_instance_uid for s in study.series}
    first = study.series[0]
    images = await scu.find(
        QueryBuilder.image()
        .study_instance_uid(study.study_instance_uid)
        .series_instance_uid(first.series_instance_uid)
        .returning("SOPInstanceUID", "InstanceNumber")
    )
    assert {m["SOPInstanceUID"] for m in images.matches} == {i.sop_instance_uid for i in first.instances}


async def test_patient_root(qr_pacs: Pacs, qr_data: QrData) -> None:
    study = qr_data.b
    scu = FindScu(qr_pacs.address)
    patients = await scu.find(QueryBuilder.patient().patient_id(study.patient_id).returning("PatientName"))
    assert [m["PatientName"] for m in patients.matches] == [study.patient_name]
    query = {"QueryRetrieveLevel": "STUDY", "PatientID": study.patient_id, "StudyInstanceUID": ""}
    studies = await scu.find(query, "patient_root")
    assert [m["StudyInstanceUID"] for m in studies.matches] == [study.study_instance_uid]


async def test_as_dataset_and_callbacks(orthanc_qr: Pacs, qr_data: QrData) -> None:
    seen: list[Any] = []
    done: list[FindCompleted] = []

    async def on_result(match: Any) -> None:
        seen.append(match)

    result = await FindScu(orthanc_qr.address).find(
        QueryBuilder.study().patient_id(qr_data.a.patient_id).returning("PatientName"),
        as_dataset=True,
        on_result=on_result,
        on_completed=done.append,
    )
    assert seen == result.matches
    assert str(seen[0].PatientName) == qr_data.a.patient_name
    assert done and done[0].total == 1 and done[0].status == 0


@pytest.mark.parametrize("how", ["break", "limit"])
async def test_cancel_after_n_results_then_the_association_ends_cleanly(
    qr_pacs: Pacs, qr_data: QrData, how: str
) -> None:
    """Stopping early sends C-CANCEL and reads on to the final response; the next query still works."""
    scu = FindScu(qr_pacs.address)
    total = len(qr_data.a.series)
    query = QueryBuilder.series().study_instance_uid(qr_data.a.study_instance_uid)
    done: list[FindCompleted] = []
    got: list[Any] = []
    if how == "break":
        async with contextlib.aclosing(scu.find(query, on_completed=done.append)) as matches:
            async for match in matches:
                got.append(match)
                if len(got) == 2:
                    break
    else:
        got = (await scu.find(query, limit=2, on_completed=done.append)).matches
    assert len(got) == 2 < total
    assert done and done[0].cancelled
    assert done[0].status in (0x0000, 0xFE00)  # the peer may have finished before the cancel arrived
    again = await scu.find(query)
    assert len(again.matches) == len(qr_data.a.series)


async def test_modality_worklist(worklist_peer: WorklistScp) -> None:
    worklist_scp = worklist_peer
    scu = FindScu(worklist_scp.address)
    query = QueryBuilder.modality_worklist().modality("CT").include_all_return_attributes()
    result = await scu.find(query)
    expected = {item.patient_id for item in worklist_scp.items if item.modality == "CT"}
    assert {m["PatientID"] for m in result.matches} == expected
    step = result.matches[0]["ScheduledProcedureStepSequence"][0]
    assert step["Modality"] == "CT" and step["ScheduledStationAETitle"] == "CT-SCANNER"
    by_station = await scu.find(
        QueryBuilder.modality_worklist()
        .scheduled_station_ae_title("MR-SCANNER")
        .scheduled_date_range("20240116", "20240116")
        .returning("PatientID")
    )
    assert [m["PatientID"] for m in by_station.matches] == ["QR-PAT-2"]


async def test_a_missing_level_is_a_clear_error(orthanc_qr: Pacs) -> None:
    with pytest.raises(ValueError, match="QueryRetrieveLevel"):
        FindScu(orthanc_qr.address).find({"PatientID": "1"})


async def test_a_refused_model_raises(worklist_scp: WorklistScp) -> None:
    """wlmscpfs does not do study root: it rejects the association (no context it could accept)."""
    with pytest.raises((AssociationRejected, NoAcceptableContext)):
        await FindScu(worklist_scp.address).find(QueryBuilder.study())
