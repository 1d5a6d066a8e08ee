"""Transcoding on the retrieving side, against real peers: GetScu's filesystem and S3 backends and MoveScu's
built-in receiver with ``transcode_on_receipt`` (and the CLI's ``get``/``move --transcode``), and the GetScu
forward relay converting for a DCMTK storescp that takes uncompressed syntaxes only.

Orthanc holds study A of tests/interop/studies.py: one series per transfer syntax (Explicit/Implicit VR LE,
Explicit VR BE, Deflated, RLE, JPEG Baseline, JPEG-LS, JPEG 2000) and sends each instance as stored.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from aiodicom import ForwardTarget, GetScu, MoveScu, SubOperation
from aiodicom.dataset import codecs
from aiodicom.storage.s3 import S3Config
from tests.interop.pacs import Pacs
from tests.interop.peers import Peer
from tests.interop.studies import Instance, QrData
from tests.scu.test_get import received_path

pytestmark = pytest.mark.interop

EXPLICIT, JPEG_LS, RLE, J2K = codecs.EXPLICIT, codecs.JPEG_LS_LOSSLESS, codecs.RLE, codecs.J2K
J2K_LOSSLESS = codecs.J2K_LOSSLESS
#: What a plain DCMTK storescp accepts.
UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
LOSSY_SOURCES = (codecs.JPEG_BASELINE,)


def read(data: Path | bytes) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data) if isinstance(data, bytes) else data)


def assert_converted(received: pydicom.Dataset, inst: Instance, syntax: str) -> None:
    """``received`` is ``inst`` in ``syntax``: the same instance, its file meta saying so, and the pixels
    of the source (decoded by pydicom; within 1 for a lossy source)."""
    source = read(inst.path)
    assert received.file_meta.TransferSyntaxUID == syntax, inst.source
    assert received.file_meta.MediaStorageSOPInstanceUID == received.SOPInstanceUID == inst.sop_instance_uid
    assert received.StudyInstanceUID == inst.study_instance_uid and received.PatientID == inst.patient_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = received.pixel_array.astype(np.int64), source.pixel_array.astype(np.int64)
    assert ours.shape == theirs.shape, inst.source
    difference = int(np.abs(ours - theirs).max())
    assert difference <= (1 if inst.transfer_syntax_uid in LOSSY_SOURCES else 0), (
        f"{inst.source}: {difference}"
    )


def leftovers(root: Path) -> list[Path]:
    incoming = root / ".incoming"
    return sorted(incoming.iterdir()) if incoming.exists() else []


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiodicom", *args], capture_output=True, text=True, timeout=120, check=False
    )


# ------------------------------------------------------------------------------ on receipt: C-GET, C-MOVE


async def test_get_stores_every_syntax_as_jpeg_ls(orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    events: list[SubOperation] = []
    scu = GetScu(orthanc_qr.address, out_dir=tmp_path, fsync=False, transcode_on_receipt="JPEGLSLossless")
    result = await scu.get_study(
        {"StudyInstanceUID": qr_data.a.study_instance_uid}, on_sub_operation=events.append
    )
    instances = qr_data.a.instances
    assert len({i.transfer_syntax_uid for i in instances}) == 8
    assert (result.completed, result.failed, result.warning) == (len(instances), 0, 0)
    assert sorted(result.files) == sorted(str(received_path(tmp_path, i)) for i in instances)
    by_uid = {e.sop_instance_uid: e for e in events}
    for inst in instances:
        assert_converted(read(received_path(tmp_path, inst)), inst, JPEG_LS)
        event = by_uid[inst.sop_instance_uid]
        assert event.transfer_syntax == JPEG_LS and event.file == str(received_path(tmp_path, inst))
        expected = inst.transfer_syntax_uid if inst.transfer_syntax_uid != JPEG_LS else None
        assert event.converted_from == expected, inst.source
        assert event.stored_sop_instance_uid is None  # lossless: the same instance
    assert leftovers(tmp_path) == []


@pytest.mark.s3
async def test_get_to_s3_stores_the_converted_objects(
    orthanc_qr: Pacs, qr_data: QrData, moto_endpoint: str, bucket: str, s3: Any, s3_env: None
) -> None:
    series = [s for s in qr_data.a.series if s.transfer_syntax_uid in (RLE, J2K_LOSSLESS, codecs.DEFLATED)]
    assert len(series) == 3
    config = S3Config(bucket, endpoint=moto_endpoint, prefix="got/")
    scu = GetScu(
        orthanc_qr.address,
        storage_backend="s3",
        s3_config=config,
        transcode_on_receipt="ExplicitVRLittleEndian",
    )
    for s in series:
        result = await scu.get_series(
            {"StudyInstanceUID": s.study_instance_uid, "SeriesInstanceUID": s.series_instance_uid}
        )
        assert result.completed == len(s.instances) and result.failed == 0
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    instances = [i for s in series for i in s.instances]
    assert keys == {
        f"got/{i.study_instance_uid}/{i.series_instance_uid}/{i.sop_instance_uid}.dcm" for i in instances
    }
    for inst in instances:
        key = f"got/{inst.study_instance_uid}/{inst.series_instance_uid}/{inst.sop_instance_uid}.dcm"
        assert_converted(read(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), inst, EXPLICIT)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_get_cli_transcode(orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    """``aiodicom get --transcode RLELossless``: the JPEG 2000 and JPEG-LS series stored as RLE."""
    for syntax in (J2K_LOSSLESS, JPEG_LS):
        s = next(s for s in qr_data.a.series if s.transfer_syntax_uid == syntax)
        done = run_cli(
            "get", orthanc_qr.address, "-L", "SERIES", "-k", f"StudyInstanceUID={s.study_instance_uid}",
            "-k", f"SeriesInstanceUID={s.series_instance_uid}", "-o", str(tmp_path), "--no-fsync",
            "--transcode", "RLELossless", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["completed"] == len(s.instances) and summary["failed"] == 0
        for inst in s.instances:
            assert_converted(read(received_path(tmp_path, inst)), inst, RLE)
    assert leftovers(tmp_path) == []


def test_move_cli_transcode(orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    """``aiodicom move --receive-port P --out-dir D --transcode ExplicitVRLittleEndian``: the built-in
    receiver stores the whole multi-syntax study uncompressed."""
    done = run_cli(
        "move", orthanc_qr.address, "--dest", "MOVE-SCU",
        "-k", f"StudyInstanceUID={qr_data.a.study_instance_uid}",
        "--receive-port", str(orthanc_qr.dest_ports["MOVE-SCU"]), "--receive-host", "127.0.0.1",
        "-o", str(tmp_path), "--transcode", "ExplicitVRLittleEndian", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    instances = qr_data.a.instances
    assert summary["completed"] == len(instances) and summary["failed"] == 0
    assert sorted(summary["files"]) == sorted(str(received_path(tmp_path, i)) for i in instances)
    for inst in instances:
        assert_converted(read(received_path(tmp_path, inst)), inst, EXPLICIT)
    assert leftovers(tmp_path) == []


def lossy_receiver(pacs: Pacs, out_dir: Path) -> dict[str, Any]:
    """MoveScu's built-in receiver storing JPEG 2000 (lossy): each instance becomes a new one."""
    return {
        "port": pacs.dest_ports["MOVE-SCU"],
        "host": "127.0.0.1",
        "out_dir": out_dir,
        "fsync": False,
        "transcode_on_receipt": "JPEG2000",
        "allow_lossy": True,
    }


async def test_move_to_a_lossy_receiver_stores_new_instances(
    orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    """Each instance is stored under a new UID, which the result's files and the sub-operation events give
    (with the UID the PACS sent)."""
    study = qr_data.b
    events: list[SubOperation] = []
    result = await MoveScu(orthanc_qr.address).move_study(
        {"StudyInstanceUID": study.study_instance_uid},
        "MOVE-SCU",
        receive=lossy_receiver(orthanc_qr, tmp_path),
        on_sub_operation=events.append,
    )
    assert (result.completed, result.failed) == (len(study.instances), 0)
    assert len(result.files) == len(study.instances)
    originals: set[str] = set()
    for file in map(Path, result.files):
        stored = read(file)
        new = str(stored.SOPInstanceUID)
        assert file.name == f"{new}.dcm" and stored.file_meta.MediaStorageSOPInstanceUID == new
        assert stored.file_meta.TransferSyntaxUID == J2K and stored.LossyImageCompression == "01"
        originals.add(str(stored.SourceImageSequence[-1].ReferencedSOPInstanceUID))
    assert originals == {i.sop_instance_uid for i in study.instances}
    assert not any(received_path(tmp_path, i).exists() for i in study.instances)
    reported = [e for e in events if e.file is not None]
    assert reported
    for event in reported:
        inst = qr_data.instance(event.sop_instance_uid or "")
        new = event.stored_sop_instance_uid
        assert new and new != inst.sop_instance_uid
        assert event.transfer_syntax == J2K and event.converted_from == inst.transfer_syntax_uid
        assert event.file == str(tmp_path / inst.study_instance_uid / inst.series_instance_uid / f"{new}.dcm")


async def test_every_moved_instance_has_its_sub_operation_event(
    orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    study = qr_data.b
    events: list[SubOperation] = []
    await MoveScu(orthanc_qr.address).move_study(
        {"StudyInstanceUID": study.study_instance_uid},
        "MOVE-SCU",
        receive=lossy_receiver(orthanc_qr, tmp_path),
        on_sub_operation=events.append,
    )
    reported = {e.sop_instance_uid: e.stored_sop_instance_uid for e in events if e.file is not None}
    assert set(reported) == {i.sop_instance_uid for i in study.instances}


# ------------------------------------------------------------------------------------------ the relay


def dcmtk_received(peer: Peer) -> dict[str, pydicom.Dataset]:
    return {str(ds.SOPInstanceUID): ds for ds in (read(p) for p in peer.out_dir.iterdir() if p.is_file())}


async def test_forward_to_an_uncompressed_only_storescp_arrives_complete(
    orthanc_qr: Pacs, qr_data: QrData, dcmtk_storescp: Peer, tmp_path: Path
) -> None:
    """A C-GET from Orthanc relayed to a plain DCMTK storescp (uncompressed syntaxes only): every instance
    arrives, the compressed and Deflated ones decompressed pixel for pixel, and the events say which."""
    events: list[SubOperation] = []
    scu = GetScu(
        orthanc_qr.address,
        storage_backend="forward",
        forward_target=ForwardTarget(f"STORESCP@127.0.0.1:{dcmtk_storescp.port}"),
    )
    result = await scu.get_study(
        {"StudyInstanceUID": qr_data.a.study_instance_uid}, on_sub_operation=events.append
    )
    instances = qr_data.a.instances
    assert result.completed == len(instances) and result.failed == 0 and result.forward_failed == []
    received = dcmtk_received(dcmtk_storescp)
    assert set(received) == {i.sop_instance_uid for i in instances}
    by_uid = {e.sop_instance_uid: e for e in events}
    converted = 0
    for inst in instances:
        event = by_uid[inst.sop_instance_uid]
        assert event.forward_status == 0 and event.forward_error is None
        if inst.transfer_syntax_uid in UNCOMPRESSED:
            assert event.converted_from is None and event.transfer_syntax == inst.transfer_syntax_uid
            assert_converted(received[inst.sop_instance_uid], inst, inst.transfer_syntax_uid)
        else:
            converted += 1
            assert event.converted_from == inst.transfer_syntax_uid and event.transfer_syntax == EXPLICIT
            assert_converted(received[inst.sop_instance_uid], inst, EXPLICIT)
    assert converted == 5  # Deflated, RLE, JPEG Baseline, JPEG-LS, JPEG 2000
    assert not list(tmp_path.glob("**/*.dcm"))


async def test_never_transcode_fails_exactly_the_forwards_that_need_it(
    orthanc_qr: Pacs, qr_data: QrData, dcmtk_storescp: Peer
) -> None:
    scu = GetScu(
        orthanc_qr.address,
        storage_backend="forward",
        forward_target=ForwardTarget(f"STORESCP@127.0.0.1:{dcmtk_storescp.port}"),
        never_transcode=True,
    )
    result = await scu.get_study({"StudyInstanceUID": qr_data.a.study_instance_uid})
    instances = qr_data.a.instances
    needing = {i.sop_instance_uid for i in instances if i.transfer_syntax_uid not in UNCOMPRESSED}
    assert len(needing) == 5
    assert {f.sop_instance_uid for f in result.forward_failed} == needing
    assert all("never_transcode" in (f.error or "") for f in result.forward_failed), result.forward_failed
    assert result.completed == len(instances) and result.failed == 0  # lenient: received, then reported
    assert set(dcmtk_received(dcmtk_storescp)) == {i.sop_instance_uid for i in instances} - needing
