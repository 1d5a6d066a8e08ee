"""GetScu against Orthanc and dcmqrscp: every syntax, the three backends, split retrieves."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from aiodicom import ForwardTarget, GetScu, StoreScp, SubOperation
from aiodicom.storage.s3 import S3Config
from tests.interop.pacs import Pacs
from tests.interop.studies import Instance, QrData

pytestmark = pytest.mark.interop

EXPLICIT_LE = "1.2.840.10008.1.2.1"
UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")


def received_path(root: Path, inst: Instance) -> Path:
    return root / inst.study_instance_uid / inst.series_instance_uid / f"{inst.sop_instance_uid}.dcm"


def assert_same_instance(received: pydicom.Dataset, inst: Instance, *, syntax_may_change: bool) -> None:
    """Element by element equal to the source. Pixel Data is equal byte for byte, or else (a syntax changed
    byte order, or a PACS re-wrote the fragments of encapsulated data when it stored them) pixel for pixel."""
    source = pydicom.dcmread(inst.path)
    if 0xFFFCFFFC in source:  # DCMTK and Orthanc drop Data Set Trailing Padding when they store
        del source[0xFFFCFFFC]
    syntax = str(received.file_meta.TransferSyntaxUID)
    if syntax != inst.transfer_syntax_uid:
        assert syntax_may_change and syntax in UNCOMPRESSED, f"{inst.source} arrived as {syntax}"
    assert set(received.keys()) == set(source.keys()), inst.source
    for elem in source:
        if elem.tag != 0x7FE00010:
            assert received[elem.tag] == elem, f"{inst.source}: {elem.keyword} differs"
    if received.PixelData != source.PixelData:
        assert np.array_equal(received.pixel_array, source.pixel_array), inst.source


async def test_multi_syntax_study_from_orthanc_arrives_in_the_stored_syntaxes(
    orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    events: list[SubOperation] = []
    scu = GetScu(orthanc_qr.address, out_dir=tmp_path)
    result = await scu.get_study(
        {"StudyInstanceUID": qr_data.a.study_instance_uid}, on_sub_operation=events.append
    )
    instances = qr_data.a.instances
    assert (result.completed, result.failed, result.warning) == (len(instances), 0, 0)
    assert result.status == 0 and result.total == len(instances)
    assert sorted(result.files) == sorted(str(received_path(tmp_path, i)) for i in instances)
    for inst in instances:
        received = pydicom.dcmread(received_path(tmp_path, inst))
        assert str(received.file_meta.TransferSyntaxUID) == inst.transfer_syntax_uid, inst.source
        assert received.file_meta.SourceApplicationEntityTitle == "ORTHANC"
        assert_same_instance(received, inst, syntax_may_change=False)
    assert len(events) == len(instances)
    assert events[-1].remaining == 0 and events[-1].completed == len(instances)
    assert not list((tmp_path / ".incoming").rglob("*.part"))


async def test_multi_syntax_study_from_dcmqrscp_asks_again_for_what_it_could_not_send(
    dcmqrscp_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    """dcmqrscp sends on the first context of a SOP class and cannot decompress: the compressed instances
    fail at first and come on a second C-GET that puts their syntax first."""
    result = await GetScu(dcmqrscp_qr.address, out_dir=tmp_path).get_study(
        {"StudyInstanceUID": qr_data.a.study_instance_uid}
    )
    instances = qr_data.a.instances
    assert result.completed == len(instances) and result.failed == 0, result
    assert result.failed_sop_instance_uids == []
    for inst in instances:
        received = pydicom.dcmread(received_path(tmp_path, inst))
        if inst.transfer_syntax_uid not in UNCOMPRESSED:  # compressed: exactly as stored
            assert str(received.file_meta.TransferSyntaxUID) == inst.transfer_syntax_uid, inst.source
        assert_same_instance(received, inst, syntax_may_change=True)


async def test_series_instances_and_patient_levels(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    study = qr_data.b
    scu = GetScu(qr_pacs.address, out_dir=tmp_path / "series")
    series = study.series[0]
    result = await scu.get_series(
        {"StudyInstanceUID": study.study_instance_uid, "SeriesInstanceUID": series.series_instance_uid}
    )
    assert result.completed == len(series.instances)
    one = series.instances[1]
    scu = GetScu(qr_pacs.address, out_dir=tmp_path / "one")
    result = await scu.get_instances(
        {
            "StudyInstanceUID": one.study_instance_uid,
            "SeriesInstanceUID": one.series_instance_uid,
            "SOPInstanceUID": one.sop_instance_uid,
        }
    )
    assert result.completed == 1 and result.files == [str(received_path(tmp_path / "one", one))]
    scu = GetScu(qr_pacs.address, out_dir=tmp_path / "patient", query_model="patient_root")
    result = await scu.get_study({"QueryRetrieveLevel": "PATIENT", "PatientID": study.patient_id})
    assert result.completed == len(study.instances)
    for inst in study.instances:
        assert_same_instance(
            pydicom.dcmread(received_path(tmp_path / "patient", inst)), inst, syntax_may_change=True
        )


async def test_a_study_that_needs_more_contexts_is_retrieved_in_parts(
    orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    """With room for two SOP classes per association, the three classes of study A take several C-GETs."""
    scu = GetScu(orthanc_qr.address, out_dir=tmp_path, max_contexts=30)
    result = await scu.get_study({"StudyInstanceUID": qr_data.a.study_instance_uid})
    assert result.completed == len(qr_data.a.instances) and result.failed == 0
    for inst in qr_data.a.instances:
        assert received_path(tmp_path, inst).exists()


async def test_to_s3(
    orthanc_qr: Pacs, qr_data: QrData, moto_endpoint: str, bucket: str, s3: Any, s3_env: None
) -> None:
    config = S3Config(bucket, endpoint=moto_endpoint, prefix="retrieved/")
    scu = GetScu(orthanc_qr.address, storage_backend="s3", s3_config=config)
    result = await scu.get_study({"StudyInstanceUID": qr_data.a.study_instance_uid})
    assert result.completed == len(qr_data.a.instances) and result.failed == 0
    for inst in qr_data.a.instances:
        key = f"retrieved/{inst.study_instance_uid}/{inst.series_instance_uid}/{inst.sop_instance_uid}.dcm"
        assert f"s3://{bucket}/{key}" in result.files
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert_same_instance(pydicom.dcmread(io.BytesIO(body)), inst, syntax_may_change=False)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


async def test_forward_to_dcmtk_storescp(
    orthanc_qr: Pacs, qr_data: QrData, qr_storescp: Any, tmp_path: Path
) -> None:
    dest = qr_storescp(orthanc_qr.dest_ports["STORESCP"])
    events: list[SubOperation] = []
    scu = GetScu(
        orthanc_qr.address,
        storage_backend="forward",
        forward_target=ForwardTarget(f"STORESCP@127.0.0.1:{dest.port}", max_pdu_length=4096),
    )
    result = await scu.get_study(
        {"StudyInstanceUID": qr_data.a.study_instance_uid}, on_sub_operation=events.append
    )
    assert result.completed == len(qr_data.a.instances) and result.forward_failed == []
    assert result.files == []
    assert all(e.forwarded_to == f"STORESCP@127.0.0.1:{dest.port}" and e.forward_status == 0 for e in events)
    received = {pydicom.dcmread(p).SOPInstanceUID: p for p in dest.out_dir.iterdir()}
    for inst in qr_data.a.instances:
        ds = pydicom.dcmread(received[inst.sop_instance_uid])
        assert_same_instance(ds, inst, syntax_may_change=False)
    assert not list(tmp_path.glob("**/*.dcm"))  # nothing went to disk here


@pytest.mark.parametrize("strict", [False, True])
async def test_forward_to_a_store_scp_that_refuses_a_sop_class(
    orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path, strict: bool
) -> None:
    """The destination takes CT only: MR and SC forwards fail; never silently."""
    ct = "1.2.840.10008.5.1.4.1.1.2"
    async with StoreScp(
        0,
        host="127.0.0.1",
        ae_title="DEST",
        out_dir=tmp_path / "dest",
        abstract_syntax_mode="custom",
        abstract_syntaxes=[ct],
    ) as dest:
        scu = GetScu(
            orthanc_qr.address,
            storage_backend="forward",
            forward_target={"addr": f"DEST@127.0.0.1:{dest.port}", "callingAeTitle": "RELAY"},
            strict_forward=strict,
        )
        result = await scu.get_study({"StudyInstanceUID": qr_data.a.study_instance_uid})
    instances = qr_data.a.instances
    not_ct = {i.sop_instance_uid for i in instances if i.sop_class_uid != ct}
    assert {f.sop_instance_uid for f in result.forward_failed} == not_ct
    assert all("no presentation context" in (f.error or "") for f in result.forward_failed)
    if strict:
        assert result.failed == len(not_ct) and result.completed == len(instances) - len(not_ct)
        assert result.status == 0xB000
    else:
        assert result.failed == 0 and result.completed == len(instances)
    for inst in instances:
        assert received_path(tmp_path / "dest", inst).exists() == (inst.sop_class_uid == ct)


def test_options_are_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="out_dir"):
        GetScu("127.0.0.1:104")
    with pytest.raises(ValueError, match="forward_target"):
        GetScu("127.0.0.1:104", storage_backend="Forward")
    with pytest.raises(ValueError, match="no C-GET"):
        GetScu("127.0.0.1:104", out_dir=".", query_model="modality_worklist")


async def test_forwarding_a_large_instance_keeps_memory_bounded(tmp_path: Path) -> None:
    """64 MB relayed from Orthanc to a StoreScp in this process: never whole in memory on the way."""
    import tracemalloc

    from tests.interop.pacs import _orthanc_upload, start_orthanc
    from tests.storage.test_s3 import big_instance

    big = big_instance(tmp_path / "big.dcm", 64)
    source = pydicom.dcmread(big, stop_before_pixels=True)
    with start_orthanc(tmp_path / "pacs", None) as pacs:
        assert pacs.http_port is not None
        _orthanc_upload(pacs.http_port, big)
        async with StoreScp(
            0, host="127.0.0.1", ae_title="DEST", out_dir=tmp_path / "dest", fsync=False
        ) as dest:
            scu = GetScu(
                pacs.address,
                storage_backend="forward",
                forward_target=ForwardTarget(f"DEST@127.0.0.1:{dest.port}", max_pdu_length=65536),
            )
            tracemalloc.start()
            try:
                result = await scu.get_study({"StudyInstanceUID": str(source.StudyInstanceUID)})
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert result.completed == 1 and result.forward_failed == []
    stored = tmp_path / "dest" / source.StudyInstanceUID / source.SeriesInstanceUID
    received = pydicom.dcmread(stored / f"{source.SOPInstanceUID}.dcm")
    assert received.PixelData == pydicom.dcmread(big).PixelData
    print(f"forward: {peak / 2**20:.1f} MB traced at the peak for a 64 MB instance")
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MB traced for a 64 MB instance"


async def test_a_connection_cut_mid_retrieve_leaves_no_partial_file(
    orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    from aiodicom import AssociationAborted
    from tests.interop.faultproxy import FaultProxy

    async with FaultProxy(orthanc_qr.dicom_port) as proxy:
        scu = GetScu(f"ORTHANC@127.0.0.1:{proxy.port}", out_dir=tmp_path)
        proxy.blackout_after(150_000, seconds=1.0, downstream=True)  # a few instances into study A
        with pytest.raises(AssociationAborted):
            await scu.get_study({"StudyInstanceUID": qr_data.a.study_instance_uid})
    assert proxy.cuts == 1
    stored = list(tmp_path.rglob("*.dcm"))
    assert 0 < len(stored) < len(qr_data.a.instances)
    by_uid = {i.sop_instance_uid: i for i in qr_data.a.instances}
    for path in stored:  # what is there is whole
        received = pydicom.dcmread(path)
        assert_same_instance(received, by_uid[received.SOPInstanceUID], syntax_may_change=False)
    assert not list((tmp_path / ".incoming").glob("*"))  # the half-received one is gone


async def test_callbacks_that_raise_or_take_no_event_do_not_stop_a_retrieve(
    qr_pacs: Pacs, qr_data: QrData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = qr_data.b
    completed: list[bool] = []

    def broken(event: SubOperation) -> None:
        raise RuntimeError("a bug in the progress callback")

    scu = GetScu(qr_pacs.address, out_dir=tmp_path)
    result = await scu.get_study(
        {"StudyInstanceUID": study.study_instance_uid},
        on_sub_operation=broken,
        on_completed=lambda: completed.append(True),
    )
    assert result.completed == len(study.instances) and completed == [True]
    logged = [r for r in caplog.records if "a bug in the progress callback" in r.getMessage()]
    assert len(logged) == len(study.instances)
