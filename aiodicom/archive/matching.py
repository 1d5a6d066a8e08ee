"""PS3.4 C.2.2.2 attribute matching of a C-FIND identifier against a candidate, and the response identifier.

A candidate is a pydicom Dataset or a mapping of keyword (``GGGGEEEE`` for private or unknown tags) to its
decoded value: a DICOM string (``"DOE^JOHN"``, ``"CT\\MR"``), a number, a list of strings (multiple values),
a list of mappings (a sequence's items), or None (absent). Values are compared after decoding: pydicom
decodes a Dataset's text in its Specific Character Set, and an index stores decoded strings.

The rules (each key of the query that is not empty must match; keys with an empty value match anything):

* single value matching: exact and case-sensitive, leading and trailing spaces insignificant; IS, DS and
  binary numbers compare as numbers.
* wildcard matching (``*`` any run of characters, ``?`` one character) for the text VRs (AE, CS, LO, LT, PN,
  SH, ST, UC, UR, UT); not for dates, times, numbers, AS or UIDs (PS3.4 C.2.2.2.4). A lone ``*`` matches
  anything, an empty value included.
* PN: case-sensitive, as dcmqrscp and wlmscpfs match (the standard allows either; see ``pn_ignore_case``).
  Each ``=``-separated component group of the query that is not empty is matched against the candidate's
  group; a query with one group (the usual one) also matches when it matches another group of the
  candidate (a name typed in ideographic characters). A group is matched as a whole, as dcmqrscp does (a
  wildcard may span components: ``DOE*`` matches ``DOE^JOHN``; ``DOE`` and ``^JOHN`` do not), after
  spaces around each component and trailing empty components are dropped (PS3.5 6.2: ``DOE^JOHN^`` is
  ``DOE^JOHN``; dcmqrscp compares them literally).
* range matching for DA, TM and DT: ``A-B``, ``-B``, ``A-``, inclusive; a partial upper bound covers its
  whole period (``-2024`` in DT, ``-10`` in TM include 10:59:59.999999); a DA bound is a whole date
  (``2024-`` matches nothing, as in dcmqrscp). DT UTC offsets are ignored. A
  single value is compared as a point in time (``101500`` matches ``101500.000``, ``10`` matches ``100000``
  only, as in dcmqrscp).
  The combined DA+TM range of PS3.4 C.2.2.2.5.1 is not done: each is matched on its own.
* list matching: several values in a query key (``1.2.3\\1.2.4``) match when any matches (list of UID
  matching; applied to other VRs as well). A multi-valued candidate (ModalitiesInStudy ``CT\\MR``) matches
  when any of its values matches.
* sequence matching: each item of a query sequence must match some item of the candidate's sequence; an
  empty query sequence, or one whose items are all universal, matches anything (a missing sequence too).
* a candidate without the attribute has an empty value: only universal matching and ``*`` match it.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence as DicomSequence

from aiodicom.dataset.identifier import NUMBER_VRS, TEXT_VRS, Identifier
from aiodicom.dataset.rewrite import element_from_text
from aiodicom.dataset.values import tag_string
from aiodicom.errors import QueryRejected

__all__ = [
    "Candidate",
    "QueryError",
    "build_response",
    "match",
    "match_value",
    "query_keys",
]

Candidate = Dataset | Mapping[str, Any]

#: Keys that say how to answer, never matched on (PS3.4 C.4.1.1.3 and Table C.6-x "any level" keys).
NOT_MATCHED = frozenset(
    (
        "QueryRetrieveLevel",
        "SpecificCharacterSet",
        "RetrieveAETitle",
        "InstanceAvailability",
        "TimezoneOffsetFromUTC",
        "QueryRetrieveView",
    )
)
_WILDCARD_VRS = frozenset(("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"))
_NUMBER_VRS = frozenset(("IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV"))
_RANGE_VRS = frozenset(("DA", "TM", "DT"))


class QueryError(QueryRejected, ValueError):
    """A query the archive cannot answer; ``status`` is the DIMSE status to answer it with (a
    :class:`~aiodicom.errors.QueryRejected`, so a query handler that lets it through answers it so).

    0xA900 (Identifier does not match SOP Class): an unknown or missing level, or keys the hierarchical model
    does not allow; 0xC000-0xCFFF (Unable to process) for anything else (a malformed value)."""

    def __init__(self, message: str, status: int = 0xA900) -> None:
        QueryRejected.__init__(self, status, message)


@lru_cache(maxsize=4096)  # asked several times per key of every query; tags come from peers: bounded
def keyword_of(tag: int) -> str:
    """The keyword of ``tag``, or ``GGGGEEEE`` for a private or unknown tag."""
    return keyword_for_tag(tag) or f"{tag:08X}"


def vr_of(elem: DataElement) -> str:
    vr = str(elem.VR)
    if " or " in vr:
        with contextlib.suppress(KeyError):
            vr = str(dictionary_VR(elem.tag))
        return vr.split(" or ")[0]
    return vr


def query_keys(query: Dataset) -> Iterable[DataElement]:
    """The elements of ``query`` that are keys: group lengths, file meta and NOT_MATCHED left out."""
    for elem in query:
        tag = int(elem.tag)
        if tag & 0xFFFF == 0 or tag >> 16 == 0x0002:
            continue
        if keyword_of(tag) in NOT_MATCHED:
            continue
        yield elem


def _text_of(elem: DataElement) -> str:
    """A query element's value as one decoded DICOM string (multiple values joined with ``\\``)."""
    text = tag_string(elem)
    if text is None:
        raise QueryError(f"{keyword_of(int(elem.tag))}: a {elem.VR} value cannot be matched", 0xC000)
    return text


# ------------------------------------------------------------------------------------- candidates


def _candidate_value(candidate: Candidate, tag: int) -> Any:
    if isinstance(candidate, Dataset):
        elem = candidate.get_item(tag)
        if elem is None:
            return None
        elem = candidate[tag]  # converts a raw element (decoding its text)
        if elem.VR == "SQ":
            return list(elem.value or [])
        return tag_string(elem)
    return candidate.get(keyword_of(tag))


def _values(value: Any) -> list[str]:
    """A candidate's values as strings: ``[]`` when absent or empty."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split("\\")] if value != "" else []
    if isinstance(value, bytes | bytearray):
        return []
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    return [str(value)]


def _items(value: Any) -> list[Candidate]:
    if isinstance(value, Dataset):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [item for item in value if isinstance(item, Dataset | Mapping)]
    return []


# -------------------------------------------------------------------------------------- matching


@dataclass(frozen=True, slots=True)
class PreparedQuery:
    """A query's keys read once (a query is matched against every row of a table): each key's tag, VR and
    element, the keys that are conditions (not universal), and its QueryRetrieveLevel."""

    query: Dataset
    keys: tuple[tuple[int, str, DataElement, str], ...]  # tag, VR, element, keyword
    conditions: tuple[tuple[int, str, DataElement, str, str], ...]  # ... and the text (empty for SQ)
    level: str | None


def prepare(query: Dataset | PreparedQuery) -> PreparedQuery:
    """``query`` read once for :func:`match` and :func:`identifier_builder`."""
    if isinstance(query, PreparedQuery):
        return query
    keys: list[tuple[int, str, DataElement, str]] = []
    conditions: list[tuple[int, str, DataElement, str, str]] = []
    for elem in query_keys(query):
        tag, vr = int(elem.tag), vr_of(elem)
        keyword = keyword_of(tag)
        keys.append((tag, vr, elem, keyword))
        if vr == "SQ":
            if any(_has_condition(item) for item in elem.value or []):
                conditions.append((tag, vr, elem, keyword, ""))
            continue
        text = _text_of(elem)
        if text.strip(" \x00"):
            conditions.append((tag, vr, elem, keyword, text))
    level = str(query.QueryRetrieveLevel) if "QueryRetrieveLevel" in query else None
    return PreparedQuery(query, tuple(keys), tuple(conditions), level)


def match(
    query: Dataset | PreparedQuery,
    candidate: Candidate,
    *,
    pn_ignore_case: bool = False,
    skip: Iterable[str] = (),
) -> bool:
    """Whether ``candidate`` matches every key of ``query`` (keywords in ``skip`` are left out); a query
    matched against many candidates is best :func:`prepare`\\ d once."""
    skipped = frozenset(skip)
    row = candidate if isinstance(candidate, dict) else None  # an index row: values by keyword
    for tag, vr, elem, keyword, text in prepare(query).conditions:
        if skipped and keyword in skipped:
            continue
        value = row.get(keyword) if row is not None else _candidate_value(candidate, tag)
        if vr == "SQ":
            if not _match_sequence(elem, value, pn_ignore_case):
                return False
            continue
        if not match_value(text, vr, value, pn_ignore_case=pn_ignore_case):
            return False
    return True


def _match_sequence(elem: DataElement, value: Any, pn_ignore_case: bool) -> bool:
    items = list(elem.value or [])
    if not any(_has_condition(item) for item in items):
        return True
    candidates = _items(value)
    return all(
        any(match(item, c, pn_ignore_case=pn_ignore_case) for c in candidates)
        for item in items
        if _has_condition(item)
    )


def _has_condition(item: Dataset) -> bool:
    """Whether a query item holds a key that is not universal."""
    for elem in query_keys(item):
        if elem.VR == "SQ":
            if any(_has_condition(sub) for sub in elem.value or []):
                return True
        elif (tag_string(elem) or "").strip(" \x00"):
            return True
    return False


def match_value(text: str, vr: str, value: Any, *, pn_ignore_case: bool = False) -> bool:
    """Whether a candidate ``value`` matches the non-empty query value ``text`` of a key of ``vr``."""
    candidates = _values(value)
    wanted = text.split("\\") if vr != "LT" and vr not in ("ST", "UT") else [text]
    for want in wanted:
        if want.strip(" \x00") == "*" and vr in _WILDCARD_VRS:
            return True
        for have in candidates or [""]:
            if _match_one(want, vr, have, pn_ignore_case):
                return True
    return False


def _match_one(want: str, vr: str, have: str, pn_ignore_case: bool) -> bool:
    if vr in _RANGE_VRS:
        return _match_range(want, vr, have)
    if vr == "PN":
        return _match_pn(want, have, pn_ignore_case)
    want, have = want.strip(" \x00"), have.strip(" \x00")
    if vr in _WILDCARD_VRS and ("*" in want or "?" in want):
        return _wildcard(want).fullmatch(have) is not None
    if vr in _NUMBER_VRS:
        try:
            return Decimal(want) == Decimal(have)
        except (InvalidOperation, ValueError):
            return want == have
    return want == have


@lru_cache(maxsize=256)
def _wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    parts = ("." if ch == "?" else ".*" if ch == "*" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _match_text(want: str, have: str, ignore_case: bool) -> bool:
    if "*" in want or "?" in want:
        return _wildcard(want, ignore_case).fullmatch(have) is not None
    return want.casefold() == have.casefold() if ignore_case else want == have


def _pn_groups(name: str) -> list[list[str]]:
    groups = [[c.strip(" ") for c in g.split("^")] for g in name.strip(" \x00").split("=")]
    for g in groups:
        while g and g[-1] == "":
            g.pop()
    while groups and not groups[-1]:
        groups.pop()
    return groups


def _match_pn(want: str, have: str, ignore_case: bool) -> bool:
    query_groups, groups = _pn_groups(want), _pn_groups(have)
    if not query_groups:
        return True
    pairs = [(q, groups[i] if i < len(groups) else []) for i, q in enumerate(query_groups) if q]
    if all(_match_pn_group(q, g, ignore_case) for q, g in pairs):
        return True
    if len(query_groups) == 1:  # one group: it may be written in another group's characters
        return any(_match_pn_group(query_groups[0], g, ignore_case) for g in groups[1:])
    return False


def _match_pn_group(query: list[str], group: list[str], ignore_case: bool) -> bool:
    return _match_text("^".join(query), "^".join(group), ignore_case)


# ------------------------------------------------------------------------------------------ ranges

_DT_RANGE = re.compile(r"(?P<lo>[\d.]*(?:[+-]\d{4})?)-(?P<hi>[\d.]*(?:[+-]\d{4})?)")
_DT_OFFSET = re.compile(r"[+-]\d{4}$")
_TM_MIN, _TM_MAX = "000000000000", "235959999999"
_DT_MIN, _DT_MAX = "00000101000000000000", "99991231235959999999"


def _split_range(want: str, vr: str) -> tuple[str, str] | None:
    """(low, high) of a range value, None for a single value."""
    want = want.strip(" \x00")
    if "-" not in want:
        return None
    if vr != "DT":
        low, _, high = want.partition("-")
        return low.strip(), high.strip()
    found = _DT_RANGE.fullmatch(want)
    if found is None:
        return None
    low, high = found["lo"], found["hi"]
    if len(low) >= 8 and len(high) == 4 and high.isdigit() and not low.endswith(("+", "-")):
        return None  # a single date-time with a negative UTC offset: 20240101120000-0500
    return low, high


def _normal(value: str, vr: str, upper: bool) -> str:
    """A DA, TM or DT value as a fixed-width digit string that sorts like the time it names; a partial
    value is completed with the start of its period, or its end when ``upper``."""
    value = value.strip(" \x00")
    if vr == "DA":
        digits = value.replace(".", "")
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError(f"{value!r} is not a date")  # DA has no partial values: nothing matches it
        return digits
    if vr == "DT":
        value = _DT_OFFSET.sub("", value)
    whole, _, fraction = value.replace(":", "").partition(".")
    width = 6 if vr == "TM" else 14
    bounds = (_TM_MIN, _TM_MAX) if vr == "TM" else (_DT_MIN, _DT_MAX)
    bound = bounds[upper]
    whole = whole[:width] + bound[len(whole) : width]
    fraction = fraction[:6] + bound[width + len(fraction[:6]) :]
    return whole + fraction


def _match_range(want: str, vr: str, have: str) -> bool:
    have = have.strip(" \x00")
    if not have:
        return False
    bounds = _split_range(want, vr)
    try:
        if bounds is None:  # single value matching, on the values as they sort (101500 == 101500.000)
            return _normal(have, vr, upper=False) == _normal(want, vr, upper=False)
        low, high = bounds
        value = _normal(have, vr, upper=False)
        if low and value < _normal(low, vr, upper=False):
            return False
        return not (high and value > _normal(high, vr, upper=True))
    except (ValueError, IndexError):
        return False


# -------------------------------------------------------------------------------------- responses


def _element(tag: int, vr: str, value: Any) -> DataElement:
    values = _values(value)
    if not values:
        return DataElement(tag, vr, None)
    try:
        return element_from_text(tag, vr, "\\".join(values), keyword_of(tag))
    except ValueError:
        return DataElement(tag, vr, None)


def build_response(
    query: Dataset,
    candidate: Candidate,
    *,
    extra: Mapping[str, Any] | None = None,
    pn_ignore_case: bool = False,
) -> Dataset:
    """The identifier answering ``query`` for a matching ``candidate``: every key of the query with the
    candidate's value (zero length when it has none), QueryRetrieveLevel as asked, and ``extra`` keys
    (keyword -> value; the unique keys of the levels above, for a query/retrieve model). A sequence key
    returns the candidate's items that match one of the query's items, each with the keys of that item;
    a sequence key without items, or with one empty item, returns the candidate's items whole (PS3.4
    C.2.2.2.6; wlmscpfs does the same).
    SpecificCharacterSet is ``ISO_IR 192`` when a value is not ASCII (values are decoded strings)."""
    response = Dataset()
    _fill(response, query, candidate, pn_ignore_case)
    for keyword, value in (extra or {}).items():
        tag = tag_for_keyword(keyword)
        if tag is not None and tag not in response:
            response[tag] = _element(tag, str(dictionary_VR(tag)).split(" or ")[0], value)
    if "QueryRetrieveLevel" in query:
        response.QueryRetrieveLevel = query.QueryRetrieveLevel
    if _non_ascii(response):
        response.SpecificCharacterSet = "ISO_IR 192"
    return response


@lru_cache(maxsize=256)
def _tag_and_vr(keyword: str) -> tuple[int, str]:
    """A keyword's tag and (first) VR; (0, "") when it is no keyword."""
    tag = tag_for_keyword(keyword)
    return (0, "") if tag is None else (tag, str(dictionary_VR(tag)).split(" or ")[0])


def identifier_builder(
    query: Dataset | PreparedQuery, extra_keywords: Sequence[str] = ()
) -> Callable[[Mapping[str, Any]], Identifier] | None:
    """What :func:`build_response` answers for an index row (values by keyword), as an
    :class:`~aiodicom.dataset.identifier.Identifier` (no Dataset built: a C-FIND answers hundreds a
    second): a function of the row, laid out once per query; ``extra_keywords`` are answered too when the
    query does not ask for them. None when the query has a key not written that way (a sequence)."""
    prepared = prepare(query)
    steps: list[tuple[int, str, str]] = []
    for tag, vr, _, keyword in prepared.keys:
        if vr not in TEXT_VRS and vr not in NUMBER_VRS:
            return None
        steps.append((tag, vr, keyword))
    asked = {tag for tag, _, _ in steps}
    for keyword in extra_keywords:
        extra_tag, vr = _tag_and_vr(keyword)
        if extra_tag and extra_tag not in asked:
            if vr not in TEXT_VRS and vr not in NUMBER_VRS:
                return None
            steps.append((extra_tag, vr, keyword))
            asked.add(extra_tag)
    level = prepared.level

    def build(row: Mapping[str, Any]) -> Identifier:
        elements: dict[int, tuple[str, str | None]] = {}
        ascii_only = True
        for tag, vr, keyword in steps:
            value = row.get(keyword)
            if value is None or value == "":
                elements[tag] = (vr, None)
                continue
            if not isinstance(value, str):
                values = _values(value)
                value = "\\".join(values) if values else None
            elements[tag] = (vr, value)
            if ascii_only and value is not None and not value.isascii():
                ascii_only = False
        if level is not None:
            elements[0x00080052] = ("CS", level)
        if not ascii_only:
            elements[0x00080005] = ("CS", "ISO_IR 192")
        return Identifier.trusted(elements, ascii_only)

    return build


def _fill(response: Dataset, query: Dataset, candidate: Candidate, pn_ignore_case: bool) -> None:
    for elem in query_keys(query):
        tag = int(elem.tag)
        value = _candidate_value(candidate, tag)
        if elem.VR == "SQ":
            items: list[Dataset] = []
            wanted = [q for q in elem.value or [] if len(q)]
            if not wanted:  # no items, or one empty item: every attribute of every item (as wlmscpfs)
                response[tag] = DataElement(tag, "SQ", DicomSequence([_whole(i) for i in _items(value)]))
                continue
            for item in _items(value):
                chosen = next((q for q in wanted if match(q, item, pn_ignore_case=pn_ignore_case)), None)
                if chosen is None and wanted:
                    continue
                out = Dataset()
                if chosen is not None:
                    _fill(out, chosen, item, pn_ignore_case)
                items.append(out)
            response[tag] = DataElement(tag, "SQ", DicomSequence(items))
        else:
            response[tag] = _element(tag, vr_of(elem), value)


def _whole(item: Candidate) -> Dataset:
    """A candidate's sequence item, all of it, as a new Dataset."""
    if isinstance(item, Dataset):
        return copy.deepcopy(item)
    out = Dataset()
    for keyword, value in item.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            continue
        vr = str(dictionary_VR(tag)).split(" or ")[0]
        if vr == "SQ":
            out[tag] = DataElement(tag, "SQ", DicomSequence([_whole(i) for i in _items(value)]))
        else:
            out[tag] = _element(tag, vr, value)
    return out


def _non_ascii(ds: Dataset) -> bool:
    for elem in ds:
        if elem.VR == "SQ":
            if any(_non_ascii(item) for item in elem.value):
                return True
        else:
            text = tag_string(elem)
            if text and not text.isascii():
                return True
    return False
