from __future__ import annotations

import pytest

from aiodicom.dimse import (
    Status,
    StatusCategory,
    category,
    is_failure,
    is_pending,
    is_success,
    is_warning,
    status_name,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0x0000, StatusCategory.SUCCESS),
        (0x0001, StatusCategory.WARNING),
        (0x0107, StatusCategory.WARNING),
        (0x0116, StatusCategory.WARNING),
        (0xB000, StatusCategory.WARNING),
        (0xB123, StatusCategory.WARNING),
        (0xBFFF, StatusCategory.WARNING),
        (0xFF00, StatusCategory.PENDING),
        (0xFF01, StatusCategory.PENDING),
        (0xFE00, StatusCategory.CANCEL),
        (0xA700, StatusCategory.FAILURE),
        (0xA900, StatusCategory.FAILURE),
        (0xC000, StatusCategory.FAILURE),
        (0xC123, StatusCategory.FAILURE),
        (0x0122, StatusCategory.FAILURE),
        (0x0211, StatusCategory.FAILURE),
    ],
)
def test_categories(status: int, expected: StatusCategory) -> None:
    assert category(status) is expected
    assert is_warning(status) == (expected is StatusCategory.WARNING)
    assert is_failure(status) == (expected is StatusCategory.FAILURE)
    assert is_pending(status) == (expected is StatusCategory.PENDING)
    assert is_success(status) == (expected is StatusCategory.SUCCESS)


def test_names() -> None:
    assert status_name(Status.OUT_OF_RESOURCES) == "Refused: Out of resources"
    assert status_name(0xA7AB).startswith("Refused: Out of resources")
    assert status_name(0xB000) == "Warning: Coercion of data elements"
    assert status_name(0xB000, "C-GET") == "Warning: Sub-operations complete, one or more failures"
    assert status_name(0xC042) == "Error: Cannot understand (0xC042)"
    assert status_name(0x0124) == "Refused: Not authorized"
    assert status_name(0x7777) == "Failure: status 0x7777"
