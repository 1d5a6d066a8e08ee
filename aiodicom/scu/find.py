"""FindScu: C-FIND against the study root, patient root and modality worklist models.

The user-facing half (options, query forms); the query itself is
:class:`aiodicom.services.find.FindOperation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiodicom.dimse import Priority
from aiodicom.scu.base import Scu
from aiodicom.services.find import FindCompleted, FindOperation, FindResult, Match
from aiodicom.services.query import (
    Query,
    QueryBuilder,
    QueryModel,
    encode_identifier,
    resolve_query,
    with_unique_key,
)
from aiodicom.uids import EXPLICIT_VR_LITTLE_ENDIAN

__all__ = ["FindCompleted", "FindOperation", "FindResult", "FindScu", "Match"]


class FindScu(Scu):
    """Query/Retrieve and Modality Worklist C-FIND SCU (calling AE title ``FIND-SCU`` by default)::

    scu = FindScu("PACS@10.0.0.5:104")
    query = QueryBuilder.study().patient_id("123").include_all_return_attributes()
    async for study in scu.find(query):
        print(study["StudyInstanceUID"], study.get("StudyDate"))
    result = await scu.find({"QueryRetrieveLevel": "STUDY", "PatientName": "DOE*", "StudyDate": ""})
    """

    default_calling_ae_title = "FIND-SCU"

    def find(
        self,
        query: Query | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_result: Callable[[Any], Any] | None = None,
        on_completed: Callable[[FindCompleted], Any] | None = None,
        limit: int | None = None,
        as_dataset: bool = False,
        priority: int = Priority.MEDIUM,
    ) -> FindOperation:
        """Send one C-FIND. Matches are flat dicts keyed by keyword (lists of dicts for sequences), or
        pydicom Datasets with ``as_dataset=True``.

        ``query_model`` is ``study_root`` (the default for a dict), ``patient_root`` or
        ``modality_worklist``; a :class:`QueryBuilder` brings its own. ``limit`` cancels the C-FIND after
        that many matches. A failure status raises :class:`DimseError` (after ``on_completed``).
        """
        model, identifier = resolve_query(query, query_model)
        identifier = with_unique_key(identifier)
        encode_identifier(identifier, EXPLICIT_VR_LITTLE_ENDIAN)  # an unknown keyword fails here, not later
        return FindOperation(
            self,
            model,
            identifier,
            on_result=on_result,
            on_completed=on_completed,
            limit=limit,
            as_dataset=as_dataset,
            priority=priority,
        )
