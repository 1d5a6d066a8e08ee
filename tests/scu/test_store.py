"""StoreScu against aiodicom's StoreScp (and DCMTK's storescp) over loopback."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from aiodicom.dataset.files import read_header
from aiodicom.dataset.tags import storage_sop_classes
from aiodicom.errors import DimseError, PeerUnreachable
from aiodicom.net.identity import UserIdentity
from aiodicom.scp.store import StoreScp
from aiodicom.scu.store import FileError, FileSending, FileSent, StoreScu, TransferCompleted, TransferStarted
from aiodicom.ul.items import UserIdentityRQ
from tests.interop.peers import Peer

FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle_2frame.dcm"]


def copies(folder: Path, count: int, name: str = "CT_small.dcm") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(get_testdata_file(name))
    paths = []
    for i in range(count):
        ds.SOPInstanceUID = generate_uid()
        path = folder / f"img{i:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def stored(out: Path, path: str | Path) -> Path:
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return out / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"


async def test_files_arrive_byte_for_byte_and_events_fire(tmp_path: Path) -> None:
    paths = [get_testdata_file(name) for name in FILES]
    events: list[object] = []
    async with StoreScp(
        0, host="127.0.0.1", ae_title="STORE-SCP", out_dir=tmp_path / "out", fsync=False
    ) as scp:
        scu = StoreScu(f"STORE-SCP@127.0.0.1:{scp.port}", concurrency=2)
        for path in paths:
            scu.add_file(path)

        async def async_sent(event: FileSent) -> None:
            await asyncio.sleep(0)
            events.append(event)

        result = await scu.send(on_transfer_started=events.append, on_file_sent=async_sent)
    assert (result.total_files, result.successful, result.failed, result.warnings) == (5, 5, 0, [])
    assert sum(isinstance(e, TransferStarted) for e in events) == 1
    assert sorted(e.file for e in events if isinstance(e, FileSent)) == sorted(paths)
    for path in paths:
        header = read_header(path)
        assert stored(scp.out_dir, path).read_bytes().endswith(Path(path).read_bytes()[header.data_offset :])
    assert scu.queued == 5  # still queued: send() may be called again


@pytest.mark.parametrize("concurrency", [1, 4, 16])
async def test_concurrency(tmp_path: Path, concurrency: int) -> None:
    paths = copies(tmp_path / "src", 40)
    async with StoreScp(
        0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, max_associations=32
    ) as scp:
        peak = 0

        def count(event: object) -> None:
            nonlocal peak
            peak = max(peak, len(scp.associations))

        scp.on_file_stored(count)
        scu = StoreScu(f"127.0.0.1:{scp.port}", concurrency=concurrency)
        assert scu.add_folder(tmp_path / "src") == 40
        result = await scu.send()
    assert result.successful == 40 and result.failed == 0
    assert all(stored(scp.out_dir, p).exists() for p in paths)
    assert peak <= concurrency and (concurrency == 1 or peak > 1)


async def test_throttling_spaces_the_sends(tmp_path: Path) -> None:
    copies(tmp_path / "src", 5)
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        times: list[float] = []
        scp.on_file_stored(lambda event: times.append(time.monotonic()))
        scu = StoreScu(f"127.0.0.1:{scp.port}", throttle_delay_ms=150)
        scu.add_folder(tmp_path / "src")
        result = await scu.send()
    assert result.successful == 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.14


async def test_warnings_failures_and_the_batch_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "src"
    copies(src, 3)
    (src / "notes.txt").write_text("not DICOM")  # skipped by add_folder
    (src / "DICOMDIR").write_bytes(bytes(128) + b"DICM")  # skipped by add_folder
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00garbage")  # looks like DICOM
    mr = get_testdata_file("MR_small.dcm")
    async with StoreScp(
        0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        fsync=False,
        abstract_syntax_mode="custom",
        abstract_syntaxes=["1.2.840.10008.5.1.4.1.1.2"],
    ) as scp:
        scp.on_before_store(lambda tags: {**tags, "PatientName": "COERCED"})
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        assert scu.add_folder(src) == 3
        scu.add_file(broken)
        scu.add_file(mr)  # the SCP accepts no MR context
        scu.add_file_from_memory(Path(get_testdata_file("CT_small.dcm")).read_bytes(), name="from-memory")
        errors: list[FileError] = []
        result = await scu.send(on_file_error=errors.append)
    assert result.total_files == 6 and result.successful == 4 and result.failed == 2
    assert len(result.warnings) == 4 and all(w[2] == 0xB000 for w in result.warnings)
    assert {e.file for e in errors} == {str(broken), mr}
    assert "cannot read" in next(e.error for e in errors if e.file == str(broken))


def dataset_only(path: Path, name: str, implicit: bool, drop_before_sop_class: bool = False) -> Path:
    """``name`` written as a bare data set: no preamble, no DICM, no file meta (little endian)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.SOPInstanceUID = generate_uid()
    if drop_before_sop_class:  # the file then starts with (0008,0016)
        for tag in [elem.tag for elem in ds if elem.tag < 0x00080016]:
            del ds[tag]
    out = pydicom.filebase.DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = implicit, True
    pydicom.filewriter.write_dataset(out, ds)
    path.write_bytes(out.getvalue())
    return path


def bare_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        dataset_only(folder / "explicit-0005", "CT_small.dcm", implicit=False),
        dataset_only(folder / "implicit-0016", "CT_small.dcm", implicit=True, drop_before_sop_class=True),
        dataset_only(folder / "explicit-0016", "MR_small.dcm", implicit=False, drop_before_sop_class=True),
        dataset_only(folder / "implicit-0012", "rtplan.dcm", implicit=True),
    ]
    starts = {p.read_bytes()[:4] for p in paths}
    assert starts == {b"\x08\x00\x05\x00", b"\x08\x00\x16\x00", b"\x08\x00\x12\x00"}
    return paths


async def test_add_folder_takes_data_set_only_files(tmp_path: Path) -> None:
    """Files without preamble or DICM are DICOM by content: add_folder queues them as add_file does."""
    paths = bare_files(tmp_path / "src")
    (tmp_path / "src" / "notes.txt").write_text("(0008,0016) is not DICOM")
    scu = StoreScu("127.0.0.1:104")
    assert scu.add_folder(tmp_path / "src") == 4
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_folder(tmp_path / "src")
        result = await scu.send()
    assert (result.total_files, result.successful, result.failed) == (4, 4, 0)
    for path in paths:
        assert stored(scp.out_dir, path).read_bytes().endswith(path.read_bytes())


async def test_s3_prefix_listing_takes_data_set_only_objects(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, tmp_path: Path
) -> None:
    paths = bare_files(tmp_path / "src")
    for path in paths:
        s3.put_object(Bucket=bucket, Key=f"bare/{path.name}", Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key="bare/notes.txt", Body=b"not DICOM, skipped")
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}", s3_config={"bucket": bucket, "endpoint": moto_endpoint})
        scu.add_folder("bare/")
        result = await scu.send()
    assert (result.total_files, result.successful, result.failed) == (4, 4, 0)
    for path in paths:
        assert stored(scp.out_dir, path).read_bytes().endswith(path.read_bytes())


async def test_callbacks_that_raise_are_logged_and_the_batch_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copies(tmp_path / "src", 4)
    (tmp_path / "src" / "broken").write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00garbage")
    calls: list[str] = []

    def started(event: TransferStarted) -> None:
        calls.append("started")
        raise RuntimeError("started broke")

    async def sending(event: FileSending) -> None:
        calls.append("sending")
        raise ValueError("sending broke")

    def sent(event: FileSent) -> None:
        calls.append("sent")
        raise KeyError("sent broke")

    async def error(event: FileError) -> None:
        calls.append("error")
        raise RuntimeError("error broke")

    def completed(event: TransferCompleted) -> None:
        calls.append("completed")
        raise RuntimeError("completed broke")

    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_folder(tmp_path / "src")
        with caplog.at_level(logging.ERROR, logger="aiodicom.services.events"):
            result = await scu.send(started, sending, sent, error, completed)
    assert (result.total_files, result.successful, result.failed) == (5, 4, 1)
    assert calls.count("sent") == 4 and calls.count("sending") == 4 and calls.count("error") == 1
    assert calls[0] == "started" and calls[-1] == "completed"
    logged = [r.getMessage() for r in caplog.records if r.name == "aiodicom.services.events"]
    assert len(logged) == 11  # once per callback error
    for name in ("started", "sending", "sent", "error", "completed"):
        assert sum(f"<locals>.{name} raised" in m for m in logged) == calls.count(name), name
    assert all("(ignored; the operation goes on)" in m for m in logged)


async def test_callbacks_without_the_event_argument(tmp_path: Path) -> None:
    """The reference documents' batch example: ``onFileSent: () => batchSuccess++``."""
    copies(tmp_path / "src", 3)
    counts = {"sent": 0, "error": 0, "started": 0, "completed": 0, "sending": 0}

    def count_sent() -> None:
        counts["sent"] += 1

    async def count_completed() -> None:
        counts["completed"] += 1

    class Tracker:
        def sending(self, *args: object) -> None:
            counts["sending"] += len(args)

        def started(self, event: object = None) -> None:
            counts["started"] += event is not None

    tracker = Tracker()
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_folder(tmp_path / "src")
        scu.add_file(tmp_path / "missing.dcm")
        result = await scu.send(
            on_transfer_started=tracker.started,
            on_file_sending=tracker.sending,
            on_file_sent=count_sent,
            on_file_error=lambda: counts.__setitem__("error", counts["error"] + 1),
            on_transfer_completed=functools.partial(count_completed),
        )
    assert result.successful == 3 and result.failed == 1
    assert counts == {"sent": 3, "error": 1, "started": 1, "completed": 1, "sending": 3}


async def test_file_error_carries_the_peers_error_comment(tmp_path: Path) -> None:
    """aiodicom's StoreScp answers a refusing hook with its status and an Error Comment (0000,0902)."""
    from aiodicom.services.store import StoreRejected

    ct = get_testdata_file("CT_small.dcm")

    def refuse(tags: dict[str, str]) -> dict[str, str]:
        raise StoreRejected("patient not scheduled here", status=0xA801)

    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        scp.on_before_store(refuse)
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(ct)
        errors: list[FileError] = []
        result = await scu.send(on_file_error=errors.append)
    assert result.failed == 1 and errors[0].status == 0xA801
    assert errors[0].error.endswith(": patient not scheduled here") and "0xA801" in errors[0].error
    assert result.files[0].error == errors[0].error


async def test_a_rejected_sop_class_says_so(tmp_path: Path) -> None:
    """The peer rejects MR Image Storage: the MR files fail saying that, not that conversion is missing,
    whether or not another SOP class was accepted on the same association."""
    ct, mr = get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")
    async with StoreScp(
        0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        fsync=False,
        abstract_syntax_mode="custom",
        abstract_syntaxes=["1.2.840.10008.5.1.4.1.1.2"],
    ) as scp:
        mixed = StoreScu(f"127.0.0.1:{scp.port}")
        mixed.add_file(ct)
        mixed.add_file(mr)
        result = await mixed.send()
        only_mr = StoreScu(f"127.0.0.1:{scp.port}")
        only_mr.add_file(mr)
        alone = await only_mr.send()
    assert (result.successful, result.failed, alone.successful, alone.failed) == (1, 1, 0, 1)
    for outcome in (result, alone):
        (error,) = [f.error for f in outcome.files if f.error]
        assert error == (
            "the peer rejected SOP class MR Image Storage (1.2.840.10008.5.1.4.1.1.4): "
            "abstract syntax not supported"
        )


async def test_more_than_128_contexts_split_over_associations(tmp_path: Path) -> None:
    classes = storage_sop_classes()[:70]  # 70 classes x (own syntax + fallback) = 140 contexts
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    src = tmp_path / "src"
    src.mkdir()
    for i, uid in enumerate(classes):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(src / f"{i}.dcm", enforce_file_format=True)
    async with StoreScp(
        0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, abstract_syntax_mode="all"
    ) as scp:
        opened = 0

        def count(event: object) -> None:
            nonlocal opened
            opened += 1

        scp.on_connection(count)
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_folder(src)
        result = await scu.send()
    assert result.successful == 70 and result.failed == 0 and opened == 2


async def test_peer_abort_mid_batch_loses_nothing(tmp_path: Path) -> None:
    copies(tmp_path / "src", 10)
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        calls = 0

        def abort_third(tags: dict[str, str]) -> dict[str, str]:
            nonlocal calls
            calls += 1
            if calls == 3:
                (assoc,) = scp.associations
                assoc.abort()
            return tags

        scp.on_before_store(abort_third)
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_folder(tmp_path / "src")
        result = await scu.send()
    assert result.successful + result.failed == result.total_files == 10
    assert result.failed == 1 and result.successful == 9  # the rest went on a new association


async def test_uncompressed_fallback_is_converted(tmp_path: Path) -> None:
    ct = get_testdata_file("CT_small.dcm")  # explicit VR little endian
    async with StoreScp(
        0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        fsync=False,
        transfer_syntax_mode="custom",
        transfer_syntaxes=["ImplicitVRLittleEndian"],
    ) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(ct)
        sent: list[FileSent] = []
        result = await scu.send(on_file_sent=sent.append)
    assert result.successful == 1 and sent[0].transfer_syntax_uid == "1.2.840.10008.1.2"
    received = pydicom.dcmread(stored(scp.out_dir, ct))
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert received.PixelData == pydicom.dcmread(ct).PixelData


async def test_forced_transfer_syntax(tmp_path: Path) -> None:
    ct = get_testdata_file("CT_small.dcm")  # explicit VR little endian
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}", transfer_syntax="ImplicitVRLittleEndian")
        scu.add_file(ct)
        result = await scu.send()
    assert result.successful == 1
    received = pydicom.dcmread(stored(scp.out_dir, ct))
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert received.PixelData == pydicom.dcmread(ct).PixelData


async def test_a_compressed_file_is_decompressed_for_an_uncompressed_only_peer(tmp_path: Path) -> None:
    jpeg = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")  # JPEG Baseline
    ct = get_testdata_file("CT_small.dcm")
    sent: list[FileSent] = []
    async with StoreScp(
        0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        fsync=False,
        transfer_syntax_mode="uncompressed_only",
    ) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(jpeg)
        scu.add_file(ct)
        result = await scu.send(on_file_sent=sent.append)
    assert result.successful == 2 and result.failed == 0
    source = pydicom.dcmread(jpeg)
    (event,) = [e for e in sent if e.file == jpeg]
    assert event.converted and event.file_transfer_syntax == "1.2.840.10008.1.2.4.50"
    assert event.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert event.sop_instance_uid == event.original_sop_instance_uid == source.SOPInstanceUID
    assert "converted from JPEG Baseline" in event.message
    received = pydicom.dcmread(stored(scp.out_dir, jpeg))
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert received.LossyImageCompression == "01"  # decompressing a lossy stream says it was lossy
    diff = received.pixel_array.astype(int) - source.pixel_array.astype(int)
    assert abs(diff).max() <= 1


async def test_never_transcode_fails_exactly_the_files_that_need_converting(tmp_path: Path) -> None:
    jpeg = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")
    ct = get_testdata_file("CT_small.dcm")
    async with StoreScp(
        0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        fsync=False,
        transfer_syntax_mode="uncompressed_only",
    ) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}", never_transcode=True)
        scu.add_file(jpeg)
        scu.add_file(ct)
        result = await scu.send()
    assert result.successful == 1 and result.failed == 1 and result.total_files == 2
    (failed,) = [f for f in result.files if f.error]
    assert failed.file == jpeg and failed.error is not None
    assert "accepted SOP class Secondary Capture Image Storage only in" in failed.error
    assert "JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50)" in failed.error
    assert failed.error.endswith("never_transcode is set")
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1  # only the CT arrived


async def test_nothing_reachable_raises_and_fail_first_raises(tmp_path: Path) -> None:
    scu = StoreScu("127.0.0.1:1", retry_backoff=0.05)  # retried (3 times, by default), then raised
    scu.add_file(get_testdata_file("CT_small.dcm"))
    with pytest.raises(PeerUnreachable):
        await scu.send()
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path, fsync=False) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}", fail_first=True)
        scu.add_file(tmp_path / "missing.dcm")
        scu.add_file(get_testdata_file("CT_small.dcm"))
        with pytest.raises(DimseError, match="missing"):
            await scu.send()


def test_bad_construction() -> None:
    with pytest.raises(ValueError):
        StoreScu("127.0.0.1:104", calling_ae_title="WAY-TOO-LONG-AE-TITLE")
    with pytest.raises(ValueError):
        StoreScu("127.0.0.1:104", concurrency=0)
    with pytest.raises(ValueError):
        StoreScu("127.0.0.1:104", transfer_syntax="NoSuchSyntax")


@pytest.mark.interop
async def test_into_dcmtk_storescp(dcmtk_storescp: Peer, tmp_path: Path) -> None:
    paths = [get_testdata_file(name) for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")]
    scu = StoreScu(f"STORESCP@{dcmtk_storescp.address}", concurrency=2)
    for path in paths:
        scu.add_file(path)
    result = await scu.send()
    assert result.successful == 3
    received = {pydicom.dcmread(p).SOPInstanceUID: p for p in dcmtk_storescp.out_dir.iterdir()}
    for path in paths:
        want = pydicom.dcmread(path)
        got = pydicom.dcmread(received[want.SOPInstanceUID])
        for elem in want:
            if elem.tag.element != 0 and elem.tag != 0xFFFCFFFC:  # DCMTK drops group lengths and padding
                assert got[elem.tag].value == elem.value


_CT_MR_ONLY = """\
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit

[[PresentationContexts]]
[CTMR]
PresentationContext1 = CTImageStorage\\Uncompressed
PresentationContext2 = MRImageStorage\\Uncompressed
PresentationContext3 = VerificationSOPClass\\Uncompressed

[[Profiles]]
[CTMR]
PresentationContexts = CTMR
"""


@pytest.mark.interop
async def test_dcmtk_storescp_that_accepts_ct_and_mr_uncompressed_only(tmp_path: Path) -> None:
    """A SOP class the peer rejects fails with the peer's reason; a file in a syntax it does not take is
    decompressed."""
    import subprocess

    from tests.interop.peers import DCMTK_ENV, free_port, require_tool, stop, wait_for_port

    config = tmp_path / "storescp.cfg"
    config.write_text(_CT_MR_ONLY)
    (tmp_path / "in").mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            require_tool("storescp"),
            "--config-file",
            str(config),
            "CTMR",
            "-od",
            str(tmp_path / "in"),
            str(port),
        ],
        env=DCMTK_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        scu = StoreScu(f"127.0.0.1:{port}")
        for name in ("CT_small.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
            scu.add_file(get_testdata_file(name))
        result = await scu.send()
    finally:
        stop(proc)
    ct, mr, sc = result.files
    assert ct.status == 0 and ct.error is None
    assert sc.error == (
        "the peer rejected SOP class Secondary Capture Image Storage (1.2.840.10008.5.1.4.1.1.7): "
        "abstract syntax not supported"
    )
    assert mr.status == 0 and mr.error is None
    assert mr.transfer_syntax in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
    (stored_mr,) = [p for p in (tmp_path / "in").iterdir() if p.name.startswith("MR")]
    source = pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))
    assert (pydicom.dcmread(stored_mr).pixel_array == source.pixel_array).all()
    assert len(list((tmp_path / "in").iterdir())) == 2


async def test_user_identity_stream_of_events_and_retry(tmp_path: Path) -> None:
    from tests.interop.peers import free_port

    port = free_port()
    ct = get_testdata_file("CT_small.dcm")
    scp = StoreScp(port, host="127.0.0.1", out_dir=tmp_path, fsync=False)
    identities: list[object] = []

    def capture(tags: dict[str, str]) -> dict[str, str]:
        (assoc,) = scp.associations
        identities.append(assoc.request.user_information.user_identity_rq)
        return tags

    scp.on_before_store(capture)
    identity = UserIdentity.username_password("alice", "s3cret")
    scu = StoreScu(f"127.0.0.1:{port}", user_identity=identity, retries=3, retry_backoff=0.2)
    scu.add_file(ct)
    streamed: list[str] = []

    async def consume() -> None:
        async for event in scu.events():
            streamed.append(type(event).__name__)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    sending = asyncio.create_task(scu.send())
    await asyncio.sleep(0.3)  # the first attempt is refused: nothing listens yet
    async with scp:
        result = await sending
    consumer.cancel()
    assert result.successful == 1
    assert streamed == ["TransferStarted", "FileSending", "FileSent", "TransferCompleted"]
    assert identities == [UserIdentityRQ(2, b"alice", b"s3cret", False)]


def test_old_identity_arguments_still_work_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="user_identity=UserIdentity"):
        scu = StoreScu("127.0.0.1:104", username="alice", password="s3cret", identity_response_requested=True)
    assert scu.user_identity == UserIdentity.username_password(
        "alice", "s3cret", positive_response_requested=True
    )
    with pytest.warns(DeprecationWarning):
        assert StoreScu("127.0.0.1:104", jwt="a.b.c").user_identity == UserIdentity.jwt("a.b.c")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="one user identity"):
        StoreScu("127.0.0.1:104", username="a", jwt="x.y.z")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="needs a username"):
        StoreScu("127.0.0.1:104", password="s3cret")


def test_store_command(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.interop.peers import free_port, stop, wait_for_port

    port = free_port()
    src = tmp_path / "src"
    copies(src, 5)
    (src / "readme.txt").write_text("skipped")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiodicom",
            "storescp",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--out-dir",
            str(tmp_path / "out"),
            "--no-fsync",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)  # type: ignore[arg-type]
        ok = subprocess.run(
            [sys.executable, "-m", "aiodicom", "store", f"127.0.0.1:{port}", str(src), "-j", "2", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["successful"] == 5
        bad = subprocess.run(
            [sys.executable, "-m", "aiodicom", "store", f"127.0.0.1:{port}", str(src / "readme.txt")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bad.returncode == 1 and "1 of 1 files failed" in bad.stderr
        table = subprocess.run(
            [sys.executable, "-m", "aiodicom", "store", f"127.0.0.1:{port}", str(src)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert table.returncode == 0 and "successful" in table.stdout
    finally:
        stop(server)  # type: ignore[arg-type]


@pytest.mark.interop
async def test_into_orthanc(orthanc: tuple[int, int], tmp_path: Path) -> None:
    import json
    import urllib.request
    from io import BytesIO

    dicom_port, http_port = orthanc
    paths = [get_testdata_file(name) for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb_jpeg_dcmtk.dcm")]
    scu = StoreScu(f"ORTHANC@127.0.0.1:{dicom_port}", concurrency=2)
    for path in paths:
        scu.add_file(path)
    result = await scu.send()
    assert result.successful == 3 and result.failed == 0

    def get(url: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{url}", timeout=10) as response:
            return bytes(response.read())

    ids = json.loads(await asyncio.to_thread(get, "/instances"))
    assert len(ids) == 3
    received = {}
    for instance in ids:
        ds = pydicom.dcmread(BytesIO(await asyncio.to_thread(get, f"/instances/{instance}/file")))
        received[ds.SOPInstanceUID] = ds
    for path in paths:
        want = pydicom.dcmread(path)
        got = received[want.SOPInstanceUID]
        for elem in want:
            if elem.tag.element != 0 and elem.tag != 0xFFFCFFFC:
                assert got[elem.tag].value == elem.value, elem.tag
