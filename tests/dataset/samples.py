"""pydicom's bundled test files split into transfer syntax and data set bytes, with pydicom's reading of
them as the reference."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from functools import cache

from pydicom import Dataset
from pydicom.data import get_testdata_file
from pydicom.filereader import read_dataset

from aiodicom.dataset import syntax_encoding

#: Bundled with pydicom (no download): every encoding, sequences, encapsulated pixel data.
NAMES = (
    "CT_small.dcm",  # explicit VR LE, private tags, a sequence
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "ExplVR_BigEnd.dcm",  # big endian, group lengths
    "rtplan.dcm",  # implicit VR, nested sequences, no pixel data
    "rtdose.dcm",
    "JPEG2000.dcm",  # encapsulated
    "JPEG2000-embedded-sequence-delimiter.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "MR_small_RLE.dcm",
    "image_dfl.dcm",  # deflated
    "UN_sequence.dcm",  # UN of undefined length holding implicit VR items
    "nested_priv_SQ.dcm",  # implicit VR, nested private sequences of undefined length
    "priv_SQ.dcm",
    "reportsi.dcm",  # structured report: deep nesting, no pixel data
    "waveform_ecg.dcm",  # 290 kB of leading elements
    "examples_overlay.dcm",
    "SC_rgb_jpeg.dcm",  # says JPEG Baseline (explicit VR), encoded in implicit VR
)

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def pixel_stop(tag: int, vr: str | None, length: int) -> bool:
    return tag >= 0x7FE00008


@dataclass(frozen=True)
class Sample:
    name: str
    transfer_syntax: str
    meta: bytes  # preamble, DICM and group 0002
    body: bytes  # the data set as sent on the wire
    plain: bytes  # the same, inflated when deflated
    pixel_start: int  # offset in ``plain`` of the first element at or after (7FE0,0008), or its length
    implicit: bool  # the encoding pydicom found

    @property
    def deflated(self) -> bool:
        return syntax_encoding(self.transfer_syntax)[2]

    @property
    def little(self) -> bool:
        return syntax_encoding(self.transfer_syntax)[1]

    def reference(self, whole: bool = False) -> Dataset:
        """pydicom's reading of the leading elements (or the whole data set)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            implicit = syntax_encoding(self.transfer_syntax)[0]
            stop = None if whole else pixel_stop
            return read_dataset(io.BytesIO(self.plain), implicit, self.little, stop_when=stop)


def split_meta(data: bytes) -> tuple[str, int]:
    """The transfer syntax and the end of group 0002 of a Part 10 file."""
    assert data[128:132] == b"DICM"
    pos, syntax = 132, ""
    while struct.unpack_from("<H", data, pos)[0] == 0x0002:
        element = struct.unpack_from("<H", data, pos + 2)[0]
        if data[pos + 4 : pos + 6] in LONG_VRS:
            length, header = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, header = struct.unpack_from("<H", data, pos + 6)[0], 8
        if element == 0x0010:
            syntax = data[pos + header : pos + header + length].rstrip(b"\x00 ").decode()
        pos += header + length
    return syntax, pos


@cache
def load(name: str) -> Sample:
    path = get_testdata_file(name, download=False)
    assert isinstance(path, str), f"{name} is not bundled with pydicom"
    with open(path, "rb") as fp:
        data = fp.read()
    syntax, end = split_meta(data)
    body = data[end:]
    implicit, little, deflated = syntax_encoding(syntax)
    plain = zlib.decompress(body, -15) if deflated else body
    stream = io.BytesIO(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(stream, implicit, little, stop_when=pixel_stop)
    return Sample(name, syntax, data[:end], body, plain, stream.tell(), ds.original_encoding[0] is True)


def chunks(data: bytes, sizes: list[int]) -> list[memoryview]:
    """``data`` cut into memoryviews of the given sizes, cycling through them."""
    view, out, pos, i = memoryview(data), [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(view[pos : pos + size])
        pos, i = pos + size, i + 1
    return out
