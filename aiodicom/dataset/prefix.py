"""A data set as it streams in: its leading elements kept, its whole structure checked.

A C-STORE data set arrives as a stream of chunks (memoryviews valid only during the call). The receiver
writes each chunk to its temporary file (or upload) as it comes, and feeds it here too.
:class:`LeadingElements` copies only the bytes before the first top-level element at or after (7FE0,0008)
(Float Pixel Data, Double Float Pixel Data, Pixel Data and anything after them), and, with ``whole=True``,
goes on walking to the end of the data set without copying: tags and lengths only, values are skipped,
never parsed. That walk proves the data set whole: every element ends inside it, sequences and items of
undefined length are closed, encapsulated Pixel Data is a run of defined-length items closed by its
delimiter, and the last element ends exactly at the last byte. Sans-IO: no sockets, files or event loop.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from typing import TYPE_CHECKING

from aiodicom.errors import DatasetParseError as DatasetParseError  # also importable from here
from aiodicom.uids import DEFLATED_TRANSFER_SYNTAXES, EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN

if TYPE_CHECKING:  # pydicom (numpy with it) is imported where a Dataset is made, not by the scanner
    from pydicom import Dataset

log = logging.getLogger("aiodicom.dataset")

__all__ = [
    "DEFAULT_MAX_INFLATED_SIZE",
    "DatasetParseError",
    "LeadingElements",
    "has_group_0002",
    "strip_group_0002",
    "syntax_encoding",
]

#: The first tag that ends the leading part: (7FE0,0008) Float Pixel Data; (7FE0,0009) Double Float
#: Pixel Data and (7FE0,0010) Pixel Data follow it.
PIXEL_DATA_START = 0x7FE00008
#: SOP Class, SOP Instance, Study and Series Instance UIDs: what places an instance, noted during the walk.
PLACEMENT_TAGS = frozenset({0x00080016, 0x00080018, 0x0020000D, 0x0020000E})
#: What a deflated data set may inflate to before it is refused (a deflate bomb costs CPU, not memory:
#: the inflated bytes are walked, not kept).
DEFAULT_MAX_INFLATED_SIZE = 4 << 30
_UNDEFINED = 0xFFFFFFFF
#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
#: The VRs of PS3.5 Table 6.2-1, to tell an explicit VR first element in an "implicit VR" data set.
_VRS = _LONG_VRS | _SHORT_VRS
#: Bytes appended to the copy at a time while element headers are looked for: bounds what is copied
#: beyond the leading elements.
_BLOCK = 1 << 16
#: Containers of undefined length being walked.
_SEQUENCE, _ITEM, _FRAGMENTS = 0, 1, 2
_CONTAINER_NAMES = ("a sequence", "an item", "encapsulated data")
#: Bytes tolerated after the end of a deflated stream (a padding NUL, a zlib checksum).
_DEFLATE_TRAILER = 16

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


def syntax_encoding(transfer_syntax: str) -> tuple[bool, bool, bool]:
    """``(implicit VR, little endian, deflated)`` of a transfer syntax UID.

    Every syntax but Implicit VR Little Endian and Explicit VR Big Endian encodes its data set in explicit
    VR little endian (compressed syntaxes encapsulate only Pixel Data), deflated for the Deflated ones.
    """
    uid = str(transfer_syntax).rstrip("\x00 ")
    if uid == IMPLICIT_VR_LITTLE_ENDIAN:
        return True, True, False
    if uid == EXPLICIT_VR_BIG_ENDIAN:
        return False, False, False
    return False, True, uid in DEFLATED_TRANSFER_SYNTAXES


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _Walker:
    """Element walk over a buffer of the stream's bytes from absolute offset ``base``; resumes where it
    stopped when more bytes arrive. Offsets kept (``pos``, spans, ``leading_end``) are absolute."""

    __slots__ = (
        "base",
        "buf",
        "checked_vr",
        "g2_start",
        "group_0002",
        "implicit",
        "last_tag",
        "leading_end",
        "limit",
        "little",
        "need",
        "pos",
        "stack",
        "top",
        "uids",
        "whole",
    )

    def __init__(self, implicit: bool, little: bool, limit: int, whole: bool) -> None:
        self.buf = bytearray()
        self.base = 0  # absolute offset of buf[0]: 0 until the leading part is complete
        self.implicit = implicit
        self.little = little
        self.limit = limit
        self.whole = whole
        self.pos = 0  # where the next element (or item, or delimiter) starts
        self.need = 6  # the absolute offset the buffer must reach for the walk to go on
        self.checked_vr = False
        # per open container: (kind, implicit VR?, little endian?, where an item's first element starts,
        # where it ends when its length is defined, else -1)
        self.stack: list[tuple[int, bool, bool, int, int]] = []
        self.group_0002: list[tuple[int, int]] = []  # spans of top-level (0002,xxxx) elements
        self.uids: dict[int, tuple[int, int]] = {}  # value spans of the top-level PLACEMENT_TAGS
        self.g2_start: int | None = None
        self.leading_end: int | None = None  # where the leading part ends, once known
        self.top = (0, 0)  # start and tag of the top-level element being walked
        self.last_tag = 0  # the element whose header was read last

    def walk(self) -> None:
        """Walk as far as the buffer allows. Sets ``leading_end`` at the start of the first top-level
        element at or after (7FE0,0008), or of the top-level element that crosses ``limit``; without
        ``whole`` the walk stops there."""
        buf, base, stack, spans = self.buf, self.base, self.stack, self.group_0002
        end, pos = base + len(buf), self.pos
        if not self.checked_vr:
            if end - pos < 6:
                self.need = 6
                return
            self._check_vr()
            self.checked_vr = True
        leading = self.leading_end is None
        limit = self.limit
        top_implicit, top_little = self.implicit, self.little
        top_head, top_u32, top_tag_of = _CODECS[top_implicit, top_little]
        top_start, top_tag = self.top
        group = element = 0
        first = -1
        while True:
            r = pos - base
            if stack:  # inside a sequence, an item or encapsulated Pixel Data
                kind, implicit, little, first, close = stack[-1]
                if 0 <= close <= pos:  # the end of a container of defined length
                    if pos > close:
                        what = f"({group:04X},{element:04X})"
                        raise DatasetParseError(
                            f"{what} overruns {_CONTAINER_NAMES[kind]} of {_tag(top_tag)}"
                        )
                    stack.pop()
                    if not stack and self.g2_start is not None:
                        spans.append((self.g2_start, pos))
                        self.g2_start = None
                    continue
                head, u32, tag_of = _CODECS[implicit, little]
                if end - pos < 8:
                    self.need = pos + 8
                    break
                group, element = tag_of.unpack_from(buf, r)
                if group == 0xFFFE:
                    length = u32.unpack_from(buf, r + 4)[0]
                    pos += 8
                    if element == 0xE000 and kind != _ITEM:  # an item, or a fragment
                        if kind == _FRAGMENTS:
                            if length == _UNDEFINED:
                                raise DatasetParseError(f"a fragment of undefined length in {_tag(top_tag)}")
                            pos += length
                        elif length == _UNDEFINED:
                            stack.append((_ITEM, implicit, little, pos, -1))
                        elif length:  # an item of defined length is walked too, to its end
                            stack.append((_ITEM, implicit, little, pos, pos + length))
                    elif element == (0xE00D if kind == _ITEM else 0xE0DD):  # its end
                        stack.pop()
                        if not stack and self.g2_start is not None:
                            spans.append((self.g2_start, pos))
                            self.g2_start = None
                    else:
                        raise DatasetParseError(
                            f"(FFFE,{element:04X}) in {_CONTAINER_NAMES[kind]} of {_tag(top_tag)}"
                        )
                    if leading and pos > limit:
                        self.leading_end, leading = top_start, False
                        if not self.whole:
                            break
                    continue
                if kind != _ITEM:
                    raise DatasetParseError(
                        f"({group:04X},{element:04X}) in {_CONTAINER_NAMES[kind]} of {_tag(top_tag)}"
                    )
            else:
                implicit, little = top_implicit, top_little
                head, u32, tag_of = top_head, top_u32, top_tag_of
                if end - pos < 8:
                    if leading and end - pos >= 4 and tag_of.unpack_from(buf, r) >= (0x7FE0, 0x0008):
                        self.leading_end, leading = pos, False
                        if not self.whole:
                            break
                    self.need = pos + (4 if end - pos < 4 else 8)
                    break
            # a data element header: 8 bytes are there
            if implicit:
                group, element, length = head.unpack_from(buf, r)
                vr = b""
            else:
                group, element, vr, length = head.unpack_from(buf, r)
            start = pos
            if not stack:
                top_tag = group << 16 | element
                top_start = start
                if group == 0xFFFE:
                    raise DatasetParseError(f"(FFFE,{element:04X}) outside a sequence")
                if leading and top_tag >= PIXEL_DATA_START:
                    self.leading_end, leading = start, False
                    if not self.whole:
                        break
            pos += 8
            if not implicit and vr not in _SHORT_VRS:
                if vr in _LONG_VRS:
                    if end - start < 12:
                        self.need, pos = start + 12, start
                        break
                    length = u32.unpack_from(buf, r + 8)[0]
                    pos += 4
                elif not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B):
                    if stack and start == first:  # an item in implicit VR, as pydicom reads it
                        stack[-1], pos = (_ITEM, True, little, start, close), start
                        continue
                    raise DatasetParseError(f"no explicit VR in ({group:04X},{element:04X}) at {start}")
            if length == _UNDEFINED:
                # a sequence; in implicit VR anything of undefined length is one; UN of undefined length
                # holds implicit VR little endian items (PS3.5 6.2.2); Pixel Data (and any OB/OW) of undefined
                # length is encapsulated: items of defined length (the offset table, then fragments), its end
                if not stack and group == 0x0002:
                    self.g2_start = start
                if (group == 0x7FE0 and element == 0x0010) or vr == b"OB" or vr == b"OW":
                    stack.append((_FRAGMENTS, implicit, little, -1, -1))
                elif vr == b"UN":
                    stack.append((_SEQUENCE, True, True, -1, -1))
                else:
                    stack.append((_SEQUENCE, implicit, little, -1, -1))
            elif vr == b"SQ" and length:  # explicit VR: a sequence of defined length is walked to its end
                if not stack and group == 0x0002:
                    self.g2_start = start
                stack.append((_SEQUENCE, implicit, little, -1, pos + length))
            else:
                if leading and not stack:
                    if top_tag in PLACEMENT_TAGS:
                        self.uids[top_tag] = (pos, pos + length)
                    if group == 0x0002:
                        spans.append((start, pos + length))
                pos += length
            if leading and pos > limit:
                self.leading_end, leading = top_start, False
                if not self.whole:
                    break
        self.pos = pos
        self.top = (top_start, top_tag)
        self.last_tag = group << 16 | element

    def _check_vr(self) -> None:
        """Like pydicom and DCMTK, believe the first element over the transfer syntax about the VR."""
        r = self.pos - self.base
        vr = bytes(self.buf[r + 4 : r + 6])
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
        return not self.stack and self.pos == self.base + len(self.buf)


class LeadingElements:
    """Incremental scanner of a data set: the elements before Pixel Data kept, the rest checked.

    ``feed`` each chunk as it arrives (the chunk is not kept: the bytes needed are copied) and ``finish()``
    at the end of the data set. Once ``complete``:

    - ``prefix``: the leading elements exactly as received (for Deflated Explicit VR Little Endian: as
      inflated), group 0002 elements included;
    - ``prefix_length``: bytes of the received stream they take, so the rest starts there (None for a
      deflated data set, whose leading elements do not end on a byte of the compressed stream);
    - ``had_group_0002``: whether a sender wrongly put group 0002 elements in the data set;
    - ``dataset()``: the leading elements parsed by pydicom, group 0002 dropped; ``placement()``: only the
      four UIDs that place an instance.

    The leading part ends at the first top-level element at or after (7FE0,0008), or at the top-level
    element that would take it past ``limit`` bytes (a large encapsulated document does not make an
    instance unreceivable: what follows is walked, not kept). With ``whole=False`` nothing after the leading
    part is looked at; with ``whole=True`` ``finish()`` raises unless the data set is whole, and a deflated
    one may inflate to at most ``max_inflated_size`` bytes. Anything malformed raises
    :class:`DatasetParseError` (from ``feed`` or ``finish``).
    """

    def __init__(
        self,
        transfer_syntax: str,
        limit: int = 8 << 20,
        *,
        whole: bool = False,
        max_inflated_size: int = DEFAULT_MAX_INFLATED_SIZE,
    ) -> None:
        self.transfer_syntax = str(transfer_syntax)
        implicit, self.is_little_endian, deflated = syntax_encoding(transfer_syntax)
        self.limit = limit
        self.whole = whole
        self.max_inflated_size = max_inflated_size
        self.complete = False
        self.prefix = b""
        self.prefix_length: int | None = None
        #: Bytes fed (as received: deflated bytes for a deflated data set) and, for those, inflated.
        self.size = 0
        self.inflated = 0
        self._walker = _Walker(implicit, self.is_little_endian, limit, whole)
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflated else None
        self._skip = 0  # bytes of a value still to pass over, beyond what the buffer holds
        self._trailer = 0  # bytes received after the end of a deflated stream
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
        if self._finished:
            raise DatasetParseError("data after the end of the data set")
        view = memoryview(chunk)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        self.size += len(view)
        if self._inflater is not None:
            self._inflate(view)
        else:
            self._feed_plain(view)
        return self.complete

    def _feed_plain(self, view: memoryview) -> None:
        walker = self._walker
        if not self.complete:  # the leading part: its bytes are copied, a block at a time
            buf = walker.buf
            start, size = 0, len(view)
            while start < size:
                stop = start + max(walker.need - len(buf), _BLOCK)
                buf += view[start:stop]
                start = stop
                if len(buf) >= walker.need:
                    walker.walk()
                    if walker.leading_end is not None:
                        self._done()
                        break
            else:
                return
            view = view[start:]
        if not self.whole:
            return
        if self._skip:  # inside a value: pass over it without copying
            if self._skip >= len(view):
                self._skip -= len(view)
                return
            view = view[self._skip :]
            self._skip = 0
        if view:
            walker.buf += view
            walker.walk()
            self._compact()

    def _compact(self) -> None:
        """Past the leading part, keep only the bytes not walked yet (a partial element header)."""
        walker = self._walker
        walked = walker.pos - walker.base
        held = len(walker.buf)
        if walked >= held:
            self._skip += walked - held
            walker.buf.clear()
        else:
            del walker.buf[:walked]
        walker.base = walker.pos

    def _inflate(self, view: memoryview) -> None:
        inflater = self._inflater
        assert inflater is not None
        data: bytes | memoryview = view
        try:
            while data and not (self.complete and not self.whole):
                if inflater.eof:
                    self._after_stream(bytes(data))
                    return
                out = inflater.decompress(data, _BLOCK)
                data = inflater.unconsumed_tail
                if out:
                    self.inflated += len(out)
                    if self.inflated > self.max_inflated_size:
                        raise DatasetParseError(
                            f"deflated data set inflates past {self.max_inflated_size} bytes"
                        )
                    self._feed_plain(memoryview(out))
                if inflater.eof:
                    self._after_stream(inflater.unused_data)
                    return
                if not out:
                    return
        except zlib.error as exc:
            raise DatasetParseError(f"deflated data set: {exc}") from exc

    def _after_stream(self, data: bytes) -> None:
        # A deflated stream of odd length is padded with a NUL (PS3.5 A.5), and some writers leave a zlib
        # trailer (a checksum) after it: a few bytes are tolerated, more are not the data set.
        self._trailer += len(data)
        if self.whole and self._trailer > _DEFLATE_TRAILER:
            raise DatasetParseError(f"{self._trailer} bytes after the end of the deflated data set")

    def finish(self) -> bool:
        """The data set ended: True if it is whole (or, without ``whole``, its leading part is);
        DatasetParseError otherwise."""
        if self._finished:
            return self.complete
        self._finished = True
        walker = self._walker
        if self._inflater is not None:
            inflater = self._inflater
            try:
                if not inflater.eof:
                    tail = inflater.flush()
                    if tail:
                        self.inflated += len(tail)
                        self._feed_plain(memoryview(tail))
            except zlib.error as exc:
                raise DatasetParseError(f"deflated data set: {exc}") from exc
            if not inflater.eof and not (self.complete and not self.whole):
                raise DatasetParseError("deflated data set truncated")
        if not self.complete:
            walker.walk()
            if walker.leading_end is None:  # no Pixel Data: the leading part is all of it, if it is whole
                self._check_end()
                walker.leading_end = walker.pos
            self._done()
        if self.whole:
            self._check_end()
        return True

    def _check_end(self) -> None:
        walker = self._walker
        missing = walker.pos - walker.base - len(walker.buf) + self._skip
        if missing > 0:
            last = walker.last_tag
            what = _tag(last) if last >> 16 != 0xFFFE else f"an item in {_tag(walker.top[1])}"
            raise DatasetParseError(f"truncated: {what} ends {missing} bytes past the end")
        if walker.stack:
            kind = walker.stack[-1][0]
            raise DatasetParseError(f"truncated inside {_CONTAINER_NAMES[kind]} of {_tag(walker.top[1])}")
        if missing < 0:
            raise DatasetParseError(f"truncated: {-missing} bytes after the last element are not an element")

    def _done(self) -> None:
        walker = self._walker
        end = walker.leading_end
        assert end is not None
        self.prefix = bytes(walker.buf[:end])
        walker.group_0002[:] = [span for span in walker.group_0002 if span[1] <= end]
        self.prefix_length = None if self._inflater is not None else end
        self.complete = True
        if self.whole:
            self._compact()
        else:
            walker.buf = bytearray()

    def placement(self) -> dict[int, str] | None:
        """Only the SOP Class, SOP Instance, Study and Series Instance UIDs, by tag, as stored (trailing NUL
        and space padding removed; an absent one is missing), for when nothing else is wanted: no pydicom
        Dataset is built for them, once per received instance. None when the data set held group 0002
        elements (the full parse is needed to drop them)."""
        if not self.complete:
            raise RuntimeError("the leading elements are not complete yet")
        if self.had_group_0002:
            return None
        prefix = self.prefix
        return {
            tag: prefix[start:end].decode("ascii", "replace").rstrip("\x00 ")
            for tag, (start, end) in self._walker.uids.items()
        }

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
    from pydicom.filereader import read_dataset

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
    walker = _Walker(implicit, little, len(prefix), whole=False)
    walker.buf += prefix
    walker.walk()
    if walker.leading_end is None and not walker.at_end():
        raise DatasetParseError("truncated leading elements")
    return _cut(prefix, walker.group_0002)


def has_group_0002(ds: Dataset) -> bool:
    """True when a sender wrongly put file meta elements inside the data set."""
    return any(tag >> 16 == 0x0002 for tag in ds.keys())  # noqa: SIM118 (keys: no element conversion)
