"""The leading elements of a data set as it streams in: everything before Pixel Data.

A C-STORE data set arrives as a stream of chunks (memoryviews valid only during the call). The receiver
writes each chunk to its temporary file as it comes, and feeds it here too: :class:`LeadingElements` copies
only the bytes before the first top-level element at or after (7FE0,0008) (Float Pixel Data, Double Float
Pixel Data, Pixel Data and anything after them), walking top-level elements without decoding values.
Sequences and items of undefined length are walked through their delimiters (they can nest); everything
of defined length is skipped by its length. Sans-IO: no sockets, no files, no event loop.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from typing import BinaryIO

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag

log = logging.getLogger("aiodicom.dataset")

__all__ = [
    "DatasetParseError",
    "LeadingElements",
    "copy_rest",
    "has_group_0002",
    "read_leading",
    "read_leading_from",
    "strip_group_0002",
    "syntax_encoding",
]

#: The first tag that ends the leading part: (7FE0,0008) Float Pixel Data; (7FE0,0009) Double Float
#: Pixel Data and (7FE0,0010) Pixel Data follow it.
PIXEL_DATA_START = 0x7FE00008
#: SOP Class, SOP Instance, Study and Series Instance UIDs: what places an instance, noted during the walk.
PLACEMENT_TAGS = frozenset({0x00080016, 0x00080018, 0x0020000D, 0x0020000E})
_UNDEFINED = 0xFFFFFFFF
#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
#: The VRs of PS3.5 Table 6.2-1, to tell an explicit VR first element in an "implicit VR" data set.
_VRS = _LONG_VRS | _SHORT_VRS
#: Bytes appended to the copy at a time while element headers are looked for: bounds what is copied
#: beyond the leading elements (it is dropped once they are complete).
_BLOCK = 1 << 16

_IMPLICIT = "1.2.840.10008.1.2"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
#: Deflated Explicit VR Little Endian, JPIP Referenced Deflate, JPIP HTJ2K Referenced Deflate.
_DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"})

_TAG = {True: struct.Struct("<HH"), False: struct.Struct(">HH")}
_U32 = {True: struct.Struct("<I"), False: struct.Struct(">I")}
#: Per (implicit VR, little endian): the 8-byte element header, a 4-byte length, a tag as two halves.
_CODECS = {
    (implicit, little): (
        struct.Struct(("<" if little else ">") + ("HHI" if implicit else "HH2sH")),
        _U32[little],
        _TAG[little],
    )
    for implicit in (True, False)
    for little in (True, False)
}


class DatasetParseError(ValueError):
    """A data set that cannot be walked: truncated, malformed, or leading elements larger than the limit."""


def syntax_encoding(transfer_syntax: str) -> tuple[bool, bool, bool]:
    """``(implicit VR, little endian, deflated)`` of a transfer syntax UID.

    Every syntax but Implicit VR Little Endian and Explicit VR Big Endian encodes its data set in explicit
    VR little endian (compressed syntaxes encapsulate only Pixel Data), deflated for the Deflated ones.
    """
    uid = str(transfer_syntax).rstrip("\x00 ")
    if uid == _IMPLICIT:
        return True, True, False
    if uid == _BIG_ENDIAN:
        return False, False, False
    return False, True, uid in _DEFLATED


class _Walker:
    """Top-level element walk over a growing buffer; resumes where it stopped when more bytes arrive."""

    __slots__ = ("_g2_start", "buf", "group_0002", "implicit", "little", "need", "pos", "stack", "uids")

    def __init__(self, implicit: bool, little: bool) -> None:
        self.buf = bytearray()
        self.implicit = implicit
        self.little = little
        self.pos = 0  # where the next element (or item, or delimiter) starts
        self.need = 4  # the buffer length at which the walk can go on
        # per open container of undefined length: (an item?, implicit VR?, little endian?, where an
        # item's first element starts)
        self.stack: list[tuple[bool, bool, bool, int]] = []
        self.group_0002: list[tuple[int, int]] = []  # spans of top-level (0002,xxxx) elements
        self.uids: dict[int, tuple[int, int]] = {}  # value spans of the top-level PLACEMENT_TAGS
        self._g2_start: int | None = None

    def walk(self, limit: int) -> bool:
        """Walk as far as the buffer allows; True at the start of the first element that ends the part."""
        buf, stack, spans = self.buf, self.stack, self.group_0002
        end, pos = len(buf), self.pos
        if pos == 0 and not stack:
            if end < 6:
                self.need = 6
                return False
            self._check_vr()
        top = (self.implicit, self.little, *_CODECS[self.implicit, self.little])
        vr = b""
        while True:
            if stack:  # inside a sequence or an item of undefined length
                in_item, implicit, little, first = stack[-1]
                head, u32, tag_of = _CODECS[implicit, little]
                if end - pos < 8:
                    self.need = pos + 8
                    break
                group, element = tag_of.unpack_from(buf, pos)
                if group == 0xFFFE:
                    length = u32.unpack_from(buf, pos + 4)[0]
                    pos += 8
                    if not in_item and element == 0xE000:  # an item
                        if length == _UNDEFINED:
                            stack.append((True, implicit, little, pos))
                        else:
                            pos += length
                    elif element == (0xE00D if in_item else 0xE0DD):  # the item's or sequence's end
                        stack.pop()
                        if not stack and self._g2_start is not None:
                            spans.append((self._g2_start, pos))
                            self._g2_start = None
                    else:
                        raise DatasetParseError(f"(FFFE,{element:04X}) at offset {pos - 8}")
                    if pos > limit:
                        raise DatasetParseError(f"leading elements larger than {limit} bytes")
                    continue
                if not in_item:
                    raise DatasetParseError(f"({group:04X},{element:04X}) in a sequence, not in an item")
            else:
                implicit, little, head, u32, tag_of = top
                if end - pos < 8:
                    if end - pos >= 4 and tag_of.unpack_from(buf, pos) >= (0x7FE0, 0x0008):
                        return self._stop(pos)
                    self.need = pos + (4 if end - pos < 4 else 8)
                    break
            # a data element header: 8 bytes are there
            if implicit:
                group, element, length = head.unpack_from(buf, pos)
                vr = b""
            else:
                group, element, vr, length = head.unpack_from(buf, pos)
            if not stack and (group << 16 | element) >= PIXEL_DATA_START:
                return self._stop(pos)
            start = pos
            pos += 8
            if not implicit and vr not in _SHORT_VRS:
                if vr in _LONG_VRS:
                    if end - start < 12:
                        self.need, pos = start + 12, start
                        break
                    length = u32.unpack_from(buf, pos)[0]
                    pos += 4
                elif not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B):
                    if stack and start == first:  # an item in implicit VR, as pydicom reads it
                        stack[-1], pos = (True, True, little, start), start
                        continue
                    raise DatasetParseError(f"no explicit VR at offset {start} (got {vr!r})")
            if length == _UNDEFINED:
                # a sequence; in implicit VR anything of undefined length is one; UN of undefined length
                # holds implicit VR little endian items (PS3.5 6.2.2); OB/OW of undefined length
                # (encapsulated) holds items of defined length: all walk the same way
                if not stack and group == 0x0002:
                    self._g2_start = start
                stack.append((False, True, True, -1) if vr == b"UN" else (False, implicit, little, -1))
            else:
                if not stack and (group << 16 | element) in PLACEMENT_TAGS:
                    self.uids[group << 16 | element] = (pos, pos + length)
                pos += length
                if group == 0x0002 and not stack:
                    spans.append((start, pos))
            if pos > limit:
                raise DatasetParseError(f"leading elements larger than {limit} bytes")
        self.pos = pos
        return False

    def _stop(self, pos: int) -> bool:
        """The leading part ends at ``pos``, where a tag at or after (7FE0,0008) starts."""
        group, element = _TAG[self.little].unpack_from(self.buf, pos)
        if group == 0xFFFE:
            raise DatasetParseError(f"(FFFE,{element:04X}) outside a sequence")
        self.pos = pos
        return True

    def _check_vr(self) -> None:
        """Like pydicom and DCMTK, believe the first element over the transfer syntax about the VR."""
        vr = bytes(self.buf[4:6])
        if self.implicit and vr in _VRS:
            self.implicit = False
        elif not self.implicit and not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B):
            self.implicit = True
        else:
            return
        log.warning(
            "data set encoded in %s VR, not as its transfer syntax says",
            "implicit" if self.implicit else "explicit",
        )

    def at_end(self) -> bool:
        """Whether the bytes end exactly after a whole top-level element (after a ``walk``)."""
        return not self.stack and self.pos == len(self.buf)


class LeadingElements:
    """Incremental scanner for the elements of a data set before Pixel Data.

    ``feed`` each chunk as it arrives (the chunk is not kept: the bytes needed are copied), and
    ``finish()`` at the end of the data set. Once ``complete``:

    - ``prefix``: the leading elements exactly as received (for Deflated Explicit VR Little Endian: as
      inflated), group 0002 elements included;
    - ``prefix_length``: bytes of the received stream they take, so the rest starts there (None for a
      deflated data set, whose leading elements do not end on a byte of the compressed stream);
    - ``had_group_0002``: whether a sender wrongly put group 0002 elements in the data set;
    - ``dataset()``: the leading elements parsed by pydicom, group 0002 dropped.

    A data set that cannot be walked, or whose leading part exceeds ``limit`` bytes, raises
    :class:`DatasetParseError` (from ``feed`` or ``finish``).
    """

    def __init__(self, transfer_syntax: str, limit: int = 8 << 20) -> None:
        self.transfer_syntax = str(transfer_syntax)
        implicit, self.is_little_endian, deflated = syntax_encoding(transfer_syntax)
        self.limit = limit
        self.complete = False
        self.prefix = b""
        self.prefix_length: int | None = None
        self._walker = _Walker(implicit, self.is_little_endian)
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflated else None
        self._finished = False

    @property
    def is_implicit_VR(self) -> bool:
        """The VR encoding of the data set: its transfer syntax's, unless the first element says otherwise."""
        return self._walker.implicit

    @property
    def had_group_0002(self) -> bool:
        """Whether the leading elements held group 0002 (file meta) elements, which belong to no data set."""
        return bool(self._walker.group_0002)

    def feed(self, chunk: bytes | bytearray | memoryview) -> bool:
        """Consume the next bytes of the data set; True once the leading elements are complete."""
        if self.complete:
            return True
        if self._finished:
            raise DatasetParseError("data after the end of the data set")
        view = memoryview(chunk).cast("B") if isinstance(chunk, memoryview) else memoryview(chunk)
        if self._inflater is not None:
            return self._feed_deflated(view)
        walker = self._walker
        buf = walker.buf
        start, size = 0, len(view)
        while start < size:
            stop = start + max(walker.need - len(buf), _BLOCK)
            buf += view[start:stop]
            start = stop
            if len(buf) >= walker.need and walker.walk(self.limit):
                self._done()
                return True
        return False

    def _feed_deflated(self, view: memoryview) -> bool:
        inflater, walker = self._inflater, self._walker
        assert inflater is not None
        data: bytes | memoryview = view
        try:
            while data:
                out = inflater.decompress(data, max(walker.need - len(walker.buf), _BLOCK))
                data = inflater.unconsumed_tail
                if not out:
                    break
                walker.buf += out
                if len(walker.buf) >= walker.need and walker.walk(self.limit):
                    self._done()
                    return True
                if len(walker.buf) > self.limit + _BLOCK:
                    raise DatasetParseError(f"leading elements larger than {self.limit} bytes")
        except zlib.error as exc:
            raise DatasetParseError(f"deflated data set: {exc}") from exc
        return False

    def finish(self) -> bool:
        """The data set ended: complete if it ended on an element boundary, DatasetParseError otherwise."""
        if self.complete:
            return True
        self._finished = True
        walker = self._walker
        if self._inflater is not None:
            try:
                walker.buf += self._inflater.flush()
            except zlib.error as exc:
                raise DatasetParseError(f"deflated data set: {exc}") from exc
        if walker.walk(self.limit):
            self._done()
            return True
        if self._inflater is not None and not self._inflater.eof:
            raise DatasetParseError("deflated data set truncated")
        if not walker.at_end():
            where = "inside a sequence" if walker.stack else f"at offset {walker.pos}"
            raise DatasetParseError(f"data set truncated ({len(walker.buf)} bytes, ends {where})")
        self._done()
        return True

    def _done(self) -> None:
        walker = self._walker
        del walker.buf[walker.pos :]
        self.prefix = bytes(walker.buf)
        walker.buf = bytearray()
        self.prefix_length = None if self._inflater is not None else walker.pos
        self._inflater = None
        self.complete = True

    def placement(self) -> Dataset | None:
        """Only the SOP Class, SOP Instance, Study and Series Instance UIDs, unparsed (raw elements), for
        when nothing else is wanted: parsing every leading element with pydicom costs far more. None when
        the data set held group 0002 elements (the full parse is needed to drop them)."""
        if not self.complete:
            raise RuntimeError("the leading elements are not complete yet")
        if self.had_group_0002:
            return None
        ds = Dataset()
        implicit, little, prefix = self.is_implicit_VR, self.is_little_endian, self.prefix
        for tag, (start, end) in sorted(self._walker.uids.items()):
            ds[tag] = RawDataElement(
                BaseTag(tag), "UI", end - start, prefix[start:end], start, implicit, little
            )
        ds.set_original_encoding(implicit, little)
        return ds

    def dataset(self) -> Dataset:
        """The leading elements parsed by pydicom (a new Dataset each call), group 0002 dropped."""
        if not self.complete:
            raise RuntimeError("the leading elements are not complete yet")
        prefix = _cut(self.prefix, self._walker.group_0002)
        return _parse(prefix, self.is_implicit_VR, self.is_little_endian)


def _cut(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    if not spans:
        return data
    parts, start = [], 0
    for begin, end in spans:
        parts.append(data[start:begin])
        start = end
    parts.append(data[start:])
    return b"".join(parts)


def _parse(data: bytes, implicit: bool, little: bool) -> Dataset:
    try:
        ds = read_dataset(io.BytesIO(data), implicit, little)
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise DatasetParseError(f"leading elements do not parse: {exc}") from exc
    return ds


def strip_group_0002(prefix: bytes, transfer_syntax: str) -> bytes:
    """``prefix`` without its top-level group 0002 elements, the other bytes unchanged.

    For Deflated Explicit VR Little Endian, ``prefix`` is the inflated bytes (as
    :attr:`LeadingElements.prefix` holds them).
    """
    implicit, little, _ = syntax_encoding(transfer_syntax)
    walker = _Walker(implicit, little)
    walker.buf += prefix
    if not walker.walk(len(prefix)) and not walker.at_end():
        raise DatasetParseError("truncated leading elements")
    return _cut(prefix, walker.group_0002)


# Transitional: the API aiodicom/services/store.py used before LeadingElements (which replaces it: these
# parse a copy or the file once the data set is complete). Group 0002 elements stay in these data sets so
# that has_group_0002 sees them. Remove once services/store.py feeds LeadingElements.


def read_leading_from(
    head: bytes | bytearray, total: int | None, transfer_syntax_uid: str, *, placement_only: bool = False
) -> tuple[Dataset, int] | None:
    """The leading elements (group 0002 kept) and where they end, from the first bytes of a data set of
    ``total`` bytes (None: not known yet); None when ``head`` does not hold them all, or is deflated.
    With ``placement_only``, only the four UIDs that place the instance, when that is enough (see
    :meth:`LeadingElements.placement`)."""
    scanner = LeadingElements(transfer_syntax_uid)
    if scanner._inflater is not None:
        return None
    try:
        if not scanner.feed(head) and not (total == len(head) and scanner.finish()):
            return None
        ds = scanner.placement() if placement_only else None
        if ds is None:
            ds = _parse(scanner.prefix, scanner.is_implicit_VR, scanner.is_little_endian)
        return ds, len(scanner.prefix)
    except DatasetParseError:
        return None


def read_leading(fp: BinaryIO, offset: int, transfer_syntax_uid: str) -> tuple[Dataset, int]:
    """The leading elements (group 0002 kept) of the data set at ``offset`` of ``fp``, and the offset where
    they end (-1 for a deflated data set)."""
    fp.seek(offset)
    scanner = LeadingElements(transfer_syntax_uid)
    while not scanner.complete:
        block = fp.read(1 << 16)
        if not block:
            scanner.finish()
        else:
            scanner.feed(block)
    ds = _parse(scanner.prefix, scanner.is_implicit_VR, scanner.is_little_endian)
    return ds, -1 if scanner.prefix_length is None else offset + scanner.prefix_length


def has_group_0002(ds: Dataset) -> bool:
    """True when a sender wrongly put file meta elements inside the data set."""
    return any(tag >> 16 == 0x0002 for tag in ds.keys())  # noqa: SIM118 (keys: no element conversion)


def copy_rest(source: BinaryIO, offset: int, target: BinaryIO, chunk: int = 1 << 20) -> None:
    """Copy ``source`` from ``offset`` to its end into ``target``."""
    source.seek(offset)
    while block := source.read(chunk):
        target.write(block)
