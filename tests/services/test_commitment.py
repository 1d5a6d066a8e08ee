"""The storage commitment data sets (PS3.4 Tables J.3-1 to J.3-3): built, encoded, decoded and read back;
the references a commit takes; what a malformed request is answered."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import Dataset

from aiodicom.errors import NServiceError
from aiodicom.services.commitment import (
    DUPLICATE_TRANSACTION_UID,
    CommitFailure,
    CommitReference,
    action_information,
    event_information,
    parse_action,
    parse_event,
    reason_name,
    reference_of,
)
from aiodicom.services.nservices import decode_dataset, encode_dataset, new_uid
from tests.scp.part10 import CT_IMAGE_STORAGE, part10, small_ct

SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_action_round_trip(syntax: str) -> None:
    refs = [CommitReference(CT_IMAGE_STORAGE, new_uid()) for _ in range(3)]
    transaction = new_uid()
    decoded = decode_dataset(encode_dataset(action_information(transaction, refs), syntax), syntax)
    assert parse_action(decoded) == (transaction, refs)


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_event_round_trip(syntax: str) -> None:
    ok = [CommitReference(CT_IMAGE_STORAGE, new_uid())]
    failed = [CommitFailure(CT_IMAGE_STORAGE, new_uid(), DUPLICATE_TRANSACTION_UID)]
    event_type, info = event_information("1.2.3", ok, failed, "PACS")
    assert event_type == 2
    result = parse_event(decode_dataset(encode_dataset(info, syntax), syntax), event_type)
    assert (result.transaction_uid, result.committed, result.failed) == ("1.2.3", ok, failed)
    assert result.retrieve_ae_title == "PACS" and not result.ok
    assert "duplicate transaction UID (0x0131)" in result.failed[0].message
    every_type, every = event_information("1.2.4", ok, [])
    assert every_type == 1 and "FailedSOPSequence" not in every
    assert reason_name(0x9999) == "failure reason 0x9999"


def test_malformed_requests_are_refused_with_their_status() -> None:
    with pytest.raises(NServiceError) as none:
        parse_action(None)
    assert none.value.status == 0x0120
    no_refs = Dataset()
    no_refs.TransactionUID = "1.2.3"
    with pytest.raises(NServiceError) as missing:
        parse_action(no_refs)
    assert missing.value.status == 0x0120
    bad = action_information("1.2.3", [CommitReference(CT_IMAGE_STORAGE, "1.2.3")])
    bad.ReferencedSOPSequence[0].ReferencedSOPInstanceUID = "1..2"
    with pytest.raises(NServiceError) as invalid:
        parse_action(bad)
    assert invalid.value.status == 0x0115
    with pytest.raises(ValueError, match="Transaction UID"):
        parse_event(Dataset(), 1)


def test_references_from_files_datasets_and_pairs(tmp_path: Path) -> None:
    ct = small_ct()
    path = tmp_path / "a.dcm"
    path.write_bytes(part10(ct))
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, "1.2.3"
    assert reference_of(path) == reference_of(str(path)) == CommitReference(CT_IMAGE_STORAGE, ct.sop_instance)
    assert (
        reference_of(ds)
        == reference_of((CT_IMAGE_STORAGE, "1.2.3 "))
        == CommitReference(CT_IMAGE_STORAGE, "1.2.3")
    )
    (tmp_path / "junk").write_bytes(b"not dicom")
    with pytest.raises(ValueError):
        reference_of(tmp_path / "junk")
    with pytest.raises(ValueError):
        reference_of(Dataset())  # no UIDs
    with pytest.raises(ValueError):
        reference_of((CT_IMAGE_STORAGE,))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        reference_of(42)  # type: ignore[arg-type]
