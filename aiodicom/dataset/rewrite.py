"""A hook's tag changes merged into the leading elements, and those elements encoded again.

Only the leading elements (before Pixel Data) are ever re-encoded: the receiver writes them in place of
the received ones and copies the rest of the data set as received.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING

from .validate import validate_uid

if TYPE_CHECKING:  # pydicom (numpy with it) is imported by the functions that change or encode elements
    from pydicom import Dataset
    from pydicom.dataelem import DataElement

__all__ = ["apply_changes", "encode_leading"]

_NO_CUSTOM: Mapping[str, int] = {}
#: Binary integer VRs and their ranges.
_INTEGERS = {
    "US": (0, 0xFFFF),
    "SS": (-0x8000, 0x7FFF),
    "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF),
    "UV": (0, 0xFFFFFFFFFFFFFFFF),
    "SV": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}
_FLOATS = frozenset({"FL", "FD"})
#: Values a string cannot express: items and bytes.
_NOT_TEXT = frozenset({"SQ", "OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW"})


def apply_changes(
    ds: Dataset,
    original: Mapping[str, str | None],
    changes: Mapping[str, str | None],
    *,
    custom: Mapping[str, int] = _NO_CUSTOM,
) -> tuple[Dataset, bool]:
    """Merge a hook's answer into ``ds`` (changed in place and returned) and say whether a value changed.

    ``original`` is what the hook was given, ``changes`` what it returned, ``custom`` maps custom tag
    names to tags. Per key of ``changes``: a value equal to the one the hook was given leaves the element
    untouched; another string is written (``""`` writes an empty value, ``\\`` separates values, numbers
    are converted for binary VRs); None removes the element; a keyword (or custom name) not in the data set
    is added, with the dictionary's VR (``LO`` for a tag the dictionary does not know). A changed UID is
    validated (:func:`validate_uid`). Raises ValueError for an unknown name, a value the VR cannot hold,
    or a string for a sequence or a bytes value, leaving the changes made so far in ``ds``.
    """
    from pydicom.datadict import tag_for_keyword

    from .values import tag_string

    changed = False
    for key, value in changes.items():
        if key in original and original[key] == value:
            continue
        tag = custom[key] if key in custom else tag_for_keyword(key)
        if tag is None:
            raise ValueError(f"{key!r} is neither a DICOM keyword nor a custom tag name")
        if value is None:
            if tag in ds:
                del ds[tag]
                changed = True
            continue
        if not isinstance(value, str):
            raise ValueError(f"{key}: a tag value is a str or None, not {type(value).__name__}")
        if tag in ds:
            old = tag_string(ds[tag])
            if old is not None and old.rstrip("\x00 ") == value.rstrip("\x00 "):
                continue
            vr = ds[tag].VR
        else:
            vr = _dictionary_vr(tag, value)
        ds[tag] = _element(tag, vr, value, key)
        changed = True
    return ds, changed


def _dictionary_vr(tag: int, value: str) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        vr = dictionary_VR(tag)
    except KeyError:  # a private or unknown tag: a string value is LO, the usual private text VR
        return "LO"
    if vr == "US or SS":
        return "SS" if "-" in value else "US"
    if vr == "US or OW":
        return "US"
    return str(vr)


def _element(tag: int, vr: str, value: str, key: str) -> DataElement:
    """A new element holding ``value`` (a DICOM string) for ``vr``."""
    from pydicom.dataelem import DataElement

    if vr in _NOT_TEXT:
        raise ValueError(f"{key} ({vr}) cannot be set from a string")
    if vr == "US or SS":
        vr = "SS" if "-" in value else "US"
    parts = value.split("\\") if value else []
    converted: list[str] | list[int] | list[float]
    try:
        if vr == "UI":
            converted = [validate_uid(part, key) if part.strip("\x00 ") else "" for part in parts]
        elif vr in _INTEGERS:
            low, high = _INTEGERS[vr]
            integers = [int(part) for part in parts]
            if any(not low <= number <= high for number in integers):
                raise ValueError(f"out of range for {vr}")
            converted = integers
        elif vr in _FLOATS:
            converted = [float(part) for part in parts]
        elif vr == "AT":
            converted = [int(part.strip("() ").replace(",", ""), 16) for part in parts]
        else:
            return DataElement(tag, vr, value)  # pydicom splits values, converts IS/DS, validates
        if not converted:
            return DataElement(tag, vr, None)
        return DataElement(tag, vr, converted[0] if len(converted) == 1 else converted)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"{key}: {value!r} is not a valid {vr} value ({exc})") from exc


element_from_text = _element


def encode_leading(ds: Dataset, transfer_syntax: str) -> bytes:
    """The elements of ``ds`` encoded in ``transfer_syntax``, without group 0002 and group lengths.

    A data set read from bytes is encoded with the VR encoding it was read with: that is the transfer
    syntax's, unless the sender encoded its data set otherwise (see :attr:`LeadingElements.is_implicit_VR`),
    in which case the re-encoded elements match the rest of the data set, still in that encoding.
    Elements left as pydicom read them are written back as they were; changed ones are encoded in the
    data set's Specific Character Set (every text value is, when that changed). ``ds`` is not modified.
    For Deflated Explicit VR Little Endian this returns the inflated encoding: the caller deflates the
    whole data set again (these bytes, then the rest as inflated) with ``zlib.compressobj(wbits=-15)``.
    """
    from pydicom import Dataset
    from pydicom.dataelem import RawDataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    from pydicom.tag import BaseTag

    from .prefix import syntax_encoding

    implicit, little, _ = syntax_encoding(transfer_syntax)
    was_implicit, was_little = ds.original_encoding
    if was_implicit is not None and was_little == little:
        implicit = was_implicit
    # keys, not elements: iterating a Dataset would convert every raw element
    kept: dict[BaseTag, DataElement | RawDataElement] = {
        tag: ds.get_item(tag)
        for tag in ds.keys()  # noqa: SIM118
        if tag >> 16 != 0x0002 and tag & 0xFFFF
    }
    leading = Dataset(kept)
    leading.set_original_encoding(was_implicit, was_little, ds.original_character_set)
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    try:
        write_dataset(fp, leading)
    except Exception as exc:  # pydicom's encoders raise many kinds on values they cannot encode
        raise ValueError(f"cannot encode the leading elements: {exc}") from exc
    return bytes(fp.getvalue())


def redeflate(source: IO[bytes], leading: bytes, leading_end: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A deflated data set (read from ``source``, from where it stands) whose first ``leading_end`` inflated
    bytes are replaced by ``leading``, deflated again, in chunks: the memory it takes is a chunk or two,
    whatever the data set's size. A result of odd length is padded with a NUL, as PS3.5 A.5 asks."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    written = 0
    skip = leading_end
    out = deflater.compress(leading)
    while True:
        block = source.read(chunk)
        data = inflater.decompress(block, chunk) if block else inflater.flush()
        while True:
            if skip:
                cut = min(skip, len(data))
                data, skip = data[cut:], skip - cut
            out += deflater.compress(data)
            if inflater.eof or not inflater.unconsumed_tail:  # after the end only a trailer is left
                break
            data = inflater.decompress(inflater.unconsumed_tail, chunk)
        if out:
            written += len(out)
            yield out
            out = b""
        if not block or inflater.eof:
            break
    if skip:
        raise ValueError("the deflated data set is shorter than its leading elements")
    out = deflater.flush()
    written += len(out)
    yield out + (b"\x00" if written % 2 else b"")


def spliced(
    source: IO[bytes],
    meta_length: int,
    leading: bytes,
    leading_end: int,
    *,
    deflated: bool = False,
    chunk: int = 1 << 20,
) -> Iterator[bytes]:
    """A stored instance (read from ``source``'s start: ``meta_length`` bytes of file meta, then the data set)
    with the data set's leading elements replaced by ``leading``, in chunks. ``leading_end`` is where the old
    ones end: an offset in ``source``, or in the inflated data set when it is ``deflated`` (which is then
    deflated again, :func:`redeflate`)."""
    source.seek(0)
    if meta_length:
        yield source.read(meta_length)
    if deflated:
        yield from redeflate(source, leading, leading_end, chunk)
        return
    yield leading
    source.seek(leading_end)
    yield from iter(lambda: source.read(chunk), b"")
