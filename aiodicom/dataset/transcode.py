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

import contextlib
import io
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filereader import _at_pixel_data, _read_file_meta_info, read_dataset
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID

from aiodicom.errors import TranscodeError
from aiodicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

from . import codecs
from .codecs import (
    DEFLATED,
    EXPLICIT,
    IMPLICIT,
    NATIVE,
    check_target,
    decodable,
    encodable,
    lossy_target,
    syntax_label,
)

if TYPE_CHECKING:
    pass

__all__ = ["Transcoded", "check_target", "decodable", "encodable", "lossy_target", "transcode"]

_PIXEL_DATA = 0x7FE00010
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
#: Past this many bytes, encoded frames wait in a temporary file rather than in memory.
_SPOOL_BYTES = 8 << 20
_CHUNK = 4 << 20
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


@dataclass
class _Pixel:
    tag: int
    vr: str
    value_offset: int
    length: int | None  # None: undefined (encapsulated)
    fragments: int = 0
    offsets: tuple[int, ...] = ()  # the Basic Offset Table


@dataclass
class _Source:
    fp: BinaryIO
    syntax: str  # as declared
    meta: FileMetaDataset | None
    body_offset: int
    dataset: Dataset  # the elements before the pixel data
    pixel: _Pixel | None
    trailing: Dataset  # the elements after it
    layout: str = ""  # the syntax the body is read in (Explicit VR LE for a deflated source)
    extra: list[Any] = field(default_factory=list)

    @property
    def implicit(self) -> bool:
        return self.layout == IMPLICIT

    @property
    def little(self) -> bool:
        return self.layout != codecs.BIG


# -- reading ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _opened(source: str | os.PathLike[str] | bytes | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fp:
            yield fp
    elif isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source)
    else:
        yield source


def _read_source(fp: BinaryIO, source_syntax: str | None) -> _Source:
    start = fp.tell()
    head = fp.read(132)
    meta: FileMetaDataset | None = None
    if head[128:132] == b"DICM":
        meta = _read_file_meta_info(fp)
    else:
        fp.seek(start)
        if head[:2] == b"\x02\x00":
            meta = _read_file_meta_info(fp)
    if meta is not None and "TransferSyntaxUID" in meta:
        syntax = str(meta.TransferSyntaxUID).rstrip("\0 ")
    elif source_syntax:
        syntax = source_syntax
    else:
        at = fp.tell()
        first = fp.read(6)
        fp.seek(at)
        explicit = len(first) == 6 and first[4:6].isalpha() and first[4:6].isupper()
        syntax = EXPLICIT if explicit else IMPLICIT
    body_offset = fp.tell()
    source = _Source(fp, syntax, meta, body_offset, Dataset(), None, Dataset(), layout=syntax)
    if syntax == DEFLATED:
        source.fp = _inflate(fp)
        source.layout = EXPLICIT
        source.body_offset = 0
        source.extra.append(source.fp)
    elif syntax not in NATIVE and UID(syntax).is_implicit_VR:
        raise TranscodeError(f"{syntax_label(syntax)} is not a transfer syntax of this kind", syntax)
    body = source.fp
    source.dataset = read_dataset(body, source.implicit, source.little, stop_when=_at_pixel_data)
    source.pixel = _read_pixel_header(body, source)
    source.trailing = read_dataset(body, source.implicit, source.little)
    return source


def _inflate(fp: BinaryIO) -> BinaryIO:
    """The deflated body inflated into a temporary file (in memory while small)."""
    spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES))  # noqa: SIM115
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    while chunk := fp.read(_CHUNK):
        spool.write(inflater.decompress(chunk))
    spool.write(inflater.flush())
    spool.seek(0)
    return spool


def _read_pixel_header(fp: BinaryIO, source: _Source) -> _Pixel | None:
    at = fp.tell()
    head = fp.read(8)
    if len(head) < 8:
        fp.seek(at)
        return None
    order = "<" if source.little else ">"
    group, element = struct.unpack(order + "HH", head[:4])
    tag = group << 16 | element
    if source.implicit:
        length: int | None = struct.unpack(order + "I", head[4:])[0]
        vr = ""
    else:
        vr = head[4:6].decode("ascii", "replace")
        length = struct.unpack(order + "I", fp.read(4))[0]
    if length == 0xFFFFFFFF:
        length = None
    if vr in ("", "UN", "OB or OW"):
        bits = int(source.dataset.get("BitsAllocated", 16) or 16)
        vr = "OB" if length is None or (tag == _PIXEL_DATA and bits <= 8) else "OW"
        if tag == 0x7FE00008:
            vr = "OF"
        elif tag == 0x7FE00009:
            vr = "OD"
    pixel = _Pixel(tag, vr, fp.tell(), length)
    if length is not None:
        fp.seek(pixel.value_offset + length)
        return pixel
    # Encapsulated: walk the items to the sequence delimiter (reading only the Basic Offset Table).
    fragments = -1
    while True:
        item = fp.read(8)
        if len(item) < 8:
            raise TranscodeError("the encapsulated pixel data ends before its delimiter", source.syntax)
        group, element, size = struct.unpack("<HHI", item)
        tag_value = group << 16 | element
        if tag_value == _SEQUENCE_END:
            break
        if tag_value != _ITEM or size == 0xFFFFFFFF:
            raise TranscodeError("the encapsulated pixel data holds a non-item", source.syntax)
        if fragments == -1 and size:
            table = fp.read(size)
            if len(table) != size or size % 4:
                raise TranscodeError("the Basic Offset Table is truncated or misaligned", source.syntax)
            pixel.offsets = struct.unpack(f"<{size // 4}I", table)
        else:
            fp.seek(size, io.SEEK_CUR)
        fragments += 1
    pixel.fragments = fragments
    return pixel


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


def _file_meta(source: _Source, ds: Dataset, syntax: str, *, ours: bool) -> bytes:
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


def _swap_unit(pixel: _Pixel, big_endian_vr: str, ds: Dataset) -> int:
    """The size of the units whose bytes reverse between little and big endian: a pixel of 16 bits or more;
    for 8-bit data, a 16-bit word when the big endian side says OW, else nothing."""
    if pixel.tag != _PIXEL_DATA:
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
    with _opened(source) as fp:
        try:
            src = _read_source(fp, source_transfer_syntax)
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


def _convert(src: _Source, target: str, out: BinaryIO, *, allow_lossy: bool, file_meta: bool) -> Transcoded:
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
    if pixel is None or pixel.tag != _PIXEL_DATA or (native_in and native_out):
        if pixel is not None and not native_out:
            raise TranscodeError(f"{pixel.vr} float pixel data has no compressed form", target)
        _write_plain(src, target, out, file_meta=file_meta)
        return Transcoded(target, uid, uid, lossy=False, converted=True)
    if not decodable(src.syntax):
        raise TranscodeError(codecs.missing_decoder(src.syntax), src.syntax)
    return _write_pixels(src, target, out, uid, allow_lossy=allow_lossy, file_meta=file_meta)


def _copy(src: _Source, out: BinaryIO, *, file_meta: bool) -> None:
    if file_meta:
        out.write(_file_meta(src, src.dataset, src.syntax, ours=False))
    if src.syntax == DEFLATED:
        _deflate_copy(src, out)
        return
    src.fp.seek(src.body_offset)
    while chunk := src.fp.read(_CHUNK):
        out.write(chunk)


def _deflate_copy(src: _Source, out: BinaryIO) -> None:
    """A deflated source copied: deflate the inflated body again (the original stream was consumed)."""
    deflater = _Deflater(out)
    src.fp.seek(0)
    while chunk := src.fp.read(_CHUNK):
        deflater.write(chunk)
    deflater.finish()


def _body(out: BinaryIO, target: str) -> tuple[DicomFileLike, _Deflater | None]:
    if target == DEFLATED:
        deflater = _Deflater(out)
        return _writer(deflater, EXPLICIT), deflater
    return _writer(out, target), None


def _write_plain(src: _Source, target: str, out: BinaryIO, *, file_meta: bool) -> None:
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
            chunk = src.fp.read(min(left, _CHUNK))
            if not chunk:
                raise TranscodeError("the pixel data is shorter than its length says", src.syntax)
            left -= len(chunk)
            fp.write(_swapped(chunk, unit) if unit > 1 else chunk)
    write_dataset(fp, trailing)
    if deflater is not None:
        deflater.finish()


def _be_vr(pixel: _Pixel, ds: Dataset) -> str:
    if pixel.tag != _PIXEL_DATA:
        return pixel.vr
    return "OB" if int(ds.get("BitsAllocated", 16) or 16) <= 8 else "OW"


def _write_pixels(
    src: _Source, target: str, out: BinaryIO, uid: str, *, allow_lossy: bool, file_meta: bool
) -> Transcoded:
    raise TranscodeError(f"{syntax_label(src.syntax)} to {syntax_label(target)} is not supported yet", target)
