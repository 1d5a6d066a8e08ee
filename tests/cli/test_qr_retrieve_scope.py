"""``aiodicom get`` and ``aiodicom move`` with matching keys, through the real entry point (a subprocess):
they bring the matching patient's instances only, and a query that matches nothing exits 4 with one line.

Found: ``aiodicom get PACS -k PatientName=CompressedSamples^MR1`` stored 20 instances of other patients and
reported them completed (here: dcmqrscp's second chance asked for every instance of the PACS, and Orthanc
refused the C-GET with 0xC000).
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from tests.cli.test_qr import one_line, run
from tests.interop.pacs import Pacs
from tests.interop.studies import QrData

pytestmark = pytest.mark.interop


def stored(root: Path) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in root.rglob("*.dcm")}


def test_get_by_patient_name(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    """Patient A on dcmqrscp has compressed instances that fail at first: the second chance runs, and
    still brings nothing of patient B."""
    out_dir = tmp_path / "got"
    proc = run("get", qr_pacs.address, "-k", "PatientName=QR^Alpha", "--out-dir", str(out_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    expected = {i.sop_instance_uid for i in qr_data.a.instances}
    assert stored(out_dir) == expected
    assert (payload["completed"], payload["failed"], payload["total"]) == (len(expected), 0, len(expected))
    assert payload["matched"] is True and payload["cancelled"] is False
    assert payload["failed_sop_instance_uids"] == [] and len(payload["files"]) == len(expected)


def test_move_by_patient_name(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    out_dir = tmp_path / "moved"
    proc = run(
        "move",
        qr_pacs.address,
        "--dest",
        "AIODICOM-RCV",
        "--receive-port",
        str(qr_pacs.dest_ports["AIODICOM-RCV"]),
        "--receive-host",
        "127.0.0.1",
        "--out-dir",
        str(out_dir),
        "-k",
        "PatientName=QR^Beta",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert stored(out_dir) == {i.sop_instance_uid for i in qr_data.b.instances}
    assert payload["completed"] == len(qr_data.b.instances) and payload["failed"] == 0


def test_a_query_that_matches_nothing_exits_4(orthanc_qr: Pacs, tmp_path: Path) -> None:
    out_dir = tmp_path / "got"
    proc = run("get", orthanc_qr.address, "-k", "PatientName=QR^Nobody", "--out-dir", str(out_dir))
    assert proc.returncode == 4, proc.stderr  # documented: nothing matched, nothing sent
    assert "nothing matches the query: no C-GET was sent" in one_line(proc)
    assert proc.stdout == "" and not list(tmp_path.rglob("*.dcm"))
    proc = run(
        "move", orthanc_qr.address, "--dest", "STORESCP", "-k", "AccessionNumber=NONE", "--json", timeout=60
    )
    assert proc.returncode == 4
    assert "no C-MOVE was sent" in one_line(proc)
    assert json.loads(proc.stdout)["matched"] is False
