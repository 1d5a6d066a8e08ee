"""StoreScu converting on the way out: every syntax of ``tests/interop/syntaxes.py`` sent with ``aiodicom
store`` to DCMTK storescp peers that take one family of syntaxes each, forced syntaxes to Orthanc (decoded
by its REST API) and to aiodicom's StoreScp, Deflated files, broken and undecodable sources, a large
instance converted through a temporary file, and an S3 object.

Pixels are checked against the independent reference decompression of each source (DCMTK, gdcm or
pylibjpeg): identical for lossless sources, within 1 for lossy ones.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, generate_uid

from aiodicom.dataset.files import read_header
from aiodicom.scp.store import StoreScp
from aiodicom.scu.store import FileSent, StoreScu
from aiodicom.services.store import StoredInstance
from tests.interop.pacs import start_orthanc
from tests.interop.peers import DCMTK_ENV, free_port, require_tool, stop, wait_for_port
from tests.interop.syntaxes import SyntaxFile

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG = "1.2.840.10008.1.2.2"
UNCOMPRESSED = frozenset((IMPLICIT, EXPLICIT, BIG))
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
RLE = "1.2.840.10008.1.2.5"
J2K_PART2 = "1.2.840.10008.1.2.4.92"
JPEG_XL_LOSSLESS = "1.2.840.10008.1.2.4.110"


# -- helpers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """A copy of a test instance with a SOP Instance UID of its own, in the source's syntax."""

    source: SyntaxFile
    path: Path
    uid: str
    syntax: str


def _read(path: Path | bytes, **kwargs: Any) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(path) if isinstance(path, bytes) else path, **kwargs)


def _pixels(ds: Dataset | Path) -> np.ndarray:
    ds = _read(ds) if isinstance(ds, Path) else ds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(ds.pixel_array)


def unique_copy(source: SyntaxFile, folder: Path, name: str | None = None) -> Copy:
    """``source`` rewritten with a new SOP Instance UID (data set and file meta), its syntax kept."""
    ds = _read(source.path)
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or source.name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    header = read_header(path)
    assert header.sop_instance_uid == uid and header.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    return Copy(source, path, str(uid), header.transfer_syntax_uid)


def by_name(syntax_files: list[SyntaxFile], name: str) -> SyntaxFile:
    return next(f for f in syntax_files if f.name == name)


def assert_pixels_match(stored: Dataset | Path, source: SyntaxFile, what: str = "") -> None:
    """The stored pixels equal the source's reference decompression (within 1 for a lossy source)."""
    got, want = _pixels(stored), _pixels(source.reference)
    assert got.shape == want.shape, f"{source.name}{what}: {got.shape} != {want.shape}"
    difference = int(np.abs(got.astype(np.int64) - want.astype(np.int64)).max())
    assert difference <= (1 if source.lossy else 0), f"{source.name}{what}: differs by {difference}"


def received(folder: Path) -> dict[str, Path]:
    """The files under ``folder`` by SOP Instance UID."""
    files = {}
    for path in folder.rglob("*"):
        if path.is_file():
            files[str(_read(path, stop_before_pixels=True).SOPInstanceUID)] = path
    return files


@contextmanager
def storescp(out: Path, *args: str) -> Iterator[int]:
    """DCMTK storescp with ``args`` on a free loopback port, storing into ``out``; yields the port."""
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [require_tool("storescp"), *args, "-od", str(out), str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        stop(proc)


def store_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m aiodicom store ARGS`` (PYTHONPATH inherited), bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "aiodicom", "store", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def uncompressed_scp(out: Path) -> StoreScp:
    """aiodicom's StoreScp accepting Explicit/Implicit VR LE and Explicit VR BE only."""
    return StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False, transfer_syntax_mode="uncompressed_only")


@pytest.fixture(scope="module")
def mixed(syntax_files: list[SyntaxFile], tmp_path_factory: pytest.TempPathFactory) -> list[Copy]:
    """Every test instance in one folder, each copy with a SOP Instance UID of its own."""
    folder = tmp_path_factory.mktemp("mixed")
    copies = [unique_copy(f, folder) for f in syntax_files]
    assert len({c.syntax for c in copies}) >= 15 and len({c.uid for c in copies}) == len(copies)
    return copies


# -- 1, 2: a mixed folder to DCMTK storescp -----------------------------------------------------------------


def jpeg_ls_only(sop_classes: set[str]) -> str:
    """A storescp configuration (the format of DCMTK's storescp.cfg) whose profile JPEGLS accepts
    ``sop_classes`` in JPEG-LS Lossless only."""
    contexts = [f"PresentationContext{i} = {uid}\\JPEGLS" for i, uid in enumerate(sorted(sop_classes), 1)]
    return "\n".join(
        [
            "[[TransferSyntaxes]]",
            "[JPEGLS]",
            "TransferSyntax1 = JPEGLSLossless",
            "[[PresentationContexts]]",
            "[JPEGLS]",
            *contexts,
            "[[Profiles]]",
            "[JPEGLS]",
            "PresentationContexts = JPEGLS",
            "",
        ]
    )


#: storescp's options, and the syntaxes it then accepts.
PEERS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "uncompressed": ((), UNCOMPRESSED),
    "implicit-only": (("+xi",), frozenset((IMPLICIT,))),
    "jpeg-ls-only": (("-xf", "CONFIG", "JPEGLS"), frozenset((JPEG_LS_LOSSLESS,))),
}


def _send_mixed(peer: str, paths: list[str], tmp_path: Path, sop_classes: set[str]) -> dict[str, Any]:
    options, _ = PEERS[peer]
    config = tmp_path / "storescp.cfg"
    config.write_text(jpeg_ls_only(sop_classes))
    args = [str(config) if a == "CONFIG" else a for a in options]
    with storescp(tmp_path / "in", *args) as port:
        done = store_cli(f"127.0.0.1:{port}", *paths, "--json")
    report: dict[str, Any] = json.loads(done.stdout) if done.stdout.startswith("{") else {}
    report["returncode"], report["stderr"] = done.returncode, done.stderr
    return report


def _check_arrivals(peer: str, copies: list[Copy], tmp_path: Path, report: dict[str, Any]) -> None:
    """Each file that arrived is in a syntax the peer accepts (its own when the peer takes it) with the
    source's pixels; then: every file arrived and the command said so."""
    accepted = PEERS[peer][1]
    got = received(tmp_path / "in")
    for copy in copies:
        if copy.uid not in got:
            continue
        ds = _read(got[copy.uid])
        syntax = ds.file_meta.TransferSyntaxUID
        assert syntax in accepted, f"{copy.source.name} arrived in {syntax}"
        if copy.syntax in accepted:
            assert syntax == copy.syntax, f"{copy.source.name} was converted though the peer takes it"
        if copy.source.lossy:
            assert ds.LossyImageCompression == "01", copy.source.name
        assert_pixels_match(ds, copy.source, f" -> {peer}")
    missing = sorted(c.source.name for c in copies if c.uid not in got)
    assert not missing, f"not received: {missing}; {report['stderr'][-2000:]}"
    assert report["returncode"] == 0, report["stderr"]
    assert (report["successful"], report["failed"]) == (len(copies), 0)


@pytest.mark.interop
@pytest.mark.parametrize(
    "peer",
    ["uncompressed", "implicit-only", "jpeg-ls-only"],
)
def test_a_mixed_folder_arrives_in_a_syntax_each_peer_accepts(
    peer: str, mixed: list[Copy], tmp_path: Path
) -> None:
    """Every file of the folder arrives: as it is when the peer takes its syntax, else converted
    losslessly to one it takes, with the pixels of the source's reference decompression (within 1 for lossy
    sources, which arrive marked lossy)."""
    sop_classes = {read_header(c.path).sop_class_uid for c in mixed}
    assert len(sop_classes) > 1  # gdcmconv writes multi-frame Secondary Capture classes
    report = _send_mixed(peer, [str(mixed[0].path.parent)], tmp_path, sop_classes)
    _check_arrivals(peer, mixed, tmp_path, report)


@pytest.mark.interop
def test_a_jpeg_ls_only_peer_gets_every_file_of_a_class_proposed_in_jpeg_ls(
    mixed: list[Copy], tmp_path: Path
) -> None:
    """The files of the SOP class that has a JPEG-LS Lossless file (Secondary Capture: every syntax), sent
    to storescp with a JPEG-LS Lossless-only profile: each is converted to it losslessly."""
    secondary_capture = "1.2.840.10008.5.1.4.1.1.7"
    copies = [c for c in mixed if read_header(c.path).sop_class_uid == secondary_capture]
    assert len({c.syntax for c in copies}) >= 15
    report = _send_mixed("jpeg-ls-only", [str(c.path) for c in copies], tmp_path, {secondary_capture})
    _check_arrivals("jpeg-ls-only", copies, tmp_path, report)


@pytest.mark.interop
def test_never_transcode_fails_exactly_the_files_that_need_converting(
    mixed: list[Copy], tmp_path: Path
) -> None:
    with storescp(tmp_path / "in") as port:
        done = store_cli(f"127.0.0.1:{port}", str(mixed[0].path.parent), "--never-transcode", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    errors = {Path(f["file"]).name: f["error"] for f in report["files"] if f["error"]}
    must_convert = {c.path.name for c in mixed if c.syntax not in UNCOMPRESSED}
    assert DEFLATED in {c.syntax for c in mixed} and len(must_convert) > 40
    assert set(errors) == must_convert
    for name, error in errors.items():
        assert error.endswith("never_transcode is set"), f"{name}: {error}"
    assert report["failed"] == len(must_convert) and report["successful"] == len(mixed) - len(must_convert)
    arrived = received(tmp_path / "in")
    assert set(arrived) == {c.uid for c in mixed if c.syntax in UNCOMPRESSED}
    for copy in mixed:
        if copy.uid in arrived:
            assert read_header(arrived[copy.uid]).transfer_syntax_uid == copy.syntax


@pytest.mark.interop
def test_a_successful_conversion_prints_no_traceback(syntax_files: list[SyntaxFile], tmp_path: Path) -> None:
    copy = unique_copy(by_name(syntax_files, "mono8-htj2k-lossy"), tmp_path / "src")
    with storescp(tmp_path / "in") as port:
        done = store_cli(f"127.0.0.1:{port}", str(copy.path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_pixels_match(received(tmp_path / "in")[copy.uid], copy.source)
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, done.stderr


# -- 3: forced syntaxes into Orthanc, decoded by its REST API -----------------------------------------------

ORTHANC_SOURCES = ("mono8-explicit", "mono12-explicit", "mono16-explicit", "rgb8-explicit", "rgb8-j2k")


def _http(port: int, url: str, data: bytes | None = None) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{url}", data=data, timeout=10) as response:
        return bytes(response.read())


@pytest.mark.interop
def test_orthanc_decodes_forced_jpeg_ls_and_rle(syntax_files: list[SyntaxFile], tmp_path: Path) -> None:
    sent: dict[str, list[Copy]] = {}
    with start_orthanc(tmp_path / "orthanc", None) as pacs:
        assert pacs.http_port is not None
        for name, uid in (("JPEGLSLossless", JPEG_LS_LOSSLESS), ("RLELossless", RLE)):
            folder = tmp_path / name
            sent[uid] = [unique_copy(by_name(syntax_files, s), folder) for s in ORTHANC_SOURCES]
            done = store_cli(pacs.address, str(folder), "--transfer-syntax", name, "--json")
            assert done.returncode == 0, done.stdout + done.stderr
            assert json.loads(done.stdout)["successful"] == len(ORTHANC_SOURCES)
        for uid, copies in sent.items():
            for copy in copies:
                (found,) = json.loads(_http(pacs.http_port, "/tools/lookup", copy.uid.encode()))
                instance = f"/instances/{found['ID']}"
                assert _http(pacs.http_port, f"{instance}/metadata/TransferSyntax").decode() == uid
                stored = _read(_http(pacs.http_port, f"{instance}/file"))
                assert stored.file_meta.TransferSyntaxUID == uid
                want = _pixels(copy.source.reference)
                frames = want if int(stored.get("NumberOfFrames", 1)) > 1 else want[None]
                for index, frame in enumerate(frames):
                    # decoded by Orthanc's own (DCMTK) codecs, stored values (no rescale)
                    data = _http(pacs.http_port, f"{instance}/frames/{index}/numpy?rescale=0")
                    decoded = np.load(io.BytesIO(data)).reshape(frame.shape)
                    assert decoded.dtype == frame.dtype, f"{copy.source.name} {uid}: {decoded.dtype}"
                    assert np.array_equal(decoded, frame), f"{copy.source.name} {uid} frame {index}"


# -- 4: forcing, with aiodicom's StoreScp -------------------------------------------------------------------


@pytest.mark.interop
async def test_forced_jpeg_ls_keeps_the_pixels_and_the_instance(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    names = ("mono12-explicit", "mono16-bigendian", "rgb8-jpeg-baseline", "mono8-j2k", "mono12-jpegls")
    copies = [unique_copy(by_name(syntax_files, n), tmp_path / "src") for n in names]
    stored: list[StoredInstance] = []
    sent: list[FileSent] = []
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        scp.on_file_stored(stored.append)
        scu = StoreScu(f"127.0.0.1:{scp.port}", transfer_syntax="JPEGLSLossless")
        for copy in copies:
            scu.add_file(copy.path)
        result = await scu.send(on_file_sent=sent.append)
    assert (result.successful, result.failed) == (len(copies), 0)
    events = {e.sop_instance_uid: e for e in sent}
    outcomes = {o.sop_instance_uid: o for o in result.files}
    arrived = {s.sop_instance_uid: s for s in stored}
    for copy in copies:
        event, outcome, instance = events[copy.uid], outcomes[copy.uid], arrived[copy.uid]
        assert event.transfer_syntax_uid == JPEG_LS_LOSSLESS == outcome.transfer_syntax
        assert event.file_transfer_syntax == copy.syntax
        assert event.converted == (copy.syntax != JPEG_LS_LOSSLESS), copy.source.name
        assert event.original_sop_instance_uid == copy.uid == outcome.original_sop_instance_uid
        assert instance.transfer_syntax_uid == JPEG_LS_LOSSLESS
        ds = _read(Path(instance.file))
        assert ds.file_meta.TransferSyntaxUID == JPEG_LS_LOSSLESS
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == copy.uid
        assert_pixels_match(ds, copy.source, " -> JPEG-LS")
        if not copy.source.lossy:
            assert "LossyImageCompression" not in ds, copy.source.name
    # a file already in the forced syntax goes as it is
    (same,) = [c for c in copies if c.syntax == JPEG_LS_LOSSLESS]
    source = same.path.read_bytes()
    assert Path(arrived[same.uid].file).read_bytes().endswith(source[read_header(same.path).data_offset :])


def _psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    ref, dec = reference.astype(np.float64), decoded.astype(np.float64)
    mse = float(np.mean((ref - dec) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(max(float(ref.max() - ref.min()), 1.0) ** 2 / mse)


@pytest.mark.interop
async def test_forced_jpeg_baseline_makes_new_instances_and_refuses_deep_pixels(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    """8-bit sources become new lossy instances; 12- and 16-bit ones are per-file errors, the rest goes on."""
    names = ("mono12-explicit", "mono8-explicit", "mono16-jpegls", "rgb8-rle")
    copies = {n: unique_copy(by_name(syntax_files, n), tmp_path / "src") for n in names}
    stored: list[StoredInstance] = []
    sent: list[FileSent] = []
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp:
        scp.on_file_stored(stored.append)
        scu = StoreScu(f"127.0.0.1:{scp.port}", transfer_syntax="JPEGBaseline8Bit", allow_lossy=True)
        for copy in copies.values():
            scu.add_file(copy.path)
        result = await scu.send(on_file_sent=sent.append)
    assert (result.total_files, result.successful, result.failed) == (4, 2, 2)
    outcomes = {Path(o.file).stem: o for o in result.files}
    for deep, bits in (("mono12-explicit", 12), ("mono16-jpegls", 16)):
        error = outcomes[deep].error
        assert error is not None and "JPEG Baseline" in error, error
        assert error.endswith(f"it carries at most 8 bits, the pixels have {bits}"), error
        assert outcomes[deep].status is None
    assert {s.sop_instance_uid for s in stored} == {e.sop_instance_uid for e in sent}
    for name in ("mono8-explicit", "rgb8-rle"):
        copy, outcome = copies[name], outcomes[name]
        (event,) = [e for e in sent if Path(e.file).stem == name]
        assert event.converted and event.transfer_syntax_uid == JPEG_BASELINE == outcome.transfer_syntax
        new = event.sop_instance_uid
        assert new != copy.uid and event.original_sop_instance_uid == copy.uid
        assert outcome.sop_instance_uid == new and outcome.original_sop_instance_uid == copy.uid
        assert "a new instance" in event.message
        (instance,) = [s for s in stored if s.sop_instance_uid == new]
        ds = _read(Path(instance.file))
        assert ds.file_meta.TransferSyntaxUID == JPEG_BASELINE
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == new
        assert ds.LossyImageCompression == "01"
        ratio, method = ds["LossyImageCompressionRatio"], ds["LossyImageCompressionMethod"]
        assert ratio.VM == method.VM == 1  # the sources had none
        assert float(ratio.value) > 1 and method.value == "ISO_10918_1"

        assert ds.ImageType[0] == "DERIVED"
        assert _psnr(_pixels(copy.source.reference), _pixels(ds)) >= 40, name


def test_a_lossy_target_needs_allow_lossy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allow_lossy"):
        StoreScu("127.0.0.1:104", transfer_syntax="JPEGBaseline8Bit")
    with pytest.raises(ValueError, match="allow_lossy"):
        StoreScu("127.0.0.1:104", transfer_syntax="1.2.840.10008.1.2.4.91")  # JPEG 2000 (lossy)
    StoreScu("127.0.0.1:104", transfer_syntax="JPEGBaseline8Bit", allow_lossy=True)
    (tmp_path / "a.dcm").write_bytes(b"")
    port = free_port()  # nothing listens: construction fails before any connection
    done = store_cli(f"127.0.0.1:{port}", str(tmp_path / "a.dcm"), "--transfer-syntax", "JPEGBaseline8Bit")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "lossy" in done.stderr and "--allow-lossy" in done.stderr, done.stderr


@pytest.mark.interop
async def test_a_forced_syntax_the_peer_refuses_is_a_per_file_error(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    copies = [unique_copy(by_name(syntax_files, n), tmp_path / "src") for n in ("mono8-explicit", "rgb8-rle")]
    async with uncompressed_scp(tmp_path / "out") as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}", transfer_syntax="JPEGLSLossless")
        for copy in copies:
            scu.add_file(copy.path)
        result = await scu.send()
    assert (result.successful, result.failed) == (0, 2)
    for outcome in result.files:
        assert outcome.error is not None and outcome.error.endswith(
            "not JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80) (forced)"
        ), outcome.error
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


# -- 5: Deflated ------------------------------------------------------------------------------------------


@pytest.mark.interop
async def test_a_deflated_file_goes_as_it_is_or_inflated(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    copy = unique_copy(by_name(syntax_files, "mono12-deflated"), tmp_path / "src")
    assert copy.syntax == DEFLATED
    body = copy.path.read_bytes()[read_header(copy.path).data_offset :]
    sent: list[FileSent] = []
    async with StoreScp(
        0,
        host="127.0.0.1",
        out_dir=tmp_path / "deflate",
        fsync=False,
        transfer_syntax_mode="custom",
        transfer_syntaxes=[DEFLATED, EXPLICIT],
    ) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(copy.path)
        result = await scu.send(on_file_sent=sent.append)
    assert result.successful == 1 and not sent[0].converted and sent[0].transfer_syntax_uid == DEFLATED
    (path,) = received(tmp_path / "deflate").values()
    assert read_header(path).transfer_syntax_uid == DEFLATED
    assert path.read_bytes()[read_header(path).data_offset :] == body
    async with uncompressed_scp(tmp_path / "plain") as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(copy.path)
        result = await scu.send(on_file_sent=sent.append)
    assert result.successful == 1 and sent[1].converted and sent[1].transfer_syntax_uid == EXPLICIT
    (path,) = received(tmp_path / "plain").values()
    ds = _read(path)
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT and ds.SOPInstanceUID == copy.uid
    assert_pixels_match(ds, copy.source)


# -- 6: bad input -------------------------------------------------------------------------------------------


def _fragments(ds: Dataset) -> list[bytes]:
    frames = int(ds.get("NumberOfFrames", 1))
    return [bytes(get_frame(ds.PixelData, i, number_of_frames=frames)) for i in range(frames)]


def with_transfer_syntax(copy: Copy, syntax: str) -> Path:
    """``copy`` with another Transfer Syntax UID in its file meta and the same data set (pydicom refuses
    to write a syntax it does not know)."""
    meta = _read(copy.path, stop_before_pixels=True).file_meta
    meta.TransferSyntaxUID = UID(syntax)
    buffer = DicomBytesIO()
    buffer.write(bytes(128) + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    body = copy.path.read_bytes()[read_header(copy.path).data_offset :]
    copy.path.write_bytes(buffer.getvalue() + body)
    return copy.path


def _rewrite(ds: Dataset, path: Path, fragments: list[bytes] | None = None) -> Path:
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if fragments is not None:
        ds.PixelData = encapsulate(fragments, has_bot=len(fragments) > 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.interop
async def test_broken_and_undecodable_sources_are_per_file_errors(
    syntax_files: list[SyntaxFile], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    jpegls = _read(by_name(syntax_files, "mono12-jpegls").path)  # 3 frames
    first, *rest = _fragments(jpegls)
    truncated = _rewrite(jpegls, src / "truncated-jpegls.dcm", [first[: len(first) // 2], *rest])
    jpegls = _read(by_name(syntax_files, "mono12-jpegls").path)
    jpegls.NumberOfFrames = 4  # three fragments
    frames = _rewrite(jpegls, src / "frame-count.dcm")
    jpeg = _read(by_name(syntax_files, "mono8-jpeg-sv1").path)
    (stream,) = _fragments(jpeg)
    middle = stream[:40] + bytes(len(stream) - 42) + stream[-2:]  # its end-of-image marker kept
    zeroed = _rewrite(jpeg, src / "zeroed-jpeg.dcm", [middle])
    part2 = with_transfer_syntax(unique_copy(by_name(syntax_files, "mono16-j2k"), src, "part2"), J2K_PART2)
    good = [unique_copy(by_name(syntax_files, n), src) for n in ("mono8-rle", "rgb8-j2k", "mono16-explicit")]
    async with uncompressed_scp(tmp_path / "out") as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        for path in (truncated, good[0].path, frames, zeroed, good[1].path, part2, good[2].path):
            scu.add_file(path)
        result = await scu.send()
    assert (result.total_files, result.successful, result.failed) == (7, 3, 4)
    errors = {Path(o.file).name: o.error or "" for o in result.files if o.error}
    assert "frame 1 of 3 is truncated or corrupt" in errors["truncated-jpegls.dcm"]
    assert "frame count does not match" in errors["frame-count.dcm"]
    assert "cannot decode JPEG Lossless" in errors["zeroed-jpeg.dcm"]
    part2_name = "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)"
    assert errors["part2.dcm"].endswith(f"no codec here decodes {part2_name} ({J2K_PART2})")
    arrived = received(tmp_path / "out")
    assert set(arrived) == {c.uid for c in good}  # nothing of the four, not even partly
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == sorted(
        f"{c.uid}.dcm" for c in good
    )
    for copy in good:
        assert_pixels_match(arrived[copy.uid], copy.source)


@pytest.mark.interop
def test_a_jpeg_xl_file_is_an_error_naming_its_syntax(syntax_files: list[SyntaxFile], tmp_path: Path) -> None:
    jxl = unique_copy(by_name(syntax_files, "mono8-jpegls"), tmp_path / "src", "jxl")
    path = with_transfer_syntax(jxl, JPEG_XL_LOSSLESS)
    good = unique_copy(by_name(syntax_files, "mono8-rle"), tmp_path / "src")
    with storescp(tmp_path / "in") as port:
        done = store_cli(f"127.0.0.1:{port}", str(path), str(good.path), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["successful"], report["failed"]) == (1, 1)
    assert set(received(tmp_path / "in")) == {good.uid}
    (error,) = [f["error"] for f in report["files"] if f["error"]]
    assert f"JPEG XL Lossless ({JPEG_XL_LOSSLESS})" in error, error


# -- 7: a large instance through a temporary file -----------------------------------------------------------


@pytest.fixture(scope="module")
def large_jpeg_ls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 26-frame 512x512 12-bit JPEG-LS instance of noise (about 10 MB), and its pixels."""
    rng = np.random.default_rng(16)
    pixels = rng.integers(0, 4096, size=(26, 512, 512), dtype=np.uint16)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.NumberOfFrames = len(pixels)
    ds.PixelData = pixels.tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(EXPLICIT)
    ds.compress(JPEG_LS_LOSSLESS, encoding_plugin="pyjpegls")
    path = tmp_path_factory.mktemp("large") / "large-jpegls.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert 9 << 20 < path.stat().st_size < 13 << 20
    return path, pixels


@pytest.mark.interop
async def test_a_large_instance_converts_through_a_temporary_file(
    large_jpeg_ls: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, pixels = large_jpeg_ls
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    assert tempfile.gettempdir() == str(temporary)
    seen: set[str] = set()
    sending = True

    async def watch() -> None:
        while sending:
            seen.update(n for n in os.listdir(temporary) if n.startswith("aiodicom-send-"))
            await asyncio.sleep(0.002)

    async with uncompressed_scp(tmp_path / "out") as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(path)
        watcher = asyncio.create_task(watch())
        try:
            result = await scu.send()
        finally:
            sending = False
            await watcher
    assert (result.successful, result.failed) == (1, 0), result.files
    assert seen, "no aiodicom-send-* temporary file was used"
    assert not os.listdir(temporary)  # nothing left behind
    (stored,) = received(tmp_path / "out").values()
    ds = _read(stored)
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT and int(ds.NumberOfFrames) == len(pixels)
    assert np.array_equal(_pixels(ds), pixels)


# -- 8: an S3 object ----------------------------------------------------------------------------------------


@pytest.mark.interop
async def test_a_compressed_s3_object_arrives_decompressed(
    syntax_files: list[SyntaxFile],
    moto_endpoint: str,
    bucket: str,
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", None)
    copy = unique_copy(by_name(syntax_files, "rgb8-jpegls"), tmp_path / "src")
    s3.put_object(Bucket=bucket, Key="study/rgb8-jpegls.dcm", Body=copy.path.read_bytes())
    sent: list[FileSent] = []
    async with uncompressed_scp(tmp_path / "out") as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}", s3_config={"bucket": bucket, "endpoint": moto_endpoint})
        scu.add_file("study/rgb8-jpegls.dcm")
        result = await scu.send(on_file_sent=sent.append)
    assert (result.successful, result.failed) == (1, 0), result.files
    (event,) = sent
    assert event.converted and event.file_transfer_syntax == JPEG_LS_LOSSLESS
    assert event.transfer_syntax_uid == EXPLICIT and event.sop_instance_uid == copy.uid
    (stored,) = received(tmp_path / "out").values()
    ds = _read(stored)
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert_pixels_match(ds, copy.source)
    assert not os.listdir(temporary)  # the downloaded object is gone
