"""The ``aiodicom find``, ``aiodicom get`` and ``aiodicom move`` commands through the real entry point (a
subprocess), against Orthanc and DCMTK dcmqrscp on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from tests.interop.pacs import Pacs
from tests.interop.studies import Instance, QrData

pytestmark = pytest.mark.interop

#: Every command gets this long at most (the peers are on loopback: a healthy run takes a second or two).
TIMEOUT = 90.0


def run(*args: str, timeout: float = TIMEOUT, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m aiodicom ARGS``, output captured (``columns``: the terminal width rich assumes)."""
    env = dict(os.environ)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "aiodicom", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line of stderr of a failed command (asserting there is exactly one)."""
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert proc.stderr.startswith("aiodicom: "), proc.stderr
    return proc.stderr.strip()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_json(pacs: Pacs, *args: str) -> list[dict[str, Any]]:
    proc = run("find", pacs.address, "--calling-ae", "FIND-SCU", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    matches = json.loads(proc.stdout)
    assert isinstance(matches, list)
    return matches


#: Data set trailing padding: the source files (from pydicom's CT_small.dcm) end with it, and both PACS drop
#: it when they send an instance (a DCMTK storescp receives those files without it too); it carries no data.
TRAILING_PADDING = 0xFFFCFFFC


def assert_same_dataset(received: Path, source: Path) -> None:
    """The received file holds the source file's data set, element by element (file meta and trailing
    padding aside)."""
    got, want = dcmread(received), dcmread(source)
    for ds in (got, want):
        if TRAILING_PADDING in ds:
            del ds[TRAILING_PADDING]
    assert str(got.SOPInstanceUID) == str(want.SOPInstanceUID)
    got_tags = [elem.tag for elem in got]
    want_tags = [elem.tag for elem in want]
    assert got_tags == want_tags, f"{received}: tags differ from {source}"
    for elem in want:
        assert got[elem.tag] == elem, f"{received}: {elem.tag} {elem.keyword} differs"
    assert got == want


def assert_layout(out_dir: Path, instances: tuple[Instance, ...]) -> None:
    """Every instance is stored as out_dir/StudyInstanceUID/SeriesInstanceUID/SOPInstanceUID.dcm, equal to
    its source file, and nothing else is stored."""
    expected = {
        out_dir / i.study_instance_uid / i.series_instance_uid / f"{i.sop_instance_uid}.dcm": i
        for i in instances
    }
    stored = {p for p in out_dir.rglob("*") if p.is_file()}
    assert stored == set(expected), sorted(str(p.relative_to(out_dir)) for p in stored)
    for path, instance in expected.items():
        assert_same_dataset(path, instance.path)


# ---------------------------------------------------------------------------------------------- find


def test_find_json_study_by_patient_id(qr_pacs: Pacs, qr_data: QrData) -> None:
    study = qr_data.a
    matches = find_json(qr_pacs, "-k", f"PatientID={study.patient_id}", "--level", "STUDY")
    assert [m["StudyInstanceUID"] for m in matches] == [study.study_instance_uid]
    assert matches[0]["PatientID"] == study.patient_id
    assert matches[0]["QueryRetrieveLevel"] == "STUDY"


def test_find_table_prints_the_patient_name(qr_pacs: Pacs, qr_data: QrData) -> None:
    study = qr_data.a
    proc = run(
        "find",
        qr_pacs.address,
        "-k",
        f"PatientID={study.patient_id}",
        "-k",
        "PatientName=",
        "--level",
        "STUDY",
        columns=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert study.patient_name in proc.stdout
    assert "1 matches" in proc.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(proc.stdout)


def test_find_empty_key_is_returned(qr_pacs: Pacs, qr_data: QrData) -> None:
    study = qr_data.b
    matches = find_json(qr_pacs, "-k", f"PatientID={study.patient_id}", "-k", "StudyDate=")
    assert len(matches) == 1
    assert matches[0]["StudyDate"] == study.study_date
    assert matches[0]["StudyInstanceUID"] == study.study_instance_uid


def test_find_bare_key_is_returned(qr_pacs: Pacs, qr_data: QrData) -> None:
    study = qr_data.b
    matches = find_json(qr_pacs, "-k", f"PatientID={study.patient_id}", "-k", "AccessionNumber")
    assert [m["AccessionNumber"] for m in matches] == [study.accession_number]


def test_find_patient_root_patient_level(qr_pacs: Pacs, qr_data: QrData) -> None:
    study = qr_data.a
    matches = find_json(
        qr_pacs,
        "--model",
        "patient_root",
        "--level",
        "PATIENT",
        "-k",
        f"PatientID={study.patient_id}",
        "-k",
        "PatientName=",
    )
    assert len(matches) == 1
    assert matches[0]["PatientID"] == study.patient_id
    assert matches[0]["PatientName"] == study.patient_name
    assert matches[0]["QueryRetrieveLevel"] == "PATIENT"


def test_find_limit_one(qr_pacs: Pacs, qr_data: QrData) -> None:
    both = find_json(qr_pacs, "-k", "PatientID=QR-PAT-*")
    assert {m["StudyInstanceUID"] for m in both} >= {
        qr_data.a.study_instance_uid,
        qr_data.b.study_instance_uid,
    }
    limited = find_json(qr_pacs, "-k", "PatientID=QR-PAT-*", "--limit", "1")
    assert len(limited) == 1
    assert limited[0]["StudyInstanceUID"] in {m["StudyInstanceUID"] for m in both}


def test_find_unreachable_exits_3_with_one_line() -> None:
    proc = run("find", f"127.0.0.1:{closed_port()}", "-k", "PatientID=QR-PAT-1", "--timeout", "5")
    assert proc.returncode == 3
    assert "refused" in one_line(proc)
    assert proc.stdout == ""


# ----------------------------------------------------------------------------------------------- get


def test_get_study_b_to_out_dir(orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    study = qr_data.b
    out_dir = tmp_path / "got"
    proc = run(
        "get",
        orthanc_qr.address,
        "--calling-ae",
        "GET-SCU",
        "-k",
        f"StudyInstanceUID={study.study_instance_uid}",
        "--out-dir",
        str(out_dir),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["completed"] == 3 and payload["total"] == 3
    assert payload["failed"] == 0 and payload["warning"] == 0 and payload["status"] == 0
    assert payload["failed_sop_instance_uids"] == [] and payload["forward_failed"] == []
    assert sorted(Path(f).resolve() for f in payload["files"]) == sorted(
        (out_dir / study.study_instance_uid / i.series_instance_uid / f"{i.sop_instance_uid}.dcm").resolve()
        for i in study.instances
    )
    assert_layout(out_dir, study.instances)


def test_get_table_summary(orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    study = qr_data.b
    out_dir = tmp_path / "got"
    proc = run(
        "get",
        orthanc_qr.address,
        "-k",
        f"StudyInstanceUID={study.study_instance_uid}",
        "--out-dir",
        str(out_dir),
        "--no-fsync",
        columns=200,
    )
    assert proc.returncode == 0, proc.stderr
    assert "C-GET" in proc.stdout and "0x0000" in proc.stdout
    assert_layout(out_dir, study.instances)


def test_get_unreachable_exits_3_with_one_line(tmp_path: Path) -> None:
    proc = run(
        "get",
        f"127.0.0.1:{closed_port()}",
        "-k",
        "StudyInstanceUID=1.2.3",
        "--out-dir",
        str(tmp_path / "got"),
        "--timeout",
        "5",
    )
    assert proc.returncode == 3
    assert "refused" in one_line(proc)


# ---------------------------------------------------------------------------------------------- move


def move_args(pacs: Pacs, study_uid: str, out_dir: Path, dest: str = "AIODICOM-RCV") -> list[str]:
    return [
        "move",
        pacs.address,
        "--calling-ae",
        "MOVE-SCU",
        "--dest",
        dest,
        "--receive-port",
        str(pacs.dest_ports["AIODICOM-RCV"]),
        "--receive-host",
        "127.0.0.1",
        "--out-dir",
        str(out_dir),
        "-k",
        f"StudyInstanceUID={study_uid}",
        "--json",
    ]


def test_move_study_b_to_the_built_in_receiver(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    study = qr_data.b
    out_dir = tmp_path / "moved"
    proc = run(*move_args(qr_pacs, study.study_instance_uid, out_dir))
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["completed"] == 3 and payload["failed"] == 0 and payload["status"] == 0
    assert len(payload["files"]) == 3
    assert {Path(f).resolve() for f in payload["files"]} == {
        p.resolve() for p in out_dir.rglob("*") if p.is_file()
    }
    assert_layout(out_dir, study.instances)


def test_move_unknown_destination_exits_1_with_one_line(
    qr_pacs: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    # dcmqrscp answers 0xA801 (move destination unknown), Orthanc 0xC000 (failure): both must exit 1.
    out_dir = tmp_path / "moved"
    proc = run(*move_args(qr_pacs, qr_data.b.study_instance_uid, out_dir, dest="NOBODY"))
    assert proc.returncode == 1, proc.stderr
    assert "NOBODY" in one_line(proc)
    assert proc.stdout == ""
    assert not any(p.is_file() for p in out_dir.rglob("*"))


def test_move_unreachable_exits_3_with_one_line(tmp_path: Path) -> None:
    proc = run(
        "move",
        f"127.0.0.1:{closed_port()}",
        "--dest",
        "AIODICOM-RCV",
        "-k",
        "StudyInstanceUID=1.2.3",
        "--timeout",
        "5",
    )
    assert proc.returncode == 3
    assert "refused" in one_line(proc)
