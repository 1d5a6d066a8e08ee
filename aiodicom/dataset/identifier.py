"""Response identifiers as plain elements, encoded without building a pydicom Dataset.

A C-FIND answer is a handful of short values per match, sent hundreds of times a second: building and
writing a Dataset for each costs ten times more than the values. :class:`Identifier` holds ``tag -> (VR,
text)`` and :func:`encode_identifier_elements` writes them in a little or big endian, implicit or explicit
VR data set. Only the value representations a query answer carries are written here (the string VRs and
the binary integers and floats); anything else (a sequence, AT, binary data) is refused with ValueError,
so the caller builds a Dataset for that answer instead.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

#: The string value representations written here; UI is padded with NUL, the others with a space.
TEXT_VRS = frozenset(
    ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT")
)
#: The binary numbers written here, with their struct codes.
NUMBER_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
#: VRs whose explicit-VR header has a 4-byte length (after two reserved bytes).
_LONG = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"))
#: The character sets whose text is written here: the default repertoire and UTF-8.
_CODECS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 192": "utf-8", "ISO_IR 100": "latin-1"}
_SPECIFIC_CHARACTER_SET = 0x00080005


@dataclass(slots=True)
class Identifier:
    """An identifier as ``tag -> (VR, value)``: the value is the DICOM string (values joined with ``\\``)
    or None for an empty (zero-length) element. Written in tag order."""

    elements: dict[int, tuple[str, str | None]] = field(default_factory=dict)

    def set(self, tag: int, vr: str, value: str | None) -> None:
        self.elements[tag] = (vr, value)

    def setdefault(self, tag: int, vr: str, value: str | None) -> None:
        self.elements.setdefault(tag, (vr, value))

    def get(self, tag: int) -> str | None:
        entry = self.elements.get(tag)
        return None if entry is None else entry[1]

    def __contains__(self, tag: object) -> bool:
        return tag in self.elements

    def __len__(self) -> int:
        return len(self.elements)

    def __iter__(self) -> Iterator[tuple[int, str, str | None]]:
        for tag in sorted(self.elements):
            vr, value = self.elements[tag]
            yield tag, vr, value

    def is_ascii(self) -> bool:
        return all(value is None or value.isascii() for _, value in self.elements.values())

    def encodable(self) -> bool:
        """Whether :func:`encode_identifier_elements` can write every element (else build a Dataset)."""
        return all(vr in TEXT_VRS or vr in NUMBER_VRS for vr, _ in self.elements.values())


def encode_identifier_elements(identifier: Identifier, *, implicit: bool, little: bool) -> bytes:
    """The data set bytes of ``identifier``. Text is encoded in its Specific Character Set (the default
    repertoire, ISO_IR 100 or ISO_IR 192; ValueError for another, or for a value that does not fit)."""
    charset = identifier.get(_SPECIFIC_CHARACTER_SET) or ""
    codec = _CODECS.get(charset.strip())
    if codec is None:
        raise ValueError(f"Specific Character Set {charset!r} is not written here")
    order = "<" if little else ">"
    tag_header = struct.Struct(order + "HH")
    implicit_length = struct.Struct(order + "I")
    short_length = struct.Struct(order + "H")
    out = bytearray()
    for tag, vr, text in identifier:
        if vr in TEXT_VRS:
            value = b"" if text is None else text.encode(codec)
            if len(value) % 2:
                value += b"\x00" if vr == "UI" else b" "
        elif vr in NUMBER_VRS:
            value = b"" if not text else _numbers(order, NUMBER_VRS[vr], text)
        else:
            raise ValueError(f"VR {vr} is not written here")
        out += tag_header.pack(tag >> 16, tag & 0xFFFF)
        if implicit:
            out += implicit_length.pack(len(value))
        elif vr in _LONG:
            out += vr.encode("ascii") + b"\x00\x00" + implicit_length.pack(len(value))
        else:
            if len(value) > 0xFFFF:
                raise ValueError(f"a {vr} value of {len(value)} bytes does not fit an explicit VR header")
            out += vr.encode("ascii") + short_length.pack(len(value))
        out += value
    return bytes(out)


def _numbers(order: str, code: str, text: str) -> bytes:
    parts = [p.strip() for p in text.split("\\")]
    convert = float if code in "fd" else int
    return struct.pack(f"{order}{len(parts)}{code}", *(convert(p) for p in parts))
