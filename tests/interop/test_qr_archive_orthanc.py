"""The built-in archive (aiodicom qrscp) as a modality of Orthanc 1.10: queries, retrieves, worklist."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pydicom
import pytest
from pydicom import Dataset

from tests.interop.archive_checks import (
    assert_same_dataset,
    stored_path,
)
from tests.interop.pacs import HOST, Pacs, WorklistScp, start_aiodicom_qr, start_orthanc
from tests.interop.peers import free_port
from tests.interop.studies import QrData

pytestmark = pytest.mark.interop


# --------------------------------------------------------------------------------------------- Orthanc


def rest(http_port: int, method: str, path: str, payload: Any = None) -> Any:
    """One call to Orthanc's REST API; the JSON answer (bytes when it is not JSON)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"http://{HOST}:{http_port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"Orthanc {method} {path}: HTTP {exc.code} {exc.read().decode()}") from None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class OrthancPeer:
    """Orthanc 1.10 whose ``DicomModalities`` are our archive (``archive``, holding qr_data, Orthanc in its
    --remote-ae table), DCMTK wlmscpfs (``wlmscpfs``) and ``aiodicom qrscp --worklist`` (``aiodicom-wl``)."""

    def __init__(self, orthanc: Pacs, archive: Pacs) -> None:
        self.orthanc, self.archive = orthanc, archive
        assert orthanc.http_port is not None
        self.http_port = orthanc.http_port

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        return rest(self.http_port, method, path, payload)

    def query(self, level: str, query: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """``/modalities/archive/query``: the query's id and its answers (simplified tags)."""
        made = self.call("POST", "/modalities/archive/query", {"Level": level, "Query": query})
        query_id = made["ID"]
        answers = []
        for index in self.call("GET", f"/queries/{query_id}/answers"):
            answers.append(self.call("GET", f"/queries/{query_id}/answers/{index}/content?simplify"))
        return query_id, answers

    def instances(self) -> dict[str, Dataset]:
        """Every instance Orthanc holds, downloaded (``/instances/{id}/file``), by SOP Instance UID."""
        held: dict[str, Dataset] = {}
        for orthanc_id in self.call("GET", "/instances"):
            ds = pydicom.dcmread(io.BytesIO(self.call("GET", f"/instances/{orthanc_id}/file")))
            held[str(ds.SOPInstanceUID)] = ds
        return held


@pytest.fixture(scope="module")
def orthanc_peer(
    tmp_path_factory: pytest.TempPathFactory,
    qr_data: QrData,
    worklist_scp: WorklistScp,
    aiodicom_worklist_scp: WorklistScp,
) -> Iterator[OrthancPeer]:
    root = tmp_path_factory.mktemp("orthanc-archive")
    orthanc_port = free_port()  # known before Orthanc starts: the archive's --remote-ae names it
    with start_aiodicom_qr(
        root / "archive", qr_data, f"--remote-ae=ORTHANC@{HOST}:{orthanc_port}"
    ) as archive:
        modalities = {
            "archive": (archive.ae_title, HOST, archive.dicom_port),
            "wlmscpfs": (worklist_scp.ae_title, HOST, worklist_scp.port),
            "aiodicom-wl": (aiodicom_worklist_scp.ae_title, HOST, aiodicom_worklist_scp.port),
        }
        with start_orthanc(root / "orthanc", None, modalities, dicom_port=orthanc_port) as orthanc:
            yield OrthancPeer(orthanc, archive)


def test_orthanc_queries_the_archive_and_retrieves_a_study(
    orthanc_peer: OrthancPeer, qr_data: QrData
) -> None:
    """Study level by PatientID: one answer with the study's keys and computed ModalitiesInStudy; its
    retrieve (a C-MOVE to Orthanc's own AE, synchronous) brings every instance of A, in every syntax, into
    Orthanc equal element by element to what was stored."""
    study = qr_data.a
    held = orthanc_peer.instances()
    assert not set(held) & {i.sop_instance_uid for i in study.instances}
    query_id, answers = orthanc_peer.query(
        "Study",
        {
            "PatientID": study.patient_id,
            "StudyInstanceUID": "",
            "StudyDate": "",
            "ModalitiesInStudy": "",
            "NumberOfStudyRelatedInstances": "",
            "PatientName": "",
        },
    )
    assert len(answers) == 1
    answer = answers[0]
    assert answer["StudyInstanceUID"] == study.study_instance_uid and answer["PatientID"] == study.patient_id
    assert answer["PatientName"] == study.patient_name and answer["StudyDate"] == study.study_date
    assert set(answer["ModalitiesInStudy"].split("\\")) == study.modalities
    assert answer["NumberOfStudyRelatedInstances"] == str(len(study.instances))
    assert answer["QueryRetrieveLevel"] == "STUDY" and answer["RetrieveAETitle"] == "AIODICOM-QR"
    job = orthanc_peer.call(
        "POST", f"/queries/{query_id}/retrieve", {"TargetAet": "ORTHANC", "Synchronous": True}
    )
    assert job["RemoteAet"] == "AIODICOM-QR" and job["LocalAet"] == "ORTHANC"
    held = orthanc_peer.instances()
    for inst in study.instances:
        assert inst.sop_instance_uid in held, inst.source
        assert_same_dataset(held[inst.sop_instance_uid], inst, stored_path(orthanc_peer.archive, inst))


def test_orthanc_series_instance_and_patient_queries_and_a_series_retrieve(
    orthanc_peer: OrthancPeer, qr_data: QrData
) -> None:
    """Series level: Orthanc 1.10 adds an empty PatientID and AccessionNumber (study keys) to every SERIES
    and IMAGE query, which the archive answers (it refused them with 0xA900 before); Modality is matched;
    instance and patient (patient root) levels; the retrieve of one series answer brings that series."""
    a, b = qr_data.a, qr_data.b
    _, answers = orthanc_peer.query(
        "Series",
        {
            "StudyInstanceUID": a.study_instance_uid,
            "Modality": "MR",
            "SeriesInstanceUID": "",
            "SeriesNumber": "",
            "SeriesDescription": "",
            "NumberOfSeriesRelatedInstances": "",
        },
    )
    mr = {s.series_instance_uid: s for s in a.series if s.modality == "MR"}
    assert {x["SeriesInstanceUID"] for x in answers} == set(mr) and len(answers) == len(mr)
    for answer in answers:
        series = mr[answer["SeriesInstanceUID"]]
        assert answer["SeriesNumber"] == str(series.series_number)
        assert answer["SeriesDescription"] == series.description
        assert answer["NumberOfSeriesRelatedInstances"] == str(len(series.instances))
        assert (answer["PatientID"], answer["AccessionNumber"]) == (a.patient_id, a.accession_number)
    query_id, answers = orthanc_peer.query(
        "Series", {"StudyInstanceUID": b.study_instance_uid, "Modality": "CT"}
    )
    assert [x["SeriesInstanceUID"] for x in answers] == [b.series[0].series_instance_uid]
    _, images = orthanc_peer.query(
        "Instance",
        {"SeriesInstanceUID": b.series[0].series_instance_uid, "SOPInstanceUID": "", "InstanceNumber": ""},
    )  # Orthanc adds an empty PatientID and AccessionNumber
    assert sorted((x["SOPInstanceUID"], x["InstanceNumber"]) for x in images) == sorted(
        (i.sop_instance_uid, str(i.instance_number)) for i in b.instances
    )
    _, patients = orthanc_peer.query("Patient", {"PatientID": "QR-PAT-*", "PatientName": ""})  # patient root
    assert sorted((x["PatientID"], x["PatientName"]) for x in patients) == sorted(
        (s.patient_id, s.patient_name) for s in qr_data.studies
    )
    assert not set(orthanc_peer.instances()) & {i.sop_instance_uid for i in b.instances}
    orthanc_peer.call(
        "POST", f"/queries/{query_id}/answers/0/retrieve", {"TargetAet": "ORTHANC", "Synchronous": True}
    )
    held = orthanc_peer.instances()
    for inst in b.instances:
        assert_same_dataset(held[inst.sop_instance_uid], inst, stored_path(orthanc_peer.archive, inst))
    assert not set(held) - {i.sop_instance_uid for s in qr_data.studies for i in s.instances}


# The queries of tests/scu/test_find.py::test_modality_worklist and
# tests/interop/test_fixtures.py::test_worklist, as Orthanc's find-worklist bodies, and the PatientIDs found.
_SPS_ALL = {"Modality": "", "ScheduledStationAETitle": "", "ScheduledProcedureStepStartDate": ""}
_ITEM = {"PatientName": "", "PatientID": "", "AccessionNumber": ""}
_MR_ON_16 = {"ScheduledStationAETitle": "MR-SCANNER", "ScheduledProcedureStepStartDate": "20240116-20240116"}
WORKLIST_QUERIES: tuple[tuple[dict[str, Any], set[str]], ...] = (
    ({**_ITEM, "ScheduledProcedureStepSequence": [_SPS_ALL]}, {"QR-PAT-1", "QR-PAT-2", "QR-PAT-3"}),
    ({**_ITEM, "ScheduledProcedureStepSequence": [{**_SPS_ALL, "Modality": "CT"}]}, {"QR-PAT-1", "QR-PAT-3"}),
    (
        {
            **_ITEM,
            "ScheduledProcedureStepSequence": [{**_SPS_ALL, "ScheduledProcedureStepStartDate": "20240116"}],
        },
        {"QR-PAT-2", "QR-PAT-3"},
    ),
    ({"PatientID": "", "ScheduledProcedureStepSequence": [_MR_ON_16]}, {"QR-PAT-2"}),
)


def test_orthanc_find_worklist_same_answers_as_wlmscpfs(
    orthanc_peer: OrthancPeer, worklist_scp: WorklistScp
) -> None:
    """``/modalities/{id}/find-worklist`` (Orthanc 1.10 takes the query itself as the body) gets the same
    answers from ``aiodicom qrscp --worklist`` as from wlmscpfs over the same .wl files (aiodicom also
    returns the items' SpecificCharacterSet, which wlmscpfs leaves out), and the expected items."""
    items = {i.patient_id: i for i in worklist_scp.items}
    for query, expected in WORKLIST_QUERIES:
        answers = {}
        for modality in ("wlmscpfs", "aiodicom-wl"):
            found = orthanc_peer.call("POST", f"/modalities/{modality}/find-worklist", query)
            for item in found:
                item.pop("SpecificCharacterSet", None)
            answers[modality] = sorted(found, key=lambda item: item["PatientID"])
        assert answers["aiodicom-wl"] == answers["wlmscpfs"], query
        assert {item["PatientID"] for item in answers["aiodicom-wl"]} == expected, query
        for item in answers["aiodicom-wl"]:
            wanted = items[item["PatientID"]]
            step = item["ScheduledProcedureStepSequence"][0]
            assert step["ScheduledStationAETitle"] == wanted.station_ae_title
            if "Modality" in step:
                assert (
                    step["Modality"] == wanted.modality and item["AccessionNumber"] == wanted.accession_number
                )
