"""DIMSE command sets (PS3.7 section 9.3 and 10.3): group 0000, implicit VR little endian, group length first.

Hand-written with ``struct``: a command is encoded and decoded once per message, on the hot path of every
C-STORE, so it does not go through a general data set parser.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from enum import IntEnum

from aiodicom.errors import AbortReason, ProtocolError


class InvalidCommand(ProtocolError):
    """A command set that cannot be decoded; the association is aborted with ``reason``."""

    def __init__(self, message: str, reason: AbortReason = AbortReason.INVALID_PDU_PARAMETER_VALUE) -> None:
        super().__init__(message, reason)


class CommandField(IntEnum):
    """(0000,0100) Command Field values of the composite services."""

    C_STORE_RQ = 0x0001
    C_STORE_RSP = 0x8001
    C_GET_RQ = 0x0010
    C_GET_RSP = 0x8010
    C_FIND_RQ = 0x0020
    C_FIND_RSP = 0x8020
    C_MOVE_RQ = 0x0021
    C_MOVE_RSP = 0x8021
    C_ECHO_RQ = 0x0030
    C_ECHO_RSP = 0x8030
    C_CANCEL_RQ = 0x0FFF


class Priority(IntEnum):
    MEDIUM = 0
    HIGH = 1
    LOW = 2


#: (0000,0800) Command Data Set Type: no data set follows. Any other value means one follows.
NO_DATASET = 0x0101
#: What we send when a data set follows (the value DCMTK and pynetdicom send).
DATASET_PRESENT = 0x0001

_US, _UL, _UI, _AE, _LO, _AT = "US", "UL", "UI", "AE", "LO", "AT"

# Command Data Set Type is the Command's ``data_set_type``; the rest map to fields of the same meaning.
_ELEMENTS: dict[str, tuple[int, str]] = {
    "affected_sop_class_uid": (0x00000002, _UI),
    "requested_sop_class_uid": (0x00000003, _UI),
    "command_field": (0x00000100, _US),
    "message_id": (0x00000110, _US),
    "message_id_being_responded_to": (0x00000120, _US),
    "move_destination": (0x00000600, _AE),
    "priority": (0x00000700, _US),
    "data_set_type": (0x00000800, _US),
    "status": (0x00000900, _US),
    "offending_elements": (0x00000901, _AT),
    "error_comment": (0x00000902, _LO),
    "error_id": (0x00000903, _US),
    "affected_sop_instance_uid": (0x00001000, _UI),
    "requested_sop_instance_uid": (0x00001001, _UI),
    "remaining": (0x00001020, _US),
    "completed": (0x00001021, _US),
    "failed": (0x00001022, _US),
    "warning": (0x00001023, _US),
    "move_originator_ae_title": (0x00001030, _AE),
    "move_originator_message_id": (0x00001031, _US),
}
_BY_TAG = {tag: (name, vr) for name, (tag, vr) in _ELEMENTS.items()}
_ELEMENT_HEADER = struct.Struct("<HHI")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

_NAMES = {
    0x0001: "C-STORE",
    0x0010: "C-GET",
    0x0020: "C-FIND",
    0x0021: "C-MOVE",
    0x0030: "C-ECHO",
    0x0FFF: "C-CANCEL",
}


@dataclass(frozen=True, slots=True)
class Command:
    """One DIMSE command set. Fields that are None are absent from the encoding.

    ``extra`` keeps any other group-0000 element as ``(tag, raw value)`` so that decoding and encoding
    round-trip; the group length is always recomputed.
    """

    command_field: int
    message_id: int | None = None
    message_id_being_responded_to: int | None = None
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    requested_sop_class_uid: str | None = None
    requested_sop_instance_uid: str | None = None
    priority: int | None = None
    data_set_type: int = NO_DATASET
    status: int | None = None
    move_destination: str | None = None
    move_originator_ae_title: str | None = None
    move_originator_message_id: int | None = None
    remaining: int | None = None
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    error_comment: str | None = None
    error_id: int | None = None
    offending_elements: tuple[int, ...] | None = None
    extra: tuple[tuple[int, bytes], ...] = field(default=())

    @property
    def has_dataset(self) -> bool:
        """True when a data set follows the command (any Command Data Set Type but 0x0101)."""
        return self.data_set_type != NO_DATASET

    @property
    def is_request(self) -> bool:
        return not self.command_field & 0x8000

    @property
    def is_response(self) -> bool:
        return bool(self.command_field & 0x8000)

    @property
    def name(self) -> str:
        base = _NAMES.get(self.command_field & 0x7FFF, f"command 0x{self.command_field:04X}")
        if self.command_field == CommandField.C_CANCEL_RQ:
            return "C-CANCEL-RQ"
        return f"{base}-{'RSP' if self.is_response else 'RQ'}"

    # ---------------------------------------------------------------------------- constructors

    @classmethod
    def c_echo_rq(cls, message_id: int) -> Command:
        return cls(CommandField.C_ECHO_RQ, message_id, affected_sop_class_uid="1.2.840.10008.1.1")

    @classmethod
    def c_echo_rsp(cls, message_id_being_responded_to: int, status: int = 0) -> Command:
        return cls(
            CommandField.C_ECHO_RSP,
            message_id_being_responded_to=message_id_being_responded_to,
            affected_sop_class_uid="1.2.840.10008.1.1",
            status=status,
        )

    @classmethod
    def c_store_rq(
        cls,
        message_id: int,
        sop_class_uid: str,
        sop_instance_uid: str,
        priority: int = Priority.MEDIUM,
        move_originator_ae_title: str | None = None,
        move_originator_message_id: int | None = None,
    ) -> Command:
        return cls(
            CommandField.C_STORE_RQ,
            message_id,
            affected_sop_class_uid=sop_class_uid,
            affected_sop_instance_uid=sop_instance_uid,
            priority=priority,
            data_set_type=DATASET_PRESENT,
            move_originator_ae_title=move_originator_ae_title,
            move_originator_message_id=move_originator_message_id,
        )

    @classmethod
    def c_store_rsp(cls, rq: Command, status: int, error_comment: str | None = None) -> Command:
        """The response to a C-STORE-RQ: echoes its SOP class and instance (PS3.7 9.3.1.2)."""
        return cls(
            CommandField.C_STORE_RSP,
            message_id_being_responded_to=rq.message_id,
            affected_sop_class_uid=rq.affected_sop_class_uid,
            affected_sop_instance_uid=rq.affected_sop_instance_uid,
            status=status,
            error_comment=error_comment,
        )

    @classmethod
    def c_find_rq(cls, message_id: int, sop_class_uid: str, priority: int = Priority.MEDIUM) -> Command:
        return cls(
            CommandField.C_FIND_RQ,
            message_id,
            affected_sop_class_uid=sop_class_uid,
            priority=priority,
            data_set_type=DATASET_PRESENT,
        )

    @classmethod
    def c_find_rsp(cls, rq: Command, status: int, has_dataset: bool = False) -> Command:
        return cls(
            CommandField.C_FIND_RSP,
            message_id_being_responded_to=rq.message_id,
            affected_sop_class_uid=rq.affected_sop_class_uid,
            status=status,
            data_set_type=DATASET_PRESENT if has_dataset else NO_DATASET,
        )

    @classmethod
    def c_get_rq(cls, message_id: int, sop_class_uid: str, priority: int = Priority.MEDIUM) -> Command:
        return cls(
            CommandField.C_GET_RQ,
            message_id,
            affected_sop_class_uid=sop_class_uid,
            priority=priority,
            data_set_type=DATASET_PRESENT,
        )

    @classmethod
    def c_move_rq(
        cls, message_id: int, sop_class_uid: str, move_destination: str, priority: int = Priority.MEDIUM
    ) -> Command:
        return cls(
            CommandField.C_MOVE_RQ,
            message_id,
            affected_sop_class_uid=sop_class_uid,
            priority=priority,
            data_set_type=DATASET_PRESENT,
            move_destination=move_destination,
        )

    @classmethod
    def retrieve_rsp(
        cls,
        rq: Command,
        status: int,
        *,
        remaining: int | None = None,
        completed: int | None = None,
        failed: int | None = None,
        warning: int | None = None,
        has_dataset: bool = False,
    ) -> Command:
        """A C-GET-RSP or C-MOVE-RSP (by the request's command field) with sub-operation counts."""
        return cls(
            rq.command_field | 0x8000,
            message_id_being_responded_to=rq.message_id,
            affected_sop_class_uid=rq.affected_sop_class_uid,
            status=status,
            remaining=remaining,
            completed=completed,
            failed=failed,
            warning=warning,
            data_set_type=DATASET_PRESENT if has_dataset else NO_DATASET,
        )

    @classmethod
    def c_cancel_rq(cls, message_id_being_responded_to: int) -> Command:
        return cls(CommandField.C_CANCEL_RQ, message_id_being_responded_to=message_id_being_responded_to)


_FIELDS = [f.name for f in fields(Command) if f.name in _ELEMENTS]


def _encode_value(vr: str, value: object) -> bytes:
    if vr == _US:
        return _U16.pack(value)
    if vr == _UL:
        return _U32.pack(value)
    if vr == _AT:
        return b"".join(struct.pack("<HH", tag >> 16, tag & 0xFFFF) for tag in value)  # type: ignore[attr-defined]
    raw = str(value).encode("ascii")
    if len(raw) % 2:
        raw += b"\x00" if vr == _UI else b" "
    return raw


def encode_command(cmd: Command) -> bytes:
    """Encode a command set: (0000,0000) group length, then the present elements in tag order."""
    elements: list[tuple[int, bytes]] = []
    for name in _FIELDS:
        value = getattr(cmd, name)
        if value is not None:
            tag, vr = _ELEMENTS[name]
            elements.append((tag, _encode_value(vr, value)))
    elements.extend(cmd.extra)
    elements.sort(key=lambda e: e[0])
    body = b"".join(_ELEMENT_HEADER.pack(0, tag & 0xFFFF, len(raw)) + raw for tag, raw in elements)
    return _ELEMENT_HEADER.pack(0, 0, 4) + _U32.pack(len(body)) + body


def _decode_value(vr: str, raw: memoryview, tag: int) -> object:
    if vr == _US:
        if len(raw) != 2:
            raise InvalidCommand(
                f"command element ({tag >> 16:04X},{tag & 0xFFFF:04X}) US of length {len(raw)}"
            )
        return _U16.unpack(raw)[0]
    if vr == _AT:
        if len(raw) % 4:
            raise InvalidCommand("Offending Element (0000,0901) is not a list of tags")
        pairs = struct.unpack(f"<{len(raw) // 2}H", raw)
        return tuple((pairs[i] << 16) | pairs[i + 1] for i in range(0, len(pairs), 2))
    try:
        return bytes(raw).decode("ascii").rstrip("\x00 ")
    except UnicodeDecodeError:
        # Error comments from some peers carry non-ASCII text: keep it readable rather than fail
        return bytes(raw).decode("latin-1").rstrip("\x00 ")


def decode_command(data: bytes | bytearray | memoryview) -> Command:
    """Decode a command set. Raises :class:`InvalidCommand` for a malformed one."""
    view = memoryview(data)
    end = len(view)
    offset = 0
    values: dict[str, object] = {}
    extra: list[tuple[int, bytes]] = []
    while offset < end:
        if end - offset < 8:
            raise InvalidCommand(f"command set truncated at byte {offset}")
        group, element, length = _ELEMENT_HEADER.unpack_from(view, offset)
        offset += 8
        if group != 0:
            raise InvalidCommand(f"element ({group:04X},{element:04X}) outside group 0000 in a command set")
        if length > end - offset:
            raise InvalidCommand(
                f"command element (0000,{element:04X}) of length {length} overruns the command"
            )
        raw = view[offset : offset + length]
        offset += length
        if element == 0:
            continue  # group length: recomputed on encoding, not needed to parse
        known = _BY_TAG.get(element)
        if known is None:
            extra.append((element, bytes(raw)))
        else:
            values[known[0]] = _decode_value(known[1], raw, element)
    if "command_field" not in values:
        raise InvalidCommand("command set without a Command Field (0000,0100)")
    return Command(extra=tuple(extra), **values)  # type: ignore[arg-type]
