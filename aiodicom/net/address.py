"""Peer addresses: ``host:port``, ``AE@host:port``, ``[v6]:port`` and ``AE@[v6]:port``."""

from __future__ import annotations

import re
from dataclasses import dataclass

_STRICT_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed peer address; ``ae_title`` is the called AE title when the address names one."""

    host: str
    port: int
    ae_title: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        prefix = f"{self.ae_title}@" if self.ae_title else ""
        return f"{prefix}{host}:{self.port}"


def parse_address(addr: str | Address | tuple[str, int]) -> Address:
    """Parse a peer address. The AE title is split at the last ``@`` (AE titles may contain one).

    Raises ValueError with the accepted forms when ``addr`` is none of them.
    """
    if isinstance(addr, Address):
        return addr
    if isinstance(addr, tuple):
        host, port = addr
        return Address(host, _port(str(port), str(addr)))
    text = addr.strip()
    ae: str | None = None
    at = text.rfind("@")
    if at >= 0:
        ae, text = text[:at].strip(), text[at + 1 :]
        if not ae:
            raise ValueError(f"address {addr!r} has an empty AE title before '@'")
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise ValueError(f"address {addr!r}: an IPv6 address is written [v6]:port")
        host, port_text = text[1:close], text[close + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"address {addr!r} is not host:port, AE@host:port or [v6]:port")
    if not host:
        raise ValueError(f"address {addr!r} has no host")
    return Address(host, _port(port_text, addr), ae)


def _port(text: str, addr: object) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"address {addr!r} has no valid port (1-65535)")
    return int(text)


def validate_ae_title(title: str, what: str = "AE title") -> str:
    """Check an AE title (1-16 characters, no backslash or control characters, not all spaces).

    Returns it without leading or trailing spaces, which are not significant (PS3.5 6.2).
    """
    if not isinstance(title, str):
        raise ValueError(f"{what} must be a string, not {type(title).__name__}")
    stripped = title.strip(" ")
    if not stripped:
        raise ValueError(f"{what} {title!r} is empty or all spaces")
    if len(title) > 16:
        raise ValueError(f"{what} {title!r} is longer than 16 characters")
    if any(ch == "\\" or ord(ch) < 0x20 or ord(ch) > 0x7E for ch in title):
        raise ValueError(f"{what} {title!r} contains a backslash, a control or a non-ASCII character")
    return stripped


def validate_implementation(class_uid: str, version_name: str) -> tuple[str, str]:
    """Check an implementation class UID and version name (PS3.7 D.3.3.2); ValueError saying why.

    The UID: digits and dots, no component with a leading zero, at most 64 characters. The version name:
    1 to 16 characters of the default character repertoire (printable ASCII, no backslash), not blank.
    """
    if not isinstance(class_uid, str) or len(class_uid) > 64 or not _STRICT_UID.fullmatch(class_uid):
        raise ValueError(
            f"invalid implementation class UID {class_uid!r}: digits and dots, no leading zeros, "
            "at most 64 characters"
        )
    if (
        not isinstance(version_name, str)
        or not 1 <= len(version_name) <= 16
        or not version_name.strip()
        or any(not 0x20 <= ord(c) <= 0x7E or c == "\\" for c in version_name)
    ):
        raise ValueError(
            f"invalid implementation version name {version_name!r}: 1 to 16 printable ASCII characters "
            "(no backslash)"
        )
    return class_uid, version_name
