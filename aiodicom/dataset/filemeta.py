"""The Part 10 header of a stored instance: preamble, ``DICM`` and group 0002 (PS3.10 7.1).

Written by hand with struct: it runs once per received instance, and pydicom's writer costs far more.
"""

from __future__ import annotations

import functools
import struct

__all__ = ["build_file_meta"]

_PREAMBLE = bytes(128) + b"DICM"
_SHORT = struct.Struct("<HH2sH")  # explicit VR little endian, 2-byte length
_GROUP_LENGTH = struct.Struct("<HH2sHI")
#: (0002,0001) File Meta Information Version: OB, 2 bytes, 00\01.
_VERSION = struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"


def _element(element: int, vr: bytes, value: str, pad: bytes, what: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += pad
    if len(raw) > 0xFFFF:
        raise ValueError(f"{what} too long")
    return _SHORT.pack(0x0002, element, vr, len(raw)) + raw


def build_file_meta(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str | None,
    source_ae_title: str | None,
    sending_ae_title: str | None,
    receiving_ae_title: str | None,
) -> bytes:
    """128 zero bytes, ``DICM``, then group 0002 in explicit VR little endian with its group length.

    UIDs are padded with NUL, the version name and AE titles with a space, to even lengths. (0002,0016)
    Source AE Title is the sender's AE title (as DCMTK writes it), (0002,0017) the sending AE, (0002,0018)
    the receiving AE (ours). An empty or None version name or AE title leaves that element out (all are
    optional, PS3.10 Table 7.1-1). Values must be ASCII (UnicodeEncodeError, a ValueError, otherwise).
    """
    body = b"".join(
        (
            _VERSION,
            _cached(0x0002, b"UI", sop_class_uid, b"\x00", "SOP Class UID"),
            _element(0x0003, b"UI", sop_instance_uid, b"\x00", "SOP Instance UID"),
            _cached(0x0010, b"UI", transfer_syntax_uid, b"\x00", "Transfer Syntax UID"),
            _tail(
                implementation_class_uid,
                implementation_version_name,
                source_ae_title,
                sending_ae_title,
                receiving_ae_title,
            ),
        )
    )
    return _PREAMBLE + _GROUP_LENGTH.pack(0x0002, 0x0000, b"UL", 4, len(body)) + body


# Built once per received instance: what repeats from one instance to the next (the SOP class, the
# syntax, the implementation and AE titles of an association) is encoded once.
_cached = functools.lru_cache(maxsize=256)(_element)


@functools.lru_cache(maxsize=64)
def _tail(
    implementation_class_uid: str,
    implementation_version_name: str | None,
    source_ae_title: str | None,
    sending_ae_title: str | None,
    receiving_ae_title: str | None,
) -> bytes:
    parts = [_element(0x0012, b"UI", implementation_class_uid, b"\x00", "Implementation Class UID")]
    if implementation_version_name:
        parts.append(_element(0x0013, b"SH", implementation_version_name, b" ", "version name"))
    for element, title in (
        (0x0016, source_ae_title),
        (0x0017, sending_ae_title),
        (0x0018, receiving_ae_title),
    ):
        if title:
            parts.append(_element(element, b"AE", title, b" ", "AE title"))
    return b"".join(parts)
