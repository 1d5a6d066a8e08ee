"""UIDs are checked before they become part of a path or an object key."""

from __future__ import annotations

import logging

import pytest

from aiodicom.dataset import validate_uid


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.2.840.10008.1.2", "1.2.840.10008.1.2"),
        ("1.2.3\x00", "1.2.3"),
        ("1.2.3 ", "1.2.3"),
        ("1.2.3\x00 \x00", "1.2.3"),
        ("0", "0"),
        ("1." * 31 + "12", "1." * 31 + "12"),  # 64 characters
    ],
)
def test_good(value: str, expected: str) -> None:
    assert validate_uid(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "\x00",
        "../etc",
        "1.2/../../etc",
        "1..2",
        ".1.2",
        "1.2.",
        "1.2.3a",
        "abc",
        " 1.2",
        "1.2\n",
        "1.2\x003",
        "\uff11.\uff12",  # fullwidth digits
        "1" * 65,
        "1." * 32 + "1",  # 65 characters
    ],
)
def test_bad(value: str) -> None:
    with pytest.raises(ValueError, match="Study Instance UID"):
        validate_uid(value, "Study Instance UID")


def test_leading_zero_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aiodicom.dataset"):
        assert validate_uid("1.2.0840.10008") == "1.2.0840.10008"
    assert "leading zero" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aiodicom.dataset"):
        validate_uid("1.2.0.10008")
    assert not caplog.records
