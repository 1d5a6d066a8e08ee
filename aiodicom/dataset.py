"""Data set helpers for received instances: UID checks, tag values as DICOM strings, file meta, tag changes.

pydicom parses only the elements before Pixel Data; the pixel data stays on disk, untouched.
"""

from __future__ import annotations

import io
import logging
import re
import struct
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _at_pixel_data, dcmread, read_dataset
from pydicom.filewriter import write_dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

log = logging.getLogger("aiodicom.dataset")

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ"}


def validate_uid(value: str, what: str = "UID") -> str:
    """A UID fit to become part of a path or key: trailing NUL/space stripped, digits and dots, <= 64 chars.

    Raises ValueError otherwise. Components with leading zeros are accepted with a warning (real peers
    send them).
    """
    uid = str(value).rstrip("\x00 ")
    if not uid or len(uid) > 64 or not _UID.fullmatch(uid):
        raise ValueError(f"invalid {what} {value!r}")
    if any(len(part) > 1 and part.startswith("0") for part in uid.split(".")):
        log.warning("%s %s has a component with a leading zero", what, uid)
    return uid


def tag_string(elem: DataElement) -> str | None:
    """The DICOM string form of a value (PN ``DOE^JOHN``, multi-values joined with ``\\``); None for bulk
    data and sequences, which are not extracted."""
    if elem.VR in _BINARY_VRS:
        return None
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_one(v) for v in value)
    return _one(value)


def _one(value: Any) -> str:
    original = getattr(value, "original_string", None)
    if isinstance(original, bytes):
        return original.decode("latin-1").strip()
    if isinstance(value, bytes):
        return value.decode("latin-1").strip()
    return str(value)


def extract(ds: Dataset, keywords: Iterable[str], custom: Iterable[tuple[int, str]] = ()) -> dict[str, str]:
    """Tag values by keyword (and custom tags by name); a tag absent from the data set is absent here."""
    tags: dict[str, str] = {}
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is not None and tag in ds:
            text = tag_string(ds[tag])
            if text is not None:
                tags[keyword] = text
    for tag, name in custom:
        if tag in ds:
            text = tag_string(ds[tag])
            if text is not None:
                tags[name] = text
    return tags


def read_leading(fp: BinaryIO, offset: int, transfer_syntax_uid: str) -> tuple[Dataset, int]:
    """Parse a data set that starts at ``offset`` up to Pixel Data; returns the data set and the offset where
    Pixel Data (or the end) starts. Group 0002 elements wrongly inside the data set stay in it, to be seen.

    A deflated data set is inflated whole by pydicom (such data sets are small in practice); its pixel
    offset is None.
    """
    syntax = UID(transfer_syntax_uid)
    fp.seek(offset)
    if syntax.is_deflated:
        deflated: Dataset = dcmread(fp, stop_before_pixels=True, force=True)
        return deflated, -1
    ds = read_dataset(fp, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_at_pixel_data)
    return ds, fp.tell()


def _short(tag: int, vr: bytes, value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += pad
    return struct.pack("<HH2sH", 0x0002, tag, vr, len(raw)) + raw


_PIXEL_TAGS_LE = {struct.pack("<HH", 0x7FE0, e) for e in (0x0008, 0x0009, 0x0010)}
_PIXEL_TAGS_BE = {struct.pack(">HH", 0x7FE0, e) for e in (0x0008, 0x0009, 0x0010)}


def read_leading_from(
    head: bytes | bytearray, total: int | None, transfer_syntax_uid: str
) -> tuple[Dataset, int] | None:
    """Parse the leading elements from the first bytes of a data set of ``total`` bytes (None: not known
    yet, so only reaching Pixel Data counts).

    Returns the data set and the offset of Pixel Data (or the end), or None when ``head`` does not hold all
    the leading elements (the caller then reads the file).
    """
    syntax = UID(transfer_syntax_uid)
    if syntax.is_deflated:
        return None
    fp = io.BytesIO(head)
    try:
        ds = read_dataset(fp, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_at_pixel_data)
    except Exception:  # a truncated element at the end of the copy
        return None
    position = fp.tell()
    if position == total == len(head):
        return ds, position
    pixel_tags = _PIXEL_TAGS_LE if syntax.is_little_endian else _PIXEL_TAGS_BE
    if bytes(head[position : position + 4]) in pixel_tags:
        return ds, position
    return None


def build_file_meta(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str,
    source_ae_title: str | None = None,
    sending_ae_title: str | None = None,
    receiving_ae_title: str | None = None,
) -> bytes:
    """Preamble, ``DICM`` and group 0002 (PS3.10 7.1), explicit VR little endian with its group length.

    Written by hand: it runs once per received instance.
    """
    elements = [
        struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01",
        _short(0x0002, b"UI", sop_class_uid, b"\x00"),
        _short(0x0003, b"UI", sop_instance_uid, b"\x00"),
        _short(0x0010, b"UI", transfer_syntax_uid, b"\x00"),
        _short(0x0012, b"UI", implementation_class_uid, b"\x00"),
        _short(0x0013, b"SH", implementation_version_name, b" "),
    ]
    for element, title in (
        (0x0016, source_ae_title),
        (0x0017, sending_ae_title),
        (0x0018, receiving_ae_title),
    ):
        if title:
            elements.append(_short(element, b"AE", title, b" "))
    body = b"".join(elements)
    return bytes(128) + b"DICM" + struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) + body


def apply_changes(ds: Dataset, changes: Mapping[str, str | None], custom: Mapping[str, int]) -> bool:
    """Merge a hook's answer into ``ds``: a changed value is written, ``""`` writes an empty value, None
    removes the element, a new keyword is added. Returns True when a stored value really changed."""
    changed = False
    for key, value in changes.items():
        tag = custom.get(key) or tag_for_keyword(key)
        if tag is None:
            raise ValueError(
                f"the hook returned {key!r}, which is neither a DICOM keyword nor a custom tag name"
            )
        if value is None:
            if tag in ds:
                del ds[tag]
                changed = True
            continue
        if tag in ds:
            if tag_string(ds[tag]) == value:
                continue
            ds[tag].value = value
        else:
            ds.add_new(tag, dictionary_VR(tag) if key not in custom else "LO", value)
        changed = True
    return changed


def encode_leading(ds: Dataset, transfer_syntax_uid: str) -> bytes:
    """Encode the leading elements in the data set's transfer syntax, without group 0002 and group lengths."""
    syntax = UID(transfer_syntax_uid)
    for elem in list(ds):
        if elem.tag.group == 0x0002 or elem.tag.element == 0x0000:
            del ds[elem.tag]
    out = DicomBytesIO()
    out.is_little_endian = syntax.is_little_endian
    out.is_implicit_VR = syntax.is_implicit_VR
    write_dataset(out, ds)
    return bytes(out.getvalue())


def has_group_0002(ds: Dataset) -> bool:
    """True when a sender wrongly put file meta elements inside the data set."""
    # keys, not elements: iterating a Dataset converts every raw element
    return any(tag >> 16 == 0x0002 for tag in ds.keys())  # noqa: SIM118


def raw_text(ds: Dataset, tag: int) -> str:
    """A string value without pydicom's conversion and validation (fast, for UIDs and codes)."""
    elem = ds.get_item(tag)
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00 ")
    return str(value).rstrip("\x00 ")


def copy_rest(source: BinaryIO, offset: int, target: BinaryIO, chunk: int = 1 << 20) -> None:
    """Copy ``source`` from ``offset`` to its end into ``target``."""
    source.seek(offset)
    while block := source.read(chunk):
        target.write(block)
