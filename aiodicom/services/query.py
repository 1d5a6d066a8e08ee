"""Query identifiers: the query models, :class:`QueryBuilder`, and identifiers to and from bytes.

A query is a dict keyed by keyword (``"PatientID"``) or tag (``"00100020"``, ``"(0010,0020)"``); a value
of ``""`` (or None) asks the peer to return that attribute, a list of dicts is a sequence (``[{}]`` asks for
the sequence's items), anything else is a matching value in DICOM string form (``"DOE*"``,
``"20240101-20240131"``, ``"1.2.3\\1.2.4"`` for a list of UIDs).
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Self

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence as DicomSequence

from aiodicom.dataset import syntax_encoding, tag_string
from aiodicom.dataset.rewrite import element_from_text
from aiodicom.dataset.tags import normalize_option, parse_tag

__all__ = [
    "Query",
    "QueryBuilder",
    "QueryLevel",
    "QueryModel",
    "decode_identifier",
    "encode_identifier",
    "identifier_to_dict",
    "key_level",
    "resolve_query",
]

QueryValue = str | None | Sequence[Mapping[str, Any]]
Query = Mapping[str, Any]


class QueryModel(StrEnum):
    """The information model a query or retrieve runs against."""

    STUDY_ROOT = "study_root"
    PATIENT_ROOT = "patient_root"
    MODALITY_WORKLIST = "modality_worklist"

    @classmethod
    def parse(cls, value: str | QueryModel) -> QueryModel:
        """Accepts ``study_root``, ``StudyRoot``, ``STUDY-ROOT``..."""
        if isinstance(value, QueryModel):
            return value  # asked on every query: no text to normalise
        return cls(normalize_option(str(value), [m.value for m in cls], "query model"))

    @property
    def find_sop_class(self) -> str:
        return _FIND[self]

    @property
    def get_sop_class(self) -> str:
        if self not in _GET:
            raise ValueError(f"{self.value} has no C-GET: use study_root or patient_root")
        return _GET[self]

    @property
    def move_sop_class(self) -> str:
        if self not in _MOVE:
            raise ValueError(f"{self.value} has no C-MOVE: use study_root or patient_root")
        return _MOVE[self]


_FIND = {
    QueryModel.PATIENT_ROOT: "1.2.840.10008.5.1.4.1.2.1.1",
    QueryModel.STUDY_ROOT: "1.2.840.10008.5.1.4.1.2.2.1",
    QueryModel.MODALITY_WORKLIST: "1.2.840.10008.5.1.4.31",
}
_MOVE = {
    QueryModel.PATIENT_ROOT: "1.2.840.10008.5.1.4.1.2.1.2",
    QueryModel.STUDY_ROOT: "1.2.840.10008.5.1.4.1.2.2.2",
}
_GET = {
    QueryModel.PATIENT_ROOT: "1.2.840.10008.5.1.4.1.2.1.3",
    QueryModel.STUDY_ROOT: "1.2.840.10008.5.1.4.1.2.2.3",
}


class QueryLevel(StrEnum):
    """The Query/Retrieve Level (0008,0052)."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @classmethod
    def parse(cls, value: str | QueryLevel) -> QueryLevel:
        text = str(value).strip().upper()
        if text == "INSTANCE":
            text = "IMAGE"
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"query level must be PATIENT, STUDY, SERIES or IMAGE, not {value!r}") from None


#: The unique key of each level, which a query/retrieve C-FIND always carries.
UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


def with_unique_key(query: dict[str, Any]) -> dict[str, Any]:
    """``query`` with the unique key of its level added (empty: return it) when it was left out."""
    level = str(query.get("QueryRetrieveLevel", "")).strip().upper()
    if level in UNIQUE_KEYS and UNIQUE_KEYS[level] not in query:
        return {**query, UNIQUE_KEYS[level]: ""}
    return query


#: The levels of each query/retrieve information model, top first.
MODEL_LEVELS: dict[QueryModel, tuple[str, ...]] = {
    QueryModel.PATIENT_ROOT: ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    QueryModel.STUDY_ROOT: ("STUDY", "SERIES", "IMAGE"),
}

#: The plain attributes of each level above IMAGE (PS3.4 C.6.1.1 and C.6.2.1), in the order of the tables:
#: what the built-in archive's index keeps, and with the sequences and computed keys below, where each key
#: lives (a key not listed is an instance attribute, IMAGE).
PATIENT_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "OtherPatientNames",
    "EthnicGroup",
    "PatientComments",
)
STUDY_ATTRIBUTES = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "Occupation",
    "AdditionalPatientHistory",
    "OtherStudyNumbers",
)
SERIES_ATTRIBUTES = (
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
    "Laterality",
    "ProtocolName",
    "OperatorsName",
    "PerformingPhysicianName",
    "StationName",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "Manufacturer",
    "ManufacturerModelName",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID",
)
_PATIENT_KEYS = frozenset(
    (
        *PATIENT_ATTRIBUTES,
        "IssuerOfPatientIDQualifiersSequence",
        "OtherPatientIDsSequence",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    )
)
_STUDY_KEYS = frozenset(
    (
        *STUDY_ATTRIBUTES,
        "IssuerOfAccessionNumberSequence",
        "ModalitiesInStudy",
        "SOPClassesInStudy",
        "AnatomicRegionsInStudyCodeSequence",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    )
)
_SERIES_KEYS = frozenset((*SERIES_ATTRIBUTES, "RequestAttributesSequence", "NumberOfSeriesRelatedInstances"))


def key_keyword(key: str) -> str:
    """The keyword of a query key given as a keyword or a tag (the key itself for a private tag)."""
    return keyword_for_tag(_tag_of(key)) or key


def key_level(keyword: str, model: QueryModel) -> str:
    """The level at which ``keyword`` is matched in ``model``: patient keys are STUDY keys in study root."""
    if keyword in _PATIENT_KEYS:
        return "PATIENT" if model is QueryModel.PATIENT_ROOT else "STUDY"
    if keyword in _STUDY_KEYS:
        return "STUDY"
    if keyword in _SERIES_KEYS:
        return "SERIES"
    return "IMAGE"


#: What ``include_all_return_attributes()`` asks for at each level.
RETURN_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "PATIENT": (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
    ),
    "STUDY": (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    "SERIES": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "SeriesTime",
        "BodyPartExamined",
        "NumberOfSeriesRelatedInstances",
    ),
    "IMAGE": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
    ),
}
_WORKLIST_STEP = (
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledStationName",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepID",
)
_WORKLIST = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "StudyInstanceUID",
    "ReferringPhysicianName",
)
_STEP = "ScheduledProcedureStepSequence"


def _date(value: str | datetime.date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    return value.replace("-", "") if len(value) == 10 else value


def date_range(start: str | datetime.date | None, end: str | datetime.date | None) -> str:
    """A DA range for matching: ``20240101-20240131``, open-ended with one side None."""
    if start is None and end is None:
        return ""
    return f"{_date(start)}-{_date(end)}" if start != end else _date(start)


class QueryBuilder:
    """Builds a query fluently::

        query = QueryBuilder.study().patient_id("123").study_date_range("20240101", "20240131")
        worklist = QueryBuilder.modality_worklist().scheduled_station_ae_title("CT1").modality("CT")

    Each setter sets a matching key; :meth:`include_all_return_attributes` adds the usual return keys of
    the level; :meth:`build` gives the query dict and :attr:`query_model` the model it is meant for.
    """

    def __init__(self, level: str | None, query_model: QueryModel) -> None:
        self.query_model = query_model
        self._keys: dict[str, Any] = {}
        if level is not None:
            self._keys["QueryRetrieveLevel"] = level
            self._keys[UNIQUE_KEYS[level]] = ""  # PS3.4 C.4.1.2.1: the level's unique key is always sent

    @classmethod
    def patient(cls) -> Self:
        """A PATIENT-level query (patient root)."""
        return cls("PATIENT", QueryModel.PATIENT_ROOT)

    @classmethod
    def study(cls, query_model: str | QueryModel = QueryModel.STUDY_ROOT) -> Self:
        """A STUDY-level query (study root unless told otherwise)."""
        return cls("STUDY", QueryModel.parse(query_model))

    @classmethod
    def series(cls, query_model: str | QueryModel = QueryModel.STUDY_ROOT) -> Self:
        """A SERIES-level query."""
        return cls("SERIES", QueryModel.parse(query_model))

    @classmethod
    def image(cls, query_model: str | QueryModel = QueryModel.STUDY_ROOT) -> Self:
        """An IMAGE-level (instance) query."""
        return cls("IMAGE", QueryModel.parse(query_model))

    @classmethod
    def modality_worklist(cls) -> Self:
        """A Modality Worklist query (no level; scheduled step keys go in its sequence)."""
        builder = cls(None, QueryModel.MODALITY_WORKLIST)
        builder._keys[_STEP] = [{}]
        return builder

    # ------------------------------------------------------------------------------ generic setters

    def set(self, keyword: str, value: QueryValue = "") -> Self:
        """Set any key (a keyword or a tag); ``""`` asks for it to be returned."""
        if self.query_model is QueryModel.MODALITY_WORKLIST and keyword in _WORKLIST_STEP:
            self._keys[_STEP][0][keyword] = value
        else:
            self._keys[keyword] = value
        return self

    def returning(self, *keywords: str) -> Self:
        """Ask for these attributes to be returned (without matching on them)."""
        for keyword in keywords:
            if self._get(keyword) is None:
                self.set(keyword, "")
        return self

    def include_all_return_attributes(self) -> Self:
        """Ask for every usual attribute of this level (or of a worklist item)."""
        if self.query_model is QueryModel.MODALITY_WORKLIST:
            return self.returning(*_WORKLIST, *_WORKLIST_STEP)
        return self.returning(*RETURN_ATTRIBUTES[self._keys["QueryRetrieveLevel"]])

    def _get(self, keyword: str) -> Any:
        if self.query_model is QueryModel.MODALITY_WORKLIST and keyword in _WORKLIST_STEP:
            return self._keys[_STEP][0].get(keyword)
        return self._keys.get(keyword)

    # ----------------------------------------------------------------------------- named setters

    def patient_name(self, value: str) -> Self:
        """Patient's Name, with ``*`` and ``?`` wildcards (``"DOE^*"``)."""
        return self.set("PatientName", value)

    def patient_id(self, value: str) -> Self:
        return self.set("PatientID", value)

    def patient_birth_date(self, value: str | datetime.date) -> Self:
        return self.set("PatientBirthDate", _date(value))

    def study_instance_uid(self, *uids: str) -> Self:
        """One UID, or several (list of UID matching)."""
        return self.set("StudyInstanceUID", "\\".join(uids))

    def series_instance_uid(self, *uids: str) -> Self:
        return self.set("SeriesInstanceUID", "\\".join(uids))

    def sop_instance_uid(self, *uids: str) -> Self:
        return self.set("SOPInstanceUID", "\\".join(uids))

    def study_date(self, value: str | datetime.date) -> Self:
        return self.set("StudyDate", _date(value))

    def study_date_range(
        self, start: str | datetime.date | None = None, end: str | datetime.date | None = None
    ) -> Self:
        """Studies from ``start`` to ``end`` inclusive; either may be None for an open range."""
        return self.set("StudyDate", date_range(start, end))

    def accession_number(self, value: str) -> Self:
        return self.set("AccessionNumber", value)

    def study_description(self, value: str) -> Self:
        return self.set("StudyDescription", value)

    def modality(self, value: str) -> Self:
        """Modality at the series level, ModalitiesInStudy at the study level, the step's in a worklist."""
        level = self._keys.get("QueryRetrieveLevel")
        return self.set("ModalitiesInStudy" if level == "STUDY" else "Modality", value)

    def series_number(self, value: int | str) -> Self:
        return self.set("SeriesNumber", str(value))

    def scheduled_station_ae_title(self, value: str) -> Self:
        return self.set("ScheduledStationAETitle", value)

    def scheduled_date_range(
        self, start: str | datetime.date | None = None, end: str | datetime.date | None = None
    ) -> Self:
        """Worklist items whose scheduled step starts from ``start`` to ``end``."""
        return self.set("ScheduledProcedureStepStartDate", date_range(start, end))

    def build(self) -> dict[str, Any]:
        """The query as a dict (a copy)."""
        return {k: [dict(i) for i in v] if isinstance(v, list) else v for k, v in self._keys.items()}

    def __repr__(self) -> str:
        return f"QueryBuilder({self.query_model.value}, {self.build()!r})"


def resolve_query(
    query: Query | QueryBuilder,
    query_model: str | QueryModel | None = None,
    *,
    default_model: str | QueryModel = QueryModel.STUDY_ROOT,
    level: str | None = None,
) -> tuple[QueryModel, dict[str, Any]]:
    """The model and the identifier (a new dict) of a query given as a dict or a :class:`QueryBuilder`.

    The model is ``query_model`` when given, else the builder's, else ``default_model``. For a
    query/retrieve model the QueryRetrieveLevel is checked (``INSTANCE`` is read as ``IMAGE``); ``level``
    is used when the query sets none, and without either it is a ValueError.
    """
    if isinstance(query, QueryBuilder):
        model = QueryModel.parse(query_model) if query_model is not None else query.query_model
        identifier = query.build()
    else:
        model = QueryModel.parse(query_model if query_model is not None else default_model)
        identifier = dict(query)
    if model is not QueryModel.MODALITY_WORKLIST:
        given = identifier.get("QueryRetrieveLevel") or level
        if not given:
            raise ValueError(
                "a query/retrieve identifier needs a QueryRetrieveLevel: PATIENT, STUDY, SERIES or IMAGE"
            )
        identifier["QueryRetrieveLevel"] = QueryLevel.parse(given).value
    return model, identifier


# ---------------------------------------------------------------------------------------- encoding


def _tag_of(key: str) -> int:
    tag = tag_for_keyword(key)
    if tag is not None:
        return int(tag)
    try:
        return parse_tag(key)
    except ValueError:
        raise ValueError(f"unknown query key {key!r}: use a DICOM keyword or a tag GGGGEEEE") from None


def _dataset(query: Query) -> Dataset:
    ds = Dataset()
    for key, value in query.items():
        tag = _tag_of(key)
        try:
            vr = str(dictionary_VR(tag))
        except KeyError:
            vr = "SQ" if isinstance(value, list | tuple) else "LO"
        if vr == "SQ":
            items = value if isinstance(value, list | tuple) else []
            ds[tag] = DataElement(tag, "SQ", DicomSequence([_dataset(item) for item in items]))
        elif value is None or value == "":
            ds[tag] = DataElement(tag, "US" if vr == "US or SS" else vr, None)
        else:
            ds[tag] = element_from_text(tag, vr, str(value), key)
    return ds


def _non_ascii(query: Query) -> bool:
    for value in query.values():
        if isinstance(value, str) and not value.isascii():
            return True
        if isinstance(value, list | tuple) and any(_non_ascii(item) for item in value):
            return True
    return False


def encode_identifier(query: Query, transfer_syntax: str) -> bytes:
    """The identifier data set for ``query`` in ``transfer_syntax``; non-ASCII text goes as UTF-8
    (Specific Character Set ``ISO_IR 192``) unless the query sets the character set itself."""
    query = dict(query)
    if _non_ascii(query) and "SpecificCharacterSet" not in query:
        query = {"SpecificCharacterSet": "ISO_IR 192", **query}
    ds = _dataset(query)
    implicit, little, _ = syntax_encoding(transfer_syntax)
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def decode_identifier(data: bytes, transfer_syntax: str) -> Dataset:
    """A received identifier as a pydicom Dataset."""
    implicit, little, _ = syntax_encoding(transfer_syntax)
    return read_dataset(io.BytesIO(data), implicit, little)


def identifier_to_dict(ds: Dataset) -> dict[str, Any]:
    """A flat dict keyed by keyword (tag ``GGGGEEEE`` for private or unknown ones): DICOM strings, and lists
    of such dicts for sequences. Group lengths are left out."""
    result: dict[str, Any] = {}
    for elem in ds:
        if elem.tag.element == 0:
            continue
        key = keyword_for_tag(elem.tag) or f"{int(elem.tag):08X}"
        if elem.VR == "SQ":
            result[key] = [identifier_to_dict(item) for item in elem.value]
        else:
            text = tag_string(elem)
            if text is not None:
                result[key] = text
    return result
