"""What a retrieve will bring, asked with C-FIND first: what matches the query, by UID, and its SOP classes.

A retrieve query may carry any matching key (PatientName, AccessionNumber, a StudyDate range, Modality...),
but a C-GET or C-MOVE identifier carries only the Query/Retrieve Level and unique keys (PS3.4 C.4.2.1.4.1,
C.4.3.1.3.1): what a PACS does with other keys there is its own business, and some retrieve everything. So
the survey walks the information model down, one C-FIND per match of the level above, each carrying the keys
that live at its level (patient and study keys at STUDY in study root, Modality at SERIES...) and the unique
keys of the match above; the retrieve then names what the survey found, by UID, and nothing else.

Every match is checked against the keys it was asked for: a PACS that ignores a key it cannot match on
(DCMTK's dcmqrscp ignores ModalitiesInStudy and SeriesDescription) either returns the attribute, whose value
is then checked here, or leaves it out, and a match that cannot be checked is left out as well.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword

from aiodicom.dataset import tag_string
from aiodicom.dimse import Command, CommandField, is_pending, status_name
from aiodicom.dimse.status import is_failure
from aiodicom.errors import (
    DimseError,
    UnmatchableKey as UnmatchableKey,  # also importable from here
)
from aiodicom.net.association import Association
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES, Requestor
from aiodicom.services.query import (
    MODEL_LEVELS,
    UNIQUE_KEYS,
    QueryModel,
    decode_identifier,
    encode_identifier,
    key_keyword,
    key_level,
)

log = logging.getLogger("aiodicom.services.survey")

#: UIDs per retrieve identifier (a UI value in explicit VR has a 16-bit length; a UID takes up to 65 bytes).
UIDS_PER_IDENTIFIER = 256


@dataclass(frozen=True)
class Scope:
    """A retrieve query taken apart: the matching keys at the level where each lives, and the checks every
    match of that level must pass."""

    model: QueryModel
    level: str
    sent: dict[str, dict[str, Any]]
    checks: dict[str, list[tuple[str, str]]]
    charset: str | None = None

    @property
    def levels(self) -> tuple[str, ...]:
        return MODEL_LEVELS[self.model]

    @property
    def depth(self) -> str:
        """The level the retrieve names things at: the query's, or deeper when a key lives deeper (a
        STUDY-level query with Modality=MR retrieves the MR series, not their whole studies)."""
        deepest = self.levels.index(self.level)
        for index, level in enumerate(self.levels):
            if self.sent[level] or self.checks[level]:
                deepest = max(deepest, index)
        return self.levels[deepest]

    @property
    def empty(self) -> bool:
        return not any(self.sent.values()) and not any(self.checks.values())

    @property
    def direct(self) -> bool:
        """The query is already a retrieve identifier: one unique key per level down to its own, no other
        key (PS3.4 C.4.2.2.1)."""
        if self.depth != self.level:
            return False
        for level in self.levels[: self.levels.index(self.level) + 1]:
            unique = UNIQUE_KEYS[level]
            keys = self.sent[level]
            if set(keys) != {unique} or len(self.checks[level]) != 1 or _wild(str(keys[unique])):
                return False
            if level == "PATIENT" and "\\" in str(keys[unique]):
                return False
        return True

    def identifier(self) -> dict[str, Any]:
        """The query's own identifier, unique keys only (for a ``direct`` scope)."""
        keys: dict[str, Any] = {"QueryRetrieveLevel": self.level}
        for level in self.levels[: self.levels.index(self.level) + 1]:
            keys[UNIQUE_KEYS[level]] = self.sent[level][UNIQUE_KEYS[level]]
        return keys


def _wild(value: str) -> bool:
    return "*" in value or "?" in value


def _vr(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return "UN"
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def scope_of(model: QueryModel, identifier: dict[str, Any]) -> Scope:
    """Take a retrieve query apart (``identifier`` as :func:`resolve_query` gives it)."""
    if model not in MODEL_LEVELS:
        raise ValueError(f"{model.value} has no retrieve: use study_root or patient_root")
    levels = MODEL_LEVELS[model]
    level = identifier["QueryRetrieveLevel"]
    if level not in levels:
        raise ValueError(f"{model.value} has no {level} level: use patient_root for a whole patient")
    sent: dict[str, dict[str, Any]] = {lv: {} for lv in levels}
    checks: dict[str, list[tuple[str, str]]] = {lv: [] for lv in levels}
    charset: str | None = None
    for key, value in identifier.items():
        if key == "QueryRetrieveLevel":
            continue
        keyword = key_keyword(key)
        if keyword == "SpecificCharacterSet":
            charset = str(value) if value else None
            continue
        at = key_level(keyword, model)
        if isinstance(value, list | tuple):  # a sequence: sent as given, matched by the PACS alone
            if any(item for item in value):
                sent[at][keyword] = value
            continue
        text = "" if value is None else str(value).strip()
        if text in ("", "*"):  # universal matching: no constraint (and nothing to return in a retrieve)
            continue
        if keyword == "ModalitiesInStudy":  # dcmqrscp has no ModalitiesInStudy: match the series instead
            keyword, at = "Modality", "SERIES"
        vr = _vr(keyword)
        if ("\\" in text and vr != "UI") or keyword in sent[at]:
            sent[at].setdefault(keyword, "")  # a list of values: asked back and matched here
        else:
            sent[at][keyword] = text
        checks[at].append((keyword, text))
    return Scope(model, level, sent, checks, charset)


# ------------------------------------------------------------------------------------------ matching


def _normalize(value: str, vr: str) -> str:
    value = value.strip()
    return value.rstrip("^= ") if vr == "PN" else value


def _one_matches(key: str, value: str, vr: str) -> bool:
    if vr in ("DA",) and "-" in key:
        low, _, high = key.partition("-")
        day = value.replace(".", "")[:8]
        return (not low or day >= low.strip()) and (not high or day <= high.strip())
    if vr in ("TM", "DT", "SQ", "OB", "OW", "UN", "AT"):  # not checked here: left to the PACS
        return True
    if vr in ("IS", "DS", "US", "UL", "SS", "SL", "FL", "FD") and not _wild(key):
        try:
            return float(key) == float(value)
        except ValueError:
            return key.strip() == value.strip()
    key, value = _normalize(key, vr), _normalize(value, vr)
    if _wild(key):
        pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in key)
        return re.fullmatch(pattern, value, re.IGNORECASE | re.DOTALL) is not None
    # PACS differ on case (Orthanc folds PN, dcmqrscp does not): the stricter one decides, not us
    return key.casefold() == value.casefold()


def value_matches(keyword: str, key: str, returned: str) -> bool:
    """Whether a returned attribute value satisfies a matching key: wildcards, DA ranges, lists of values
    (any of them), multi-valued attributes (any value), case-insensitively. TM and DT are not checked."""
    vr = _vr(keyword)
    keys = key.split("\\")
    values = returned.split("\\")
    return any(_one_matches(k, v, vr) for k in keys for v in values)


# -------------------------------------------------------------------------------------------- survey


@dataclass
class Survey:
    """What a retrieve query matches: ``matches`` are the unique keys of each match (top level first) at the
    deepest level surveyed; ``level`` is the level the retrieve names them at. ``instances`` (SOP instance
    -> class, series, study) when the survey went down to IMAGE. ``resolved`` is False when there was no
    survey (it failed, or was not needed): the query's own identifier is sent."""

    level: str = "STUDY"
    matches: list[dict[str, str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    instances: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    patients: dict[str, str] = field(default_factory=dict)  # study -> patient ID
    count: int = 0
    resolved: bool = True

    @property
    def matched(self) -> bool:
        return bool(self.matches) or not self.resolved

    def by_series(self, only: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Instance UIDs grouped by series (only those in ``only`` when given)."""
        wanted = set(only) if only is not None else None
        groups: dict[str, list[str]] = {}
        for uid, (_, series, _) in self.instances.items():
            if wanted is None or uid in wanted:
                groups.setdefault(series, []).append(uid)
        return groups

    def uids(self) -> set[str]:
        """The unique key values at the retrieve level (the UIDs its identifiers name)."""
        key = UNIQUE_KEYS[self.level]
        return {m[key] for m in self.matches if m.get(key)}

    def identifiers(self, model: QueryModel) -> list[dict[str, Any]]:
        """The C-GET/C-MOVE identifiers naming every match: unique keys only, lists of UIDs under one
        parent (a PatientID is not a UID: one identifier per patient)."""
        levels = MODEL_LEVELS[model]
        keys = [UNIQUE_KEYS[lv] for lv in levels[: levels.index(self.level) + 1]]
        groups: dict[tuple[str, ...], list[str]] = {}
        for match in self.matches:
            values = tuple(match.get(k, "") for k in keys)
            if not all(values):  # an empty unique key matches everything on some PACS
                log.warning("a match without %s is left out of the retrieve: %s", keys, match)
                continue
            members = groups.setdefault(values[:-1], [])
            if values[-1] not in members:
                members.append(values[-1])
        identifiers: list[dict[str, Any]] = []
        size = 1 if self.level == "PATIENT" else UIDS_PER_IDENTIFIER
        for parent, members in groups.items():
            base: dict[str, Any] = {"QueryRetrieveLevel": self.level, **dict(zip(keys, parent, strict=False))}
            for start in range(0, len(members), size):
                identifiers.append({**base, keys[-1]: "\\".join(members[start : start + size])})
        return identifiers


def _text(ds: Dataset, keyword: str) -> str:
    if keyword not in ds:
        return ""
    return (tag_string(ds.data_element(keyword)) or "").strip()  # type: ignore[arg-type]


#: Asked back at each level, to plan the retrieve.
_RETURNED = {
    "PATIENT": ("PatientID",),
    "STUDY": ("PatientID", "StudyInstanceUID", "SOPClassesInStudy", "NumberOfStudyRelatedInstances"),
    "SERIES": ("SeriesInstanceUID", "NumberOfSeriesRelatedInstances"),
    "IMAGE": ("SOPInstanceUID", "SOPClassUID"),
}


class _Finder:
    def __init__(self, assoc: Association, scope: Scope, timeout: float | None) -> None:
        self.assoc = assoc
        self.scope = scope
        self.sop_class = scope.model.find_sop_class
        self.ctx = assoc.context_for(self.sop_class)
        self.timeout = timeout
        self.unchecked: set[str] = set()  # keys some match came back without
        self.ignored: set[str] = set()  # keys some match came back contradicting

    def query(self, level: str, parent: dict[str, str]) -> dict[str, Any]:
        scope = self.scope
        query: dict[str, Any] = {}
        if scope.charset:
            query["SpecificCharacterSet"] = scope.charset
        query["QueryRetrieveLevel"] = level
        query.update(parent)
        query.update({k: "" for k in _RETURNED[level] if k not in parent})
        query.update({k: "" for k, _ in scope.checks[level]})
        query.update(scope.sent[level])
        return query

    async def find(self, level: str, parent: dict[str, str]) -> list[Dataset]:
        """The matches at ``level`` under ``parent`` that pass every check of the level."""
        matches = await self._find(self.query(level, parent))
        kept = []
        for ds in matches:
            if self._passes(ds, level):
                kept.append(ds)
        if matches and not kept and self.unchecked:
            raise UnmatchableKey(
                f"{self.assoc.called_ae_title} does not match on {', '.join(sorted(self.unchecked))} "
                f"at the {level} level (its matches come back without it): retrieving would bring what the "
                "query does not ask for; leave the key out, or use a key the PACS matches on"
            )
        return kept

    def _passes(self, ds: Dataset, level: str) -> bool:
        for keyword, key in self.scope.checks[level]:
            returned = _text(ds, keyword)
            if not returned:
                if keyword not in self.unchecked:
                    log.warning("a match came back without %s: it cannot be checked and is left out", keyword)
                self.unchecked.add(keyword)
                return False
            if not value_matches(keyword, key, returned):
                if keyword not in self.ignored:
                    log.warning("the PACS returned %s=%r for the key %r: left out", keyword, returned, key)
                self.ignored.add(keyword)
                return False
        return True

    async def _find(self, query: dict[str, Any]) -> list[Dataset]:
        assoc, ctx = self.assoc, self.ctx
        message_id = assoc.next_message_id()
        identifier = encode_identifier(query, ctx.transfer_syntax)
        log.debug("survey C-FIND: %s", query)
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


async def survey(scu: Requestor, scope: Scope, *, classes: bool = False, instances: bool = False) -> Survey:
    """Ask the peer what ``scope`` matches, level by level down to the retrieve's level; further down to
    learn the SOP classes when ``classes`` and the peer does not answer SOPClassesInStudy, and to IMAGE
    (every instance) when ``instances``."""
    levels = scope.levels
    stop = levels.index(scope.depth)
    if classes:
        stop = max(stop, levels.index("STUDY"))
    if instances:
        stop = len(levels) - 1
    result = Survey(level=scope.depth)
    study_classes: dict[str, str] = {}
    counts: dict[str, str] = {}
    model = scope.model
    async with scu.connect([(model.find_sop_class, DEFAULT_TRANSFER_SYNTAXES)]) as assoc:
        finder = _Finder(assoc, scope, scu.dimse_timeout)
        nodes: list[dict[str, str]] = [{}]
        index = 0
        if model is QueryModel.PATIENT_ROOT and not scope.checks["PATIENT"] and stop > 0:
            index = 1  # no patient key: one STUDY query, PatientID asked back (not one per patient)
        while index <= stop and nodes:
            level = levels[index]
            unique = UNIQUE_KEYS[level]
            found: list[dict[str, str]] = []
            for node in nodes:
                for ds in await finder.find(level, node):
                    child = {**node, unique: _text(ds, unique)}
                    if level == "STUDY":
                        if model is QueryModel.PATIENT_ROOT and not child.get("PatientID"):
                            child["PatientID"] = _text(ds, "PatientID")
                        study = child[unique]
                        result.patients[study] = child.get("PatientID") or _text(ds, "PatientID")
                        study_classes[study] = _text(ds, "SOPClassesInStudy")
                        counts[study] = _text(ds, "NumberOfStudyRelatedInstances")
                    elif level == "SERIES":
                        counts[child[unique]] = _text(ds, "NumberOfSeriesRelatedInstances")
                    elif level == "IMAGE":
                        series, study = child["SeriesInstanceUID"], child["StudyInstanceUID"]
                        result.instances[child[unique]] = (_text(ds, "SOPClassUID"), series, study)
                    found.append(child)
            nodes = found
            if level == "STUDY" and classes and not all(study_classes.get(n[unique]) for n in nodes):
                stop = len(levels) - 1  # the classes are learnt from the instances
            index += 1
    result.matches = nodes
    _summarize(result, levels[min(stop, len(levels) - 1)], study_classes, counts)
    return result


def _summarize(result: Survey, deepest: str, study_classes: dict[str, str], counts: dict[str, str]) -> None:
    if result.instances or deepest == "IMAGE":
        found = {sop_class for sop_class, _, _ in result.instances.values()}
        # a peer that does not return SOPClassUID (dcmqrscp) leaves the classes unknown
        result.classes = sorted(found) if "" not in found else []
        result.count = len(result.instances)
        log.info("the peer holds %d matching instances of %s", result.count, result.classes)
        return
    studies = {m["StudyInstanceUID"] for m in result.matches if m.get("StudyInstanceUID")}
    texts = [study_classes.get(study, "") for study in studies]
    if texts and all(texts):
        result.classes = sorted({uid for text in texts for uid in text.split("\\") if uid})
    key = UNIQUE_KEYS[deepest]
    numbers = [counts.get(m.get(key, ""), "") for m in result.matches]
    if numbers and all(n.isdigit() for n in numbers):
        result.count = sum(int(n) for n in numbers)
    log.info("%d matches at the %s level, of %s", len(result.matches), deepest, result.classes)
