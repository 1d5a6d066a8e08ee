"""Modality Performed Procedure Step (PS3.4 Annex F), both roles: the attribute rules of PS3.4 Table
F.7.2-1, the SCP's state checks, and where the instances are kept.

An MPPS instance is created IN PROGRESS with N-CREATE, updated with N-SET while IN PROGRESS, and ends
COMPLETED or DISCONTINUED; after that it may no longer be updated (PS3.4 F.7.2.2.2: 0x0110 with Error ID
0xA710). :class:`MppsService` is the SCP: it checks each request, runs the user's hooks
(``on_mpps_create`` / ``on_mpps_set``, which may refuse with :class:`~aiodicom.errors.NServiceError`) and
keeps the instance in an :class:`MppsStore`: :class:`JsonMppsStore` (one file per instance, the DICOM JSON
model, written atomically and synced) or :class:`MemoryMppsStore` (lost at exit), or any object with the
same two coroutine methods (a database of your own).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword

from aiodicom.dimse import Status
from aiodicom.errors import NServiceError
from aiodicom.services.nservices import NRequest, NResponse

#: Modality Performed Procedure Step SOP Class (PS3.4 F.7.1).
MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"
IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"
STATUSES = (IN_PROGRESS, COMPLETED, DISCONTINUED)
#: PS3.4 Table F.7.2-2: what answers an N-SET of an instance no longer IN PROGRESS.
NO_LONGER_UPDATABLE = "Performed Procedure Step Object may no longer be updated"
NO_LONGER_UPDATABLE_ERROR_ID = 0xA710

_STATUS_TAG = 0x00400252

# PS3.4 Table F.7.2-1. Type 1 in N-CREATE: present with a value (the library fills the ones it knows).
CREATE_TYPE_1 = (
    "ScheduledStepAttributesSequence",
    "PerformedProcedureStepID",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepStatus",
    "Modality",
)
# Type 2 in N-CREATE: present, possibly empty (filled empty when not given).
CREATE_TYPE_2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "ReferencedPatientSequence",
    "PerformedStationName",
    "PerformedLocation",
    "PerformedProcedureStepDescription",
    "PerformedProcedureTypeDescription",
    "ProcedureCodeSequence",
    "PerformedProcedureStepEndDate",
    "PerformedProcedureStepEndTime",
    "StudyID",
    "PerformedProtocolCodeSequence",
    "PerformedSeriesSequence",
)
# Type 1 and 2 of each Scheduled Step Attributes Sequence item.
SCHEDULED_STEP_TYPE_2 = (
    "ReferencedStudySequence",
    "AccessionNumber",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "ScheduledProcedureStepID",
    "ScheduledProcedureStepDescription",
    "ScheduledProtocolCodeSequence",
)
#: Attributes N-CREATE sets and N-SET may not change ("Not allowed" in N-SET, PS3.4 Table F.7.2-1).
NOT_ALLOWED_IN_SET = frozenset(
    (
        "SOPClassUID",
        "SOPInstanceUID",
        "ScheduledStepAttributesSequence",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "OtherPatientIDsSequence",
        "PatientBirthDate",
        "PatientSex",
        "ReferencedPatientSequence",
        "AdmissionID",
        "IssuerOfAdmissionIDSequence",
        "ServiceEpisodeID",
        "IssuerOfServiceEpisodeIDSequence",
        "ServiceEpisodeDescription",
        "PerformedProcedureStepID",
        "PerformedStationAETitle",
        "PerformedStationName",
        "PerformedLocation",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "Modality",
        "StudyID",
    )
)
#: Attributes that must have a value once the step is COMPLETED (Final State type 1, PS3.4 F.7.2-1).
FINAL_STATE_COMPLETED = (
    "PerformedProcedureStepEndDate",
    "PerformedProcedureStepEndTime",
    "PerformedSeriesSequence",
)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def status_of(ds: Dataset) -> str:
    """The Performed Procedure Step Status of a data set ('' when absent)."""
    return str(ds.get("PerformedProcedureStepStatus", "") or "").strip().upper()


def _now() -> tuple[str, str]:
    now = datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def as_dataset(attributes: Dataset | Mapping[str, Any] | None) -> Dataset:
    """A copy of ``attributes`` as a Dataset: a Dataset, or keywords to values (sequences as lists of
    dicts). ValueError for an unknown keyword."""
    if attributes is None:
        return Dataset()
    if isinstance(attributes, Dataset):
        return attributes.copy()
    ds = Dataset()
    for keyword, value in attributes.items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"{keyword!r} is not a DICOM keyword")
        if isinstance(value, list) and all(isinstance(item, Mapping) for item in value):
            value = [as_dataset(item) for item in value]
        setattr(ds, keyword, value)
    return ds


def create_attributes(
    attributes: Dataset | Mapping[str, Any] | None = None,
    *,
    station_ae_title: str,
    study_instance_uid: str | None = None,
    procedure_step_id: str | None = None,
) -> Dataset:
    """The Attribute List of an MPPS N-CREATE: ``attributes`` with Performed Procedure Step Status IN
    PROGRESS, the type 1 attributes the library can fill (station AE title, start date and time now, a
    procedure step ID, a Scheduled Step Attributes Sequence item with ``study_instance_uid`` or a new
    one for an unscheduled step) and every missing type 2 attribute empty (PS3.4 Table F.7.2-1).
    ValueError for a status other than IN PROGRESS or a missing Modality."""
    from aiodicom.services.nservices import new_uid

    ds = as_dataset(attributes)
    given = status_of(ds)
    if given and given != IN_PROGRESS:
        raise ValueError(f"an MPPS is created IN PROGRESS, not {given!r} (then N-SET it)")
    ds.PerformedProcedureStepStatus = IN_PROGRESS
    if not str(ds.get("Modality", "") or "").strip():
        raise ValueError("Modality is required in an MPPS N-CREATE (type 1: e.g. Modality=CT)")
    date, time = _now()
    if not ds.get("PerformedProcedureStepStartDate"):
        ds.PerformedProcedureStepStartDate = date
    if not ds.get("PerformedProcedureStepStartTime"):
        ds.PerformedProcedureStepStartTime = time
    if not ds.get("PerformedStationAETitle"):
        ds.PerformedStationAETitle = station_ae_title
    if not ds.get("PerformedProcedureStepID"):
        ds.PerformedProcedureStepID = procedure_step_id or f"P{date[2:]}{time}"  # SH: 16 at most
    if not ds.get("ScheduledStepAttributesSequence"):
        item = Dataset()
        item.StudyInstanceUID = study_instance_uid or new_uid()
        ds.ScheduledStepAttributesSequence = [item]
    for item in ds.ScheduledStepAttributesSequence:
        if not item.get("StudyInstanceUID"):
            item.StudyInstanceUID = study_instance_uid or new_uid()
        for keyword in SCHEDULED_STEP_TYPE_2:
            if keyword not in item:
                setattr(item, keyword, [] if keyword.endswith("Sequence") else "")
    for keyword in CREATE_TYPE_2:
        if keyword not in ds:
            setattr(ds, keyword, [] if keyword.endswith("Sequence") else "")
    return ds


def set_attributes(
    attributes: Dataset | Mapping[str, Any] | None = None, *, status: str | None = None
) -> Dataset:
    """The Modification List of an MPPS N-SET: ``attributes`` (none of :data:`NOT_ALLOWED_IN_SET`) and
    the new ``status`` if given; COMPLETED or DISCONTINUED gets the end date and time now unless given.
    ValueError for an attribute N-SET may not change, an unknown status, or a COMPLETED step without a
    Performed Series Sequence."""
    ds = as_dataset(attributes)
    refused = sorted(elem.keyword or str(elem.tag) for elem in ds if elem.keyword in NOT_ALLOWED_IN_SET)
    if refused:
        raise ValueError(f"N-SET may not change {', '.join(refused)} (set once by N-CREATE, PS3.4 F.7.2-1)")
    if status is not None:
        ds.PerformedProcedureStepStatus = status.strip().upper()
    final = status_of(ds)
    if final and final not in STATUSES:
        raise ValueError(f"Performed Procedure Step Status is one of {', '.join(STATUSES)}, not {final!r}")
    if final in (COMPLETED, DISCONTINUED):
        date, time = _now()
        if not ds.get("PerformedProcedureStepEndDate"):
            ds.PerformedProcedureStepEndDate = date
        if not ds.get("PerformedProcedureStepEndTime"):
            ds.PerformedProcedureStepEndTime = time
    return ds


# ---------------------------------------------------------------------------------------- stores


class MppsStore(Protocol):
    """Where an SCP keeps its MPPS instances: ``load`` gives one (None: unknown), ``save`` writes one
    whole (durably, before the response goes out)."""

    async def load(self, sop_instance_uid: str) -> Dataset | None: ...

    async def save(self, sop_instance_uid: str, dataset: Dataset) -> None: ...


class MemoryMppsStore:
    """MPPS instances in a dict (lost when the process ends)."""

    def __init__(self) -> None:
        self.instances: dict[str, Dataset] = {}

    async def load(self, sop_instance_uid: str) -> Dataset | None:
        ds = self.instances.get(sop_instance_uid)
        return None if ds is None else ds.copy()

    async def save(self, sop_instance_uid: str, dataset: Dataset) -> None:
        self.instances[sop_instance_uid] = dataset.copy()


class JsonMppsStore:
    """One file per MPPS instance in ``folder``: ``{SOP Instance UID}.json``, the DICOM JSON model (PS3.18
    F.2), with SOPClassUID and SOPInstanceUID; each written to a temporary file, synced, then renamed
    (``fsync=False`` skips the syncs), in a worker thread."""

    def __init__(self, folder: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def path(self, sop_instance_uid: str) -> Path:
        """The file of an instance (ValueError for a UID that is not one: it never becomes a path)."""
        uid = sop_instance_uid.rstrip("\x00 ")
        if len(uid) > 64 or not _UID.match(uid):
            raise ValueError(f"{sop_instance_uid!r} is not a UID")
        return self.folder / f"{uid}.json"

    async def load(self, sop_instance_uid: str) -> Dataset | None:
        path = self.path(sop_instance_uid)

        def read() -> Dataset | None:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
            return Dataset.from_json(text)

        return await asyncio.to_thread(read)

    async def save(self, sop_instance_uid: str, dataset: Dataset) -> None:
        path = self.path(sop_instance_uid)
        text = json.dumps(dataset.to_json_dict(), indent=1)

        def write() -> None:
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".mpps-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text)
                    if self.fsync:
                        out.flush()
                        os.fsync(out.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            if self.fsync and os.name == "posix":
                folder = os.open(self.folder, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)

        await asyncio.to_thread(write)

    def uids(self) -> list[str]:
        """The UIDs of the instances kept."""
        return sorted(p.stem for p in self.folder.glob("*.json"))


# ------------------------------------------------------------------------------------------ SCP


@dataclass(frozen=True, slots=True)
class MppsEvent:
    """What ``on_mpps_create`` / ``on_mpps_set`` hooks are told, once the state checks passed and before
    the instance is saved: ``dataset`` is the whole instance as it will be saved, ``modifications`` the
    N-SET's Modification List (None for N-CREATE), ``status`` the step's status after the request,
    ``previous_status`` before it (None for N-CREATE), ``request`` the N-service request (peer, AE
    titles...). A hook that raises :class:`~aiodicom.errors.NServiceError` refuses the request: nothing
    is saved."""

    sop_instance_uid: str
    status: str
    dataset: Dataset
    request: NRequest
    modifications: Dataset | None = None
    previous_status: str | None = None


MppsHook = Callable[[MppsEvent], Any]


class MppsService:
    """The MPPS SCP: N-CREATE and N-SET handlers for :data:`MPPS_SOP_CLASS` with PS3.4 F.7's state
    checks, the hooks, and the store. Concurrent requests for one instance are served one at a time."""

    def __init__(self, store: MppsStore) -> None:
        self.store = store
        self.on_create: MppsHook | None = None
        self.on_set: MppsHook | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, uid: str) -> asyncio.Lock:
        lock = self._locks.get(uid)
        if lock is None:
            lock = self._locks[uid] = asyncio.Lock()
        return lock

    async def _hook(self, hook: MppsHook | None, event: MppsEvent) -> None:
        if hook is not None:
            result = hook(event)
            if inspect.isawaitable(result):
                await result

    async def create(self, request: NRequest) -> NResponse:
        """N-CREATE: status IN PROGRESS (else 0x0106), an instance not already held (else 0x0111)."""
        uid = request.sop_instance_uid or ""
        ds = request.dataset if request.dataset is not None else Dataset()
        status = status_of(ds)
        if not status:
            raise NServiceError(
                Status.MISSING_ATTRIBUTE,
                "no Performed Procedure Step Status",
                attribute_identifier_list=(_STATUS_TAG,),
            )
        if status != IN_PROGRESS:
            raise NServiceError(
                Status.INVALID_ATTRIBUTE_VALUE,
                f"an MPPS is created IN PROGRESS, not {status}",
                attribute_identifier_list=(_STATUS_TAG,),
            )
        self._check_uid(uid)
        async with self._lock(uid):
            if await self.store.load(uid) is not None:
                raise NServiceError(Status.DUPLICATE_SOP_INSTANCE, f"MPPS {uid} exists already")
            instance = ds.copy()
            instance.SOPClassUID = MPPS_SOP_CLASS
            instance.SOPInstanceUID = uid
            await self._hook(self.on_create, MppsEvent(uid, status, instance, request))
            await self.store.save(uid, instance)
        return NResponse(sop_instance_uid=uid)

    async def set(self, request: NRequest) -> NResponse:
        """N-SET: a held instance (else 0x0112) still IN PROGRESS (else 0x0110, Error ID 0xA710), no
        attribute N-SET may not change and a known status (else 0x0106)."""
        uid = request.sop_instance_uid or ""
        changes = request.dataset if request.dataset is not None else Dataset()
        self._check_uid(uid)
        refused = tuple(int(elem.tag) for elem in changes if elem.keyword in NOT_ALLOWED_IN_SET)
        if refused:
            raise NServiceError(
                Status.INVALID_ATTRIBUTE_VALUE,
                "attributes N-SET may not change (PS3.4 F.7.2-1)",
                attribute_identifier_list=refused,
            )
        new_status = status_of(changes)
        if new_status and new_status not in STATUSES:
            raise NServiceError(
                Status.INVALID_ATTRIBUTE_VALUE,
                f"unknown Performed Procedure Step Status {new_status}",
                attribute_identifier_list=(_STATUS_TAG,),
            )
        async with self._lock(uid):
            instance = await self.store.load(uid)
            if instance is None:
                raise NServiceError(Status.NO_SUCH_SOP_INSTANCE, f"no MPPS {uid}")
            previous = status_of(instance)
            if previous in (COMPLETED, DISCONTINUED):
                raise NServiceError(
                    Status.PROCESSING_FAILURE, NO_LONGER_UPDATABLE, error_id=NO_LONGER_UPDATABLE_ERROR_ID
                )
            for elem in changes:
                instance[elem.tag] = elem
            status = status_of(instance)
            event = MppsEvent(uid, status, instance, request, changes, previous)
            await self._hook(self.on_set, event)
            await self.store.save(uid, instance)
        return NResponse()

    @staticmethod
    def _check_uid(uid: str) -> None:
        clean = uid.rstrip("\x00 ")
        if len(clean) > 64 or not _UID.match(clean):
            raise NServiceError(Status.INVALID_ARGUMENT_VALUE, f"{uid[:40]!r} is not a SOP Instance UID")


def keyword_values(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (the CLI's ``-k``) as a dict; ValueError for one without ``=`` or with an
    unknown keyword."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{pair!r} is not KEY=VALUE")
        if tag_for_keyword(key) is None:
            raise ValueError(f"{key!r} is not a DICOM keyword")
        values[key] = value
    return values
