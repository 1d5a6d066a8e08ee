"""MppsScu: report a Modality Performed Procedure Step (PS3.4 Annex F) with N-CREATE and N-SET."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset

from aiodicom.errors import DimseError
from aiodicom.scu.base import Scu
from aiodicom.services.mpps import (
    MPPS_SOP_CLASS,
    as_dataset,
    create_attributes,
    set_attributes,
    status_of,
)
from aiodicom.services.nservices import NResult, n_create, n_set

#: MPPS goes in the uncompressed syntaxes (its data sets are small).
_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]


@dataclass(frozen=True, slots=True)
class MppsResult:
    """An MPPS request the SCP accepted: the instance's UID (for N-CREATE, ours or the one the SCP
    assigned), the step's status as sent, the response status (0x0000 or a warning) and the whole
    :class:`~aiodicom.services.nservices.NResult`."""

    sop_instance_uid: str
    performed_procedure_step_status: str
    status: int
    response: NResult

    @property
    def message(self) -> str:
        return f"MPPS {self.sop_instance_uid} {self.performed_procedure_step_status}"


class MppsRefused(DimseError):
    """The SCP answered an MPPS request with a failure status: ``status``, ``error_comment``, ``error_id``
    (0xA710: the step is no longer IN PROGRESS) and the whole ``response``."""

    def __init__(self, response: NResult) -> None:
        super().__init__(response.message, response.status)
        self.response = response
        self.error_comment = response.error_comment
        self.error_id = response.error_id


class MppsScu(Scu):
    """Modality Performed Procedure Step SCU::

        mpps = MppsScu("RIS@10.0.0.9:104", calling_ae_title="CT1")
        step = await mpps.create({"PatientID": "P1", "PatientName": "DOE^JO", "Modality": "CT"})
        await mpps.set(step.sop_instance_uid, {"PerformedSeriesSequence": [...]}, status="COMPLETED")

    Each call is one association. :meth:`create` follows PS3.4 Table F.7.2-1 (status IN PROGRESS, the type
    1 attributes it can fill, the type 2 ones empty); :meth:`set` refuses attributes N-SET may not change.
    A failure status raises :class:`MppsRefused`.
    """

    default_calling_ae_title = "MPPS-SCU"
    kind = "mpps"

    async def create(
        self,
        attributes: Dataset | Mapping[str, Any] | None = None,
        *,
        sop_instance_uid: str | None = None,
        patient_id: str | None = None,
        patient_name: str | None = None,
        modality: str | None = None,
        study_instance_uid: str | None = None,
        procedure_step_id: str | None = None,
    ) -> MppsResult:
        """N-CREATE an MPPS instance, IN PROGRESS, with ``attributes`` (a Dataset, or keywords to values,
        sequences as lists of dicts) and the named ones; without ``sop_instance_uid`` the SCP assigns it
        (the result has it). ``study_instance_uid`` goes in the Scheduled Step Attributes Sequence item
        made when the attributes have none (a new UID for an unscheduled step). ValueError for a missing
        Modality or a status other than IN PROGRESS."""
        ds = Dataset() if attributes is None else as_dataset(attributes)
        for keyword, value in (
            ("PatientID", patient_id),
            ("PatientName", patient_name),
            ("Modality", modality),
        ):
            if value is not None:
                setattr(ds, keyword, value)
        ds = create_attributes(
            ds,
            station_ae_title=self.calling_ae_title,
            study_instance_uid=study_instance_uid,
            procedure_step_id=procedure_step_id,
        )
        async with self.connect([(MPPS_SOP_CLASS, _SYNTAXES)]) as assoc:
            result = await n_create(
                assoc, MPPS_SOP_CLASS, ds, sop_instance_uid=sop_instance_uid, timeout=self.dimse_timeout
            )
        if not result.ok:
            raise MppsRefused(result)
        uid = result.affected_sop_instance_uid or sop_instance_uid
        if not uid:
            raise DimseError("the N-CREATE response names no SOP instance: the MPPS cannot be updated", 0)
        self.log.info("MPPS %s created IN PROGRESS on %s", uid, self.address)
        return MppsResult(uid, status_of(ds), result.status, result)

    async def set(
        self,
        sop_instance_uid: str,
        attributes: Dataset | Mapping[str, Any] | None = None,
        *,
        status: str | None = None,
    ) -> MppsResult:
        """N-SET the MPPS instance: ``attributes`` (none that N-SET may not change: ValueError) and the
        new ``status`` (``IN PROGRESS``, ``COMPLETED`` or ``DISCONTINUED``; the end date and time are
        filled when it ends)."""
        ds = set_attributes(None if attributes is None else as_dataset(attributes), status=status)
        async with self.connect([(MPPS_SOP_CLASS, _SYNTAXES)]) as assoc:
            result = await n_set(assoc, MPPS_SOP_CLASS, sop_instance_uid, ds, timeout=self.dimse_timeout)
        if not result.ok:
            raise MppsRefused(result)
        state = status_of(ds) or "IN PROGRESS"
        self.log.info("MPPS %s set (%s) on %s", sop_instance_uid, state, self.address)
        return MppsResult(sop_instance_uid, state, result.status, result)
