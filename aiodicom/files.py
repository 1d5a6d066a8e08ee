"""Reading what a sender needs from a DICOM file without loading it: SOP class and instance, transfer syntax,
and where the data set starts. Files with and without a Part 10 header are both accepted."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.filereader import _at_pixel_data, _read_file_meta_info, read_dataset
from pydicom.uid import UID

from aiodicom.ul.negotiation import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN

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


def read_header(source: str | os.PathLike[str] | BinaryIO) -> InstanceHeader:
    """Read an instance's header. Raises ValueError when the file is not a DICOM instance."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            return read_header(file)
    fp = source
    start = fp.tell()
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
    uid = UID(syntax)
    if uid.is_deflated:
        raise ValueError("deflated data sets are not supported for sending yet")
    ds = read_dataset(
        fp,
        uid.is_implicit_VR,
        uid.is_little_endian,
        stop_when=_at_pixel_data,
        specific_tags=[_SOP_CLASS, _SOP_INSTANCE],
    )
    sop_class = str(ds.get(_SOP_CLASS).value if _SOP_CLASS in ds else "").rstrip("\x00 ")
    sop_instance = str(ds.get(_SOP_INSTANCE).value if _SOP_INSTANCE in ds else "").rstrip("\x00 ")
    if not sop_class or not sop_instance:
        raise ValueError("no SOP Class UID or SOP Instance UID: not a DICOM instance")
    return InstanceHeader(sop_class, sop_instance, syntax, offset, has_meta)
