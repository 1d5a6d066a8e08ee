"""Transcoding fidelity: every syntax in (made by DCMTK and gdcm), every syntax out.

Decoding is checked against DCMTK's and gdcm's own decompression of the same files; every lossless conversion
against the source's pixels (decoded again by pydicom's default plugins, not necessarily the decoder aiodicom
picked); lossy targets by their PSNR and the attributes PS3.3 C.7.6.1.1.5 asks for.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from aiodicom.dataset import codecs
from aiodicom.dataset.files import read_header
from aiodicom.dataset.transcode import Transcoded, check_target, decodable, encodable, lossy_target, transcode
from aiodicom.errors import TranscodeError
from tests.interop.syntaxes import SyntaxFile

IMPLICIT, EXPLICIT, BIG, DEFLATED = codecs.IMPLICIT, codecs.EXPLICIT, codecs.BIG, codecs.DEFLATED
LOSSLESS_TARGETS = (
    IMPLICIT,
    EXPLICIT,
    BIG,
    DEFLATED,
    codecs.RLE,
    codecs.JPEG_LS_LOSSLESS,
    codecs.JPEG_LS_NEAR,  # NEAR=0 without allow_lossy
    codecs.J2K_LOSSLESS,
    codecs.J2K,  # reversible without allow_lossy
    codecs.JPEG_LOSSLESS_SV1,
    codecs.JPEG_LOSSLESS,
    codecs.HTJ2K_LOSSLESS,
    codecs.HTJ2K,  # reversible without allow_lossy
)
LOSSY_TARGETS = (codecs.JPEG_BASELINE, codecs.JPEG_EXTENDED, codecs.JPEG_LS_NEAR, codecs.J2K, codecs.HTJ2K)


def _read(data: bytes | Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data) if isinstance(data, bytes) else data)


def _pixels(ds: Dataset) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(ds.pixel_array)


def _convert(source: Path | bytes, target: str, **kwargs: bool) -> tuple[bytes, Transcoded]:
    out = io.BytesIO()
    result = transcode(source, target, out, **kwargs)
    return out.getvalue(), result


def _consistent(data: bytes, result: Transcoded) -> Dataset:
    """The file meta and the data set agree with each other and with the result."""
    ds = _read(data)
    assert data[128:132] == b"DICM"
    assert ds.file_meta.TransferSyntaxUID == result.transfer_syntax
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == result.sop_instance_uid
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    if int(ds.get("SamplesPerPixel", 1)) > 1 and result.converted:
        assert ds.PlanarConfiguration == 0
    return ds


def _psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR over the range of values the reference uses (stricter than over 2**BitsStored)."""
    ref, dec = reference.astype(np.float64), decoded.astype(np.float64)
    mse = float(np.mean((ref - dec) ** 2))
    peak = max(float(ref.max() - ref.min()), 1.0)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.fixture(scope="module")
def decoded(syntax_files: list[SyntaxFile]) -> dict[str, np.ndarray]:
    """Each source decoded by transcode() to Explicit VR LE: the pixels later conversions must keep."""
    return {f.name: _pixels(_read(_convert(f.path, EXPLICIT)[0])) for f in syntax_files}


@pytest.mark.interop
def test_every_source_decodes_as_dcmtk_and_gdcm_do(
    syntax_files: list[SyntaxFile], decoded: dict[str, np.ndarray]
) -> None:
    """Decompression equals DCMTK's dcmdjpeg/dcmdjpls/dcmdrle/dcmconv (gdcmconv for JPEG 2000, pylibjpeg for
    HTJ2K) exactly for lossless sources, within 1 for lossy ones; a lossy source is marked lossy."""
    assert len(syntax_files) > 50
    for f in syntax_files:
        reference = _pixels(_read(f.reference))
        ours = decoded[f.name]
        assert ours.shape == reference.shape, f.name
        difference = np.abs(ours.astype(np.int64) - reference.astype(np.int64)).max()
        assert difference <= (1 if f.lossy else 0), f"{f.name}: {difference}"
        data, result = _convert(f.path, EXPLICIT)
        ds = _consistent(data, result)
        assert result.converted == (f.syntax != "explicit")
        assert result.sop_instance_uid == result.original_sop_instance_uid  # decoding loses nothing more
        assert (ds.get("LossyImageCompression") == "01") == f.lossy, f.name


@pytest.mark.interop
def test_every_lossless_conversion_keeps_the_pixels(
    syntax_files: list[SyntaxFile], decoded: dict[str, np.ndarray]
) -> None:
    """Every source to every target without allow_lossy: pixel data identical to the source's, the instance
    UID kept, the file meta consistent. Lossy-capable targets (4.81, 4.91, 4.203) get lossless streams."""
    for f in syntax_files:
        for target in LOSSLESS_TARGETS:
            data, result = _convert(f.path, target)
            ds = _consistent(data, result)
            assert not result.lossy and result.sop_instance_uid == result.original_sop_instance_uid
            assert np.array_equal(_pixels(ds), decoded[f.name]), f"{f.name} -> {target}"
            if target in (codecs.J2K, codecs.HTJ2K, codecs.JPEG_LS_NEAR) and f.path.name == "base.dcm":
                stream = pydicom.encaps.get_frame(
                    ds.PixelData, 0, number_of_frames=int(ds.get("NumberOfFrames", 1))
                )
                assert not codecs.stream_lossy(target, stream)


@pytest.mark.interop
def test_lossy_targets_reach_40_db_and_say_so(syntax_files: list[SyntaxFile]) -> None:
    """Each base to each lossy target that can carry it (allow_lossy): PSNR >= 40 dB at the default quality,
    Lossy Image Compression 01, ratio and method appended, Image Type DERIVED, a new UID (file meta too)."""
    bases = [f for f in syntax_files if f.syntax == "explicit"]
    reached = 0
    for f in bases:
        source = _read(f.path)
        for target in LOSSY_TARGETS:
            if (target == codecs.JPEG_BASELINE and source.BitsStored > 8) or (
                target == codecs.JPEG_EXTENDED and (source.BitsStored > 12 or source.PixelRepresentation)
            ):
                with pytest.raises(TranscodeError, match=r"bits|signed"):
                    _convert(f.path, target, allow_lossy=True)
                continue
            data, result = _convert(f.path, target, allow_lossy=True)
            ds = _consistent(data, result)
            assert result.lossy and result.converted
            assert result.original_sop_instance_uid == source.SOPInstanceUID != result.sop_instance_uid
            assert _psnr(_pixels(source), _pixels(ds)) >= 40, f"{f.name} -> {target}"
            assert ds.LossyImageCompression == "01"
            assert ds.ImageType[0] == "DERIVED" and ds.ImageType[1] == "PRIMARY"
            assert ds.LossyImageCompressionMethod == codecs.METHODS[target]
            assert float(ds.LossyImageCompressionRatio) > 1
            assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
            reached += 1
    assert reached >= 15


@pytest.mark.interop
def test_lossy_values_are_appended(syntax_files: list[SyntaxFile]) -> None:
    """A lossy source compressed lossily again: ratio and method are multi-valued, the old values first."""
    f = next(f for f in syntax_files if f.name == "rgb8-jpeg-baseline")
    source = _read(f.path)
    data, result = _convert(f.path, codecs.J2K, allow_lossy=True)
    ds = _consistent(data, result)
    assert list(ds.LossyImageCompressionMethod) == [source.LossyImageCompressionMethod, "ISO_15444_1"]
    assert len(ds.LossyImageCompressionRatio) == 2
    assert ds.LossyImageCompressionRatio[0] == source.LossyImageCompressionRatio
    assert ds.PhotometricInterpretation == "YBR_ICT"


@pytest.mark.interop
def test_lossiness_is_read_from_the_stream_not_the_uid(syntax_files: list[SyntaxFile]) -> None:
    """Without (0028,2110): an irreversible (9-7) JPEG 2000 stream marks its decompression lossy, a reversible
    one in the lossy UID (4.91) does not; JPEG Baseline is lossy by its SOF marker, JPEG-LS by its NEAR.

    (gdcmconv --lossy writes the reversible 5-3 wavelet and truncates its layers: only its (0028,2110) says
    it lost anything, and that is kept.)"""
    by_name = {f.name: f for f in syntax_files}
    reversible, _ = _convert(by_name["mono12-explicit"].path, codecs.J2K)  # 4.91, lossless stream
    irreversible, _ = _convert(by_name["mono12-explicit"].path, codecs.J2K, allow_lossy=True)
    for name, data, lossy in (
        ("irreversible", irreversible, True),
        ("reversible in 4.91", reversible, False),
        ("jpeg-ls near", by_name["mono8-jpegls-near"].path.read_bytes(), True),
        ("baseline", by_name["mono8-jpeg-baseline"].path.read_bytes(), True),
        ("htj2k irreversible", by_name["mono16-htj2k-lossy"].path.read_bytes(), True),
    ):
        ds = _read(data)
        for keyword in ("LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod"):
            if keyword in ds:
                delattr(ds, keyword)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        out, _ = _convert(buffer.getvalue(), EXPLICIT)
        assert (_read(out).get("LossyImageCompression") == "01") == lossy, name


@pytest.mark.interop
def test_colour_attributes_follow_the_target(syntax_files: list[SyntaxFile]) -> None:
    by_name = {f.name: f for f in syntax_files}
    rgb = by_name["rgb8-explicit"].path
    expected = {
        codecs.JPEG_BASELINE: "YBR_FULL_422",
        codecs.J2K_LOSSLESS: "YBR_RCT",
        codecs.J2K: "YBR_ICT",
        codecs.HTJ2K_LOSSLESS: "YBR_RCT",
        codecs.RLE: "RGB",
        codecs.JPEG_LS_LOSSLESS: "RGB",
        codecs.JPEG_LOSSLESS_SV1: "RGB",
    }
    for target, photometric in expected.items():
        data, result = _convert(rgb, target, allow_lossy=True)
        ds = _consistent(data, result)
        assert (ds.PhotometricInterpretation, ds.PlanarConfiguration) == (photometric, 0), target
    # JPEG Baseline (YBR_FULL_422) decompressed: RGB, as dcmdjpeg writes it
    ds = _read(_convert(by_name["rgb8-jpeg-baseline"].path, EXPLICIT)[0])
    assert (
        ds.PhotometricInterpretation
        == _read(by_name["rgb8-jpeg-baseline"].reference).PhotometricInterpretation
    )
    # Uncompressed YBR_FULL_422 (subsampled) to RLE: the frames are decoded whole, so YBR_FULL
    data, result = _convert(Path(get_testdata_file("SC_ybr_full_422_uncompressed.dcm")), codecs.RLE)
    ds = _consistent(data, result)
    assert ds.PhotometricInterpretation == "YBR_FULL"
    original = _read(Path(get_testdata_file("SC_ybr_full_422_uncompressed.dcm")))
    assert np.array_equal(_pixels(ds), _pixels(original))


def test_targets_are_checked() -> None:
    for target in LOSSY_TARGETS:
        assert lossy_target(target)
        with pytest.raises(ValueError, match="lossy"):
            check_target(target, allow_lossy=False)
        assert check_target(target, allow_lossy=True) == target
    assert check_target("JPEGLSLossless", allow_lossy=False) == codecs.JPEG_LS_LOSSLESS
    assert check_target("JPEGLossless", allow_lossy=False) == codecs.JPEG_LOSSLESS_SV1  # the documents' name
    assert check_target("DeflatedExplicitVRLittleEndian", allow_lossy=False) == DEFLATED
    assert not lossy_target("JPEG2000Lossless")
    with pytest.raises(ValueError, match="MPEG2"):
        check_target("1.2.840.10008.1.2.4.100", allow_lossy=True)
    with pytest.raises(ValueError, match="unknown transfer syntax"):
        check_target("NoSuchSyntax", allow_lossy=True)
    assert all(decodable(t) and encodable(t) for t in LOSSLESS_TARGETS + LOSSY_TARGETS)
    assert decodable(codecs.HTJ2K_RPCL) and not decodable("1.2.840.10008.1.2.4.100")


def test_a_missing_codec_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without imagecodecs (as without the codecs extra): JPEG Baseline and HTJ2K cannot be encoded, and
    both check_target and transcode say which package to install."""
    monkeypatch.setattr(codecs, "_have", lambda module: module != "imagecodecs")
    assert not encodable(codecs.JPEG_BASELINE) and not encodable(codecs.HTJ2K_LOSSLESS)
    with pytest.raises(ValueError, match=r"aiodicom\[codecs\]"):
        check_target("JPEGBaseline", allow_lossy=True)
    with pytest.raises(TranscodeError, match=r"aiodicom\[codecs\]") as caught:
        _convert(Path(get_testdata_file("MR_small.dcm")), codecs.HTJ2K_LOSSLESS)
    assert caught.value.transfer_syntax == codecs.HTJ2K_LOSSLESS


def _instance(syntax: str, pixel_data: bytes, *, frames: int = 1, rows: int = 8) -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixel_data
    if syntax not in codecs.NATIVE:
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_source_nothing_decodes_is_an_error_naming_its_syntax() -> None:
    mpeg = _instance("1.2.840.10008.1.2.4.100", encapsulate([b"\x00\x00\x01\xb3" + bytes(60)]))
    with pytest.raises(TranscodeError, match=r"MPEG2.*1\.2\.840\.10008\.1\.2\.4\.100") as caught:
        _convert(mpeg, EXPLICIT)
    assert caught.value.transfer_syntax == "1.2.840.10008.1.2.4.100"


@pytest.mark.interop
def test_a_corrupt_stream_is_an_error(syntax_files: list[SyntaxFile]) -> None:
    """A stream cut short (JPEG, JPEG-LS, JPEG 2000, RLE), one whose data after its first bytes are zeros
    (all but JPEG-LS, which CharLS decodes to something): TranscodeError, whichever decoder is tried."""
    for name in ("mono8-jpeg-baseline", "mono12-jpegls", "mono16-j2k", "rgb8-rle", "mono12-jpeg-sv1"):
        ds = _read(next(f for f in syntax_files if f.name == name).path)
        frames = int(ds.get("NumberOfFrames", 1))
        fragments = [
            bytes(pydicom.encaps.get_frame(ds.PixelData, i, number_of_frames=frames)) for i in range(frames)
        ]
        zeros = fragments[0][:40] + bytes(len(fragments[0]) - 40)
        for broken in (fragments[0][: len(fragments[0]) // 3], *([zeros] if "jpegls" not in name else [])):
            ds.PixelData = encapsulate([broken, *fragments[1:]], has_bot=frames > 1)
            buffer = io.BytesIO()
            ds.save_as(buffer)
            with pytest.raises(TranscodeError, match=r"cannot decode|frame"):
                _convert(buffer.getvalue(), EXPLICIT)


def test_a_frame_count_that_does_not_match_is_an_error() -> None:
    native = _instance(EXPLICIT, bytes(range(64)) * 3, frames=4)  # 3 frames of 64 bytes, 4 declared
    with pytest.raises(TranscodeError, match="frame count does not match"):
        _convert(native, codecs.JPEG_LS_LOSSLESS)
    too_many = _instance(EXPLICIT, bytes(range(64)) * 3, frames=2)
    with pytest.raises(TranscodeError, match="frame count does not match"):
        _convert(too_many, codecs.RLE)
    encoded = [
        bytes(codecs.plan(codecs.JPEG_LS_LOSSLESS, _info(), allow_lossy=False).encode(_frame(i)))
        for i in range(3)
    ]
    for declared, table in ((4, True), (4, False), (2, True)):
        data = _instance(codecs.JPEG_LS_LOSSLESS, encapsulate(encoded, has_bot=table), frames=declared)
        with pytest.raises(TranscodeError, match="frame count does not match"):
            _convert(data, EXPLICIT)


def _info() -> codecs.FrameInfo:
    return codecs.FrameInfo(8, 8, 1, 8, 8, False, "MONOCHROME2")


def _frame(i: int) -> np.ndarray:
    return (np.arange(64, dtype=np.uint8).reshape(8, 8) * (i + 1)).astype(np.uint8)


def test_a_bare_data_set_converts_both_ways() -> None:
    """Input without file meta (Implicit VR LE, as received on an implicit context) and output without it."""
    path = Path(get_testdata_file("MR_small_implicit.dcm"))
    full, ds = path.read_bytes(), _read(path)
    body = full[read_header(path).data_offset :]  # the data set after group 0002
    out = io.BytesIO()
    result = transcode(body, codecs.JPEG_LS_LOSSLESS, out, file_meta=False)
    assert result.converted and out.getvalue()[:2] == b"\x08\x00"
    back = pydicom.dcmread(io.BytesIO(out.getvalue()), force=True)
    back.file_meta = FileMetaDataset()
    back.file_meta.TransferSyntaxUID = codecs.JPEG_LS_LOSSLESS
    assert np.array_equal(_pixels(back), _pixels(ds))


def test_uncompressed_conversions_swap_big_endian_words() -> None:
    """Explicit VR BE <-> LE: 16-bit OW pixel data and other OW values have their bytes swapped."""
    big = Path(get_testdata_file("MR_small_bigendian.dcm"))
    little, _ = _convert(big, EXPLICIT)
    assert np.array_equal(_pixels(_read(little)), _pixels(_read(Path(get_testdata_file("MR_small.dcm")))))
    again, _ = _convert(little, BIG)
    ds = _read(again)
    ds.LUTData = b"\x01\x02\x03\x04"
    assert np.array_equal(_pixels(ds), _pixels(_read(little)))


def test_a_multi_frame_instance_is_converted_frame_by_frame(tmp_path: Path) -> None:
    """50 frames of 512x512x16 bits (25 MiB decoded): compressing and decompressing it peaks at a few frames
    (Python allocations, numpy's included: about 5 MiB), and a Basic Offset Table indexes the frames."""
    frames, rows = 50, 512
    volume = frames * rows * rows * 2
    mr = _pixels(_read(Path(get_testdata_file("MR_small.dcm")))).astype(np.uint16)
    tile = np.kron(mr, np.ones((8, 8), dtype=np.uint16))
    ds = _read(Path(get_testdata_file("MR_small.dcm")))
    ds.Rows = ds.Columns = rows
    ds.NumberOfFrames = frames
    ds.PixelRepresentation = 0
    ds.PixelData = b"".join(np.roll(tile, i, axis=0).tobytes() for i in range(frames))
    source = tmp_path / "multi.dcm"
    ds.save_as(source)
    del ds
    compressed, decompressed = tmp_path / "multi-jls.dcm", tmp_path / "multi-out.dcm"
    for src, target, dst in (
        (source, codecs.JPEG_LS_LOSSLESS, compressed),
        (compressed, EXPLICIT, decompressed),
    ):
        tracemalloc.start()
        with open(dst, "wb") as out:
            transcode(src, target, out)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < volume / 4, f"{target}: peak {peak / 2**20:.1f} MiB of {volume / 2**20:.0f} MiB"
    encoded = _read(compressed)
    offsets = struct.unpack_from("<I", encoded.PixelData, 4)[0] // 4
    assert offsets == frames
    assert decompressed.read_bytes()[-volume:] == source.read_bytes()[-volume:]


def test_jpeg_baseline_cannot_carry_more_than_8_bits() -> None:
    with pytest.raises(TranscodeError, match="at most 8 bits"):
        _convert(Path(get_testdata_file("CT_small.dcm")), codecs.JPEG_BASELINE, allow_lossy=True)
    with pytest.raises(TranscodeError, match="allow_lossy"):
        _convert(Path(get_testdata_file("SC_rgb_small_odd.dcm")), codecs.JPEG_BASELINE)


@pytest.mark.parametrize("target", [codecs.JPEG_LS_LOSSLESS, codecs.RLE])
def test_elements_before_the_pixel_data_are_copied_as_they_are(tmp_path: Path, target: str) -> None:
    """A lossless compression that changes nothing else copies the source's Explicit VR LE elements byte for
    byte (an undefined-length sequence and a private UN element included), and the result reads back."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    item = Dataset()
    item.CodeValue = "T-D0050"
    ds.ReferencedImageSequence = [item]
    ds.ReferencedImageSequence.is_undefined_length = True
    ds.add_new(0x00091010, "UN", b"\x01\x02\x03\x04")
    ds.file_meta.TransferSyntaxUID = EXPLICIT
    source = tmp_path / "ct.dcm"
    ds.save_as(source, enforce_file_format=True)
    raw = source.read_bytes()
    header = read_header(source)
    body = raw[header.data_offset : raw.index(b"\xe0\x7f\x10\x00OW")]
    out = io.BytesIO()
    result = transcode(source, target, out)
    written = out.getvalue()
    assert result.converted and not result.lossy
    assert body in written and written.index(body) == read_header(io.BytesIO(written)).data_offset
    back = _read(written)
    assert np.array_equal(_pixels(back), _pixels(_read(source)))
    assert back.ReferencedImageSequence[0].CodeValue == "T-D0050"


def test_a_changed_element_is_written_rather_than_copied(tmp_path: Path) -> None:
    """Colour by plane (Planar Configuration 1) becomes by pixel in the compressed file: the elements are
    written anew with the new value."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rgb = np.random.default_rng(3).integers(0, 256, (3, 16, 16), dtype=np.uint8)  # by plane
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    del ds.RescaleIntercept, ds.RescaleSlope
    ds.PixelData = rgb.tobytes()
    ds.file_meta.TransferSyntaxUID = EXPLICIT
    source = tmp_path / "rgb.dcm"
    ds.save_as(source, enforce_file_format=True)
    out = io.BytesIO()
    transcode(source, codecs.JPEG_LS_LOSSLESS, out)
    back = _read(out.getvalue())
    assert back.PlanarConfiguration == 0
    assert np.array_equal(_pixels(back), _pixels(_read(source)))
