"""Which attributes the archive index keeps at each level, which it computes, and which queries it accepts.

The stored keys are those PS3.4 C.6.1.1 (patient root) and C.6.2.1 (study root) list as required or unique at
each level, plus the common optional ones; the patient keys of study root are matched at the study level.
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.dataelem import DataElement

from aiodicom.dataset.values import tag_string
from aiodicom.services.query import (
    MODEL_LEVELS,
    PATIENT_ATTRIBUTES,
    SERIES_ATTRIBUTES,
    STUDY_ATTRIBUTES,
    UNIQUE_KEYS,
    QueryLevel,
    QueryModel,
)

from .matching import NOT_MATCHED, QueryError, keyword_of, query_keys

__all__ = ["COMPUTED", "LEVEL_KEYS", "check_query", "level_of", "unsupported_keys"]

#: The attributes the index keeps per level above IMAGE: the plain keys of PS3.4 C.6's tables.
PATIENT = PATIENT_ATTRIBUTES
STUDY = STUDY_ATTRIBUTES
SERIES = SERIES_ATTRIBUTES
IMAGE = (
    "SOPInstanceUID",
    "SOPClassUID",
    "InstanceNumber",
    "ContentDate",
    "ContentTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "AcquisitionNumber",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "ImageType",
    "ImageComments",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "PhotometricInterpretation",
)
#: The attributes each level's row keeps (decoded strings).
LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": PATIENT,
    "STUDY": STUDY,
    "SERIES": SERIES,
    "IMAGE": IMAGE,
}
#: Attributes computed from the rows below, by the level they describe.
COMPUTED: dict[str, tuple[str, ...]] = {
    "PATIENT": (
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ),
    "STUDY": (
        "ModalitiesInStudy",
        "SOPClassesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    "SERIES": ("NumberOfSeriesRelatedInstances",),
    "IMAGE": (),
}
#: Every computed keyword, whatever its level.
COMPUTED_KEYWORDS = frozenset(kw for kws in COMPUTED.values() for kw in kws)
_ORDER = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_LEVEL = {kw: level for level in _ORDER for kw in (*LEVEL_KEYS[level], *COMPUTED[level])}
SUPPORTED = frozenset(_LEVEL) | NOT_MATCHED


def level_of(keyword: str, model: QueryModel) -> str | None:
    """The level ``keyword`` is kept at in ``model`` (patient keys are study keys in study root); None for a
    key the index does not keep. The patient counts are patient root only."""
    level = _LEVEL.get(keyword)
    if level == "PATIENT" and model is QueryModel.STUDY_ROOT:
        return None if keyword in COMPUTED["PATIENT"] else "STUDY"
    return level


def check_query(query: Dataset, model: QueryModel | str, *, retrieve: bool = False) -> tuple[QueryModel, str]:
    """The model and level of a hierarchical query/retrieve identifier; QueryError (0xA900) when the model
    cannot answer it: another model, a missing or unknown level, a level the model does not have, or a key
    of a level above, other than that level's unique key, with a value to match (dcmqrscp refuses these
    too). Such a key with no value (universal matching) only asks for the value to be returned: it is
    accepted, as Orthanc 1.10 sends an empty PatientID and AccessionNumber in every SERIES and IMAGE
    query. Keys of the levels below are refused for a retrieve (``retrieve=True``: they would retrieve
    more than asked); in a C-FIND they are left out (not matched, not returned, as dcmqrscp does), see
    :func:`unsupported_keys`."""
    try:
        model = QueryModel.parse(model)
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    if model not in MODEL_LEVELS:
        raise QueryError(f"{model.value} is not a query/retrieve model")
    raw = str(query.get("QueryRetrieveLevel", "") or "").strip()
    if not raw:
        raise QueryError("the identifier has no QueryRetrieveLevel")
    try:
        level = QueryLevel.parse(raw).value
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    levels = MODEL_LEVELS[model]
    if level not in levels:
        raise QueryError(f"{model.value} has no {level} level")
    depth = levels.index(level)
    for elem in query_keys(query):
        keyword = keyword_of(int(elem.tag))
        at = level_of(keyword, model)
        if at is None:
            continue
        where = levels.index(at)
        if where > depth and retrieve:
            raise QueryError(f"{keyword} is a {at} key: not allowed in a {level} query ({model.value})")
        if where < depth and UNIQUE_KEYS[at] != keyword and not _universal(elem):
            raise QueryError(
                f"{keyword} is a {at} key: above a {level} query only its unique key may be given"
            )
    return model, level


def _universal(elem: DataElement) -> bool:
    """Whether a key asks for nothing but its value (empty, or only ``*``): matches every entity."""
    if elem.VR == "SQ":
        return False
    text = tag_string(elem)
    return text is not None and text.strip(" \x00*") == ""


def unsupported_keys(query: Dataset, model: QueryModel | str) -> list[str]:
    """The keys of ``query`` that are neither matched nor returned: those the index does not keep, and
    those of levels below the query's. A C-FIND answering with some of them may say so (status 0xFF01)."""
    model = QueryModel.parse(model)
    levels = MODEL_LEVELS.get(model, ())
    raw = str(query.get("QueryRetrieveLevel", "") or "").strip().upper()
    raw = "IMAGE" if raw == "INSTANCE" else raw
    depth = levels.index(raw) if raw in levels else len(levels)
    left = []
    for elem in query_keys(query):
        keyword = keyword_of(int(elem.tag))
        at = level_of(keyword, model)
        if at is None or (at in levels and levels.index(at) > depth):
            left.append(keyword)
    return left
