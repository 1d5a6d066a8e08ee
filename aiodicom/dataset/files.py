"""Reading what a sender needs from a DICOM file without loading it: SOP class and instance, transfer syntax,
and where the data set starts. Files with and without a Part 10 header are both accepted.

The usual files (little endian, a plain group 0008 near the start) are read here from their first bytes;
pydicom, and numpy with it, is imported only for the others (big endian, deflated, unusual layouts), so a
sender of ordinary files never loads it.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
import zlib
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import BinaryIO

from aiodicom.uids import (
    DEFLATED_TRANSFER_SYNTAXES,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)

_SOP_CLASS, _SOP_INSTANCE = 0x00080016, 0x00080018
_VR_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class InstanceHeader:
    """What identifies an instance on the wire, and the offset of its data set in the file."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    data_offset: int
    has_file_meta: bool


_LONG_VRS = frozenset(
    (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
)
_ELEMENT = struct.Struct("<HH2sH")
_U32 = struct.Struct("<I")
#: Syntaxes whose data set is not explicit VR little endian as it is in the file: for the full parser.
_NOT_PLAIN_LITTLE_ENDIAN = frozenset((EXPLICIT_VR_BIG_ENDIAN, *DEFLATED_TRANSFER_SYNTAXES))


def _element(head: bytes, pos: int, explicit: bool) -> tuple[int, int, int, int]:
    """(group, element, header length, value length) of the element at ``pos`` (little endian)."""
    group, element, vr, short = _ELEMENT.unpack_from(head, pos)
    if not explicit:
        return group, element, 8, _U32.unpack_from(head, pos + 4)[0]
    if vr in _LONG_VRS:
        return group, element, 12, _U32.unpack_from(head, pos + 8)[0]
    return group, element, 8, short


def _fast_header(head: bytes) -> InstanceHeader | None:
    """The header of a little endian instance whose group 0008 starts plainly; None to use the full parser."""
    try:
        pos = 132 if head[128:132] == b"DICM" else 0
        syntax = None
        meta_start = pos
        while pos + 8 <= len(head):
            group, element, header, length = _element(head, pos, True)
            if group != 0x0002:
                break
            if element == 0x0010:
                syntax = head[pos + header : pos + header + length].rstrip(b"\x00 ").decode("ascii")
            pos += header + length
        has_meta = pos > meta_start
        if syntax is None:
            if has_meta or len(head) < pos + 8:
                return None
            syntax = (
                EXPLICIT_VR_LITTLE_ENDIAN if head[pos + 4 : pos + 6].isalpha() else IMPLICIT_VR_LITTLE_ENDIAN
            )
        if not syntax or syntax in _NOT_PLAIN_LITTLE_ENDIAN:
            return None
        explicit = syntax != IMPLICIT_VR_LITTLE_ENDIAN
        offset = pos
        found: dict[int, str] = {}
        while pos + 8 <= len(head) and len(found) < 2:
            group, element, header, length = _element(head, pos, explicit)
            if group > 0x0008 or length == 0xFFFFFFFF:
                break
            if group == 0x0008 and element in (0x0016, 0x0018):
                found[element] = head[pos + header : pos + header + length].rstrip(b"\x00 ").decode("ascii")
            pos += header + length
        if len(found) < 2 or not found[0x0016] or not found[0x0018]:
            return None
        return InstanceHeader(found[0x0016], found[0x0018], syntax, offset, has_meta)
    except (struct.error, UnicodeDecodeError):
        return None


def read_header(source: str | os.PathLike[str] | BinaryIO) -> InstanceHeader:
    """Read an instance's header. Raises ValueError when the file is not a DICOM instance."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            return read_header(file)
    fp = source
    start = fp.tell()
    fast = _fast_header(fp.read(16384))
    if fast is not None:
        if start:
            fast = InstanceHeader(
                fast.sop_class_uid,
                fast.sop_instance_uid,
                fast.transfer_syntax_uid,
                fast.data_offset + start,
                fast.has_file_meta,
            )
        return fast
    return _full_header(fp, start)


def _full_header(fp: BinaryIO, start: int) -> InstanceHeader:
    """The header of any instance, read by pydicom's parser from ``start``."""
    from pydicom.filereader import _at_pixel_data, _read_file_meta_info, read_dataset

    from aiodicom.dataset.prefix import syntax_encoding

    fp.seek(start)
    head = fp.read(132)
    has_meta = head[128:132] == b"DICM"
    if has_meta:
        meta = _read_file_meta_info(fp)
        offset = fp.tell()
        syntax = str(meta.get("TransferSyntaxUID", "")).rstrip("\x00 ")
        if not syntax:
            raise ValueError("the file meta has no transfer syntax")
    else:
        fp.seek(start)
        first = fp.read(8)
        if len(first) < 8:
            raise ValueError("too short to be a DICOM data set")
        group, _element = struct.unpack("<HH", first[:4])
        if group == 0x0002:
            fp.seek(start)
            meta = _read_file_meta_info(fp)
            offset = fp.tell()
            syntax = str(meta.get("TransferSyntaxUID", "")).rstrip("\x00 ")
            has_meta = True
        else:
            if group not in (0x0008, 0x0000) and group > 0x0008:
                raise ValueError("does not start like a DICOM data set")
            offset = start
            explicit = first[4] in _VR_CHARS and first[5] in _VR_CHARS
            syntax = EXPLICIT_VR_LITTLE_ENDIAN if explicit else IMPLICIT_VR_LITTLE_ENDIAN
    fp.seek(offset)
    # from the UID itself: pydicom's registry does not know every syntax (JPEG XL, private ones)
    implicit, little, deflated = syntax_encoding(syntax)
    data: BinaryIO = fp
    if deflated:  # the UIDs are near the start of the inflated data set; the file is sent as it is
        data = io.BytesIO(_inflate_start(fp))
    ds = read_dataset(
        data,
        implicit,
        little,
        stop_when=_at_pixel_data,
        specific_tags=[_SOP_CLASS, _SOP_INSTANCE],
    )
    sop_class = str(ds.get(_SOP_CLASS).value if _SOP_CLASS in ds else "").rstrip("\x00 ")
    sop_instance = str(ds.get(_SOP_INSTANCE).value if _SOP_INSTANCE in ds else "").rstrip("\x00 ")
    if not sop_class or not sop_instance:
        raise ValueError("no SOP Class UID or SOP Instance UID: not a DICOM instance")
    return InstanceHeader(sop_class, sop_instance, syntax, offset, has_meta)


def unreadable(*errors: type[Exception]) -> tuple[type[Exception], ...]:
    """``errors`` and, once pydicom is loaded, its InvalidDicomError: what :func:`read_header` raises for a
    file it cannot read (pydicom's parser, and its errors, come in only for unusual files)."""
    invalid = sys.modules.get("pydicom.errors")
    return (*errors, invalid.InvalidDicomError) if invalid is not None else errors


def _inflate_start(fp: BinaryIO, size: int = 1 << 20) -> bytes:
    """The first ``size`` bytes (at most) of the deflated data set at ``fp``'s position, inflated."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    plain = bytearray()
    try:
        while len(plain) < size and not inflater.eof and (block := fp.read(1 << 16)):
            plain += inflater.decompress(block, size - len(plain))
    except zlib.error as exc:
        raise ValueError(f"the deflated data set cannot be inflated: {exc}") from exc
    return bytes(plain)


def looks_like_dicom(path: str | os.PathLike[str]) -> bool:
    """DICOM by content: a Part 10 preamble, or a data set that starts with group 0002 or 0008."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    return dicom_bytes(head)


def dicom_bytes(head: bytes) -> bool:
    """A Part 10 preamble, or a first tag (little endian) in group 0002 or 0008 below element 0x1000.

    Tags are compared as numbers: the bytes of a little endian element number do not sort like the number
    (``16 00`` is element 0x0016), which once made every data-set-only file look like something else.
    """
    if head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group, element = struct.unpack_from("<HH", head)
    return group in (0x0002, 0x0008) and element < 0x1000


def read_small_file(path: str | os.PathLike[str], limit: int) -> bytes | None:
    """The whole file when it is a regular file of at most ``limit`` bytes, else None (read in one call)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return os.pread(fd, info.st_size, 0)
    finally:
        os.close(fd)


def open_instance(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | AsyncIterable[bytes],
    header: InstanceHeader | None = None,
) -> tuple[InstanceHeader, bytes | memoryview | BinaryIO | AsyncIterable[bytes]]:
    """An instance to send: its header and its data set, as a view of the bytes, a file opened at the
    data set's first byte (the caller closes it), or the async iterable given (which needs ``header``)."""
    if isinstance(source, AsyncIterable):
        if header is None:
            raise ValueError("sending a stream needs the instance's header")
        return header, source
    if isinstance(source, bytes | bytearray | memoryview):
        header = header or read_header(io.BytesIO(source))
        return header, memoryview(source)[header.data_offset :]
    header = header or read_header(source)
    # unbuffered: the data set is read in large blocks, and a buffered reader's set-up costs system calls
    file = open(source, "rb", buffering=0)  # noqa: SIM115 (the caller closes it)
    file.seek(header.data_offset)
    return header, file
