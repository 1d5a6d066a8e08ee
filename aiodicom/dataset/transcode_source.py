"""Reading an instance to convert (for :mod:`aiodicom.dataset.transcode`): its file meta, the elements before
and after its pixel data, and where that pixel data lies, without reading it; checks of its frame count."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import _at_pixel_data, _read_file_meta_info, read_dataset

from aiodicom.errors import TranscodeError

from . import codecs
from .codecs import DEFLATED, EXPLICIT, IMPLICIT

PIXEL_DATA = 0x7FE00010
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
#: Past this many bytes, data waits in a temporary file rather than in memory.
SPOOL_BYTES = 2 << 20
CHUNK = 4 << 20


@dataclass
class Pixel:
    tag: int
    vr: str
    value_offset: int
    length: int | None  # None: undefined (encapsulated)
    fragments: int = 0
    offsets: tuple[int, ...] = ()  # the Basic Offset Table
    starts: list[int] = field(default_factory=list)  # each fragment's offset after the table, as a BOT counts
    tails: list[bytes] = field(default_factory=list)  # the last bytes of each fragment


@dataclass
class Source:
    fp: BinaryIO
    syntax: str  # as declared
    meta: FileMetaDataset | None
    body_offset: int
    dataset: Dataset  # the elements before the pixel data
    pixel: Pixel | None
    trailing: Dataset  # the elements after it
    layout: str = ""  # the syntax the body is read in (Explicit VR LE for a deflated source)
    extra: list[Any] = field(default_factory=list)

    @property
    def implicit(self) -> bool:
        return self.layout == IMPLICIT

    @property
    def little(self) -> bool:
        return self.layout != codecs.BIG


@contextlib.contextmanager
def opened(source: str | os.PathLike[str] | bytes | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fp:
            yield fp
    elif isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source)
    else:
        yield source


def read_source(fp: BinaryIO, source_syntax: str | None) -> Source:
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
    source = Source(fp, syntax, meta, body_offset, Dataset(), None, Dataset(), layout=syntax)
    if syntax == DEFLATED:
        source.fp = _inflate(fp)
        source.layout = EXPLICIT
        source.body_offset = 0
        source.extra.append(source.fp)
    body = source.fp
    source.dataset = read_dataset(body, source.implicit, source.little, stop_when=_at_pixel_data)
    source.pixel = _read_pixel_header(body, source)
    source.trailing = read_dataset(body, source.implicit, source.little)
    return source


def _inflate(fp: BinaryIO) -> BinaryIO:
    """The deflated body inflated into a temporary file (in memory while small)."""
    spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))  # noqa: SIM115
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    while chunk := fp.read(CHUNK):
        spool.write(inflater.decompress(chunk))
    spool.write(inflater.flush())
    spool.seek(0)
    return spool


def _read_pixel_header(fp: BinaryIO, source: Source) -> Pixel | None:
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
        vr = "OB" if length is None or (tag == PIXEL_DATA and bits <= 8) else "OW"
        if tag == 0x7FE00008:
            vr = "OF"
        elif tag == 0x7FE00009:
            vr = "OD"
    pixel = Pixel(tag, vr, fp.tell(), length)
    if length is not None:
        fp.seek(pixel.value_offset + length)
        return pixel
    # Encapsulated: walk the items to the sequence delimiter (reading only the Basic Offset Table).
    fragments, first = -1, 0
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
        elif fragments == -1:
            pass
        else:
            at = fp.tell()
            pixel.starts.append(at - 8 - first)
            if size >= 4:
                fp.seek(size - 4, io.SEEK_CUR)
            pixel.tails.append(fp.read(min(size, 4)))
            fp.seek(at + size)
        if fragments == -1:
            first = fp.tell()
        fragments += 1
    pixel.fragments = fragments
    return pixel


def frame_count(ds: Dataset) -> int:
    value = ds.get("NumberOfFrames", 1)
    try:
        frames = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        raise TranscodeError(f"Number of Frames {value!r} is not a number") from None
    if frames < 1:
        raise TranscodeError(f"Number of Frames is {frames}")
    return frames


def frame_bytes(ds: Dataset) -> int:
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        return rows * columns * 2 * bits // 8
    return rows * columns * samples * bits // 8


def check_frames(src: Source, frames: int) -> None:
    """A frame count that does not match the pixel data is an error, not a guess."""
    pixel = cast(Pixel, src.pixel)
    ds = src.dataset
    if pixel.length is not None:
        size = frame_bytes(ds)
        expected = size * frames
        if pixel.length < expected or pixel.length >= expected + max(size, 2):
            raise TranscodeError(
                f"the frame count does not match: {frames} frames of {size} bytes in {pixel.length} bytes",
                src.syntax,
            )
        return
    if pixel.offsets and len(pixel.offsets) != frames:
        raise TranscodeError(
            f"the frame count does not match: {frames} frames, {len(pixel.offsets)} in the offset table",
            src.syntax,
        )
    if pixel.fragments < frames:
        raise TranscodeError(
            f"the frame count does not match: {frames} frames in {pixel.fragments} fragments", src.syntax
        )
    if src.syntax in codecs.JPEG_FAMILY | codecs.JPEG_LS_FAMILY | codecs.J2K_FAMILY:
        _check_ends(src, frames)


def _check_ends(src: Source, frames: int) -> None:
    """Every JPEG, JPEG-LS and JPEG 2000 frame ends with its EOI/EOC marker (FFD9): a stream cut short is an
    error here, where some decoders would only warn and return part of an image."""
    pixel = cast(Pixel, src.pixel)
    if pixel.fragments == frames:
        last = list(range(frames))
    elif pixel.offsets:
        index = {start: i for i, start in enumerate(pixel.starts)}
        last = [index[o] - 1 for o in pixel.offsets[1:] if o in index] + [pixel.fragments - 1]
    else:
        last = [pixel.fragments - 1]
    for frame, fragment in enumerate(last):
        if not pixel.tails[fragment].rstrip(b"\0").endswith(b"\xff\xd9"):
            raise TranscodeError(
                f"the stream of frame {frame + 1} of {frames} is truncated or corrupt: it does not end with "
                f"an end-of-image marker",
                src.syntax,
            )


def first_fragment(src: Source) -> bytes:
    """The first bytes of the first frame's stream (its headers say how it was encoded)."""
    pixel = cast(Pixel, src.pixel)
    fp = src.fp
    fp.seek(pixel.value_offset)
    _, size = struct.unpack("<II", fp.read(8))
    fp.seek(size, io.SEEK_CUR)
    tag, size = struct.unpack("<II", fp.read(8))
    return fp.read(min(size, 1 << 20)) if tag == 0xE000FFFE else b""
