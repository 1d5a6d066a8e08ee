"""Status categories and names (PS3.7 Annex C, PS3.4 B.2.3 and C.4), checked against pynetdicom's table."""

from __future__ import annotations

import pytest

from aiodicom.dimse import (
    SUB_OPERATIONS_COMPLETE_WITH_FAILURES,
    Command,
    Status,
    StatusCategory,
    category,
    is_failure,
    is_pending,
    is_success,
    is_warning,
    status_name,
)

S, W, F, C, P = (
    StatusCategory.SUCCESS,
    StatusCategory.WARNING,
    StatusCategory.FAILURE,
    StatusCategory.CANCEL,
    StatusCategory.PENDING,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0x0000, S),
        (0x0001, W),
        (0x0107, W),
        (0x0116, W),
        (0xB000, W),
        (0xB006, W),
        (0xB007, W),
        (0xB123, W),
        (0xBFFF, W),
        (0xFF00, P),
        (0xFF01, P),
        (0xFE00, C),
        (0x0002, F),
        (0x0106, F),
        (0x0110, F),
        (0x0122, F),
        (0x0124, F),
        (0x0211, F),
        (0xA700, F),
        (0xA7FF, F),
        (0xA801, F),
        (0xA900, F),
        (0xAFFF, F),
        (0xC000, F),
        (0xC123, F),
        (0xFE01, F),
        (0xFF02, F),
        (0xFFFF, F),
    ],
)
def test_categories(status: int, expected: StatusCategory) -> None:
    assert category(status) is expected
    assert is_success(status) == (expected is S)
    assert is_warning(status) == (expected is W)
    assert is_failure(status) == (expected is F)
    assert is_pending(status) == (expected is P)


def test_categories_agree_with_pynetdicom() -> None:
    status = pytest.importorskip("pynetdicom.status")
    for code in range(0x10000):
        theirs = status.code_to_category(code)
        if theirs != "Unknown":  # pynetdicom leaves unlisted codes uncategorized; they are failures here
            assert category(code).value == theirs, hex(code)


@pytest.mark.parametrize(
    ("status", "service", "name"),
    [
        (0x0000, None, "Success"),
        (0xA700, None, "Refused: Out of Resources"),
        (0xA7AB, "C-STORE", "Refused: Out of Resources"),
        (0xA701, "C-MOVE", "Refused: Out of Resources - Unable to calculate number of matches"),
        (0xA702, "C-GET", "Refused: Out of Resources - Unable to perform sub-operations"),
        (0xA801, "C-MOVE", "Refused: Move Destination unknown"),
        (0xA900, None, "Error: Data Set Does Not Match SOP Class"),
        (0xA9FE, None, "Error: Data Set Does Not Match SOP Class"),
        (0xA900, "C-FIND", "Error: Identifier Does Not Match SOP Class"),
        (0xB000, None, "Warning: Coercion of Data Elements"),
        (0xB000, "C-STORE", "Warning: Coercion of Data Elements"),
        (0xB000, "C-GET", "Warning: Sub-operations Complete - One or more Failures or Warnings"),
        (0xB000, "c-move-rsp", "Warning: Sub-operations Complete - One or more Failures or Warnings"),
        (0xB006, None, "Warning: Elements Discarded"),
        (0xB007, None, "Warning: Data Set Does Not Match SOP Class"),
        (0xC000, None, "Failure: Cannot understand"),
        (0xC042, "C-STORE", "Failure: Cannot understand"),
        (0xC042, "C-FIND", "Failure: Unable to process"),
        (0x0106, None, "Failure: Invalid Attribute value"),
        (0x0110, None, "Failure: Processing failure"),
        (0x0112, None, "Failure: No such SOP Instance"),
        (0x0117, None, "Failure: Invalid object instance"),
        (0x0118, None, "Failure: No such SOP Class"),
        (0x0119, None, "Failure: Class-Instance conflict"),
        (0x0120, None, "Failure: Missing Attribute"),
        (0x0121, None, "Failure: Missing Attribute value"),
        (0x0122, None, "Refused: SOP Class not supported"),
        (0x0124, None, "Refused: Not Authorized"),
        (0x0210, None, "Failure: Duplicate invocation"),
        (0x0211, None, "Failure: Unrecognized operation"),
        (0x0212, None, "Failure: Mistyped argument"),
        (0x0213, None, "Failure: Resource limitation"),
        (0xFE00, None, "Cancel"),
        (0xFF00, None, "Pending"),
        (0xFF00, "C-FIND", "Pending: Matches are continuing"),
        (0xFF01, "C-FIND", "Pending: Matches are continuing - Optional Keys not supported"),
        (0xFF00, "C-MOVE", "Pending: Sub-operations are continuing"),
        (0x7777, None, "Unknown status 0x7777 (failure)"),
        (0xB123, None, "Unknown status 0xB123 (warning)"),
        (0xB123, "C-GET", "Unknown status 0xB123 (warning)"),
        (0x0000, "N-ACTION", "Success"),  # a service without its own wording
    ],
)
def test_names(status: int, service: str | None, name: str) -> None:
    assert status_name(status, service) == name


def test_named_codes() -> None:
    # aliases: one member, two names (int() because mypy does not model enum aliases)
    assert Status(0xB000) is Status.COERCION_OF_DATA_ELEMENTS
    assert int(Status.SUB_OPERATIONS_COMPLETE_WITH_FAILURES) == int(Status.COERCION_OF_DATA_ELEMENTS)
    assert SUB_OPERATIONS_COMPLETE_WITH_FAILURES == 0xB000
    assert int(Status.DATASET_MISMATCH) == int(Status.DATASET_DOES_NOT_MATCH_SOP_CLASS) == 0xA900
    assert (Status.PENDING, Status.PENDING_WARNING, Status.CANCEL) == (0xFF00, 0xFF01, 0xFE00)
    assert (Status.SOP_CLASS_NOT_SUPPORTED, Status.NOT_AUTHORIZED, Status.MOVE_DESTINATION_UNKNOWN) == (
        0x0122,
        0x0124,
        0xA801,
    )
    # every named code has a name that is not the unknown fallback
    for status in Status:
        assert not status_name(status).startswith("Unknown"), status


def test_a_command_name_picks_the_wording() -> None:
    rsp = Command.c_move_rsp(Command.c_move_rq(1, "1.2.840.10008.5.1.4.1.2.2.2", "DEST"), 0xB000)
    assert status_name(0xB000, rsp.name).startswith("Warning: Sub-operations Complete")
