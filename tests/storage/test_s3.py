"""StoreScp on S3 against a real S3 endpoint (moto in server mode) through aiobotocore, fed by DCMTK and
aiodicom senders; faults through a proxy that blacks out mid-upload."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from aiodicom.errors import StorageError
from aiodicom.scp.store import StoreScp
from aiodicom.scu.store import StoreScu
from aiodicom.services.store import StoredInstance
from aiodicom.storage.s3 import S3Config, S3Storage
from tests.interop.faultproxy import FaultProxy
from tests.interop.test_echo_dcmtk import run_tool

pytestmark = [pytest.mark.s3]

FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"]


def big_instance(path: Path, megabytes: int) -> Path:
    """An explicit VR little endian CT of about ``megabytes`` MB, with fresh UIDs."""
    frames = max(1, megabytes * 2)  # 512 x 512 x 2 bytes = 0.5 MB a frame
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Big^Instance"
    ds.PatientID = "BIG1"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 512
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(7)
    ds.PixelData = rng.integers(0, 4096, size=frames * 512 * 512, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def objects(s3: Any, bucket: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def no_uploads_left(s3: Any, bucket: str) -> bool:
    return not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def s3_scp(endpoint: str, bucket: str, **options: Any) -> StoreScp:
    config = S3Config(bucket, endpoint=endpoint, prefix="archive/", part_size=5 << 20)
    return StoreScp(0, host="127.0.0.1", storage_backend="s3", s3_config=config, **options)


def test_config_accepts_the_documents_keys() -> None:
    config = S3Config.from_value(
        {"bucket": "b", "accessKey": "k", "secretKey": "s", "region": "eu-west-1", "endpoint": "http://x"}
    )
    assert (config.access_key, config.secret_key, config.region) == ("k", "s", "eu-west-1")
    with pytest.raises(ValueError, match="unknown S3 option 'bukket'"):
        S3Config.from_value({"bukket": "b"})
    with pytest.raises(ValueError, match="at least"):
        S3Config("b", part_size=1 << 20)
    with pytest.raises(ValueError, match="needs s3_config"):
        StoreScp(0, storage_backend="S3")


def test_region_falls_back_to_the_environment_then_us_east_1(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    assert S3Config("b").resolved_region() == "us-east-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert S3Config("b").resolved_region() == "eu-central-1"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert S3Config("b").resolved_region() == "ap-south-1"
    assert S3Config("b", region="eu-west-1").resolved_region() == "eu-west-1"


def test_parts_are_at_least_5_mib_and_an_object_never_needs_10000() -> None:
    storage = S3Storage(S3Config("b"))
    sizes = [storage.part_size(n) for n in range(1, 10_001)]
    assert min(sizes) >= 5 << 20 and sizes == sorted(sizes)
    assert sum(sizes) > 400 << 30  # 10,000 parts hold more than 400 GB (at 8 MiB, the default)


class _Counting(asyncio.Semaphore):
    """The server's cap on part uploads, counting how many run at once."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.inside = self.most = 0

    async def __aenter__(self) -> None:
        await super().__aenter__()
        self.inside += 1
        self.most = max(self.most, self.inside)

    async def __aexit__(self, *exc: object) -> None:
        self.inside -= 1
        await super().__aexit__(*exc)


@pytest.mark.interop
@pytest.mark.parametrize("cap", [1, 4])
async def test_associations_share_one_client_and_their_uploads_respect_the_cap(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, tmp_path: Path, cap: int
) -> None:
    paths = [big_instance(tmp_path / f"big{k}.dcm", 16) for k in range(2)]  # 4 parts of 5 MiB each
    config = S3Config(bucket, endpoint=moto_endpoint, part_size=5 << 20, max_concurrent_uploads=cap)
    async with StoreScp(0, host="127.0.0.1", storage_backend="s3", s3_config=config) as scp:
        assert isinstance(scp.storage, S3Storage)
        client = scp.storage.bucket.client
        counting = scp.storage.uploads = _Counting(cap)
        scu = StoreScu(f"127.0.0.1:{scp.port}", concurrency=2)
        for path in paths:
            scu.add_file(path)
        result = await scu.send()
        assert scp.storage.bucket.client is client  # one client for every association
    assert result.successful == 2
    assert counting.most <= cap
    if cap > 1:
        assert counting.most > 1  # the two associations' parts did upload at the same time
    assert len(objects(s3, bucket)) == 2 and no_uploads_left(s3, bucket)


@pytest.mark.interop
async def test_dcmtk_storescu_into_s3_equals_the_filesystem(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in FILES:
        (source / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
    big_instance(source / "big.dcm", 12)  # a multipart upload: 3 parts of 5 MiB
    stored: list[StoredInstance] = []
    async with s3_scp(moto_endpoint, bucket) as on_s3:
        on_s3.on_file_stored(stored.append)
        async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "fs", fsync=False) as on_fs:
            for port in (on_s3.port, on_fs.port):
                # storescu proposes a compressed syntax only when told which: the JPEG file goes apart
                jpeg = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")
                code, out = await run_tool("storescu", "-xy", "127.0.0.1", str(port), jpeg)
                assert code == 0, out
                code, out = await run_tool("storescu", "+sd", "127.0.0.1", str(port), str(source))
                assert code == 0, out
    files = {
        p.relative_to(tmp_path / "fs").as_posix(): p.read_bytes() for p in (tmp_path / "fs").rglob("*.dcm")
    }
    assert len(files) == len(FILES) + 2
    assert objects(s3, bucket) == {f"archive/{key}": data for key, data in files.items()}
    assert sorted(i.file for i in stored) == sorted(f"s3://{bucket}/archive/{key}" for key in files)
    assert no_uploads_left(s3, bucket)


async def test_hook_changes_go_to_the_new_key_streamed_in_parts(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, tmp_path: Path
) -> None:
    path = big_instance(tmp_path / "big.dcm", 11)
    new_study = generate_uid()

    async def hook(tags: dict[str, str]) -> dict[str, str]:
        return {**tags, "PatientName": "Anonymous", "StudyInstanceUID": new_study}

    async with s3_scp(moto_endpoint, bucket) as scp:
        scp.on_before_store(hook)
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(path)
        result = await scu.send()
    assert result.successful == 1 and result.warnings  # 0xB000: coerced
    original = pydicom.dcmread(path)
    (key, data), *rest = objects(s3, bucket).items()
    assert (
        not rest and key == f"archive/{new_study}/{original.SeriesInstanceUID}/{original.SOPInstanceUID}.dcm"
    )
    received = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    assert received.PatientName == "Anonymous" and received.StudyInstanceUID == new_study
    assert received.PixelData == original.PixelData
    assert no_uploads_left(s3, bucket)


async def test_refused_and_aborted_instances_leave_nothing(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, tmp_path: Path
) -> None:
    path = big_instance(tmp_path / "big.dcm", 12)
    async with s3_scp(moto_endpoint, bucket) as scp:
        scp.on_before_store(lambda tags: (_ for _ in ()).throw(ValueError("no thanks")))
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(path)
        result = await scu.send()
        assert result.failed == 1

        # a sender that goes away mid-instance, after the first parts were uploaded
        scp.on_before_store(lambda tags: tags)  # this one lets everything through
        sent = 0

        async def abort_midway() -> None:
            nonlocal sent
            from aiodicom.dataset.files import read_header
            from aiodicom.dimse import Command, encode_command, fragment
            from aiodicom.net.client import open_association

            header = read_header(path)
            assoc = await open_association(
                f"127.0.0.1:{scp.port}", contexts=[(CTImageStorage, [ExplicitVRLittleEndian])]
            )
            ctx = assoc.context_for(CTImageStorage, ExplicitVRLittleEndian).context_id
            command = Command.c_store_rq(1, CTImageStorage, header.sop_instance_uid)
            data = path.read_bytes()[header.data_offset : header.data_offset + (11 << 20)]
            pdvs = fragment(ctx, False, data, 16378, last=False)  # the data set never completes
            assoc.write_pdvs(fragment(ctx, True, encode_command(command), 16378) + pdvs)
            while sent < 1:  # wait until parts went up
                await asyncio.sleep(0.05)
                uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
                if uploads:
                    parts = s3.list_parts(
                        Bucket=bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
                    )
                    sent = len(parts.get("Parts", []))
            assoc.abort()

        await asyncio.wait_for(abort_midway(), 30)
        assert sent >= 1
        for _ in range(100):  # the receiver aborts the upload once its parts have settled
            if no_uploads_left(s3, bucket):
                break
            await asyncio.sleep(0.05)
    assert objects(s3, bucket) == {}
    assert no_uploads_left(s3, bucket)


async def test_endpoint_cut_mid_upload_fails_the_instance_and_leaves_nothing(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, tmp_path: Path
) -> None:
    path = big_instance(tmp_path / "big.dcm", 16)
    small = Path(get_testdata_file("CT_small.dcm"))
    port = int(moto_endpoint.rsplit(":", 1)[1])
    async with FaultProxy(port) as proxy, s3_scp(proxy.url, bucket) as scp:
        # during the second part, and longer than the client's retries (3 attempts, backoff up to 3 s)
        proxy.blackout_after(7 << 20, seconds=9.0)
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(path)
        result = await scu.send()
        assert proxy.cuts == 1
        assert result.failed == 1 and result.files[0].status == 0xA700, result.files
        # traffic passes again: the server is still there and works
        await asyncio.sleep(max(0.0, proxy.dark_for()) + 0.5)
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(small)
        assert (await scu.send()).successful == 1
    keys = list(objects(s3, bucket))
    assert len(keys) == 1 and keys[0].endswith(f"{pydicom.dcmread(small).SOPInstanceUID}.dcm")
    assert no_uploads_left(s3, bucket)


async def test_unreachable_endpoint_and_missing_bucket_fail_at_start(
    moto_endpoint: str, bucket: str, s3_env: None
) -> None:
    from tests.interop.peers import free_port

    with pytest.raises(StorageError, match="does not exist"):
        async with s3_scp(moto_endpoint, "no-such-bucket"):
            pass
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageError, match=dead.replace(".", r"\.")):
        await asyncio.wait_for(s3_scp(dead, bucket).start(), 60)


def test_without_aiobotocore_the_error_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['aiobotocore'] = None\n"
        "from aiodicom.storage.s3 import S3Storage\n"
        "try:\n    S3Storage({'bucket': 'b'})\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert "pip install 'aiodicom[s3]'" in out.stdout


@pytest.mark.interop
async def test_store_scu_sends_a_prefix_from_s3_to_dcmtk_storescp(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, dcmtk_storescp: Any, tmp_path: Path
) -> None:
    originals = {}
    for name in ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"]:
        data = Path(get_testdata_file(name)).read_bytes()
        originals[pydicom.dcmread(get_testdata_file(name)).SOPInstanceUID] = data
        s3.put_object(Bucket=bucket, Key=f"studies/a/{name}", Body=data)
    big = big_instance(tmp_path / "big.dcm", 6)
    originals[pydicom.dcmread(big, stop_before_pixels=True).SOPInstanceUID] = big.read_bytes()
    s3.put_object(Bucket=bucket, Key="studies/b/big", Body=big.read_bytes())
    s3.put_object(Bucket=bucket, Key="studies/b/notes.txt", Body=b"not DICOM at all, skipped")
    s3.put_object(Bucket=bucket, Key="elsewhere/x.dcm", Body=originals[next(iter(originals))])

    scu = StoreScu(
        dcmtk_storescp.address,
        called_ae_title="STORESCP",
        concurrency=2,
        s3_config={"bucket": bucket, "endpoint": moto_endpoint},
    )
    scu.add_folder("studies/")
    scu.add_file("studies/missing.dcm")
    result = await scu.send()
    assert result.total_files == 5 and result.successful == 4 and result.failed == 1
    (failure,) = [f for f in result.files if f.error]
    assert failure.file == f"s3://{bucket}/studies/missing.dcm" and "NoSuchKey" in failure.error
    received = list(dcmtk_storescp.out_dir.iterdir())
    assert len(received) == 4
    for path in received:
        got = pydicom.dcmread(path)
        sent = pydicom.dcmread(pydicom.filebase.DicomBytesIO(originals[got.SOPInstanceUID]))
        sent.pop(0xFFFCFFFC, None)  # DCMTK's storescp drops Data Set Trailing Padding when it writes
        assert got == sent  # element by element (DCMTK writes its own file meta)


def _vm_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.interop
def test_cli_storescp_on_s3_takes_200_mb_in_bounded_memory_and_store_sends_from_s3(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, dcmtk_storescp: Any, tmp_path: Path
) -> None:
    """The instance costs the receiver a few 8 MiB parts (the one filling, the one uploading and the HTTP
    layer's copies of it), whatever its size; its idle size (Python, pydicom with numpy, the S3 client) is
    about 100 MB on its own."""
    import subprocess
    import sys

    from tests.interop.peers import free_port, stop, wait_for_port

    big = big_instance(tmp_path / "big.dcm", 200)
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "storescp", "--port", str(port), "--host", "127.0.0.1",
         "--s3-bucket", bucket, "--s3-endpoint", moto_endpoint, "--s3-prefix", "in/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ,
    )  # fmt: skip
    try:
        wait_for_port(port, receiver, timeout=30)
        idle = _vm_hwm_mb(receiver.pid)  # interpreter, pydicom (with numpy) and the S3 client
        sent = subprocess.run(
            [sys.executable, "-m", "aiodicom", "store", f"127.0.0.1:{port}", str(big)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        peak = _vm_hwm_mb(receiver.pid)
    finally:
        stop(receiver)
    # What the instance costs is about two parts (one uploading, one filling) and the socket's copy of the
    # part in flight, whatever its size; the process itself takes ~100 MB before the first byte.
    print(f"receiver: {idle:.0f} MB idle, {peak:.0f} MB peak for a 200 MB instance")
    assert peak - idle < 64, f"receiver peak RSS {peak:.0f} MB ({idle:.0f} MB idle) for a 200 MB instance"
    ds = pydicom.dcmread(big, stop_before_pixels=True)
    key = f"in/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] > big.stat().st_size - 1000 and no_uploads_left(s3, bucket)

    # and back out of S3 with the store command, to DCMTK's storescp
    sent = subprocess.run(
        [sys.executable, "-m", "aiodicom", "store", "--s3-bucket", bucket, "--s3-endpoint", moto_endpoint,
         "--called-ae", "STORESCP", "--json", dcmtk_storescp.address, "in/"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    import json

    summary = json.loads(sent.stdout)
    assert summary["successful"] == summary["total_files"] == 1
    (received,) = dcmtk_storescp.out_dir.iterdir()
    assert received.stat().st_size > big.stat().st_size - 1000


async def test_a_hook_changes_a_deflated_data_set_on_s3(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None
) -> None:
    path = get_testdata_file("image_dfl.dcm")
    async with s3_scp(moto_endpoint, bucket) as scp:
        scp.on_before_store(lambda tags: {**tags, "PatientName": "DEFLATED^S3"})
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(path)
        result = await scu.send()
    assert result.successful == 1 and result.warnings
    (data,) = objects(s3, bucket).values()
    received = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    assert received.PatientName == "DEFLATED^S3"
    assert received.PixelData == pydicom.dcmread(path).PixelData
    assert no_uploads_left(s3, bucket)
