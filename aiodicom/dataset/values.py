"""Element values as DICOM strings, the form hooks and events see (``DOE^JOHN``, ``1.5\\2``, ``20240131``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.dataelem import DataElement
    from pydicom.multival import MultiValue
    from pydicom.tag import BaseTag

__all__ = ["extract", "raw_text", "tag_string"]

#: VRs whose values are bytes or items: not extracted.
_NOT_TEXT = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ", "OB or OW", "US or OW"})


@cache
def _pydicom() -> tuple[type[MultiValue[Any]], type[BaseTag], Callable[[str], int | None]]:
    """pydicom's MultiValue, BaseTag and tag_for_keyword, imported on first use (with numpy: the receiver
    that extracts nothing never needs them); cached, as these run for every element extracted."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.multival import MultiValue
    from pydicom.tag import BaseTag

    return MultiValue, BaseTag, tag_for_keyword


def tag_string(elem: DataElement) -> str | None:
    """The DICOM string form of an element's value; None for sequences and bytes, which are not extracted.

    PN as ``DOE^JOHN`` (decoded in the data set's character set), multiple values joined with ``\\``,
    IS/DS in their original string form, binary numbers (US, UL, SS, SL, FL, FD...) via ``str``, dates and
    times as stored (``YYYYMMDD``), UIDs as strings, AT as ``GGGGEEEE``; an empty value gives ``""``.
    """
    if elem.VR in _NOT_TEXT:
        return None
    value = elem.value
    if value is None or isinstance(value, bytes | bytearray):
        return "" if not value else None
    if isinstance(value, str):
        return value
    if isinstance(value, _pydicom()[0] | list | tuple):  # not Iterable: a PersonName iterates too
        parts = [_one(item) for item in value]
        if any(part is None for part in parts):
            return None
        return "\\".join(part or "" for part in parts)
    return _one(value)


def _one(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return None
    if isinstance(value, str):  # text, UID, DA/TM/DT as stored (no datetime conversion)
        return value
    if isinstance(value, _pydicom()[1]):
        return f"{int(value):08X}"
    original = getattr(value, "original_string", None)
    if isinstance(original, str):  # IS, DS, and DA/DT/TM objects (config.datetime_conversion)
        return original
    return str(value)  # PersonName (decoded components), int, float, Decimal


def extract(ds: Dataset, keywords: Iterable[str], custom: Iterable[tuple[int, str]] = ()) -> dict[str, str]:
    """Values by keyword, and custom tags ``(tag, name)`` by name.

    A tag absent from the data set (or an unknown keyword) is absent from the dict; an empty value gives
    ``""``; sequences and byte values are left out.
    """
    tag_for_keyword = _pydicom()[2]
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


def raw_text(ds: Dataset, tag: int) -> str:
    """A string value as stored, without pydicom's conversion and validation (fast: for UIDs and codes).

    Trailing NUL and space padding removed; ``""`` for an absent element.
    """
    elem = ds.get_item(tag)
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00 ")
    return "" if value is None else str(value).rstrip("\x00 ")
