"""The built-in archive (``aiodicom qrscp``) against independent clients: Orthanc 1.10 querying and retrieving
from it as one of its modalities (and asking it for worklist items), pynetdicom as C-FIND/C-GET/C-MOVE SCU,
bad input (the right status, the server goes on, the index unchanged), and the index kept across restarts.

Read-only tests use the session archive ``aiodicom_qr``; those that store or restart start their own
(``start_aiodicom_qr(tmp_path / ...)``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset

from aiodicom import FindScu, QueryBuilder, StoreScp, StoreScu
from aiodicom.archive import INDEX_NAME
from aiodicom.dimse import Command, CommandField
from aiodicom.net.client import connect
from aiodicom.services.query import encode_identifier
from tests.interop.archive_checks import (
    assert_still_serving,
    body,
    raw_find,
    stored_path,
    study_uids,
)
from tests.interop.pacs import HOST, Pacs, WorklistScp, start_aiodicom_qr
from tests.interop.studies import Instance, QrData

pytestmark = pytest.mark.interop

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"


# ------------------------------------------------------------------------------------ pynetdicom as SCU


def _ae(*contexts: Any) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title="PYNETDICOM")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for context in contexts:
        if isinstance(context, tuple):
            ae.add_requested_context(*context)
        else:
            ae.add_requested_context(context)
    return ae


def _dataset(keys: dict[str, Any]) -> Dataset:
    query = Dataset()
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


def pn_find(called: tuple[str, int], model: str, keys: dict[str, Any]) -> tuple[list[Dataset], int]:
    """pynetdicom's C-FIND to ``called`` (AE title, port on 127.0.0.1): the matches and the final status."""
    ae, query = _ae(model), _dataset(keys)
    assoc = ae.associate(HOST, called[1], ae_title=called[0])
    assert assoc.is_established
    matches, final = [], -1
    try:
        for status, identifier in assoc.send_c_find(query, model):
            assert status is not None, "no response"
            if int(status.Status) in (0xFF00, 0xFF01):
                matches.append(identifier)
            else:
                final = int(status.Status)
    finally:
        assoc.release()
    return matches, final


def pn_get(
    pacs: Pacs,
    keys: dict[str, Any],
    instances: tuple[Instance, ...],
    *,
    cancel: bool = False,
    abort: bool = False,
) -> tuple[dict[str, bytes], list[Dataset]]:
    """pynetdicom's C-GET (study root), proposing each instance's (SOP class, transfer syntax) with the SCP
    role: the data sets it received (their bytes as sent, by SOP Instance UID) and every C-GET response.
    ``cancel``: C-CANCEL sent while the first sub-operation is being answered; ``abort``: A-ABORT after the
    first pending response."""
    from pynetdicom import build_role, evt

    pairs = sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in instances})
    ae = _ae(STUDY_GET, *((sop, [syntax]) for sop, syntax in pairs))
    received: dict[str, bytes] = {}
    assoc: Any = None

    def on_store(event: Any) -> int:
        if cancel and not received:
            assoc.send_c_cancel(5, query_model=STUDY_GET)  # arrives while this sub-operation is awaited
        received[str(event.request.AffectedSOPInstanceUID)] = event.request.DataSet.getvalue()
        return 0x0000

    roles = [build_role(sop, scp_role=True) for sop in sorted({sop for sop, _ in pairs})]
    handlers = [(evt.EVT_C_STORE, on_store)]
    assoc = ae.associate(HOST, pacs.dicom_port, ae_title=pacs.ae_title, ext_neg=roles, evt_handlers=handlers)
    assert assoc.is_established
    query = _dataset(keys)
    responses = []
    try:
        for status, _ in assoc.send_c_get(query, STUDY_GET, msg_id=5):
            assert status is not None, "no response"
            responses.append(status)
            if abort:
                assoc.abort()
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return received, responses


def pn_move(pacs: Pacs, keys: dict[str, Any], destination: str) -> tuple[list[Dataset], Dataset | None]:
    """pynetdicom's C-MOVE (study root): every response's status, and the final response's identifier (its
    Failed SOP Instance UID List), if any."""
    ae, query = _ae(STUDY_MOVE), _dataset(keys)
    assoc = ae.associate(HOST, pacs.dicom_port, ae_title=pacs.ae_title)
    assert assoc.is_established
    responses, final = [], None
    try:
        for status, identifier in assoc.send_c_move(query, destination, STUDY_MOVE, msg_id=3):
            assert status is not None, "no response"
            responses.append(status)
            final = identifier
    finally:
        assoc.release()
    return responses, final


async def test_pynetdicom_find_patient_and_study_root_at_every_level(
    aiodicom_qr: Pacs, qr_data: QrData
) -> None:
    a, b = qr_data.a, qr_data.b
    pacs = aiodicom_qr

    async def find(model: str, **keys: Any) -> list[Dataset]:
        matches, final = await asyncio.to_thread(pn_find, (pacs.ae_title, pacs.dicom_port), model, keys)
        assert final == 0x0000, keys
        assert all(m.QueryRetrieveLevel == keys["QueryRetrieveLevel"] for m in matches)
        return matches

    patients = await find(PATIENT_FIND, QueryRetrieveLevel="PATIENT", PatientID="", PatientName="QR^*")
    assert sorted((m.PatientID, str(m.PatientName)) for m in patients) == [
        (a.patient_id, a.patient_name),
        (b.patient_id, b.patient_name),
    ]
    studies = await find(
        PATIENT_FIND, QueryRetrieveLevel="STUDY", PatientID=b.patient_id, StudyInstanceUID=""
    )
    assert [m.StudyInstanceUID for m in studies] == [b.study_instance_uid]
    series = await find(
        PATIENT_FIND,
        QueryRetrieveLevel="SERIES",
        PatientID=a.patient_id,
        StudyInstanceUID=a.study_instance_uid,
        SeriesInstanceUID="",
        Modality="",
    )
    assert sorted((m.SeriesInstanceUID, m.Modality) for m in series) == sorted(
        (s.series_instance_uid, s.modality) for s in a.series
    )
    ct = a.series[0]
    images = await find(
        PATIENT_FIND,
        QueryRetrieveLevel="IMAGE",
        PatientID=a.patient_id,
        StudyInstanceUID=a.study_instance_uid,
        SeriesInstanceUID=ct.series_instance_uid,
        SOPInstanceUID="",
        SOPClassUID="",
    )
    assert sorted((m.SOPInstanceUID, m.SOPClassUID) for m in images) == sorted(
        (i.sop_instance_uid, i.sop_class_uid) for i in ct.instances
    )
    january = await find(
        STUDY_FIND,
        QueryRetrieveLevel="STUDY",
        StudyDate="20240101-20240131",
        StudyInstanceUID="",
        ModalitiesInStudy="",
        NumberOfStudyRelatedInstances="",
    )
    assert [m.StudyInstanceUID for m in january] == [a.study_instance_uid]
    assert set(january[0].ModalitiesInStudy) == a.modalities
    assert int(january[0].NumberOfStudyRelatedInstances) == len(a.instances)
    mr = await find(
        STUDY_FIND,
        QueryRetrieveLevel="SERIES",
        StudyInstanceUID=a.study_instance_uid,
        Modality="MR",
        SeriesInstanceUID="",
        NumberOfSeriesRelatedInstances="",
    )
    assert sorted((m.SeriesInstanceUID, int(m.NumberOfSeriesRelatedInstances)) for m in mr) == sorted(
        (s.series_instance_uid, len(s.instances)) for s in a.series if s.modality == "MR"
    )
    listed = [b.instances[0].sop_instance_uid, b.instances[2].sop_instance_uid]
    picked = await find(
        STUDY_FIND,
        QueryRetrieveLevel="IMAGE",
        StudyInstanceUID=b.study_instance_uid,
        SeriesInstanceUID=b.series[0].series_instance_uid,
        SOPInstanceUID=listed,
        InstanceNumber="",
    )
    assert sorted((m.SOPInstanceUID, int(m.InstanceNumber)) for m in picked) == sorted(
        (i.sop_instance_uid, i.instance_number) for i in b.instances if i.sop_instance_uid in listed
    )


async def test_pynetdicom_get_of_series_byte_for_byte(aiodicom_qr: Pacs, qr_data: QrData) -> None:
    """C-GET at SERIES level with pynetdicom as the C-STORE SCP (SCP role granted per SOP class): every
    instance arrives in its stored syntax, its data set byte for byte the stored file's; counts add up."""
    by_source = {s.instances[0].source: s for s in qr_data.a.series}
    for source in ("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "image_dfl.dcm"):
        series = by_source[source]
        keys = {
            "QueryRetrieveLevel": "SERIES",
            "StudyInstanceUID": series.study_instance_uid,
            "SeriesInstanceUID": series.series_instance_uid,
        }
        received, responses = await asyncio.to_thread(pn_get, aiodicom_qr, keys, series.instances)
        final = responses[-1]
        assert int(final.Status) == 0x0000, source
        assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (
            len(series.instances),
            0,
        )
        assert set(received) == {i.sop_instance_uid for i in series.instances}
        for inst in series.instances:
            assert received[inst.sop_instance_uid] == body(stored_path(aiodicom_qr, inst).read_bytes()), (
                source
            )
        # pending responses: one after the first sub-operation, then at most one per 0.1 s; each adds up
        pending = responses[:-1]
        assert int(pending[0].NumberOfRemainingSuboperations) == len(series.instances) - 1
        for r in pending:
            done = r.NumberOfCompletedSuboperations + r.NumberOfFailedSuboperations
            done += r.NumberOfWarningSuboperations
            assert int(r.NumberOfRemainingSuboperations) + done == len(series.instances)


async def test_pynetdicom_move_to_an_aiodicom_receiver(
    aiodicom_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    """C-MOVE of study A (every syntax) to AIODICOM-RCV, an aiodicom StoreScp in the archive's --remote-ae:
    every instance arrives, its data set byte for byte the stored file's."""
    study = qr_data.a
    port = aiodicom_qr.dest_ports["AIODICOM-RCV"]
    async with StoreScp(port, host=HOST, ae_title="AIODICOM-RCV", out_dir=tmp_path / "rcv"):
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study.study_instance_uid}
        responses, _ = await asyncio.to_thread(pn_move, aiodicom_qr, keys, "AIODICOM-RCV")
    final = responses[-1]
    assert int(final.Status) == 0x0000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (
        len(study.instances),
        0,
    )
    for inst in study.instances:
        got = (
            tmp_path
            / "rcv"
            / inst.study_instance_uid
            / inst.series_instance_uid
            / f"{inst.sop_instance_uid}.dcm"
        )
        assert body(got.read_bytes()) == body(stored_path(aiodicom_qr, inst).read_bytes()), inst.source
        assert str(pydicom.dcmread(got, stop_before_pixels=True).file_meta.TransferSyntaxUID) == (
            inst.transfer_syntax_uid
        )


async def test_pynetdicom_cancel_mid_get_of_study_a(aiodicom_qr: Pacs, qr_data: QrData) -> None:
    """A C-CANCEL arriving during the first sub-operation takes effect after it: 0xFE00 with the counts
    (1 completed, the other 10 remaining); the server goes on serving."""
    study = qr_data.a
    keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study.study_instance_uid}
    received, responses = await asyncio.to_thread(pn_get, aiodicom_qr, keys, study.instances, cancel=True)
    final = responses[-1]
    assert int(final.Status) == 0xFE00
    assert len(received) == final.NumberOfCompletedSuboperations == 1
    assert final.NumberOfFailedSuboperations == 0 and final.NumberOfWarningSuboperations == 0
    assert final.NumberOfRemainingSuboperations == len(study.instances) - 1
    await assert_still_serving(aiodicom_qr, qr_data)


async def test_pynetdicom_modality_worklist(worklist_peer: WorklistScp) -> None:
    """pynetdicom's Modality Worklist C-FIND: the same items from wlmscpfs and aiodicom qrscp --worklist."""
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle, step.ScheduledProcedureStepStartDate = "CT", "", ""
    keys = {
        "PatientID": "",
        "PatientName": "",
        "AccessionNumber": "",
        "ScheduledProcedureStepSequence": [step],
    }
    matches, final = await asyncio.to_thread(
        pn_find, (worklist_peer.ae_title, worklist_peer.port), WORKLIST_FIND, keys
    )
    assert final == 0x0000
    expected = sorted((i.patient_id, i.accession_number) for i in worklist_peer.items if i.modality == "CT")
    assert sorted((m.PatientID, m.AccessionNumber) for m in matches) == expected
    assert all(m.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT-SCANNER" for m in matches)


# ---------------------------------------------------------------------------------------------- bad input


async def test_bad_queries_get_their_status_and_the_archive_goes_on(
    aiodicom_qr: Pacs, qr_data: QrData
) -> None:
    before = await study_uids(aiodicom_qr)
    unknown = await raw_find(
        aiodicom_qr, encode_identifier({"QueryRetrieveLevel": "WARD", "PatientID": ""}, "1.2.840.10008.1.2")
    )
    assert unknown.status == 0xA900 and "WARD" in (unknown.error_comment or "")
    patient = await raw_find(
        aiodicom_qr, encode_identifier({"QueryRetrieveLevel": "PATIENT"}, "1.2.840.10008.1.2")
    )
    assert patient.status == 0xA900  # study root has no PATIENT level
    broken = await raw_find(aiodicom_qr, b"\x08\x00\x52\x00\xff\xff\x00\x00STUDY")  # a length past the end
    assert broken.status == 0xC000 and broken.error_comment
    truncated = await raw_find(aiodicom_qr, b"\x08\x00\x52\x00\x06\x00\x00\x00ST")
    assert truncated.status == 0xC000
    assert await study_uids(aiodicom_qr) == before
    await assert_still_serving(aiodicom_qr, qr_data)


async def test_move_to_an_unknown_ae_and_to_one_that_refuses(
    aiodicom_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    study = qr_data.b
    keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study.study_instance_uid}
    responses, _ = await asyncio.to_thread(pn_move, aiodicom_qr, keys, "NOBODY")
    assert [int(r.Status) for r in responses] == [0xA801]
    await assert_still_serving(aiodicom_qr, qr_data)
    # AIODICOM-RCV is in the archive's table, but this one accepts no association from AIODICOM-QR
    port = aiodicom_qr.dest_ports["AIODICOM-RCV"]
    refusing = StoreScp(
        port,
        host=HOST,
        ae_title="AIODICOM-RCV",
        out_dir=tmp_path / "rcv",
        allowed_calling_ae_titles={"SOMEONE"},
    )
    async with refusing:
        responses, identifier = await asyncio.to_thread(pn_move, aiodicom_qr, keys, "AIODICOM-RCV")
    final = responses[-1]
    assert int(final.Status) == 0xA702
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (
        0,
        len(study.instances),
    )
    assert identifier is not None
    failed = identifier.FailedSOPInstanceUIDList
    failed = [failed] if isinstance(failed, str) else list(failed)
    assert sorted(failed) == sorted(i.sop_instance_uid for i in study.instances)
    assert not any((tmp_path / "rcv").rglob("*.dcm"))
    await assert_still_serving(aiodicom_qr, qr_data)


async def test_a_requestor_that_aborts_mid_get(aiodicom_qr: Pacs, qr_data: QrData) -> None:
    study = qr_data.a
    keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study.study_instance_uid}
    received, responses = await asyncio.to_thread(pn_get, aiodicom_qr, keys, study.instances, abort=True)
    assert [int(r.Status) for r in responses] == [0xFF00] and len(received) < len(study.instances)
    await assert_still_serving(aiodicom_qr, qr_data)
    again, responses = await asyncio.to_thread(pn_get, aiodicom_qr, keys, study.instances)
    assert int(responses[-1].Status) == 0x0000 and len(again) == len(study.instances)


# ---------------------------------------------------------------------------------------------- the index


async def image_uids(pacs: Pacs) -> list[str]:
    """Every instance the archive's index answers for, by an IMAGE-level C-FIND on a new association."""
    result = await FindScu(pacs.address).find(
        {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": "", "SeriesInstanceUID": "", "SOPInstanceUID": ""}
    )
    assert result.status == 0x0000
    return sorted(str(m["SOPInstanceUID"]) for m in result.matches)


async def study_answers(pacs: Pacs) -> list[tuple[str, ...]]:
    """The study-level answers, with the keys the index computes."""
    query = (
        QueryBuilder.study()
        .returning("PatientID", "StudyDate", "ModalitiesInStudy", "NumberOfStudyRelatedSeries")
        .returning("NumberOfStudyRelatedInstances")
    )
    result = await FindScu(pacs.address).find(query)
    assert result.status == 0x0000
    return sorted(
        tuple(
            str(m.get(k, ""))
            for k in (
                "StudyInstanceUID",
                "PatientID",
                "StudyDate",
                "ModalitiesInStudy",
                "NumberOfStudyRelatedSeries",
                "NumberOfStudyRelatedInstances",
            )
        )
        for m in result.matches
    )


async def test_the_index_across_stores_restarts_and_files_changed_behind_its_back(
    tmp_path: Path, qr_data: QrData
) -> None:
    """Instances stored into a running archive are found right after their C-STORE-RSP (the storing
    association still open); a restart keeps
    them; a deleted .index.sqlite is rebuilt from the files with the same answers; a file added (and one
    removed) under out_dir while the archive is stopped is found (and gone) after the next start."""
    a, b = qr_data.a, qr_data.b
    workdir = tmp_path / "qr"
    with start_aiodicom_qr(workdir, None) as pacs:
        assert await image_uids(pacs) == []
        stored: list[str] = []
        ct, explicit = b.instances[0].sop_class_uid, b.instances[0].transfer_syntax_uid
        async with connect(pacs.address, contexts=[(ct, [explicit])]) as assoc:
            context_id = assoc.context_for(ct).context_id
            for number, inst in enumerate(b.instances, 1):
                request = Command.c_store_rq(number, ct, inst.sop_instance_uid)
                await assoc.send(context_id, request, body(inst.path.read_bytes()))
                answer = await assoc.receive_response(number, CommandField.C_STORE_RSP, 30)
                assert answer.command.status == 0x0000
                stored.append(inst.sop_instance_uid)
                # found at once, on another association, while this one stays open
                assert await image_uids(pacs) == sorted(stored)
        scu = StoreScu(pacs.address, concurrency=2)
        scu.add_folder(a.paths[0].parent.parent)
        assert (await scu.send()).successful == len(a.instances)
        everything = sorted(i.sop_instance_uid for i in (*a.instances, *b.instances))
        assert await image_uids(pacs) == everything
        answers = await study_answers(pacs)
    assert [row[0] for row in answers] == sorted([a.study_instance_uid, b.study_instance_uid])
    assert {row[0]: row[5] for row in answers} == {
        a.study_instance_uid: str(len(a.instances)),
        b.study_instance_uid: str(len(b.instances)),
    }
    out_dir = workdir / "archive"
    with start_aiodicom_qr(workdir, None) as pacs:  # restarted: the index is kept
        assert await image_uids(pacs) == everything
        assert await study_answers(pacs) == answers
    (out_dir / INDEX_NAME).unlink()
    with start_aiodicom_qr(workdir, None) as pacs:  # no index: rebuilt from the files
        assert (out_dir / INDEX_NAME).exists()
        assert await image_uids(pacs) == everything
        assert await study_answers(pacs) == answers
    # behind its back, while stopped: study B's third instance goes, a new copy of it (new UIDs) comes
    gone = b.instances[2]
    stored_file = (
        out_dir / gone.study_instance_uid / gone.series_instance_uid / f"{gone.sop_instance_uid}.dcm"
    )
    extra = pydicom.dcmread(stored_file)
    stored_file.unlink()
    extra.SOPInstanceUID = extra.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    extra.InstanceNumber = 9
    target = out_dir / gone.study_instance_uid / gone.series_instance_uid / f"{extra.SOPInstanceUID}.dcm"
    extra.save_as(target, enforce_file_format=True)
    with start_aiodicom_qr(workdir, None) as pacs:
        now = await image_uids(pacs)
        assert now == sorted(
            [*(u for u in everything if u != gone.sop_instance_uid), str(extra.SOPInstanceUID)]
        )
        assert await study_answers(pacs) == answers  # the counts are the same: one gone, one come
        found = await FindScu(pacs.address).find(
            {
                "QueryRetrieveLevel": "IMAGE",
                "StudyInstanceUID": b.study_instance_uid,
                "SeriesInstanceUID": b.series[0].series_instance_uid,
                "SOPInstanceUID": str(extra.SOPInstanceUID),
                "InstanceNumber": "",
            }
        )
        assert [m["InstanceNumber"] for m in found.matches] == ["9"]
