"""The SQL of an index query: the rows of a level joined with their ancestors, prefiltered on exact values
(UIDs, PatientID, AccessionNumber, Modality), with the attributes of only the levels the query needs."""

from __future__ import annotations

from typing import Any

from pydicom import Dataset

from aiodicom.dataset.values import tag_string
from aiodicom.services.query import QueryModel

from .keys import _LEVEL, COMPUTED_KEYWORDS, level_of
from .matching import keyword_of, query_keys

_JOINS = {
    "PATIENT": ("patient p", ("p.attrs",)),
    "STUDY": ("study s JOIN patient p ON p.id=s.patient", ("p.attrs", "s.attrs")),
    "SERIES": (
        "series se JOIN study s ON s.id=se.study JOIN patient p ON p.id=s.patient",
        ("p.attrs", "s.attrs", "se.attrs"),
    ),
    "IMAGE": (
        "instance i JOIN series se ON se.id=i.series JOIN study s ON s.id=se.study "
        "JOIN patient p ON p.id=s.patient",
        ("p.attrs", "s.attrs", "se.attrs", "i.attrs"),
    ),
}
_ID = {"PATIENT": "p.id", "STUDY": "s.id", "SERIES": "se.id", "IMAGE": "i.id"}
#: Columns an exact value (or a list of UIDs) may prefilter: keyword -> (level, column).
_PREFILTER = {
    "PatientID": ("PATIENT", "p.patient_id"),
    "StudyInstanceUID": ("STUDY", "s.uid"),
    "AccessionNumber": ("STUDY", "s.accession_number"),
    "SeriesInstanceUID": ("SERIES", "se.uid"),
    "Modality": ("SERIES", "se.modality"),
    "SOPInstanceUID": ("IMAGE", "i.uid"),
    "SOPClassUID": ("IMAGE", "i.sop_class"),
}
_ORDER = ("PATIENT", "STUDY", "SERIES", "IMAGE")


def _select(
    query: Dataset, model: QueryModel, level: str, upto: str, needed: set[str] | None = None
) -> tuple[str, list[Any], frozenset[str], tuple[str, ...]]:
    """The SQL of the rows of ``level`` a query's exact values prefilter, its parameters, the UID keys
    it matched in full (a list of UIDs is matched by equality only: matching them again is not needed),
    and the keywords of the columns that end each row (see :func:`_columns`)."""
    tables, attrs = _JOINS[level]
    extra = ", i.path, i.sop_class, i.uid, i.transfer_syntax, i.size" if level == "IMAGE" else ""
    ids = ", ".join(_ID[lv] for lv in _ORDER[: _ORDER.index(level) + 1])
    chosen, columns, tail = _columns(level, attrs, needed)
    sql = f"SELECT {_ID[level]}, {', '.join(chosen)}{extra}, {ids}{tail} FROM {tables} WHERE {_ID[level]} > ?"
    params: list[Any] = []
    exact: set[str] = set()
    depth = _ORDER.index(upto)
    for elem in query_keys(query):
        keyword = keyword_of(int(elem.tag))
        if keyword not in _PREFILTER or elem.VR == "SQ":
            continue
        at, column = _PREFILTER[keyword]
        if _ORDER.index(at) > depth or (level_of(keyword, model) is None):
            continue
        text = (tag_string(elem) or "").strip(" \x00")
        if not text or "*" in text or "?" in text:
            continue
        values = [v.strip(" \x00") for v in text.split("\\")]
        if len(values) > 500 or not all(values):
            continue
        if len(values) > 1 and not keyword.endswith("UID"):
            continue  # several values of a non-UID key: matching decides
        sql += f" AND {column} IN ({', '.join('?' * len(values))})"
        params += values
        if keyword.endswith("UID"):
            exact.add(keyword)
    return sql + f" ORDER BY {_ID[level]} LIMIT ?", params, frozenset(exact), columns


#: Keys with a column of their own: read from it, a level's attributes need not be read for them.
_KEY_COLUMNS = {
    "PatientID": ("PATIENT", "p.patient_id"),
    "StudyInstanceUID": ("STUDY", "s.uid"),
    "SeriesInstanceUID": ("SERIES", "se.uid"),
    "SOPInstanceUID": ("IMAGE", "i.uid"),
}


def _columns(
    level: str, attrs: tuple[str, ...], needed: set[str] | None
) -> tuple[list[str], tuple[str, ...], str]:
    """Which levels' attributes a query reads (each a JSON text to decode per row): only those holding a
    ``needed`` key (None: all), NULL for the others; a needed key with a column of its own is read from
    that column when its level's attributes are not read (the keywords, and the SQL that ends each row
    with them)."""
    if needed is None or not all(keyword in _LEVEL for keyword in needed):
        return list(attrs), (), ""
    read = {_LEVEL[kw] for kw in needed if kw not in _KEY_COLUMNS and kw not in COMPUTED_KEYWORDS}
    joined = _ORDER[: _ORDER.index(level) + 1]
    chosen = [column if lv in read else "NULL" for lv, column in zip(joined, attrs, strict=True)]
    own = tuple(
        kw for kw in sorted(needed) if kw in _KEY_COLUMNS and _LEVEL[kw] not in read and _LEVEL[kw] in joined
    )
    return chosen, own, "".join(f", {_KEY_COLUMNS[kw][1]}" for kw in own)
