"""The query/retrieve fixtures serve what they claim, checked with DCMTK's findscu, getscu and movescu."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.interop.pacs import HOST, Pacs, WorklistScp
from tests.interop.peers import DCMTK_ENV, Peer, require_tool
from tests.interop.studies import QrData, build_large_study

pytestmark = pytest.mark.interop

CT, MR, SC = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.7"


def _run(
    tool: str, *args: str, timeout: float = 30.0, ok: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [require_tool(tool), *args],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode in ok, f"{tool} failed ({result.returncode}): {result.stdout}{result.stderr}"
    return result


def _find(ae: str, port: int, keys: list[str], out: Path, model: str = "-S") -> list[Dataset]:
    """findscu with ``-k`` keys; the responses' identifiers (``-X``), in order."""
    out.mkdir(parents=True, exist_ok=True)
    args = [model, "-X", "-od", str(out), "-aet", "FIND-SCU", "-aec", ae, HOST, str(port)]
    for key in keys:
        args += ["-k", key]
    _run("findscu", *args)
    return [dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def _received(directory: Path) -> dict[str, str]:
    """SOPInstanceUID -> transfer syntax of every file received into ``directory``."""
    received = {}
    for path in directory.iterdir():
        if path.is_file():
            ds = dcmread(path, stop_before_pixels=True)
            received[str(ds.SOPInstanceUID)] = str(ds.file_meta.TransferSyntaxUID)
    return received


def test_qr_data_files_keep_their_syntax(qr_data: QrData) -> None:
    assert len(qr_data.instances(qr_data.a.study_instance_uid)) == 11
    assert len(qr_data.series(qr_data.a.study_instance_uid)) == 8
    assert len(qr_data.instances(qr_data.b.study_instance_uid)) == 3
    assert len(qr_data.a.transfer_syntaxes) == 8
    assert qr_data.a.modalities == {"CT", "MR", "OT"}
    assert qr_data.a.sop_classes == {CT, MR, SC}
    assert len({i.sop_instance_uid for i in qr_data.all_instances()}) == 14
    for inst in qr_data.all_instances():
        ds = dcmread(inst.path)
        assert ds.file_meta.TransferSyntaxUID == inst.transfer_syntax_uid
        assert (ds.PatientID, ds.StudyInstanceUID) == (inst.patient_id, inst.study_instance_uid)
        assert (ds.SeriesInstanceUID, ds.SOPInstanceUID) == (inst.series_instance_uid, inst.sop_instance_uid)
    dump = _run("dcmdump", "-q", "-s", "+P", "0002,0010", *map(str, qr_data.paths))
    assert dump.stdout.count("(0002,0010)") == 14


def test_build_large_study(tmp_path: Path) -> None:
    study = build_large_study(tmp_path, count=50, series=5)
    assert [len(s.instances) for s in study.series] == [10] * 5
    assert len({i.sop_instance_uid for i in study.instances}) == 50
    last = dcmread(study.instances[-1].path)
    assert (last.SOPInstanceUID, last.SeriesInstanceUID) == (
        study.instances[-1].sop_instance_uid,
        study.series[-1].series_instance_uid,
    )
    assert last.PatientID == "QR-PAT-L"


def test_pacs_holds_everything(qr_pacs: Pacs) -> None:
    assert {i.sop_instance_uid for i in qr_pacs.stored} == {
        i.sop_instance_uid for i in qr_pacs.data.all_instances()
    }
    assert qr_pacs.notes == {}
    assert set(qr_pacs.dest_ports) == {"MOVE-SCU", "AIODICOM-RCV", "STORESCP"}


def test_find_study_level_matching(qr_pacs: Pacs, tmp_path: Path) -> None:
    a, b = qr_pacs.data.a, qr_pacs.data.b
    ae, port = qr_pacs.ae_title, qr_pacs.dicom_port
    level = "QueryRetrieveLevel=STUDY"
    found = _find(
        ae, port, [level, "StudyInstanceUID=", "PatientID=QR-PAT-1", "PatientName="], tmp_path / "1"
    )
    assert [(str(r.StudyInstanceUID), str(r.PatientName)) for r in found] == [
        (a.study_instance_uid, "QR^Alpha")
    ]
    found = _find(ae, port, [level, "StudyInstanceUID=", "PatientName=QR*"], tmp_path / "2")
    assert {r.StudyInstanceUID for r in found} == {a.study_instance_uid, b.study_instance_uid}
    found = _find(ae, port, [level, "StudyInstanceUID=", "StudyDate=20240301-"], tmp_path / "3")
    assert [r.StudyInstanceUID for r in found] == [b.study_instance_uid]
    found = _find(ae, port, [level, "StudyInstanceUID=", "AccessionNumber=ACC-A"], tmp_path / "4")
    assert [r.StudyInstanceUID for r in found] == [a.study_instance_uid]


def test_find_series_and_image_levels(qr_pacs: Pacs, tmp_path: Path) -> None:
    a = qr_pacs.data.a
    ae, port = qr_pacs.ae_title, qr_pacs.dicom_port
    keys = ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={a.study_instance_uid}", "SeriesInstanceUID="]
    found = _find(ae, port, [*keys, "Modality=", "SeriesNumber="], tmp_path / "series")
    assert {(r.SeriesInstanceUID, r.Modality, int(r.SeriesNumber)) for r in found} == {
        (s.series_instance_uid, s.modality, s.series_number) for s in a.series
    }
    ct = a.series[0]
    keys = ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={a.study_instance_uid}"]
    keys += [f"SeriesInstanceUID={ct.series_instance_uid}", "SOPInstanceUID=", "InstanceNumber="]
    found = _find(ae, port, keys, tmp_path / "image")
    assert {(r.SOPInstanceUID, int(r.InstanceNumber)) for r in found} == {
        (i.sop_instance_uid, i.instance_number) for i in ct.instances
    }


def test_orthanc_computes_study_attributes(orthanc_qr: Pacs, tmp_path: Path) -> None:
    a = orthanc_qr.data.a
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={a.study_instance_uid}", "ModalitiesInStudy="]
    keys += ["SOPClassesInStudy=", "NumberOfStudyRelatedSeries=", "NumberOfStudyRelatedInstances="]
    (found,) = _find(orthanc_qr.ae_title, orthanc_qr.dicom_port, keys, tmp_path / "study")
    assert set(found.ModalitiesInStudy) == a.modalities
    assert set(found.SOPClassesInStudy) == a.sop_classes
    assert (int(found.NumberOfStudyRelatedSeries), int(found.NumberOfStudyRelatedInstances)) == (8, 11)
    keys = ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={a.study_instance_uid}", "SeriesInstanceUID="]
    keys += ["SOPInstanceUID=", "SOPClassUID=", "Rows="]
    found_images = _find(orthanc_qr.ae_title, orthanc_qr.dicom_port, keys, tmp_path / "image")
    assert {(r.SOPInstanceUID, r.SOPClassUID) for r in found_images} == {
        (i.sop_instance_uid, i.sop_class_uid) for i in a.instances
    }
    assert all(int(r.Rows) > 0 for r in found_images)  # read from the stored files (StorageAccessOnFind)


def test_dcmqrscp_omits_unindexed_attributes(dcmqrscp_qr: Pacs, tmp_path: Path) -> None:
    a = dcmqrscp_qr.data.a
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={a.study_instance_uid}", "ModalitiesInStudy="]
    keys += ["SOPClassesInStudy=", "NumberOfStudyRelatedInstances=", "StudyDescription="]
    (found,) = _find(dcmqrscp_qr.ae_title, dcmqrscp_qr.dicom_port, keys, tmp_path / "study")
    assert found.StudyDescription == "QR multi-syntax"
    for keyword in ("ModalitiesInStudy", "SOPClassesInStudy", "NumberOfStudyRelatedInstances"):
        assert keyword not in found
    keys = ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={a.study_instance_uid}", "SeriesInstanceUID="]
    keys += ["SOPInstanceUID=", "SOPClassUID="]
    found_images = _find(dcmqrscp_qr.ae_title, dcmqrscp_qr.dicom_port, keys, tmp_path / "image")
    assert {r.SOPInstanceUID for r in found_images} == {i.sop_instance_uid for i in a.instances}
    assert all("SOPClassUID" not in r for r in found_images)


def test_get_series(qr_pacs: Pacs, tmp_path: Path) -> None:
    series = qr_pacs.data.b.series[0]
    out = tmp_path / "got"
    out.mkdir()
    args = ["-S", "-aet", "GET-SCU", "-aec", qr_pacs.ae_title, "-od", str(out)]
    args += ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={series.study_instance_uid}"]
    args += ["-k", f"SeriesInstanceUID={series.series_instance_uid}", HOST, str(qr_pacs.dicom_port)]
    _run("getscu", *args)
    assert _received(out) == {i.sop_instance_uid: i.transfer_syntax_uid for i in series.instances}


def test_move_study_to_the_moving_scu(qr_pacs: Pacs, tmp_path: Path) -> None:
    study = qr_pacs.data.b
    out = tmp_path / "moved"
    out.mkdir()
    args = ["-S", "-aet", "MOVE-SCU", "-aem", "MOVE-SCU", "+P", str(qr_pacs.dest_ports["MOVE-SCU"]), "+xa"]
    args += ["-od", str(out), "-aec", qr_pacs.ae_title, "-k", "QueryRetrieveLevel=STUDY"]
    args += ["-k", f"StudyInstanceUID={study.study_instance_uid}", HOST, str(qr_pacs.dicom_port)]
    _run("movescu", *args)
    assert _received(out) == {i.sop_instance_uid: i.transfer_syntax_uid for i in study.instances}


def test_move_every_syntax_to_storescp(
    qr_pacs: Pacs, qr_storescp: Callable[..., Peer], tmp_path: Path
) -> None:
    study = qr_pacs.data.a
    receiver = qr_storescp(qr_pacs.dest_ports["STORESCP"])
    args = ["-S", "-aet", "MOVE-SCU", "-aem", "STORESCP", "-aec", qr_pacs.ae_title]
    args += ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study.study_instance_uid}"]
    expected = {i.sop_instance_uid: qr_pacs.retrieved_as(i) for i in study.instances}
    # movescu exits with 68 on a final warning status (failed sub-operations: dcmqrscp's compressed ones).
    complete = all(expected.values())
    _run("movescu", *args, HOST, str(qr_pacs.dicom_port), ok=(0,) if complete else (68,))
    assert _received(receiver.out_dir) == {uid: ts for uid, ts in expected.items() if ts}
    assert complete == qr_pacs.retrieves_as_stored  # Orthanc and aiodicom send every syntax as stored


def test_worklist(worklist_peer: WorklistScp, tmp_path: Path) -> None:
    worklist_scp = worklist_peer
    ae, port = worklist_scp.ae_title, worklist_scp.port
    sps = "ScheduledProcedureStepSequence[0]"
    keys = [
        "PatientName=",
        "PatientID=",
        "AccessionNumber=",
        f"{sps}.Modality=",
        f"{sps}.ScheduledStationAETitle=",
    ]
    keys += [f"{sps}.ScheduledProcedureStepStartDate="]
    found = _find(ae, port, keys, tmp_path / "all", model="-W")
    assert {(r.PatientID, r.AccessionNumber) for r in found} == {
        (i.patient_id, i.accession_number) for i in worklist_scp.items
    }
    keys[3] = f"{sps}.Modality=CT"
    found = _find(ae, port, keys, tmp_path / "ct", model="-W")
    expected = {i.patient_id for i in worklist_scp.items if i.modality == "CT"}
    assert {r.PatientID for r in found} == expected
    assert all(r.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT-SCANNER" for r in found)
    keys[3] = f"{sps}.Modality="
    keys[5] = f"{sps}.ScheduledProcedureStepStartDate=20240116"
    found = _find(ae, port, keys, tmp_path / "date", model="-W")
    assert {r.PatientID for r in found} == {"QR-PAT-2", "QR-PAT-3"}


def test_orthanc_get_transcodes_except_jpeg2000(orthanc_qr: Pacs, tmp_path: Path) -> None:
    """getscu accepts explicit VR LE only: Orthanc decodes JPEG-LS, but cannot decode JPEG 2000 and then
    fails the whole C-GET (status C000, which getscu reports with exit code 0)."""
    by_source = {s.instances[0].source: s for s in orthanc_qr.data.a.series}
    for source, expected in (("MR_small_jpeg_ls_lossless.dcm", 1), ("MR_small_jp2klossless.dcm", 0)):
        series = by_source[source]
        out = tmp_path / source
        out.mkdir()
        args = ["+xe", "-S", "-aet", "GET-SCU", "-aec", orthanc_qr.ae_title, "-od", str(out)]
        args += ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={series.study_instance_uid}"]
        args += ["-k", f"SeriesInstanceUID={series.series_instance_uid}", HOST, str(orthanc_qr.dicom_port)]
        result = _run("getscu", *args)
        assert set(_received(out).values()) == ({"1.2.840.10008.1.2.1"} if expected else set())
        assert ("UnableToProcess" in result.stdout + result.stderr) == (not expected)
