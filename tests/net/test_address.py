from __future__ import annotations

import pytest

from aiodicom.net.address import Address, parse_address, validate_ae_title


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:104", Address("127.0.0.1", 104)),
        ("pacs.example.org:11112", Address("pacs.example.org", 11112)),
        ("PACS@10.0.0.5:104", Address("10.0.0.5", 104, "PACS")),
        ("[::1]:11112", Address("::1", 11112)),
        ("ARCHIVE@[fe80::1]:4242", Address("fe80::1", 4242, "ARCHIVE")),
        ("MY@AE@host:1", Address("host", 1, "MY@AE")),  # split at the last @
        (" STORE SCP@h:2 ", Address("h", 2, "STORE SCP")),
    ],
)
def test_parse_address(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text", ["host", "host:", ":104", "host:0", "host:70000", "@host:1", "::1:104", "[::1]104"]
)
def test_bad_addresses_name_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="address"):
        parse_address(text)


def test_address_str_round_trips() -> None:
    for text in ["AE@[::1]:104", "h:1", "X@h:2"]:
        assert str(parse_address(text)) == text


@pytest.mark.parametrize("title", ["", "    ", "A" * 17, "BAD\\AE", "TAB\tAE", "ÉCHO"])
def test_bad_ae_titles(title: str) -> None:
    with pytest.raises(ValueError):
        validate_ae_title(title)


def test_ae_title_spaces_are_not_significant() -> None:
    assert validate_ae_title(" STORE ") == "STORE"
    assert validate_ae_title("A" * 16) == "A" * 16
