"""Storage Commitment Push Model (PS3.4 Annex J), what both roles share: the SOP class, the data sets of
the N-ACTION (Action Information) and of the N-EVENT-REPORT (Event Information), the failure reasons and
the result.

The SCU asks with an N-ACTION (Action Type ID 1) of the well-known instance 1.2.840.10008.1.20.1.1,
carrying a Transaction UID and the Referenced SOP Sequence; the SCP answers it, then reports with an
N-EVENT-REPORT of the same instance: Event Type ID 1 when every instance is committed, 2 when some failed
(the Failed SOP Sequence gives each failure's reason), on the same association while it is open, else on
an association it opens to the SCU (proposing the SCP role for the SOP class, PS3.4 J.3.3.1.3).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from aiodicom.dataset.validate import validate_uid
from aiodicom.errors import NServiceError

#: Storage Commitment Push Model SOP Class and its well-known SOP instance (PS3.4 J.3.1, J.3.2).
STORAGE_COMMITMENT_SOP_CLASS = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
#: The N-ACTION's Action Type ID: "Request Storage Commitment".
REQUEST_COMMITMENT = 1
#: The N-EVENT-REPORT's Event Type IDs: every instance committed / failures exist.
COMMITTED_ALL = 1
FAILURES_EXIST = 2
#: Storage commitment goes in the uncompressed syntaxes (its data sets are small).
SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")

#: Failure Reasons (0008,1197) of the Failed SOP Sequence (PS3.4 J.3.3.1.2, C.14.1.1).
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
RESOURCE_LIMITATION = 0x0213
SOP_CLASS_NOT_SUPPORTED = 0x0122
CLASS_INSTANCE_CONFLICT = 0x0119
DUPLICATE_TRANSACTION_UID = 0x0131
FAILURE_REASONS = {
    PROCESSING_FAILURE: "processing failure",
    NO_SUCH_OBJECT_INSTANCE: "no such object instance",
    RESOURCE_LIMITATION: "resource limitation",
    SOP_CLASS_NOT_SUPPORTED: "referenced SOP class not supported",
    CLASS_INSTANCE_CONFLICT: "class/instance conflict",
    DUPLICATE_TRANSACTION_UID: "duplicate transaction UID",
}


def reason_name(reason: int) -> str:
    """A Failure Reason's name (``0x0112`` -> "no such object instance")."""
    return FAILURE_REASONS.get(reason, f"failure reason 0x{reason:04X}")


@dataclass(frozen=True, slots=True)
class CommitReference:
    """One instance to commit: its SOP Class and SOP Instance UIDs."""

    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True, slots=True)
class CommitFailure:
    """An instance the SCP did not commit, and why (a Failure Reason, :data:`FAILURE_REASONS`)."""

    sop_class_uid: str
    sop_instance_uid: str
    reason: int

    @property
    def reference(self) -> CommitReference:
        return CommitReference(self.sop_class_uid, self.sop_instance_uid)

    @property
    def message(self) -> str:
        return f"{self.sop_instance_uid}: {reason_name(self.reason)} (0x{self.reason:04X})"


@dataclass(slots=True)
class CommitResult:
    """The SCP's report of one transaction.

    ``committed`` are the instances it keeps safe, ``failed`` the others with their reasons; ``event_type_id``
    is the report's (1: all committed, 2: failures exist); ``same_association`` tells whether the report came
    on the N-ACTION's association (else on one the SCP opened to us); ``retrieve_ae_title`` is the
    Retrieve AE Title the SCP gave, if any; ``dataset`` the whole Event Information.
    """

    transaction_uid: str
    committed: list[CommitReference] = field(default_factory=list)
    failed: list[CommitFailure] = field(default_factory=list)
    event_type_id: int = COMMITTED_ALL
    same_association: bool = True
    retrieve_ae_title: str | None = None
    dataset: Dataset | None = None

    @property
    def ok(self) -> bool:
        """Every instance committed."""
        return not self.failed

    @property
    def message(self) -> str:
        text = f"storage commitment {self.transaction_uid}: {len(self.committed)} committed"
        if self.failed:
            text += f", {len(self.failed)} failed"
        return text


def reference_of(
    item: str | os.PathLike[str] | Dataset | tuple[str, str] | CommitReference,
) -> CommitReference:
    """One instance to commit: a file path (its header is read), a Dataset, a ``(SOP class UID, SOP
    instance UID)`` pair or a :class:`CommitReference`. ValueError for anything without both UIDs."""
    if isinstance(item, CommitReference):
        ref = item
    elif isinstance(item, Dataset):
        ref = CommitReference(str(item.get("SOPClassUID", "")), str(item.get("SOPInstanceUID", "")))
    elif isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"a reference is (SOP class UID, SOP instance UID), not {item!r}")
        ref = CommitReference(str(item[0]), str(item[1]))
    elif isinstance(item, str | os.PathLike):
        from aiodicom.dataset.files import read_header

        try:
            header = read_header(item)
        except Exception as exc:
            raise ValueError(f"{os.fspath(item)}: not readable as DICOM ({exc})") from exc
        ref = CommitReference(header.sop_class_uid, header.sop_instance_uid)
    else:
        raise TypeError(
            f"an instance to commit is a path, a Dataset or a (class, instance) pair, not {item!r}"
        )
    return CommitReference(
        validate_uid(ref.sop_class_uid, "SOP Class UID"),
        validate_uid(ref.sop_instance_uid, "SOP Instance UID"),
    )


def _items(references: Iterable[CommitReference], reasons: dict[CommitReference, int] | None = None) -> Any:
    items = []
    for ref in references:
        item = Dataset()
        item.ReferencedSOPClassUID = ref.sop_class_uid
        item.ReferencedSOPInstanceUID = ref.sop_instance_uid
        if reasons is not None:
            item.FailureReason = reasons[ref]
        items.append(item)
    return DicomSequence(items)


def action_information(transaction_uid: str, references: Sequence[CommitReference]) -> Dataset:
    """The N-ACTION's Action Information (PS3.4 Table J.3-1)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = _items(references)
    return ds


def parse_action(ds: Dataset | None) -> tuple[str, list[CommitReference]]:
    """The Transaction UID and references of an N-ACTION's Action Information; NServiceError with the
    status to answer when it is not one (0x0120 missing attribute, 0x0115 invalid argument value)."""
    if ds is None:
        raise NServiceError(0x0120, "no Action Information")
    try:
        transaction = validate_uid(str(ds.get("TransactionUID", "") or ""), "Transaction UID")
    except ValueError as exc:
        raise NServiceError(0x0115, str(exc)) from None
    items = ds.get("ReferencedSOPSequence")
    if not items:
        raise NServiceError(0x0120, "no Referenced SOP Sequence")
    references = []
    for item in items:
        try:
            references.append(
                CommitReference(
                    validate_uid(
                        str(item.get("ReferencedSOPClassUID", "") or ""), "Referenced SOP Class UID"
                    ),
                    validate_uid(
                        str(item.get("ReferencedSOPInstanceUID", "") or ""), "Referenced SOP Instance UID"
                    ),
                )
            )
        except ValueError as exc:
            raise NServiceError(0x0115, str(exc)) from None
    return transaction, references


def event_information(
    transaction_uid: str,
    committed: Sequence[CommitReference],
    failed: Sequence[CommitFailure],
    retrieve_ae_title: str | None = None,
) -> tuple[int, Dataset]:
    """The N-EVENT-REPORT's Event Type ID and Event Information (PS3.4 Tables J.3-2 and J.3-3)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    if retrieve_ae_title:
        ds.RetrieveAETitle = retrieve_ae_title
    if committed:
        ds.ReferencedSOPSequence = _items(committed)
    if failed:
        reasons = {f.reference: f.reason for f in failed}
        ds.FailedSOPSequence = _items([f.reference for f in failed], reasons)
    return (FAILURES_EXIST if failed else COMMITTED_ALL), ds


def parse_event(ds: Dataset | None, event_type_id: int | None) -> CommitResult:
    """A report's Event Information as a :class:`CommitResult`; ValueError when it has no Transaction UID."""
    if ds is None:
        raise ValueError("the N-EVENT-REPORT has no Event Information")
    transaction = str(ds.get("TransactionUID", "") or "").strip().rstrip("\0")
    if not transaction:
        raise ValueError("the N-EVENT-REPORT has no Transaction UID")
    result = CommitResult(
        transaction,
        event_type_id=event_type_id or COMMITTED_ALL,
        retrieve_ae_title=str(ds.get("RetrieveAETitle", "") or "").strip() or None,
        dataset=ds,
    )
    for item in ds.get("ReferencedSOPSequence") or ():
        result.committed.append(
            CommitReference(
                str(item.get("ReferencedSOPClassUID", "")), str(item.get("ReferencedSOPInstanceUID", ""))
            )
        )
    for item in ds.get("FailedSOPSequence") or ():
        reason = item.get("FailureReason")
        result.failed.append(
            CommitFailure(
                str(item.get("ReferencedSOPClassUID", "")),
                str(item.get("ReferencedSOPInstanceUID", "")),
                int(reason) if reason is not None else PROCESSING_FAILURE,
            )
        )
    return result
