"""What a retrieve will bring, asked with C-FIND first: SOP classes, and where needed every instance."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydicom import Dataset

from aiodicom.dataset import tag_string
from aiodicom.dimse import Command, CommandField, is_pending, status_name
from aiodicom.dimse.status import is_failure
from aiodicom.errors import DimseError
from aiodicom.net.association import Association
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES
from aiodicom.query import QueryModel, decode_identifier, encode_identifier

if TYPE_CHECKING:
    from aiodicom.scu import Scu

log = logging.getLogger("aiodicom.survey")

#: Keys that select what a retrieve brings; the survey's queries keep them.
_MATCHING = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass
class Survey:
    """SOP classes to propose; with the instance list when it was needed (sop -> class, series, study)."""

    classes: list[str] = field(default_factory=list)
    instances: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    patients: dict[str, str] = field(default_factory=dict)  # study -> patient ID
    count: int = 0

    def by_series(self, only: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Instance UIDs grouped by series (only those in ``only`` when given)."""
        wanted = set(only) if only is not None else None
        groups: dict[str, list[str]] = {}
        for uid, (_, series, _) in self.instances.items():
            if wanted is None or uid in wanted:
                groups.setdefault(series, []).append(uid)
        return groups


def _text(ds: Dataset, keyword: str) -> str:
    if keyword not in ds:
        return ""
    return (tag_string(ds.data_element(keyword)) or "").strip()  # type: ignore[arg-type]


class _Finder:
    def __init__(self, assoc: Association, model: QueryModel, timeout: float | None) -> None:
        self.assoc = assoc
        self.sop_class = model.find_sop_class
        self.ctx = assoc.context_for(self.sop_class)
        self.timeout = timeout

    async def find(self, query: dict[str, Any]) -> list[Dataset]:
        assoc, ctx = self.assoc, self.ctx
        message_id = assoc.next_message_id()
        identifier = encode_identifier(query, ctx.transfer_syntax)
        await assoc.send(ctx.context_id, Command.c_find_rq(message_id, self.sop_class), identifier)
        matches: list[Dataset] = []
        while True:
            message = await assoc.receive_response(message_id, CommandField.C_FIND_RSP, self.timeout)
            status = message.command.status if message.command.status is not None else 0xC000
            if not is_pending(status):
                if is_failure(status):
                    raise DimseError(f"C-FIND answered {status_name(status)} (0x{status:04X})", status)
                return matches
            if message.dataset is not None:
                matches.append(decode_identifier(message.data, ctx.transfer_syntax))


async def survey(
    scu: Scu, model: QueryModel, identifier: dict[str, Any], *, instances: bool = False
) -> Survey:
    """Ask the peer what ``identifier`` (a C-GET or C-MOVE identifier) matches: the SOP classes in its
    studies where the peer answers SOPClassesInStudy (unless ``instances``), else every instance."""
    level = identifier["QueryRetrieveLevel"]
    keys = {k: v for k, v in identifier.items() if k in _MATCHING and v}
    result = Survey()
    async with scu.connect([(model.find_sop_class, DEFAULT_TRANSFER_SYNTAXES)]) as assoc:
        finder = _Finder(assoc, model, scu.dimse_timeout)
        if level in ("PATIENT", "STUDY"):
            query = {
                **{k: v for k, v in keys.items() if k in ("PatientID", "StudyInstanceUID")},
                "QueryRetrieveLevel": "STUDY",
                "PatientID": keys.get("PatientID", ""),
                "StudyInstanceUID": keys.get("StudyInstanceUID", ""),
                "SOPClassesInStudy": "",
                "NumberOfStudyRelatedInstances": "",
            }
            studies = await finder.find(query)
            classes = [_text(ds, "SOPClassesInStudy") for ds in studies]
            for ds in studies:
                result.patients[_text(ds, "StudyInstanceUID")] = _text(ds, "PatientID")
            if studies and all(classes) and not instances:
                result.classes = sorted({uid for text in classes for uid in text.split("\\") if uid})
                result.count = sum(int(_text(ds, "NumberOfStudyRelatedInstances") or 0) for ds in studies)
                log.info("the peer holds %s in %d studies", result.classes, len(studies))
                return result
            series_of = {study: [""] for study in result.patients}
        else:
            study = keys.get("StudyInstanceUID", "")
            result.patients[study] = keys.get("PatientID", "")
            series_of = {study: keys.get("SeriesInstanceUID", "").split("\\")}
        for study, series_uids in series_of.items():
            patient = {"PatientID": result.patients[study]} if model is QueryModel.PATIENT_ROOT else {}
            if series_uids == [""]:
                query = {
                    **patient,
                    "QueryRetrieveLevel": "SERIES",
                    "StudyInstanceUID": study,
                    "SeriesInstanceUID": "",
                }
                series_uids = [_text(ds, "SeriesInstanceUID") for ds in await finder.find(query)]
            for series in series_uids:
                query = {
                    **patient,
                    "QueryRetrieveLevel": "IMAGE",
                    "StudyInstanceUID": study,
                    "SeriesInstanceUID": series,
                    "SOPInstanceUID": keys.get("SOPInstanceUID", "") if level == "IMAGE" else "",
                    "SOPClassUID": "",
                }
                for ds in await finder.find(query):
                    uid = _text(ds, "SOPInstanceUID")
                    result.instances[uid] = (_text(ds, "SOPClassUID"), series, study)
    found = {sop_class for sop_class, _, _ in result.instances.values()}
    # a peer that does not return SOPClassUID (dcmqrscp) leaves the classes unknown
    result.classes = sorted(found) if "" not in found else []
    result.count = len(result.instances)
    log.info("the peer holds %d instances of %s", result.count, result.classes)
    return result
