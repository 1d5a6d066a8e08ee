"""Handlers for the query/retrieve acceptor tests: a tiny catalogue over the known test studies
(``tests/interop/studies.py``), matching on unique keys and PatientID only (matching proper is the
archive's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom import Dataset

from aiodicom.services.serve_common import QueryContext
from tests.interop.studies import Instance, QrData


def _wanted(query: Dataset, keyword: str) -> set[str] | None:
    """The values a key asks for (None: any)."""
    if keyword not in query:
        return None
    value = query[keyword].value
    if value in (None, "", "*"):
        return None
    values = list(value) if not isinstance(value, str) else value.split("\\")
    return {str(v) for v in values}


class Catalog:
    """The instances of ``data``, chosen by a query's unique keys and PatientID."""

    def __init__(self, data: QrData) -> None:
        self.data = data
        self.calls: list[QueryContext] = []
        self.queries: list[Dataset] = []

    def select(self, query: Dataset) -> list[Instance]:
        chosen = []
        for inst in self.data.all_instances():
            ok = True
            for keyword, value in (
                ("PatientID", inst.patient_id),
                ("StudyInstanceUID", inst.study_instance_uid),
                ("SeriesInstanceUID", inst.series_instance_uid),
                ("SOPInstanceUID", inst.sop_instance_uid),
            ):
                wanted = _wanted(query, keyword)
                if wanted is not None and value not in wanted:
                    ok = False
            if ok:
                chosen.append(inst)
        return chosen

    def matches(self, query: Dataset, context: QueryContext) -> Iterator[dict[str, Any]]:
        """One dict per study, series or instance of the query's level."""
        self.calls.append(context)
        self.queries.append(query)
        level = str(query.QueryRetrieveLevel)
        seen: set[str] = set()
        for inst in self.select(query):
            study = self.data.study(inst.study_instance_uid)
            match: dict[str, Any] = {"PatientID": inst.patient_id}
            if level in ("STUDY", "SERIES", "IMAGE"):
                match["StudyInstanceUID"] = inst.study_instance_uid
            if level == "STUDY":
                match["PatientName"] = study.patient_name
                match["StudyDate"] = study.study_date
                match["SOPClassesInStudy"] = "\\".join(sorted(study.sop_classes))
                match["NumberOfStudyRelatedInstances"] = str(len(study.instances))
            if level in ("SERIES", "IMAGE"):
                match["SeriesInstanceUID"] = inst.series_instance_uid
            if level == "SERIES":
                match["Modality"] = inst.modality
            if level == "IMAGE":
                match["SOPInstanceUID"] = inst.sop_instance_uid
                match["SOPClassUID"] = inst.sop_class_uid
            key = "\\".join(str(v) for v in match.values())
            if key not in seen:
                seen.add(key)
                yield match

    def paths(self, query: Dataset) -> list[Path]:
        return [inst.path for inst in self.select(query)]
