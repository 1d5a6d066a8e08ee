"""Transcoding on receipt: the TranscodingStorage seam, StoreScp(transcode_on_receipt=...), the storescp CLI.

Every instance comes from ``syntax_files`` (made by DCMTK and gdcmconv, each with a reference decompression by
an independent decoder), copied under a SOP Instance UID of its own so that a batch holds many. What is stored
is read back with pydicom's own decoders and compared with that reference: equal for lossless sources, within
1 for lossy ones.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.multival import MultiValue
from pydicom.uid import generate_uid

import aiodicom
from aiodicom import StoreScp, StoreScu
from aiodicom.dataset import codecs
from aiodicom.dimse import Command
from aiodicom.errors import DimseError
from aiodicom.scp.store import StoreErrorEvent
from aiodicom.services.receipt import TranscodeOnReceipt, TranscodingStorage, converting
from aiodicom.services.store import StoredInstance
from aiodicom.storage.filesystem import FilesystemStorage
from aiodicom.storage.s3 import S3Config
from tests.interop.peers import DCMTK_ENV, require_tool, stop
from tests.interop.rawpeer import RawPeer
from tests.interop.syntaxes import SyntaxFile

EXPLICIT, JPEG_LS, J2K = codecs.EXPLICIT, codecs.JPEG_LS_LOSSLESS, codecs.J2K


# ---------------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Source:
    """A copy of a syntax file with a SOP Instance UID of its own."""

    name: str
    path: Path
    sop_instance_uid: str
    transfer_syntax: str
    reference: Path
    lossy: bool
    study: str
    series: str
    sop_class: str

    def stored_at(self, root: Path, uid: str | None = None) -> Path:
        return root / self.study / self.series / f"{uid or self.sop_instance_uid}.dcm"


def read(data: Path | bytes, **kwargs: Any) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data) if isinstance(data, bytes) else data, **kwargs)


def pixels(ds: Dataset) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(ds.pixel_array).astype(np.int64)


def assert_pixels(stored: Dataset, source: Source) -> None:
    """The stored pixels are the reference decompression's: equal, or within 1 for a lossy source."""
    reference = pixels(read(source.reference))
    ours = pixels(stored)
    assert ours.shape == reference.shape, source.name
    difference = int(np.abs(ours - reference).max())
    assert difference <= (1 if source.lossy else 0), f"{source.name}: differs by {difference}"


def values(ds: Dataset, keyword: str) -> list[str]:
    """The values of a multi-valued element (one value is not a list in pydicom)."""
    value = ds.get(keyword)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, MultiValue) else [str(value)]


def copy_of(f: SyntaxFile, folder: Path, *, mutate: Any = None) -> Source:
    """``f`` written again (pixel data untouched) under a new SOP Instance UID, in its own syntax."""
    ds = read(f.path)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if mutate is not None:
        mutate(ds)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{f.name}-{len(list(folder.iterdir()))}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return Source(
        f.name,
        path,
        str(ds.SOPInstanceUID),
        str(ds.file_meta.TransferSyntaxUID),
        f.reference,
        f.lossy,
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPClassUID),
    )


def copies(syntax_files: list[SyntaxFile], names: Iterable[str], folder: Path) -> list[Source]:
    by_name = {f.name: f for f in syntax_files}
    return [copy_of(by_name[name], folder) for name in names]


def corrupt_copy(syntax_files: list[SyntaxFile], name: str, folder: Path) -> Source:
    """A well-formed data set whose first compressed frame is cut to a third: no decoder reads it."""
    f = next(f for f in syntax_files if f.name == name)

    def truncate(ds: Dataset) -> None:
        frames = int(ds.get("NumberOfFrames", 1))
        fragments = [bytes(get_frame(ds.PixelData, i, number_of_frames=frames)) for i in range(frames)]
        cut = fragments[0][: len(fragments[0]) // 3]
        cut += b"\x00" * (len(cut) % 2)
        ds.PixelData = encapsulate([cut, *fragments[1:]], has_bot=frames > 1)

    return copy_of(f, folder, mutate=truncate)


def meta_end(data: bytes) -> int:
    """Where the data set of a Part 10 file starts: after the preamble, DICM and the file meta group."""
    return 132 + 12 + int.from_bytes(data[140:144], "little")


def dataset_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return data[meta_end(data) :]


def stored_files(root: Path) -> list[Path]:
    """The instances under ``root`` (not the temporary files of .incoming)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and ".incoming" not in p.parts)


def leftovers(root: Path) -> list[Path]:
    """Whatever is left in the temporary folder once the receiver has stopped."""
    incoming = root / ".incoming"
    return sorted(incoming.iterdir()) if incoming.exists() else []


def assert_consistent(ds: Dataset, syntax: str, uid: str) -> None:
    """The file meta says what the data set is."""
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == uid
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID


async def send(port: int, sources: Iterable[Source]) -> dict[Path, Any]:
    """Send with aiodicom's StoreScu on one association; each file's outcome."""
    scu = StoreScu(f"127.0.0.1:{port}")
    for source in sources:
        scu.add_file(source.path)
    result = await scu.send()
    return {Path(o.file): o for o in result.files}


def receiver(out_dir: Path, target: str, **options: Any) -> StoreScp:
    return StoreScp(0, host="127.0.0.1", out_dir=out_dir, fsync=False, transcode_on_receipt=target, **options)


# ------------------------------------------------------------------------------------ options at construction


def test_a_lossy_or_unknown_target_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lossy.*allow_lossy"):
        StoreScp(0, out_dir=tmp_path / "a", transcode_on_receipt="JPEG2000")
    with pytest.raises(ValueError, match="lossy"):
        StoreScp(0, out_dir=tmp_path / "a", transcode_on_receipt="1.2.840.10008.1.2.4.50")
    with pytest.raises(ValueError, match="NoSuchSyntax"):
        StoreScp(0, out_dir=tmp_path / "a", transcode_on_receipt="NoSuchSyntax")
    with pytest.raises(ValueError, match="max_transcode_workers"):
        StoreScp(0, out_dir=tmp_path / "a", transcode_on_receipt="RLELossless", max_transcode_workers=0)
    assert not (tmp_path / "a").exists()  # refused before anything was made on disk
    setting = TranscodeOnReceipt("JPEG2000", allow_lossy=True)
    assert setting.transfer_syntax == J2K  # names resolve to UIDs
    assert TranscodeOnReceipt.of(None) is None and TranscodeOnReceipt.of("") is None
    plain = FilesystemStorage(tmp_path / "b", fsync=False)
    assert converting(plain, None) is plain


def test_the_cli_refuses_a_lossy_target_without_allow_lossy(tmp_path: Path) -> None:
    """storescp exits 2 with one line; get and move say the same before connecting anywhere."""
    from typer.testing import CliRunner

    from aiodicom.cli import app

    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "aiodicom", "storescp", "--port", "0", "-o", str(out),
         "--transcode", "JPEG2000"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "lossy" in done.stderr, done.stderr
    assert not out.exists()
    cases = {
        ("get", "127.0.0.1:9", "-o", str(out), "--transcode", "JPEGLSNearLossless"): "lossy",
        ("get", "127.0.0.1:9", "-o", str(out), "--transcode", "NoSuchSyntax"): "NoSuchSyntax",
        ("move", "127.0.0.1:9", "--dest", "X", "-k", "PatientID=1", "--receive-port", "0", "-o", str(out),
         "--transcode", "JPEGBaseline8Bit"): "lossy",
        ("move", "127.0.0.1:9", "--dest", "X", "--transcode", "RLELossless"): "--receive-port",
    }  # fmt: skip
    for args, expected in cases.items():
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output, (args, result.output)


# ------------------------------------------------------------------------------------- the storage seam


async def test_the_seam_converts_before_the_inner_backend_sees_anything(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    """TranscodingStorage over a FilesystemStorage: an instance written in, converted at commit; one that
    cannot be converted raises DimseError(0xC000) and leaves nothing; an aborted one leaves nothing."""
    inner = FilesystemStorage(tmp_path / "out", fsync=False)
    storage = TranscodingStorage(
        inner, TranscodeOnReceipt("ExplicitVRLittleEndian"), spool_dir=inner.temp_dir
    )
    await storage.start()
    try:
        good = copies(syntax_files, ["mono12-jpegls"], tmp_path / "src")[0]
        bad = corrupt_copy(syntax_files, "mono12-jpegls", tmp_path / "src")
        for source in (good, bad):
            sink = storage.open()
            data = source.path.read_bytes()
            sink.meta_length = meta_end(data)
            for start in range(0, len(data), 4096):  # written as PDVs come
                assert sink.write(data[start : start + 4096]) is None
            await sink.place(f"{source.study}/{source.series}/{source.sop_instance_uid}.dcm")
            if source is good:
                location = await sink.commit()
                assert location == str(good.stored_at(inner.out_dir))
                assert sink.converted is not None and sink.converted.transfer_syntax == EXPLICIT
                assert sink.failure is None
            else:
                with pytest.raises(DimseError) as caught:
                    await sink.commit()
                assert caught.value.status == 0xC000
                assert "Explicit VR Little Endian" in str(caught.value)
        stored = read(good.stored_at(inner.out_dir))
        assert_consistent(stored, EXPLICIT, good.sop_instance_uid)
        assert_pixels(stored, good)
        assert not bad.stored_at(inner.out_dir).exists()
        sink = storage.open()
        sink.write(good.path.read_bytes()[:1000])
        await sink.abort()
    finally:
        await storage.stop()
    assert stored_files(inner.out_dir) == [good.stored_at(inner.out_dir)]
    assert leftovers(inner.out_dir) == []


# ------------------------------------------------------------------------------- StoreScp on receipt


@pytest.mark.interop
async def test_jpeg_ls_on_receipt_from_store_scu(syntax_files: list[SyntaxFile], tmp_path: Path) -> None:
    """Uncompressed, deflated and compressed sources are stored JPEG-LS Lossless with their pixels and their
    UIDs; a source in JPEG-LS already is stored as it came; the events say what was received."""
    names = [
        "mono16-explicit",
        "mono16-implicit",
        "mono16-bigendian",
        "mono12-deflated",
        "rgb8-j2k",
        "mono8-j2k-lossy",
        "mono12-jpegls",
    ]
    sources = copies(syntax_files, names, tmp_path / "src")
    out = tmp_path / "out"
    events: list[StoredInstance] = []
    async with receiver(out, "JPEGLSLossless") as scp:
        scp.on_file_stored(events.append)
        outcomes = await send(scp.port, sources)
    assert all(o.status == 0 for o in outcomes.values()), outcomes
    by_uid = {e.sop_instance_uid: e for e in events}
    assert len(events) == len(sources)
    for source in sources:
        event = by_uid[source.sop_instance_uid]
        assert event.transfer_syntax_uid == JPEG_LS, source.name
        assert event.received_transfer_syntax == source.transfer_syntax, source.name
        assert event.converted == (source.transfer_syntax != JPEG_LS), source.name
        assert event.original_sop_instance_uid == source.sop_instance_uid
        assert event.transcode_error is None
        assert event.file == str(source.stored_at(out))
        stored = read(Path(event.file))
        assert_consistent(stored, JPEG_LS, source.sop_instance_uid)
        assert stored.file_meta.SourceApplicationEntityTitle == "STORE-SCU"  # the receiver's meta kept
        assert_pixels(stored, source)
        assert (stored.get("LossyImageCompression") == "01") == source.lossy, source.name
        frame = get_frame(stored.PixelData, 0, number_of_frames=int(stored.get("NumberOfFrames", 1)))
        assert not codecs.stream_lossy(JPEG_LS, frame)
    unchanged = next(s for s in sources if s.transfer_syntax == JPEG_LS)
    assert read(unchanged.stored_at(out)).PixelData == read(unchanged.path).PixelData
    assert len(stored_files(out)) == len(sources) and leftovers(out) == []


@pytest.mark.interop
@pytest.mark.parametrize("target", [codecs.DEFLATED, codecs.BIG])
async def test_deflated_and_big_endian_on_receipt(
    syntax_files: list[SyntaxFile], tmp_path: Path, target: str
) -> None:
    """The uncompressed targets other than Explicit VR LE: compressed, Deflated and native sources."""
    sources = copies(syntax_files, ["mono16-jpegls", "rgb8-explicit", "mono12-deflated"], tmp_path / "src")
    out = tmp_path / "out"
    async with receiver(out, target) as scp:
        outcomes = await send(scp.port, sources)
    assert all(o.status == 0 for o in outcomes.values()), outcomes
    for source in sources:
        data = source.stored_at(out).read_bytes()
        stored = read(data)
        assert_consistent(stored, target, source.sop_instance_uid)
        assert_pixels(stored, source)
        if target == codecs.DEFLATED:  # the data set after the file meta is a raw deflate stream
            body = data[meta_end(data) :]
            assert len(zlib.decompressobj(-zlib.MAX_WBITS).decompress(body)) > len(body)
    assert leftovers(out) == []


@pytest.mark.interop
async def test_a_lossy_target_stores_a_new_instance(syntax_files: list[SyntaxFile], tmp_path: Path) -> None:
    """JPEG 2000 with allow_lossy: each instance is stored under a new SOP Instance UID (path, data set, file
    meta) with the lossy attributes, while the senders (aiodicom's StoreScu, DCMTK's storescu) are answered
    Success for the UID they sent."""
    sources = copies(syntax_files, ["mono8-explicit", "rgb8-explicit", "mono16-explicit"], tmp_path / "src")
    out = tmp_path / "out"
    events: list[StoredInstance] = []
    async with receiver(out, "JPEG2000", allow_lossy=True) as scp:
        scp.on_file_stored(events.append)
        outcomes = await send(scp.port, sources[:2])
        dcmtk = await asyncio.to_thread(
            subprocess.run,
            [require_tool("storescu"), "-v", "127.0.0.1", str(scp.port), str(sources[2].path)],
            env=DCMTK_ENV,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert dcmtk.returncode == 0 and "Received Store Response (Success)" in dcmtk.stdout + dcmtk.stderr
    for source in sources[:2]:
        outcome = outcomes[source.path]
        assert outcome.status == 0 and outcome.sop_instance_uid == source.sop_instance_uid
    assert len(events) == 3
    for source in sources:
        event = next(e for e in events if e.original_sop_instance_uid == source.sop_instance_uid)
        new = event.sop_instance_uid
        assert new != source.sop_instance_uid and event.converted
        assert event.transfer_syntax_uid == J2K and event.received_transfer_syntax == EXPLICIT
        assert event.file == str(source.stored_at(out, new))
        assert not source.stored_at(out).exists()
        stored = read(Path(event.file))
        assert_consistent(stored, J2K, new)
        assert stored.LossyImageCompression == "01"
        assert values(stored, "LossyImageCompressionMethod") == ["ISO_15444_1"]
        assert len(values(stored, "LossyImageCompressionRatio")) == 1
        assert float(values(stored, "LossyImageCompressionRatio")[0]) > 1
        assert stored.ImageType[0] == "DERIVED"
        assert stored.SourceImageSequence[-1].ReferencedSOPInstanceUID == source.sop_instance_uid
        frame = get_frame(stored.PixelData, 0, number_of_frames=int(stored.get("NumberOfFrames", 1)))
        assert codecs.stream_lossy(J2K, frame)
        reference, ours = pixels(read(source.reference)), pixels(stored)
        assert ours.shape == reference.shape and int(np.abs(ours - reference).max()) > 0
    assert len(stored_files(out)) == 3 and leftovers(out) == []


@pytest.mark.interop
@pytest.mark.parametrize("keep", [False, True])
async def test_a_stream_that_cannot_be_decoded(
    syntax_files: list[SyntaxFile], tmp_path: Path, keep: bool
) -> None:
    """A JPEG-LS instance cut short in a well-formed data set: the sender gets 0xC000 and nothing is stored,
    and the association goes on to the next file; with keep_original_on_transcode_failure it is stored as it
    came, answered Success, and the event says why."""
    good = copies(syntax_files, ["mono8-jpegls"], tmp_path / "src")[0]
    bad = corrupt_copy(syntax_files, "mono12-jpegls", tmp_path / "src")
    after = copies(syntax_files, ["rgb8-jpegls"], tmp_path / "src")[0]
    out = tmp_path / "out"
    events: list[StoredInstance] = []
    errors: list[StoreErrorEvent] = []
    connections: list[object] = []
    async with receiver(out, "ExplicitVRLittleEndian", keep_original_on_transcode_failure=keep) as scp:
        scp.on_file_stored(events.append)
        scp.on_error(errors.append)
        scp.on_connection(connections.append)
        outcomes = await send(scp.port, [good, bad, after])
    assert len(connections) == 1  # one association carried the three
    assert outcomes[good.path].status == 0 and outcomes[after.path].status == 0
    for source in (good, after):
        stored = read(source.stored_at(out))
        assert_consistent(stored, EXPLICIT, source.sop_instance_uid)
        assert_pixels(stored, source)
    if keep:
        assert outcomes[bad.path].status == 0
        event = next(e for e in events if e.sop_instance_uid == bad.sop_instance_uid)
        assert event.transfer_syntax_uid == JPEG_LS and not event.converted
        assert event.transcode_error and "cannot convert" in event.transcode_error
        stored = read(bad.stored_at(out))
        assert_consistent(stored, JPEG_LS, bad.sop_instance_uid)
        assert stored.PixelData == read(bad.path).PixelData  # as it came
        assert len(stored_files(out)) == 3 and errors == []
    else:
        outcome = outcomes[bad.path]
        assert outcome.status == 0xC000, outcome
        assert outcome.error and "convert" in outcome.error
        assert not bad.stored_at(out).exists()
        assert len(stored_files(out)) == 2 and len(events) == 2
        assert [e.sop_instance_uid for e in errors] == [bad.sop_instance_uid]
        assert "Explicit VR Little Endian" in errors[0].message
    assert leftovers(out) == []


@pytest.mark.interop
async def test_the_hook_changes_what_is_converted(syntax_files: list[SyntaxFile], tmp_path: Path) -> None:
    """on_before_store renames the patient: the converted instance has the new name and the pixels, from a
    compressed source and from a Deflated one (the change deflated again before the conversion)."""
    sources = copies(syntax_files, ["mono12-j2k", "mono12-deflated", "rgb8-deflated"], tmp_path / "src")
    targets = {"mono12-j2k": EXPLICIT, "mono12-deflated": JPEG_LS, "rgb8-deflated": JPEG_LS}
    for target in set(targets.values()):
        out = tmp_path / target
        async with receiver(out, target, extract_tags=["PatientName"]) as scp:
            scp.on_before_store(lambda tags: {**tags, "PatientName": "RENAMED^BY^HOOK"})
            todo = [s for s in sources if targets[s.name] == target]
            outcomes = await send(scp.port, todo)
        for source in todo:
            assert outcomes[source.path].status == 0xB000, source.name  # coerced
            stored = read(source.stored_at(out))
            assert_consistent(stored, target, source.sop_instance_uid)
            assert stored.PatientName == "RENAMED^BY^HOOK", source.name
            assert stored.StudyInstanceUID == source.study
            assert_pixels(stored, source)
        assert leftovers(out) == []


@pytest.mark.interop
async def test_without_file_meta_the_bare_data_set_is_in_the_target_syntax(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    """store_with_file_meta=False: the converted data set is stored without a preamble or group 0002, in the
    target syntax; an instance kept as received (its conversion failed) is bare in its own syntax."""
    sources = copies(syntax_files, ["mono16-explicit", "rgb8-j2k"], tmp_path / "src")
    bad = corrupt_copy(syntax_files, "mono8-j2k", tmp_path / "src")
    out = tmp_path / "out"
    async with receiver(
        out, "JPEGLSLossless", store_with_file_meta=False, keep_original_on_transcode_failure=True
    ) as scp:
        outcomes = await send(scp.port, [*sources, bad])
    assert all(o.status == 0 for o in outcomes.values()), outcomes
    for source, syntax in [*((s, JPEG_LS) for s in sources), (bad, bad.transfer_syntax)]:
        data = source.stored_at(out).read_bytes()
        assert data[128:132] != b"DICM" and data[:2] != b"\x02\x00", source.name
        ds = read(data, force=True)
        assert "TransferSyntaxUID" not in ds.file_meta and 0x00020010 not in ds
        assert ds.SOPInstanceUID == source.sop_instance_uid
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        if source is bad:
            assert ds.PixelData == read(bad.path).PixelData
        else:
            assert_pixels(ds, source)
    assert leftovers(out) == []


@pytest.mark.interop
@pytest.mark.s3
async def test_to_s3(
    syntax_files: list[SyntaxFile], tmp_path: Path, moto_endpoint: str, bucket: str, s3: Any, s3_env: None
) -> None:
    """The S3 backend gets the converted object; a failed conversion leaves no object and no upload."""
    good = copies(syntax_files, ["mono12-explicit", "rgb8-j2k"], tmp_path / "src")
    bad = corrupt_copy(syntax_files, "mono12-j2k", tmp_path / "src")
    config = S3Config(bucket, endpoint=moto_endpoint, prefix="in/")
    events: list[StoredInstance] = []
    async with StoreScp(
        0, host="127.0.0.1", storage_backend="s3", s3_config=config, transcode_on_receipt="JPEGLSLossless"
    ) as scp:
        scp.on_file_stored(events.append)
        outcomes = await send(scp.port, [good[0], bad, good[1]])
    assert outcomes[bad.path].status == 0xC000
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    expected = {f"in/{s.study}/{s.series}/{s.sop_instance_uid}.dcm" for s in good}
    assert keys == expected
    assert sorted(e.file for e in events) == sorted(f"s3://{bucket}/{key}" for key in expected)
    for source in good:
        key = f"in/{source.study}/{source.series}/{source.sop_instance_uid}.dcm"
        stored = read(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert_consistent(stored, JPEG_LS, source.sop_instance_uid)
        assert_pixels(stored, source)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


# ------------------------------------------------------------------------ the CLI and DCMTK's storescu

#: The syntax files DCMTK's storescu sends: JPEG, JPEG-LS, JPEG 2000, RLE and Deflated.
RECEIVED = ("jpeg-baseline", "jpeg-extended", "jpeg-p14", "jpeg-sv1", "jpegls", "jpegls-near", "j2k",
            "j2k-lossy", "rle", "deflated")  # fmt: skip


def storescu_profile(path: Path, sources: Iterable[Source]) -> Path:
    """A storescu.cfg (``-xf FILE Mixed``) proposing each source's SOP class in its syntax, one context each:
    storescu then sends every file as it is, never converted."""
    pairs = sorted({(s.sop_class, s.transfer_syntax) for s in sources})
    names = {uid: f"TS{i}" for i, uid in enumerate(sorted({ts for _, ts in pairs}))}
    lines = ["[[TransferSyntaxes]]"]
    for uid, name in names.items():
        lines += [f"[{name}]", f"TransferSyntax1 = {uid}"]
    lines += ["[[PresentationContexts]]", "[Mixed]"]
    lines += [f"PresentationContext{i} = {c}\\{names[ts]}" for i, (c, ts) in enumerate(pairs, 1)]
    lines += ["[[Profiles]]", "[Mixed]", "PresentationContexts = Mixed"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.interop
def test_storescp_cli_decompresses_what_dcmtk_storescu_sends(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    """``aiodicom storescp --transcode ExplicitVRLittleEndian`` takes JPEG (Baseline, Extended, Lossless),
    JPEG-LS, JPEG 2000, RLE and Deflated instances from DCMTK's storescu, each in its own syntax, and stores
    them uncompressed: pixel for pixel the references (within 1 for lossy sources, which say they are
    lossy), under the UIDs they came with."""
    wanted = [f.name for f in syntax_files if f.syntax in RECEIVED and f.base != "mono16"]
    sources = copies(syntax_files, wanted, tmp_path / "src")
    profile = storescu_profile(tmp_path / "scu.cfg", sources)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodicom", "storescp", "--port", "0", "--host", "127.0.0.1", "--out-dir",
         str(out), "--transcode", "ExplicitVRLittleEndian", "--no-fsync", "--json", "--study-timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["event"] == "server_started"
        sent = subprocess.run(
            [require_tool("storescu"), "-v", "-nh", "-xf", str(profile), "Mixed", "127.0.0.1",
             str(started["port"]), *(str(s.path) for s in sources)],
            env=DCMTK_ENV, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        proc.terminate()
        output, errors = proc.communicate(timeout=30)
    finally:
        stop(proc)  # type: ignore[arg-type]
    log = sent.stdout + sent.stderr
    assert sent.returncode == 0, log
    assert log.count("Received Store Response (Success)") == len(sources), log
    assert proc.returncode == 0, errors
    stored_events = [e for e in map(json.loads, output.splitlines()) if e["event"] == "file_stored"]
    by_uid = {e["sop_instance_uid"]: e for e in stored_events}
    assert len(by_uid) == len(sources) == len(stored_events) >= 20
    for source in sources:
        event = by_uid[source.sop_instance_uid]
        # sent as it is in the file (storescu converts a file whose syntax was not accepted)
        assert event["received_transfer_syntax"] == source.transfer_syntax, source.name
        assert event["transfer_syntax_uid"] == EXPLICIT
        assert event["file"] == str(source.stored_at(out))
        stored = read(source.stored_at(out))
        assert_consistent(stored, EXPLICIT, source.sop_instance_uid)
        assert_pixels(stored, source)
        assert (stored.get("LossyImageCompression") == "01") == source.lossy, source.name
    assert len(stored_files(out)) == len(sources) and leftovers(out) == []


# ------------------------------------------------------------------------------- an association that dies


async def test_an_aborted_association_leaves_no_spooled_copy(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    """The sender goes away in the middle of an instance: its spooled copy is removed, nothing is stored."""
    source = copies(syntax_files, ["mono12-jpegls"], tmp_path / "src")[0]
    dataset = dataset_bytes(source.path)
    out = tmp_path / "out"
    async with receiver(out, "ExplicitVRLittleEndian") as scp:
        async with await RawPeer.connect(scp.port) as peer:
            await peer.associate([(1, source.sop_class, [source.transfer_syntax])])
            command = Command.c_store_rq(1, source.sop_class, source.sop_instance_uid)
            await peer.send_command(1, command)
            await peer.send_dataset(1, dataset[: len(dataset) // 2], last=False)
            for _ in range(100):  # until the receiver spools it
                if list((out / ".incoming").rglob(".receipt-*")):
                    break
                await asyncio.sleep(0.02)
            assert list((out / ".incoming").rglob(".receipt-*"))
        for _ in range(100):
            if not list((out / ".incoming").rglob(".receipt-*")):
                break
            await asyncio.sleep(0.02)
        assert list((out / ".incoming").rglob(".receipt-*")) == []
    assert stored_files(out) == [] and leftovers(out) == []


# ---------------------------------------------------------------------------- a peer's view of the answer


@pytest.mark.interop
async def test_the_answer_waits_for_the_conversion(syntax_files: list[SyntaxFile], tmp_path: Path) -> None:
    """The C-STORE response comes after the converted file is in place: when the sender has its answer the
    stored file is complete and in the target syntax (nothing converted later behind its back)."""
    source = copies(syntax_files, ["mono12-jpegls"], tmp_path / "src")[0]
    out = tmp_path / "out"
    async with (
        receiver(out, "ExplicitVRLittleEndian") as scp,
        aiodicom.connect(
            f"127.0.0.1:{scp.port}", contexts=[(source.sop_class, [source.transfer_syntax])]
        ) as assoc,
    ):
        assert await assoc.c_store(source.path) == 0
        stored = read(source.stored_at(out))  # read before the association is released
        assert_consistent(stored, EXPLICIT, source.sop_instance_uid)
        assert_pixels(stored, source)
