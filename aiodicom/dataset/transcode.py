"""Converting an instance from one transfer syntax to another: pure, blocking functions (no asyncio).

Uncompressed syntaxes (Implicit VR LE, Explicit VR LE, Explicit VR BE, with the byte order of OW pixel data
swapped) convert without decoding anything; Deflated Explicit VR LE is inflated and deflated as a stream.
Anything else is decoded and encoded frame by frame (``aiodicom.dataset.codecs``): memory holds a few frames,
the elements before Pixel Data and at most a few MiB of the output (encoded frames are spooled to a temporary
file past that), never the decoded volume.

Lossy encoding happens only with ``allow_lossy=True``, and then as PS3.3 C.7.6.1.1.5 requires: Lossy Image
Compression "01", the ratio and method appended to any existing values, Image Type value 1 DERIVED and a new
SOP Instance UID (in the file meta too). Lossless conversions keep the instance UID.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, generate_uid

from aiodicom.errors import TranscodeError
from aiodicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

from . import codecs
from .codecs import (
    DEFLATED,
    EXPLICIT,
    IMPLICIT,
    NATIVE,
    FrameInfo,
    check_target,
    decodable,
    encodable,
    lossy_target,
    syntax_label,
)
from .transcode_source import (
    CHUNK,
    PIXEL_DATA,
    SPOOL_BYTES,
    Pixel,
    Source,
    check_frames,
    first_fragment,
    frame_bytes,
    frame_count,
    opened,
    read_source,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Transcoded", "check_target", "decodable", "encodable", "lossy_target", "transcode"]

_EXCEPTIONS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OverflowError,
    struct.error,
    zlib.error,
)


@dataclass(frozen=True)
class Transcoded:
    """What :func:`transcode` wrote."""

    transfer_syntax: str
    """The syntax written."""
    sop_instance_uid: str
    """The instance written: new when the conversion was lossy."""
    original_sop_instance_uid: str
    lossy: bool
    """This conversion lost information (a lossy encoding)."""
    converted: bool
    """False when the source was already in the target syntax (copied as it is)."""


# -- writing ------------------------------------------------------------------------------------------------


class _Deflater:
    """A writable stream that deflates what it is given (RFC 1951, no zlib header: PS3.5 A.5) into ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._zip = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._written = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._out.write(self._zip.compress(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("a deflated stream is written straight through")

    def finish(self) -> None:
        self._out.write(self._zip.flush())


def _file_meta(source: Source, ds: Dataset, syntax: str, *, ours: bool) -> bytes:
    meta = FileMetaDataset()
    if source.meta is not None:
        for element in source.meta:
            if element.tag.element != 0:
                meta.add(element)
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = ds.get("SOPClassUID", meta.get("MediaStorageSOPClassUID", ""))
    meta.MediaStorageSOPClassUID = UID(str(sop_class))
    meta.MediaStorageSOPInstanceUID = UID(str(ds.get("SOPInstanceUID", "")))
    meta.TransferSyntaxUID = UID(syntax)
    if ours or "ImplementationClassUID" not in meta:
        meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    buffer = DicomFileLike(io.BytesIO())
    buffer.write(bytes(128) + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return cast(io.BytesIO, buffer.parent).getvalue()


def _writer(stream: Any, syntax: str) -> DicomFileLike:
    fp = DicomFileLike(stream)
    fp.is_little_endian = syntax != codecs.BIG
    fp.is_implicit_VR = syntax == IMPLICIT
    return fp


_WORD_VRS = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def _swap_words(ds: Dataset) -> None:
    """Swap the byte order of every OW/OL/OF/OD/OV value (kept as bytes in the source's order by pydicom)."""
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                _swap_words(item)
        elif element.VR in _WORD_VRS and isinstance(element.value, bytes) and element.value:
            element.value = _swapped(element.value, _WORD_VRS[element.VR])


def _swapped(data: bytes | bytearray | memoryview, unit: int) -> bytes:
    if unit == 1:
        return bytes(data)
    view = memoryview(data)
    whole = len(view) - len(view) % unit
    if unit == 2:
        out = bytearray(view[:whole])
        out[0::2], out[1::2] = view[1:whole:2], view[0:whole:2]
        return bytes(out) + bytes(view[whole:])
    import numpy as np

    swapped = np.frombuffer(view[:whole], dtype=f"u{unit}").byteswap().tobytes()
    return swapped + bytes(view[whole:])


def _swap_unit(pixel: Pixel, big_endian_vr: str, ds: Dataset) -> int:
    """The size of the units whose bytes reverse between little and big endian: a pixel of 16 bits or more;
    for 8-bit data, a 16-bit word when the big endian side says OW, else nothing."""
    if pixel.tag != PIXEL_DATA:
        return _WORD_VRS.get(pixel.vr, 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    if bits >= 16:
        return bits // 8
    return 2 if big_endian_vr == "OW" else 1


def _element_header(tag: int, vr: str, length: int, syntax: str) -> bytes:
    order = ">" if syntax == codecs.BIG else "<"
    if syntax == IMPLICIT:
        return struct.pack(order + "HHI", tag >> 16, tag & 0xFFFF, length)
    return struct.pack(order + "HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)


# -- the conversion -----------------------------------------------------------------------------------------


def transcode(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    target: str,
    out: BinaryIO,
    *,
    allow_lossy: bool = False,
    file_meta: bool = True,
    source_transfer_syntax: str | None = None,
) -> Transcoded:
    """Write ``source`` converted to the transfer syntax ``target`` (a UID or a name) to ``out``.

    ``source`` is a Part 10 file (preamble and file meta), a data set starting with its group 0002, or a
    bare data set in ``source_transfer_syntax`` (Implicit VR LE when not given, Explicit VR LE when its first
    element has a VR). With ``file_meta`` ``out`` gets a Part 10 file whose group 0002 says the syntax and
    instance written; without it, the bare data set in the target syntax. A source already in the target
    syntax is copied as it is. A lossy target (JPEG Baseline, JPEG-LS Near-Lossless, JPEG 2000, HTJ2K) is
    encoded lossily only with ``allow_lossy``: without it JPEG-LS, JPEG 2000 and HTJ2K are encoded losslessly
    in it, and JPEG Baseline/Extended are a :class:`~aiodicom.errors.TranscodeError`.

    Anything that cannot be converted (no codec, a corrupt stream, a frame count that does not match the
    pixel data, a bit depth the target cannot carry) raises TranscodeError; what was written to ``out`` by
    then is to be thrown away.
    """
    try:
        target_uid = codecs.resolve(target)
    except ValueError as exc:
        raise TranscodeError(str(exc)) from None
    with opened(source) as fp:
        try:
            src = read_source(fp, source_transfer_syntax)
        except TranscodeError:
            raise
        except _EXCEPTIONS as exc:
            raise TranscodeError(f"cannot read the instance: {exc}", source_transfer_syntax) from exc
        try:
            return _convert(src, target_uid, out, allow_lossy=allow_lossy, file_meta=file_meta)
        except TranscodeError:
            raise
        except _EXCEPTIONS as exc:
            what = f"{syntax_label(src.syntax)} to {syntax_label(target_uid)}"
            raise TranscodeError(f"cannot convert {what}: {exc}", src.syntax) from exc
        finally:
            for extra in src.extra:
                extra.close()


def _convert(src: Source, target: str, out: BinaryIO, *, allow_lossy: bool, file_meta: bool) -> Transcoded:
    ds = src.dataset
    uid = str(ds.get("SOPInstanceUID", "") or "").rstrip("\0 ")
    if src.syntax == target:
        _copy(src, out, file_meta=file_meta)
        return Transcoded(target, uid, uid, lossy=False, converted=False)
    if not encodable(target):
        raise TranscodeError(codecs.missing_encoder(target), target)
    pixel = src.pixel
    native_in = src.syntax in NATIVE or src.syntax == DEFLATED
    native_out = target in NATIVE or target == DEFLATED
    if pixel is None or pixel.tag != PIXEL_DATA or (native_in and native_out):
        if pixel is not None and not native_out:
            raise TranscodeError(f"{pixel.vr} float pixel data has no compressed form", target)
        _write_plain(src, target, out, file_meta=file_meta)
        return Transcoded(target, uid, uid, lossy=False, converted=True)
    if not decodable(src.syntax):
        raise TranscodeError(codecs.missing_decoder(src.syntax), src.syntax)
    return _write_pixels(src, target, out, uid, allow_lossy=allow_lossy, file_meta=file_meta)


def _copy(src: Source, out: BinaryIO, *, file_meta: bool) -> None:
    if file_meta:
        out.write(_file_meta(src, src.dataset, src.syntax, ours=False))
    if src.syntax == DEFLATED:
        _deflate_copy(src, out)
        return
    src.fp.seek(src.body_offset)
    while chunk := src.fp.read(CHUNK):
        out.write(chunk)


def _deflate_copy(src: Source, out: BinaryIO) -> None:
    """A deflated source copied: deflate the inflated body again (the original stream was consumed)."""
    deflater = _Deflater(out)
    src.fp.seek(0)
    while chunk := src.fp.read(CHUNK):
        deflater.write(chunk)
    deflater.finish()


def _body(out: BinaryIO, target: str) -> tuple[DicomFileLike, _Deflater | None]:
    if target == DEFLATED:
        deflater = _Deflater(out)
        return _writer(deflater, EXPLICIT), deflater
    return _writer(out, target), None


def _write_plain(src: Source, target: str, out: BinaryIO, *, file_meta: bool) -> None:
    """Uncompressed to uncompressed (or no pixel data): the elements re-encoded, pixel bytes copied."""
    layout = EXPLICIT if target == DEFLATED else target
    ds, trailing = src.dataset, src.trailing
    swap = src.little != (layout != codecs.BIG)
    if swap:
        _swap_words(ds)
        _swap_words(trailing)
    if file_meta:
        out.write(_file_meta(src, ds, target, ours=True))
    fp, deflater = _body(out, target)
    write_dataset(fp, ds)
    pixel = src.pixel
    if pixel is not None:
        if pixel.length is None:  # encapsulated data with a native target cannot get here but for float data
            raise TranscodeError("encapsulated pixel data in an uncompressed syntax", src.syntax)
        vr = _be_vr(pixel, ds) if layout == codecs.BIG else pixel.vr
        fp.write(_element_header(pixel.tag, vr, pixel.length, layout))
        unit = _swap_unit(pixel, vr if layout == codecs.BIG else pixel.vr, ds) if swap else 1
        src.fp.seek(pixel.value_offset)
        left = pixel.length
        while left:
            chunk = src.fp.read(min(left, CHUNK))
            if not chunk:
                raise TranscodeError("the pixel data is shorter than its length says", src.syntax)
            left -= len(chunk)
            fp.write(_swapped(chunk, unit) if unit > 1 else chunk)
    write_dataset(fp, trailing)
    if deflater is not None:
        deflater.finish()


def _be_vr(pixel: Pixel, ds: Dataset) -> str:
    if pixel.tag != PIXEL_DATA:
        return pixel.vr
    return "OB" if int(ds.get("BitsAllocated", 16) or 16) <= 8 else "OW"


def _decoded(
    src: Source, frames: int, *, as_rgb: bool
) -> Iterator[tuple[np.ndarray[Any, Any], dict[str, Any]]]:
    """The frames decoded one at a time; when the preferred decoder fails on a frame, the next one available
    takes over from that frame."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.pixels.utils import as_pixel_options

    pixel = cast(Pixel, src.pixel)
    layout = src.layout
    opts = as_pixel_options(src.dataset, transfer_syntax_uid=UID(layout), pixel_keyword="PixelData")
    opts["pixel_vr"] = pixel.vr
    opts["number_of_frames"] = frames
    decoder = get_decoder(UID(layout))
    plugins: tuple[str, ...] = ("",) if layout in NATIVE else codecs.decoding_plugins(layout)
    index = 0
    failure: Exception | None = None
    for plugin in plugins:
        src.fp.seek(pixel.value_offset)
        try:
            for arr, meta in decoder.iter_array(
                src.fp,
                indices=range(index, frames),
                raw=not as_rgb,
                as_rgb=as_rgb,
                decoding_plugin=plugin,
                **opts,
            ):
                yield arr, meta
                index += 1
            if index < frames:
                raise TranscodeError(f"only {index} of {frames} frames could be read", src.syntax)
            return
        except TranscodeError:
            raise
        except Exception as exc:  # a codec's own error type: try the next one, then say what failed
            failure = exc
    where = f"frame {index + 1} of {frames}"
    raise TranscodeError(f"cannot decode {syntax_label(src.syntax)} ({where}): {failure}", src.syntax)


def _write_pixels(
    src: Source, target: str, out: BinaryIO, uid: str, *, allow_lossy: bool, file_meta: bool
) -> Transcoded:
    """Decode the source's frames one by one and write them, encoded or not."""
    import numpy as np

    ds = src.dataset
    watched = _watched(ds)
    frames = frame_count(ds)
    check_frames(src, frames)
    encapsulated_source = src.pixel is not None and src.pixel.length is None
    source_lossy = str(ds.get("LossyImageCompression", "")) == "01"
    if encapsulated_source:
        source_lossy = source_lossy or codecs.stream_lossy(src.syntax, first_fragment(src))
    if int(ds.get("BitsAllocated", 0) or 0) == 1:
        raise TranscodeError("1-bit pixel data has no compressed form here", target)
    # Lossy JPEG decodes to RGB, as DCMTK's dcmdjpeg does; anything else keeps its colour space.
    as_rgb = src.syntax in (codecs.JPEG_BASELINE, codecs.JPEG_EXTENDED)
    decoded = _decoded(src, frames, as_rgb=as_rgb)
    first, meta = next(decoded)
    photometric = str(meta.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    if photometric == "YBR_FULL_422":  # decoded frames are never subsampled
        photometric = "YBR_FULL"
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    info = FrameInfo(
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        samples=int(ds.get("SamplesPerPixel", 1) or 1),
        bits_allocated=int(ds.BitsAllocated),
        bits_stored=int(ds.get("BitsStored", ds.BitsAllocated)),
        signed=signed,
        photometric=photometric,
    )
    for tag in (0x7FE00001, 0x7FE00002):  # the source's Extended Offset Table describes the source
        if tag in ds:
            del ds[tag]
    native_out = target in NATIVE or target == DEFLATED
    plan = None if native_out else codecs.plan(target, info, allow_lossy=allow_lossy)
    lossy = plan is not None and plan.lossy
    if info.samples > 1:
        ds.PlanarConfiguration = 0
    if source_lossy or lossy:
        ds.LossyImageCompression = "01"
    new_uid = uid
    if plan is None:
        ds.PhotometricInterpretation = photometric
        rest = (arr for arr, _ in decoded)
        _write_native(src, target, out, info, [first], rest, file_meta=file_meta)
        return Transcoded(target, uid, uid, lossy=False, converted=True)
    ds.PhotometricInterpretation = plan.photometric
    if plan.bits_allocated != info.bits_allocated or plan.bits_stored != info.bits_stored:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = (
            plan.bits_allocated,
            plan.bits_stored,
            plan.bits_stored - 1,
        )
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        lengths = []
        for arr in _chain(first, (a for a, _ in decoded)):
            frame = np.asarray(arr)
            if not frame.dtype.isnative:  # a big endian source
                frame = frame.astype(frame.dtype.newbyteorder("="))
            data = plan.encode(frame)
            if len(data) % 2:
                data += b"\0"
            spool.write(data)
            lengths.append(len(data))
        if lossy:
            ratio = frames * frame_bytes(ds) / max(1, sum(lengths))
            new_uid = _mark_lossy(ds, ratio, plan.method, uid)
        as_is = not lossy and _watched(ds) == watched
        _write_encapsulated(src, target, out, spool, lengths, file_meta=file_meta, as_is=as_is)
    return Transcoded(target, new_uid, uid, lossy=lossy, converted=True)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _write_native(
    src: Source,
    target: str,
    out: BinaryIO,
    info: FrameInfo,
    head: list[Any],
    rest: Iterator[Any],
    *,
    file_meta: bool,
) -> None:
    import numpy as np

    ds = src.dataset
    layout = EXPLICIT if target == DEFLATED else target
    order = ">" if layout == codecs.BIG else "<"
    dtype = np.dtype(f"{order}{'i' if info.signed else 'u'}{info.bits_allocated // 8}")
    frames = frame_count(ds)
    size = info.rows * info.columns * info.samples * info.bits_allocated // 8
    length = frames * size + (frames * size) % 2
    if file_meta:
        out.write(_file_meta(src, ds, target, ours=True))
    fp, deflater = _body(out, target)
    write_dataset(fp, ds)
    fp.write(_element_header(PIXEL_DATA, "OB" if info.bits_allocated == 8 else "OW", length, layout))
    for arr in _chain(head[0], rest):
        data = np.ascontiguousarray(arr, dtype=dtype)
        if data.nbytes != size:
            raise TranscodeError(f"a decoded frame has {data.nbytes} bytes, not {size}", src.syntax)
        fp.write(data.tobytes())
    if length != frames * size:
        fp.write(b"\0")
    write_dataset(fp, src.trailing)
    if deflater is not None:
        deflater.finish()


#: The elements that converting pixel data may change; when none did, the others are copied byte for byte.
_WATCHED = (0x00280004, 0x00280006, 0x00280100, 0x00280101, 0x00280102, 0x00282110, 0x7FE00001, 0x7FE00002)


def _watched(ds: Dataset) -> list[Any]:
    return [ds[tag].value if tag in ds else None for tag in _WATCHED]


def _copy_elements(src: Source, fp: DicomFileLike) -> bool:
    """Copy the source's elements before its pixel data as they are, when they are already in Explicit VR
    LE (every compressed syntax's encoding): writing them one by one through pydicom costs as much per file
    as encoding a frame of JPEG-LS. False when they need writing."""
    pixel = src.pixel
    if src.layout != EXPLICIT or pixel is None or pixel.vr not in ("OB", "OW"):
        return False
    src.fp.seek(src.body_offset)
    remaining = pixel.value_offset - 12 - src.body_offset  # OB/OW: tag, VR, 2 reserved, 4-byte length
    while remaining > 0:
        chunk = src.fp.read(min(CHUNK, remaining))
        if not chunk:
            raise TranscodeError("the instance ended before its pixel data", src.syntax)
        fp.write(chunk)
        remaining -= len(chunk)
    return True


def _write_encapsulated(
    src: Source,
    target: str,
    out: BinaryIO,
    spool: Any,
    lengths: list[int],
    *,
    file_meta: bool,
    as_is: bool = False,
) -> None:
    ds = src.dataset
    total = sum(len_ + 8 for len_ in lengths)
    offsets: list[int] = []
    if len(lengths) > 1:
        if total < 1 << 32:
            at = 0
            for size in lengths:
                offsets.append(at)
                at += size + 8
        else:  # a Basic Offset Table cannot point past 4 GiB: an Extended Offset Table does (PS3.5 A.4)
            at, starts = 0, []
            for size in lengths:
                starts.append(at)
                at += size + 8
            ds.ExtendedOffsetTable = struct.pack(f"<{len(starts)}Q", *starts)
            as_is = False
            ds.ExtendedOffsetTableLengths = struct.pack(f"<{len(lengths)}Q", *lengths)
    if file_meta:
        out.write(_file_meta(src, ds, target, ours=True))
    fp = _writer(out, target)
    if not (as_is and _copy_elements(src, fp)):
        write_dataset(fp, ds)
    fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
    fp.write(struct.pack(f"<HHI{len(offsets)}I", 0xFFFE, 0xE000, 4 * len(offsets), *offsets))
    spool.seek(0)
    for size in lengths:
        fp.write(struct.pack("<HHI", 0xFFFE, 0xE000, size))
        fp.write(spool.read(size))
    fp.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    write_dataset(fp, src.trailing)


def _mark_lossy(ds: Dataset, ratio: float, method: str, uid: str) -> str:
    """PS3.3 C.7.6.1.1.5: the lossy attributes (ratio and method appended), Image Type DERIVED, a new SOP
    Instance UID, and the original referenced as the Source Image (as DCMTK's codecs do)."""
    ds.LossyImageCompression = "01"
    ratios = [str(v) for v in _values(ds.get("LossyImageCompressionRatio"))]
    methods = [str(v) for v in _values(ds.get("LossyImageCompressionMethod"))]
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"[:16]]
    ds.LossyImageCompressionMethod = [*methods, method]
    image_type = [str(v) for v in _values(ds.get("ImageType"))] or ["DERIVED", "SECONDARY"]
    image_type[0] = "DERIVED"
    ds.ImageType = image_type
    description = str(ds.get("DerivationDescription", "") or "")
    note = f"Lossy compression with {method}, compression ratio {ratio:.2f}"
    ds.DerivationDescription = (f"{description}; {note}" if description else note)[:1024]
    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.get("SOPClassUID", "")
    reference.ReferencedSOPInstanceUID = uid
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator = "121320", "DCM"
    purpose.CodeMeaning = "Uncompressed predecessor"
    reference.PurposeOfReferenceCodeSequence = [purpose]
    sources = list(ds.get("SourceImageSequence", []) or [])
    ds.SourceImageSequence = [*sources, reference]
    new_uid = str(generate_uid())
    ds.SOPInstanceUID = new_uid
    return new_uid


def _values(element: Any) -> list[Any]:
    value = getattr(element, "value", element)
    if value in (None, ""):
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)
