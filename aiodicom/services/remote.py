"""The table of known AEs (``remote_aes``: C-MOVE destinations, storage commitment reports) and the
query/retrieve SOP classes a server can serve. Loads no pydicom: an idle server imports this."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiodicom.net.address import parse_address, validate_ae_title

if TYPE_CHECKING:
    import ssl

#: The query/retrieve SOP classes: SOP class UID -> (query model, service).
QR_SERVICE_CLASSES: dict[str, tuple[str, str]] = {
    "1.2.840.10008.5.1.4.1.2.1.1": ("patient_root", "find"),
    "1.2.840.10008.5.1.4.1.2.2.1": ("study_root", "find"),
    "1.2.840.10008.5.1.4.31": ("modality_worklist", "worklist"),
    "1.2.840.10008.5.1.4.1.2.1.3": ("patient_root", "get"),
    "1.2.840.10008.5.1.4.1.2.2.3": ("study_root", "get"),
    "1.2.840.10008.5.1.4.1.2.1.2": ("patient_root", "move"),
    "1.2.840.10008.5.1.4.1.2.2.2": ("study_root", "move"),
}


def service_classes(service: str) -> frozenset[str]:
    """The SOP classes of one service: ``find``, ``worklist``, ``get`` or ``move``."""
    return frozenset(uid for uid, (_, what) in QR_SERVICE_CLASSES.items() if what == service)


@dataclass(frozen=True, slots=True)
class RemoteAe:
    """A known AE: where it listens, the called AE title to use (default: the AE title it is known by),
    and a TLS client context to connect with (None: plain TCP)."""

    host: str
    port: int
    ae_title: str | None = None
    tls: ssl.SSLContext | None = None

    @classmethod
    def of(cls, value: str | RemoteAe | tuple[str, int]) -> RemoteAe:
        """An entry of ``remote_aes``: ``"host:port"``, ``"AE@host:port"``, ``(host, port)`` or a RemoteAe."""
        if isinstance(value, RemoteAe):
            return value
        address = parse_address(value)
        return cls(address.host, address.port, address.ae_title)


#: The resolver hook: a destination AE title to its entry (None: unknown), plain or async.
AeResolver = Callable[[str], "RemoteAe | str | tuple[str, int] | Awaitable[RemoteAe | str | None] | None"]


def remote_ae_table(table: Mapping[str, str | RemoteAe | tuple[str, int]] | None) -> dict[str, RemoteAe]:
    """``remote_aes`` checked and parsed (a ValueError names a bad entry)."""
    parsed: dict[str, RemoteAe] = {}
    for title, entry in (table or {}).items():
        validate_ae_title(title, "remote AE title")
        try:
            parsed[title] = RemoteAe.of(entry)
        except ValueError as exc:
            raise ValueError(f"remote_aes[{title!r}]: {exc}") from None
    return parsed


async def resolve_destination(
    title: str, table: Mapping[str, RemoteAe], resolver: AeResolver | None
) -> RemoteAe | None:
    """The destination ``title`` names: the table's entry, else the resolver's answer (None: unknown)."""
    name = title.strip()
    if name in table:
        return table[name]
    if resolver is None:
        return None
    answer = resolver(name)
    if inspect.isawaitable(answer):
        answer = await answer
    return None if answer is None else RemoteAe.of(answer)
