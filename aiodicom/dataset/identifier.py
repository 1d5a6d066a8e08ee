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
from collections.abc import Callable, Iterator

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


class Identifier:
    """An identifier as ``tag -> (VR, value)``: the value is the DICOM string (values joined with ``\\``)
    or None for an empty (zero-length) element. Written in tag order."""

    __slots__ = ("_ascii", "_encodable", "elements", "handed_over")

    def __init__(self, elements: dict[int, tuple[str, str | None]] | None = None) -> None:
        self.elements: dict[int, tuple[str, str | None]] = {}
        self._ascii = True  # kept as elements are set: checked once per answer, twice on its way out
        self._encodable = True
        #: Made for its receiver alone (:meth:`trusted`): the C-FIND service fills in what every answer
        #: carries in it rather than in a copy.
        self.handed_over = False
        for tag, (vr, value) in (elements or {}).items():
            self.set(tag, vr, value)

    @classmethod
    def trusted(cls, elements: dict[int, tuple[str, str | None]], ascii_only: bool) -> Identifier:
        """An identifier of ``elements`` as they are (taken, not copied), their VRs known to be written
        here and ``ascii_only`` saying whether every value is ASCII: for a builder that checked both and
        hands each identifier over to be changed by its receiver (:attr:`handed_over`)."""
        out = cls()
        out.elements = elements
        out._ascii = ascii_only
        out.handed_over = True
        return out

    def set(self, tag: int, vr: str, value: str | None) -> None:
        self.elements[tag] = (vr, value)
        if value is not None and not value.isascii():
            self._ascii = False
        if vr not in TEXT_VRS and vr not in NUMBER_VRS:
            self._encodable = False

    def setdefault(self, tag: int, vr: str, value: str | None) -> None:
        if tag not in self.elements:
            self.set(tag, vr, value)

    def get(self, tag: int) -> str | None:
        entry = self.elements.get(tag)
        return None if entry is None else entry[1]

    def copy(self) -> Identifier:
        other = Identifier()
        other.elements = dict(self.elements)
        other._ascii, other._encodable = self._ascii, self._encodable
        return other

    def __contains__(self, tag: object) -> bool:
        return tag in self.elements

    def __len__(self) -> int:
        return len(self.elements)

    def __iter__(self) -> Iterator[tuple[int, str, str | None]]:
        for tag in sorted(self.elements):
            vr, value = self.elements[tag]
            yield tag, vr, value

    def is_ascii(self) -> bool:
        """Whether every value is ASCII (a value replaced by an ASCII one may leave this False)."""
        return self._ascii

    def encodable(self) -> bool:
        """Whether :func:`encode_identifier_elements` can write every element (else build a Dataset)."""
        return self._encodable


def encode_identifier_elements(identifier: Identifier, *, implicit: bool, little: bool) -> bytes:
    """The data set bytes of ``identifier``. Text is encoded in its Specific Character Set (the default
    repertoire, ISO_IR 100 or ISO_IR 192; ValueError for another, or for a value that does not fit)."""
    elements = identifier.elements
    charset = elements.get(_SPECIFIC_CHARACTER_SET)
    codec = _CODECS.get((charset[1] or "").strip() if charset is not None else "")
    if codec is None:
        raise ValueError(f"Specific Character Set {charset[1] if charset else ''!r} is not written here")
    # The answers to one query have the same elements, set in the same order: their layout (the order
    # to write them in, each one's header and how its length is written) is worked out once.
    shape = (implicit, little, *elements)
    plan = _PLANS.get(shape)
    if plan is None:
        plan = _plan(identifier, implicit, little)
        if len(_PLANS) >= 1024:  # the tags come from queries: a peer may name any number
            _PLANS.clear()
        _PLANS[shape] = plan
    values = list(elements.values())
    encoded = _write(values, plan, codec, little)
    if encoded is None:  # the same tags as another identifier's, with other VRs: its own layout
        encoded = _write(values, _plan(identifier, implicit, little), codec, little)
        assert encoded is not None
    return encoded


def _write(values: list[tuple[str, str | None]], plan: list[_Step], codec: str, little: bool) -> bytes | None:
    """The elements ``values`` (in the identifier's order) written as ``plan`` lays them out; None when
    an element's VR is not the plan's."""
    order = "<" if little else ">"
    short = (_U16_LE if little else _U16_BE).pack
    parts: list[bytes] = []
    append = parts.append
    for index, vr, head, length_of, pad, code in plan:
        entry = values[index]
        if entry[0] != vr:
            return None
        text = entry[1]
        if code is None:
            value = b"" if text is None else text.encode(codec)
            if len(value) & 1:
                value += pad
        else:
            value = b"" if not text else _numbers(order, code, text)
        if length_of is None:  # an explicit VR header's 2-byte length
            if len(value) > 0xFFFF:
                raise ValueError(f"a {vr} value of {len(value)} bytes does not fit an explicit VR header")
            append(head + short(len(value)))
        else:
            append(head + length_of(len(value)))
        append(value)
    return b"".join(parts)


_Step = tuple[int, str, bytes, "Callable[[int], bytes] | None", bytes, "str | None"]
_PLANS: dict[tuple[object, ...], list[_Step]] = {}


def _plan(identifier: Identifier, implicit: bool, little: bool) -> list[_Step]:
    """Per element, in tag order: its place in the identifier, VR, header, length writer (None: 2 bytes),
    pad byte and number code (None: text). ValueError for a VR not written here."""
    long = (_U32_LE if little else _U32_BE).pack
    position = {tag: k for k, tag in enumerate(identifier.elements)}
    plan: list[_Step] = []
    for tag in sorted(identifier.elements):
        vr = identifier.elements[tag][0]
        if vr not in TEXT_VRS and vr not in NUMBER_VRS:
            raise ValueError(f"VR {vr} is not written here")
        length_of = long if implicit or vr in _LONG else None
        pad = b"\x00" if vr == "UI" else b" "
        head = _header(tag, vr, implicit, little)
        plan.append((position[tag], vr, head, length_of, pad, NUMBER_VRS.get(vr)))
    return plan


_U16_LE, _U16_BE, _U32_LE, _U32_BE = (struct.Struct(f) for f in ("<H", ">H", "<I", ">I"))


def _header(tag: int, vr: str, implicit: bool, little: bool) -> bytes:
    """An element's tag (and VR, with the reserved bytes of a long one), before its length."""
    head = struct.pack("<HH" if little else ">HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head
    return head + vr.encode("ascii") + (b"\x00\x00" if vr in _LONG else b"")


def _numbers(order: str, code: str, text: str) -> bytes:
    parts = [p.strip() for p in text.split("\\")]
    convert = float if code in "fd" else int
    return struct.pack(f"{order}{len(parts)}{code}", *(convert(p) for p in parts))
