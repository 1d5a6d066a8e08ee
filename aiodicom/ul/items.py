"""Variable items of the association PDUs (PS3.8 9.3.2-9.3.3) and user-information sub-items (PS3.7 D.3.3).

Every item is a frozen dataclass. ``encode_*`` functions append wire bytes to a bytearray; ``decode_*``
functions read from a memoryview and raise :class:`~aiodicom.errors.ProtocolError` naming the A-ABORT reason.
Unknown sub-items are skipped, as PS3.8 requires; padded UIDs (trailing NUL or space) are accepted.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from aiodicom.errors import AbortReason, ProtocolError

# Item types (PS3.8 Table 9-12 and following, PS3.7 Annex D.3.3)
APPLICATION_CONTEXT = 0x10
PRESENTATION_CONTEXT_RQ = 0x20
PRESENTATION_CONTEXT_AC = 0x21
ABSTRACT_SYNTAX = 0x30
TRANSFER_SYNTAX = 0x40
USER_INFORMATION = 0x50
MAXIMUM_LENGTH = 0x51
IMPLEMENTATION_CLASS_UID = 0x52
ASYNC_OPERATIONS_WINDOW = 0x53
ROLE_SELECTION = 0x54
IMPLEMENTATION_VERSION_NAME = 0x55
SOP_CLASS_EXTENDED = 0x56
SOP_CLASS_COMMON_EXTENDED = 0x57
USER_IDENTITY_RQ = 0x58
USER_IDENTITY_AC = 0x59

DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"

_U16 = struct.Struct(">H")
_ITEM_HEADER = struct.Struct(">BxH")
_U16_PAIR = struct.Struct(">HH")


class PresentationContextResult:
    """Result/reason values of a presentation context AC item (PS3.8 Table 9-18)."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    NO_REASON = 2
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
    TRANSFER_SYNTAXES_NOT_SUPPORTED = 4

    NAMES = {
        0: "acceptance",
        1: "user-rejection",
        2: "no-reason (provider rejection)",
        3: "abstract-syntax-not-supported (provider rejection)",
        4: "transfer-syntaxes-not-supported (provider rejection)",
    }


# --------------------------------------------------------------------------------------------- helpers


def _bad(message: str, reason: AbortReason = AbortReason.INVALID_PDU_PARAMETER_VALUE) -> ProtocolError:
    return ProtocolError(message, reason)


def decode_uid(data: memoryview | bytes) -> str:
    """Decode a UID field, accepting the trailing NUL or space padding some peers send."""
    try:
        return bytes(data).rstrip(b"\x00 ").decode("ascii")
    except UnicodeDecodeError as exc:
        raise _bad(f"UID is not ASCII: {bytes(data)[:64]!r}") from exc


def encode_uid(uid: str) -> bytes:
    """Encode a UID field (unpadded, as PS3.8 Annex F requires in PDUs)."""
    try:
        return uid.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"UID {uid!r} is not ASCII") from exc


def iter_items(data: memoryview, where: str) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(item_type, value)`` for each item of a sequence of ``type, reserved, u16 length`` items."""
    offset = 0
    end = len(data)
    while offset < end:
        if end - offset < 4:
            raise _bad(f"{where}: truncated item header at offset {offset}")
        item_type, length = _ITEM_HEADER.unpack_from(data, offset)
        start = offset + 4
        offset = start + length
        if offset > end:
            raise _bad(f"{where}: item 0x{item_type:02X} of length {length} overruns its container")
        yield item_type, data[start:offset]


def _item(out: bytearray, item_type: int, value: bytes | bytearray) -> None:
    if len(value) > 0xFFFF:
        raise ValueError(f"item 0x{item_type:02X} is longer than 65535 bytes")
    out += _ITEM_HEADER.pack(item_type, len(value))
    out += value


def _u16_field(data: memoryview, offset: int, where: str) -> tuple[memoryview, int]:
    """Read a ``u16 length`` + value field; return the value and the offset after it."""
    if len(data) - offset < 2:
        raise _bad(f"{where}: truncated length field")
    (length,) = _U16.unpack_from(data, offset)
    start = offset + 2
    if start + length > len(data):
        raise _bad(f"{where}: field of length {length} overruns its item")
    return data[start : start + length], start + length


def _pack_u16_field(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError("field longer than 65535 bytes")
    return _U16.pack(len(value)) + value


# ------------------------------------------------------------------------------- presentation contexts


@dataclass(frozen=True, slots=True)
class PresentationContextRQ:
    """A proposed presentation context: an odd ID, one abstract syntax, one or more transfer syntaxes."""

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]

    def encode(self, out: bytearray) -> None:
        body = bytearray(bytes((self.context_id, 0, 0, 0)))
        _item(body, ABSTRACT_SYNTAX, encode_uid(self.abstract_syntax))
        for ts in self.transfer_syntaxes:
            _item(body, TRANSFER_SYNTAX, encode_uid(ts))
        _item(out, PRESENTATION_CONTEXT_RQ, body)

    @classmethod
    def decode(cls, data: memoryview) -> PresentationContextRQ:
        if len(data) < 4:
            raise _bad("presentation context (RQ) item is shorter than 4 bytes")
        context_id = data[0]
        _check_context_id(context_id)
        abstract: str | None = None
        transfer: list[str] = []
        for item_type, value in iter_items(data[4:], "presentation context (RQ)"):
            if item_type == ABSTRACT_SYNTAX:
                if abstract is not None:
                    raise _bad(
                        f"presentation context {context_id} has two abstract syntaxes",
                        AbortReason.UNEXPECTED_PDU_PARAMETER,
                    )
                abstract = decode_uid(value)
            elif item_type == TRANSFER_SYNTAX:
                transfer.append(decode_uid(value))
            # anything else: skipped (PS3.8 9.3.2.2)
        if abstract is None:
            raise _bad(
                f"presentation context {context_id} has no abstract syntax",
                AbortReason.UNRECOGNIZED_PDU_PARAMETER,
            )
        if not transfer:
            raise _bad(
                f"presentation context {context_id} proposes no transfer syntax",
                AbortReason.UNRECOGNIZED_PDU_PARAMETER,
            )
        return cls(context_id, abstract, tuple(transfer))


@dataclass(frozen=True, slots=True)
class PresentationContextAC:
    """The acceptor's answer for one presentation context.

    ``transfer_syntax`` is the accepted syntax; for a rejected context it is not significant and may be
    None (no sub-item on the wire) or whatever the peer sent.
    """

    context_id: int
    result: int
    transfer_syntax: str | None

    @property
    def accepted(self) -> bool:
        return self.result == PresentationContextResult.ACCEPTANCE

    def encode(self, out: bytearray) -> None:
        body = bytearray(bytes((self.context_id, 0, self.result, 0)))
        if self.transfer_syntax is not None:
            _item(body, TRANSFER_SYNTAX, encode_uid(self.transfer_syntax))
        _item(out, PRESENTATION_CONTEXT_AC, body)

    @classmethod
    def decode(cls, data: memoryview) -> PresentationContextAC:
        if len(data) < 4:
            raise _bad("presentation context (AC) item is shorter than 4 bytes")
        context_id, result = data[0], data[2]
        _check_context_id(context_id)
        if result > 4:
            raise _bad(f"presentation context {context_id} has result {result}, not 0-4")
        transfer: str | None = None
        for item_type, value in iter_items(data[4:], "presentation context (AC)"):
            if item_type == TRANSFER_SYNTAX:
                if transfer is not None:
                    raise _bad(
                        f"presentation context {context_id} (AC) has two transfer syntaxes",
                        AbortReason.UNEXPECTED_PDU_PARAMETER,
                    )
                transfer = decode_uid(value)
        if transfer is None and result == PresentationContextResult.ACCEPTANCE:
            raise _bad(
                f"accepted presentation context {context_id} names no transfer syntax",
                AbortReason.UNRECOGNIZED_PDU_PARAMETER,
            )
        return cls(context_id, result, transfer)


def _check_context_id(context_id: int) -> None:
    if context_id % 2 == 0:
        raise _bad(f"presentation context ID {context_id} is not odd (PS3.8 9.3.2.2)")


# ----------------------------------------------------------------------------- user information items


@dataclass(frozen=True, slots=True)
class MaximumLength:
    """Maximum length of a P-DATA-TF PDU's variable field the sender can receive (0: unlimited)."""

    value: int

    def encode(self, out: bytearray) -> None:
        _item(out, MAXIMUM_LENGTH, struct.pack(">I", self.value))

    @classmethod
    def decode(cls, data: memoryview) -> MaximumLength:
        if len(data) != 4:
            raise _bad(f"maximum length sub-item has length {len(data)}, not 4")
        return cls(struct.unpack(">I", data)[0])


@dataclass(frozen=True, slots=True)
class ImplementationClassUID:
    uid: str

    def encode(self, out: bytearray) -> None:
        _item(out, IMPLEMENTATION_CLASS_UID, encode_uid(self.uid))

    @classmethod
    def decode(cls, data: memoryview) -> ImplementationClassUID:
        return cls(decode_uid(data))


@dataclass(frozen=True, slots=True)
class ImplementationVersionName:
    name: str

    def encode(self, out: bytearray) -> None:
        _item(out, IMPLEMENTATION_VERSION_NAME, self.name.encode("latin-1"))

    @classmethod
    def decode(cls, data: memoryview) -> ImplementationVersionName:
        # informative only: decoded losslessly (latin-1) rather than tested, so that it re-encodes
        return cls(bytes(data).decode("latin-1").rstrip("\x00 "))


@dataclass(frozen=True, slots=True)
class AsyncOperationsWindow:
    """Maximum number of operations invoked and performed asynchronously (0: unlimited)."""

    max_invoked: int = 1
    max_performed: int = 1

    def encode(self, out: bytearray) -> None:
        _item(out, ASYNC_OPERATIONS_WINDOW, _U16_PAIR.pack(self.max_invoked, self.max_performed))

    @classmethod
    def decode(cls, data: memoryview) -> AsyncOperationsWindow:
        if len(data) != 4:
            raise _bad(f"asynchronous operations window sub-item has length {len(data)}, not 4")
        invoked, performed = _U16_PAIR.unpack(data)
        return cls(invoked, performed)


@dataclass(frozen=True, slots=True)
class RoleSelection:
    """SCP/SCU role selection for one SOP class (PS3.7 D.3.3.4)."""

    sop_class_uid: str
    scu_role: bool
    scp_role: bool

    def encode(self, out: bytearray) -> None:
        body = _pack_u16_field(encode_uid(self.sop_class_uid)) + bytes((self.scu_role, self.scp_role))
        _item(out, ROLE_SELECTION, body)

    @classmethod
    def decode(cls, data: memoryview) -> RoleSelection:
        uid, offset = _u16_field(data, 0, "role selection")
        if len(data) - offset != 2:
            raise _bad("role selection sub-item: role fields missing or trailing bytes")
        scu, scp = data[offset], data[offset + 1]
        if scu > 1 or scp > 1:
            raise _bad(f"role selection sub-item: role values {scu}, {scp} are not 0 or 1")
        return cls(decode_uid(uid), bool(scu), bool(scp))


@dataclass(frozen=True, slots=True)
class SOPClassExtendedNegotiation:
    """Service-class application information for one SOP class (PS3.7 D.3.3.5)."""

    sop_class_uid: str
    application_info: bytes

    def encode(self, out: bytearray) -> None:
        _item(
            out, SOP_CLASS_EXTENDED, _pack_u16_field(encode_uid(self.sop_class_uid)) + self.application_info
        )

    @classmethod
    def decode(cls, data: memoryview) -> SOPClassExtendedNegotiation:
        uid, offset = _u16_field(data, 0, "SOP class extended negotiation")
        return cls(decode_uid(uid), bytes(data[offset:]))


@dataclass(frozen=True, slots=True)
class SOPClassCommonExtendedNegotiation:
    """SOP class common extended negotiation (PS3.7 D.3.3.6)."""

    sop_class_uid: str
    service_class_uid: str
    related_general_sop_classes: tuple[str, ...] = ()

    def encode(self, out: bytearray) -> None:
        related = b"".join(_pack_u16_field(encode_uid(uid)) for uid in self.related_general_sop_classes)
        body = (
            _pack_u16_field(encode_uid(self.sop_class_uid))
            + _pack_u16_field(encode_uid(self.service_class_uid))
            + _pack_u16_field(related)
        )
        # byte 2 of this item is the sub-item version, 0 (PS3.7 Table D.3-12)
        _item(out, SOP_CLASS_COMMON_EXTENDED, body)

    @classmethod
    def decode(cls, data: memoryview) -> SOPClassCommonExtendedNegotiation:
        where = "SOP class common extended negotiation"
        sop, offset = _u16_field(data, 0, where)
        service, offset = _u16_field(data, offset, where)
        related_field: memoryview = data[offset:offset]
        if offset < len(data):
            related_field, offset = _u16_field(data, offset, where)
        related: list[str] = []
        inner = 0
        while inner < len(related_field):
            uid, inner = _u16_field(related_field, inner, where)
            related.append(decode_uid(uid))
        return cls(decode_uid(sop), decode_uid(service), tuple(related))


class UserIdentityType(IntEnum):
    """User identity types (PS3.7 Table D.3-14)."""

    USERNAME = 1
    USERNAME_PASSWORD = 2
    KERBEROS = 3
    SAML = 4
    JWT = 5

    @classmethod
    def parse(cls, value: str | int | UserIdentityType) -> UserIdentityType:
        """A kind from its number or name (``"jwt"``, ``"username_password"``, ``"Kerberos"``)."""
        if isinstance(value, UserIdentityType):
            return value
        if isinstance(value, int):
            return cls(value)
        key = value.strip().upper().replace("-", "_").replace("+", "_")
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(kind.name.lower() for kind in cls)
            raise ValueError(f"unknown user identity type {value!r}: one of {names}") from None


@dataclass(frozen=True, slots=True)
class UserIdentityRQ:
    """User identity negotiation request (PS3.7 D.3.3.7.1)."""

    identity_type: int
    primary_field: bytes
    secondary_field: bytes = b""
    positive_response_requested: bool = False

    def encode(self, out: bytearray) -> None:
        body = (
            bytes((self.identity_type, self.positive_response_requested))
            + _pack_u16_field(self.primary_field)
            + _pack_u16_field(self.secondary_field)
        )
        _item(out, USER_IDENTITY_RQ, body)

    @classmethod
    def decode(cls, data: memoryview) -> UserIdentityRQ:
        if len(data) < 4:
            raise _bad("user identity sub-item is shorter than 4 bytes")
        identity_type, positive = data[0], data[1]
        primary, offset = _u16_field(data, 2, "user identity")
        secondary, offset = _u16_field(data, offset, "user identity") if offset < len(data) else (b"", offset)
        return cls(identity_type, bytes(primary), bytes(secondary), bool(positive))


@dataclass(frozen=True, slots=True)
class UserIdentityAC:
    """User identity negotiation response (PS3.7 D.3.3.7.2)."""

    server_response: bytes

    def encode(self, out: bytearray) -> None:
        _item(out, USER_IDENTITY_AC, _pack_u16_field(self.server_response))

    @classmethod
    def decode(cls, data: memoryview) -> UserIdentityAC:
        response, _ = _u16_field(data, 0, "user identity (AC)")
        return cls(bytes(response))


UserItem = (
    MaximumLength
    | ImplementationClassUID
    | ImplementationVersionName
    | AsyncOperationsWindow
    | RoleSelection
    | SOPClassExtendedNegotiation
    | SOPClassCommonExtendedNegotiation
    | UserIdentityRQ
    | UserIdentityAC
)

_USER_ITEM_TYPES: dict[int, type[UserItem]] = {
    MAXIMUM_LENGTH: MaximumLength,
    IMPLEMENTATION_CLASS_UID: ImplementationClassUID,
    IMPLEMENTATION_VERSION_NAME: ImplementationVersionName,
    ASYNC_OPERATIONS_WINDOW: AsyncOperationsWindow,
    ROLE_SELECTION: RoleSelection,
    SOP_CLASS_EXTENDED: SOPClassExtendedNegotiation,
    SOP_CLASS_COMMON_EXTENDED: SOPClassCommonExtendedNegotiation,
    USER_IDENTITY_RQ: UserIdentityRQ,
    USER_IDENTITY_AC: UserIdentityAC,
}

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class UserInformation:
    """The user-information item: its sub-items in wire order (so that peers' PDUs re-encode exactly).

    Use :meth:`build` to make one and the properties to read one.
    """

    items: tuple[UserItem, ...] = field(default=())

    @classmethod
    def build(
        cls,
        *,
        max_length: int | None = None,
        implementation_class_uid: str | None = None,
        implementation_version_name: str | None = None,
        async_ops_window: AsyncOperationsWindow | None = None,
        role_selections: tuple[RoleSelection, ...] = (),
        sop_class_extended: tuple[SOPClassExtendedNegotiation, ...] = (),
        sop_class_common_extended: tuple[SOPClassCommonExtendedNegotiation, ...] = (),
        user_identity: UserIdentityRQ | UserIdentityAC | None = None,
    ) -> UserInformation:
        """Sub-items in the order of PS3.7 Annex D.3.3 (and of DCMTK)."""
        items: list[UserItem] = []
        if max_length is not None:
            items.append(MaximumLength(max_length))
        if implementation_class_uid is not None:
            items.append(ImplementationClassUID(implementation_class_uid))
        if async_ops_window is not None:
            items.append(async_ops_window)
        items.extend(role_selections)
        if implementation_version_name is not None:
            items.append(ImplementationVersionName(implementation_version_name))
        items.extend(sop_class_extended)
        items.extend(sop_class_common_extended)
        if user_identity is not None:
            items.append(user_identity)
        return cls(tuple(items))

    def _first(self, kind: type[_T]) -> _T | None:
        for item in self.items:
            if isinstance(item, kind):
                return item
        return None

    @property
    def max_length(self) -> int | None:
        item = self._first(MaximumLength)
        return None if item is None else item.value

    @property
    def implementation_class_uid(self) -> str | None:
        item = self._first(ImplementationClassUID)
        return None if item is None else item.uid

    @property
    def implementation_version_name(self) -> str | None:
        item = self._first(ImplementationVersionName)
        return None if item is None else item.name

    @property
    def async_ops_window(self) -> AsyncOperationsWindow | None:
        return self._first(AsyncOperationsWindow)

    @property
    def role_selections(self) -> tuple[RoleSelection, ...]:
        return tuple(i for i in self.items if isinstance(i, RoleSelection))

    @property
    def sop_class_extended(self) -> tuple[SOPClassExtendedNegotiation, ...]:
        return tuple(i for i in self.items if isinstance(i, SOPClassExtendedNegotiation))

    @property
    def sop_class_common_extended(self) -> tuple[SOPClassCommonExtendedNegotiation, ...]:
        return tuple(i for i in self.items if isinstance(i, SOPClassCommonExtendedNegotiation))

    @property
    def user_identity_rq(self) -> UserIdentityRQ | None:
        return self._first(UserIdentityRQ)

    @property
    def user_identity_ac(self) -> UserIdentityAC | None:
        return self._first(UserIdentityAC)

    def encode(self, out: bytearray) -> None:
        body = bytearray()
        for item in self.items:
            item.encode(body)
        _item(out, USER_INFORMATION, body)

    @classmethod
    def decode(cls, data: memoryview) -> UserInformation:
        items: list[UserItem] = []
        for item_type, value in iter_items(data, "user information"):
            kind = _USER_ITEM_TYPES.get(item_type)
            if kind is not None:  # unknown sub-items are skipped (PS3.7 D.3.3)
                items.append(kind.decode(value))
        return cls(tuple(items))
