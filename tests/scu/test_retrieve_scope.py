"""C-GET and C-MOVE bring what the query matches and nothing else, against Orthanc and dcmqrscp loaded with
two patients (A: QR^Alpha, QR-PAT-1, ACC-A, 20240115, CT/MR/OT; B: QR^Beta, QR-PAT-2, ACC-B, 20240320, CT).

The survey resolves the query into UIDs at the level where each key lives; the C-GET/C-MOVE identifiers
carry only unique keys; a query that matches nothing sends no retrieve at all. A recording proxy in front of
the PACS shows which associations a retrieve opened.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from aiodicom import GetScu, MoveScu
from aiodicom.scu.get import RETRIEVE_TRANSFER_SYNTAXES
from aiodicom.services.survey import UnmatchableKey
from tests.interop.pacs import Pacs
from tests.interop.proxy import FIND, GET, MOVE, RecordingProxy
from tests.interop.studies import Instance, QrData
from tests.scu.test_get import received_path

pytestmark = pytest.mark.interop

Select = Callable[[QrData], tuple[Instance, ...]]


def _modality(modality: str, patient: str | None = None) -> Select:
    def select(data: QrData) -> tuple[Instance, ...]:
        return tuple(
            i
            for i in data.all_instances()
            if data.series_by_uid(i.series_instance_uid).modality == modality
            and (patient is None or i.patient_id == patient)
        )

    return select


#: query -> the instances it matches
CASES: dict[str, tuple[dict[str, str], Select]] = {
    "patient name": ({"PatientName": "QR^Beta"}, lambda d: d.b.instances),
    "patient name of A": ({"PatientName": "QR^Alpha"}, lambda d: d.a.instances),
    "patient name wildcard": ({"PatientName": "QR^Be*"}, lambda d: d.b.instances),
    "accession number": ({"AccessionNumber": "ACC-B"}, lambda d: d.b.instances),
    "study date range": ({"StudyDate": "20240101-20240201"}, lambda d: d.a.instances),
    "open study date range": ({"StudyDate": "20240301-"}, lambda d: d.b.instances),
    "modality": ({"Modality": "MR"}, _modality("MR")),
    "modality wildcard": ({"Modality": "O?"}, _modality("OT")),
    "modality of one patient": ({"PatientID": "QR-PAT-1", "Modality": "CT"}, _modality("CT", "QR-PAT-1")),
    "modalities in study": ({"ModalitiesInStudy": "CT", "AccessionNumber": "ACC-B"}, lambda d: d.b.instances),
}

NO_MATCH = {
    "patient name": {"PatientName": "QR^Nobody"},
    "study date": {"StudyDate": "19000101"},
    "modality": {"Modality": "XA"},
    "keys of two patients": {"PatientName": "QR^Alpha", "AccessionNumber": "ACC-B"},
}


def stored(root: Path) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in root.rglob("*.dcm")}


@pytest.mark.parametrize("case", CASES)
async def test_get_brings_only_what_the_query_matches(
    qr_pacs: Pacs, qr_data: QrData, tmp_path: Path, case: str
) -> None:
    """Found: ``aiodicom get PACS -k PatientName=...`` stored instances of other patients (dcmqrscp: the
    second chance asked for every instance of the PACS) or failed (Orthanc answered 0xC000)."""
    query, select = CASES[case]
    expected = select(qr_data)
    async with RecordingProxy(qr_pacs.dicom_port) as proxy:
        scu = GetScu(f"{qr_pacs.ae_title}@127.0.0.1:{proxy.port}", out_dir=tmp_path)
        result = await scu.get_study(query)
    assert stored(tmp_path) == {i.sop_instance_uid for i in expected}
    assert sorted(result.files) == sorted(str(received_path(tmp_path, i)) for i in expected)
    assert (result.completed, result.failed, result.warning) == (len(expected), 0, 0), result
    assert result.total == len(expected) and result.failed_sop_instance_uids == []
    assert result.matched and not result.cancelled
    assert proxy.associations(*FIND) == 1  # the whole survey on one association
    # at most one association per transfer syntax: the first C-GET, then one per turn of the second chance
    assert 1 <= proxy.associations(*GET) <= len(RETRIEVE_TRANSFER_SYNTAXES)
    failed_first = {i.sop_instance_uid for i in expected if qr_pacs.retrieved_as(i) is None}
    if not failed_first:  # nothing failed: no second chance
        assert proxy.associations(*GET) == 1
    # the second chance names only instances of this retrieve that failed at first (in its C-GET
    # identifiers, and in the C-STORE responses of what then arrives)
    gets = [data for data in proxy.sent if any(uid in bytes(data[:4096]) for uid in GET)]
    for data in gets[1:]:
        named = {i.sop_instance_uid for i in qr_data.all_instances() if i.sop_instance_uid.encode() in data}
        assert named and named <= failed_first


async def test_what_cannot_come_is_listed_for_this_retrieve_only(
    dcmqrscp_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    """Offered uncompressed syntaxes only, dcmqrscp can never send the compressed MR instances: they are
    the failures, and nothing else is (not the other patient's, not the other series')."""
    mr = _modality("MR")(qr_data)
    cannot = sorted(i.sop_instance_uid for i in mr if dcmqrscp_qr.retrieved_as(i) is None)
    async with RecordingProxy(dcmqrscp_qr.dicom_port) as proxy:
        scu = GetScu(
            f"DCMQRSCP@127.0.0.1:{proxy.port}",
            out_dir=tmp_path,
            transfer_syntaxes=RETRIEVE_TRANSFER_SYNTAXES[:4],
        )
        result = await scu.get_study({"PatientName": "QR^Alpha", "Modality": "MR"})
    assert stored(tmp_path) == {i.sop_instance_uid for i in mr} - set(cannot)
    assert result.failed_sop_instance_uids == cannot and len(cannot) == 3
    assert (result.completed, result.failed) == (len(mr) - len(cannot), len(cannot))
    assert result.status == 0xB000
    assert proxy.associations(*GET) == 4  # the C-GET, then one turn per other syntax


@pytest.mark.parametrize("case", ["patient name", "accession number", "study date range", "modality"])
async def test_move_brings_only_what_the_query_matches(
    qr_pacs: Pacs, qr_data: QrData, tmp_path: Path, case: str
) -> None:
    query, select = CASES[case]
    expected = select(qr_data)
    arrive = {i.sop_instance_uid for i in expected if qr_pacs.retrieved_as(i) is not None}
    receive = {"port": qr_pacs.dest_ports["MOVE-SCU"], "host": "127.0.0.1", "out_dir": tmp_path}
    result = await MoveScu(qr_pacs.address).move_study(query, "MOVE-SCU", receive=receive)
    assert stored(tmp_path) == arrive
    assert len(result.files) == len(arrive)
    # dcmqrscp fails the instances it cannot convert (a C-MOVE has no second chance)
    assert (result.completed, result.failed) == (len(arrive), len(expected) - len(arrive)), result
    assert result.matched


async def test_patient_root_by_patient_name(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    """Patient keys are matched at the PATIENT level of the patient root; the retrieve names the patient."""
    scu = GetScu(qr_pacs.address, out_dir=tmp_path, query_model="patient_root")
    result = await scu.get_study({"QueryRetrieveLevel": "PATIENT", "PatientName": "QR^Beta"})
    assert stored(tmp_path) == {i.sop_instance_uid for i in qr_data.b.instances}
    assert result.completed == len(qr_data.b.instances) and result.failed == 0
    moved = await MoveScu(qr_pacs.address, query_model="patient_root").move_study(
        {"AccessionNumber": "ACC-B"},
        "MOVE-SCU",
        receive={"port": qr_pacs.dest_ports["MOVE-SCU"], "host": "127.0.0.1", "out_dir": tmp_path / "m"},
    )
    assert stored(tmp_path / "m") == {i.sop_instance_uid for i in qr_data.b.instances}
    assert moved.completed == len(qr_data.b.instances)


@pytest.mark.parametrize("case", NO_MATCH)
async def test_a_query_that_matches_nothing_sends_no_retrieve(
    qr_pacs: Pacs, tmp_path: Path, case: str
) -> None:
    completed: list[Any] = []
    async with RecordingProxy(qr_pacs.dicom_port) as proxy:
        address = f"{qr_pacs.ae_title}@127.0.0.1:{proxy.port}"
        got = await GetScu(address, out_dir=tmp_path / "get").get_study(
            NO_MATCH[case], on_completed=completed.append
        )
        moved = await MoveScu(address).move_study(
            NO_MATCH[case],
            "MOVE-SCU",
            receive={
                "port": qr_pacs.dest_ports["MOVE-SCU"],
                "host": "127.0.0.1",
                "out_dir": tmp_path / "move",
            },
        )
    for result in (got, moved):
        assert not result.matched and "nothing matches" in result.message
        assert (result.total, result.completed, result.failed, result.files) == (0, 0, 0, [])
    assert not completed[0].matched and "no retrieve was sent" in completed[0].message
    assert proxy.associations(*FIND) == 2  # the two surveys, and nothing else
    assert proxy.associations(*GET) == proxy.associations(*MOVE) == 0
    assert len(proxy.sent) == 2
    assert not list(tmp_path.rglob("*.dcm"))


async def test_a_retrieve_without_any_key_is_refused(orthanc_qr: Pacs, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one key"):
        await GetScu(orthanc_qr.address, out_dir=tmp_path).get_study({"StudyInstanceUID": ""})
    with pytest.raises(ValueError, match="at least one key"):
        await MoveScu(orthanc_qr.address).move_study({"PatientName": "*"}, "MOVE-SCU")


async def test_a_key_the_pacs_does_not_match_on_is_not_ignored(
    qr_pacs: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    """dcmqrscp ignores SeriesDescription (it answers every series, without the attribute): retrieving would
    bring series the query does not ask for, so the retrieve fails, naming the key, and asks for nothing.
    Orthanc matches on it."""
    query = {"PatientName": "QR^Alpha", "SeriesDescription": "MR*"}
    async with RecordingProxy(qr_pacs.dicom_port) as proxy:
        scu = GetScu(f"{qr_pacs.ae_title}@127.0.0.1:{proxy.port}", out_dir=tmp_path)
        if qr_pacs.name == "dcmqrscp":
            with pytest.raises(UnmatchableKey, match="SeriesDescription"):
                await scu.get_study(query)
            assert proxy.associations(*GET) == 0 and not list(tmp_path.rglob("*.dcm"))
            return
        result = await scu.get_study(query)
    assert stored(tmp_path) == {i.sop_instance_uid for i in _modality("MR")(qr_data)}
    assert result.completed == 6
