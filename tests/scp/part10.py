"""Part 10 files and small CT data sets built with ``struct`` alone (no aiodicom, no pydicom), so that a
sender built on them is independent of the code under test, and thousands cost microseconds."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import Protocol

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.9.7777.2"
_LONG_VRS = {"OB", "OW", "SQ", "UN", "UT"}


class HasDataSet(Protocol):
    @property
    def sop_class(self) -> str: ...
    @property
    def sop_instance(self) -> str: ...
    @property
    def data(self) -> bytes: ...


def element(tag: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element (value padded to even length)."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB") else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
    if vr in _LONG_VRS:
        return head + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def part10(instance: HasDataSet, transfer_syntax: str = EXPLICIT_LE) -> bytes:
    """A file: preamble, ``DICM``, file meta (group 0002 with its length), then the data set as it is."""
    meta = b"".join(
        [
            element(0x00020001, "OB", b"\x00\x01"),
            element(0x00020002, "UI", instance.sop_class.encode()),
            element(0x00020003, "UI", instance.sop_instance.encode()),
            element(0x00020010, "UI", transfer_syntax.encode()),
            element(0x00020012, "UI", IMPLEMENTATION_UID.encode()),
        ]
    )
    group_length = element(0x00020000, "UL", struct.pack("<I", len(meta)))
    return b"\x00" * 128 + b"DICM" + group_length + meta + instance.data


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


@dataclass(frozen=True, slots=True)
class SmallCt:
    """A whole, small CT image (explicit VR little endian) with its UIDs."""

    sop_class: str
    sop_instance: str
    study: str
    series: str
    data: bytes

    @property
    def relative_path(self) -> str:
        return f"{self.study}/{self.series}/{self.sop_instance}.dcm"


def small_ct(study: str | None = None, series: str | None = None, rows: int = 8) -> SmallCt:
    """A CT image of ``rows`` x ``rows`` 16-bit pixels whose pixel values depend on its UID (so that two
    instances never have the same bytes)."""
    sop, study, series = new_uid(), study or new_uid(), series or new_uid()
    seed = uuid.UUID(int=int(sop[5:]) & ((1 << 128) - 1)).bytes
    pixels = (seed * (rows * rows * 2 // 16 + 1))[: rows * rows * 2]
    data = b"".join(
        [
            element(0x00080016, "UI", CT_IMAGE_STORAGE.encode()),
            element(0x00080018, "UI", sop.encode()),
            element(0x00080060, "CS", b"CT"),
            element(0x00100010, "PN", b"Load^Test"),
            element(0x00100020, "LO", b"LOAD1"),
            element(0x0020000D, "UI", study.encode()),
            element(0x0020000E, "UI", series.encode()),
            element(0x00280002, "US", struct.pack("<H", 1)),
            element(0x00280004, "CS", b"MONOCHROME2"),
            element(0x00280010, "US", struct.pack("<H", rows)),
            element(0x00280011, "US", struct.pack("<H", rows)),
            element(0x00280100, "US", struct.pack("<H", 16)),
            element(0x00280101, "US", struct.pack("<H", 16)),
            element(0x00280102, "US", struct.pack("<H", 15)),
            element(0x00280103, "US", struct.pack("<H", 0)),
            element(0x7FE00010, "OW", pixels),
        ]
    )
    return SmallCt(CT_IMAGE_STORAGE, sop, study, series, data)
