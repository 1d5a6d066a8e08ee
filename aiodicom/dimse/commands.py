"""DIMSE command sets (PS3.7 9.3 and Annex E): group 0000, implicit VR little endian, group length first.

Hand-written with ``struct``: a command is encoded and decoded once per message, on the hot path of every
C-STORE, so it does not go through pydicom's general data set codec.
"""

from __future__ import annotations

import struct
from dataclasses import MISSING, dataclass, fields
from enum import IntEnum
from operator import attrgetter
from typing import Any

from aiodicom.errors import InvalidCommand as InvalidCommand  # also importable from here


class CommandField(IntEnum):
    """(0000,0100) Command Field values of the composite (C-) and normalized (N-) services (PS3.7 E.1)."""

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
    N_EVENT_REPORT_RQ = 0x0100
    N_EVENT_REPORT_RSP = 0x8100
    N_GET_RQ = 0x0110
    N_GET_RSP = 0x8110
    N_SET_RQ = 0x0120
    N_SET_RSP = 0x8120
    N_ACTION_RQ = 0x0130
    N_ACTION_RSP = 0x8130
    N_CREATE_RQ = 0x0140
    N_CREATE_RSP = 0x8140
    N_DELETE_RQ = 0x0150
    N_DELETE_RSP = 0x8150


#: The N-service requests (PS3.7 10.3).
N_REQUESTS = frozenset(
    (
        CommandField.N_EVENT_REPORT_RQ,
        CommandField.N_GET_RQ,
        CommandField.N_SET_RQ,
        CommandField.N_ACTION_RQ,
        CommandField.N_CREATE_RQ,
        CommandField.N_DELETE_RQ,
    )
)


class Priority(IntEnum):
    """(0000,0700) Priority."""

    MEDIUM = 0
    HIGH = 1
    LOW = 2


#: (0000,0800) Command Data Set Type: no data set follows. Any other value means one follows (PS3.7 E.1).
NO_DATASET = 0x0101
#: What we write when a data set follows: DCMTK (DIMSE_DATASET_PRESENT) and pynetdicom both send 0x0001.
DATASET_PRESENT = 0x0001

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"

#: Group 0000 element number -> (Command attribute, VR), in ascending tag order. (0000,0800) is the
#: ``has_dataset`` flag.
ELEMENTS: dict[int, tuple[str, str]] = {
    0x0002: ("affected_sop_class_uid", "UI"),
    0x0003: ("requested_sop_class_uid", "UI"),
    0x0100: ("command_field", "US"),
    0x0110: ("message_id", "US"),
    0x0120: ("message_id_being_responded_to", "US"),
    0x0600: ("move_destination", "AE"),
    0x0700: ("priority", "US"),
    0x0800: ("has_dataset", "US"),
    0x0900: ("status", "US"),
    0x0901: ("offending_elements", "AT"),
    0x0902: ("error_comment", "LO"),
    0x0903: ("error_id", "US"),
    0x1000: ("affected_sop_instance_uid", "UI"),
    0x1001: ("requested_sop_instance_uid", "UI"),
    0x1002: ("event_type_id", "US"),
    0x1005: ("attribute_identifier_list", "AT"),
    0x1008: ("action_type_id", "US"),
    0x1020: ("remaining", "US"),
    0x1021: ("completed", "US"),
    0x1022: ("failed", "US"),
    0x1023: ("warning", "US"),
    0x1030: ("move_originator_ae_title", "AE"),
    0x1031: ("move_originator_message_id", "US"),
}

_ELEMENT_HEADER = struct.Struct("<HHI")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_GROUP_LENGTH_HEADER = _ELEMENT_HEADER.pack(0, 0, 4)
_DATA_SET_TYPE = {
    True: _ELEMENT_HEADER.pack(0, 0x0800, 2) + _U16.pack(DATASET_PRESENT),
    False: _ELEMENT_HEADER.pack(0, 0x0800, 2) + _U16.pack(NO_DATASET),
}
# Kinds, compared as ints on the hot path rather than VR strings
_K_US, _K_DS, _K_UI, _K_AE, _K_LO, _K_AT = range(6)  # US-valued kinds first: ``kind <= _K_DS``
_KIND = {"US": _K_US, "UI": _K_UI, "AE": _K_AE, "LO": _K_LO, "AT": _K_AT}
# (element, kind, header of a 2-byte value) per ELEMENTS entry, for the encoder
_LAYOUT = tuple(
    (element, _K_DS if name == "has_dataset" else _KIND[vr], _ELEMENT_HEADER.pack(0, element, 2))
    for element, (name, vr) in ELEMENTS.items()
)
_VALUES = attrgetter(*(name for name, _ in ELEMENTS.values()))
# The same without the N-service elements: a C-STORE's encoding skips them after one check of all five
_N_ONLY = (0x0003, 0x1001, 0x1002, 0x1005, 0x1008)
_C_LAYOUT = tuple(item for item in _LAYOUT if item[0] not in _N_ONLY)
_C_VALUES = attrgetter(*(name for element, (name, _) in ELEMENTS.items() if element not in _N_ONLY))
_N_VALUES = attrgetter(*(ELEMENTS[element][0] for element in _N_ONLY))
_NO_N_VALUES = (None,) * len(_N_ONLY)

_SERVICES = {
    0x0001: "C-STORE",
    0x0010: "C-GET",
    0x0020: "C-FIND",
    0x0021: "C-MOVE",
    0x0030: "C-ECHO",
    0x0100: "N-EVENT-REPORT",
    0x0110: "N-GET",
    0x0120: "N-SET",
    0x0130: "N-ACTION",
    0x0140: "N-CREATE",
    0x0150: "N-DELETE",
}


@dataclass(frozen=True, slots=True)
class Command:
    """One DIMSE command set. Fields that are None are absent from the encoding.

    ``has_dataset`` is (0000,0800), always encoded: 0x0101 when False, 0x0001 when True; any value but
    0x0101 decodes as True. ``extra`` keeps any other group-0000 element as ``(element, raw value)``, sorted
    by element, so that decoding then encoding gives back the same bytes; the group length (0000,0000) is
    always recomputed.

    The N-services (PS3.7 10.3) add the Requested SOP Class and Instance UIDs (0000,0003) and (0000,1001)
    of N-GET, N-SET, N-ACTION and N-DELETE requests, Event Type ID (0000,1002), Action Type ID (0000,1008)
    and the Attribute Identifier List (0000,1005) of N-GET (a tuple of tags; empty: every attribute).
    """

    command_field: int
    message_id: int | None = None
    message_id_being_responded_to: int | None = None
    affected_sop_class_uid: str | None = None
    affected_sop_instance_uid: str | None = None
    priority: int | None = None
    has_dataset: bool = False
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
    requested_sop_class_uid: str | None = None
    requested_sop_instance_uid: str | None = None
    event_type_id: int | None = None
    action_type_id: int | None = None
    attribute_identifier_list: tuple[int, ...] | None = None
    extra: tuple[tuple[int, bytes], ...] = ()  # always the last field (the decoder relies on it)

    @property
    def is_request(self) -> bool:
        return not self.command_field & 0x8000

    @property
    def is_response(self) -> bool:
        return bool(self.command_field & 0x8000)

    @property
    def name(self) -> str:
        """E.g. ``C-STORE-RQ``; usable as the ``service`` of :func:`~aiodicom.dimse.status.status_name`."""
        if self.command_field == CommandField.C_CANCEL_RQ:
            return "C-CANCEL-RQ"
        service = _SERVICES.get(self.command_field & 0x7FFF)
        if service is None:
            return f"unknown command 0x{self.command_field:04X}"
        return f"{service}-{'RSP' if self.command_field & 0x8000 else 'RQ'}"

    @property
    def sop_class_uid(self) -> str | None:
        """The SOP class the message is about: the affected one, else the requested one (N-services)."""
        uid = self.affected_sop_class_uid
        return uid if uid is not None else self.requested_sop_class_uid

    @property
    def sop_instance_uid(self) -> str | None:
        """The SOP instance the message is about: the affected one, else the requested one (N-services)."""
        uid = self.affected_sop_instance_uid
        return uid if uid is not None else self.requested_sop_instance_uid

    # ---------------------------------------------------------------------------- constructors

    @classmethod
    def c_echo_rq(cls, message_id: int) -> Command:
        return cls(CommandField.C_ECHO_RQ, message_id, affected_sop_class_uid=VERIFICATION_SOP_CLASS)

    @classmethod
    def c_echo_rsp(cls, message_id_being_responded_to: int, status: int = 0) -> Command:
        return cls(
            CommandField.C_ECHO_RSP,
            message_id_being_responded_to=message_id_being_responded_to,
            affected_sop_class_uid=VERIFICATION_SOP_CLASS,
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
            has_dataset=True,
            move_originator_ae_title=move_originator_ae_title,
            move_originator_message_id=move_originator_message_id,
        )

    @classmethod
    def c_store_rsp(cls, rq: Command, status: int, error_comment: str | None = None) -> Command:
        """The response to a C-STORE-RQ: echoes its SOP class and instance (PS3.7 Table 9.3-2)."""
        return cls(
            CommandField.C_STORE_RSP,
            message_id_being_responded_to=rq.message_id,
            affected_sop_class_uid=echoable_uid(rq.affected_sop_class_uid),
            affected_sop_instance_uid=echoable_uid(rq.affected_sop_instance_uid),
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
            has_dataset=True,
        )

    @classmethod
    def c_find_rsp(cls, rq: Command, status: int, has_dataset: bool = False) -> Command:
        """A C-FIND-RSP; a pending one carries an identifier (``has_dataset``)."""
        return cls(
            CommandField.C_FIND_RSP,
            message_id_being_responded_to=rq.message_id,
            affected_sop_class_uid=rq.affected_sop_class_uid,
            status=status,
            has_dataset=has_dataset,
        )

    @classmethod
    def c_get_rq(cls, message_id: int, sop_class_uid: str, priority: int = Priority.MEDIUM) -> Command:
        return cls(
            CommandField.C_GET_RQ,
            message_id,
            affected_sop_class_uid=sop_class_uid,
            priority=priority,
            has_dataset=True,
        )

    @classmethod
    def c_get_rsp(
        cls,
        rq: Command,
        status: int,
        remaining: int | None = None,
        completed: int | None = None,
        failed: int | None = None,
        warning: int | None = None,
        has_dataset: bool = False,
    ) -> Command:
        """A C-GET-RSP with the sub-operation counts; a failed one may carry a data set (PS3.4 C.4.3.1.3)."""
        return cls._retrieve_rsp(
            CommandField.C_GET_RSP, rq, status, remaining, completed, failed, warning, has_dataset
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
            has_dataset=True,
            move_destination=move_destination,
        )

    @classmethod
    def c_move_rsp(
        cls,
        rq: Command,
        status: int,
        remaining: int | None = None,
        completed: int | None = None,
        failed: int | None = None,
        warning: int | None = None,
        has_dataset: bool = False,
    ) -> Command:
        """A C-MOVE-RSP with the sub-operation counts; a failed one may carry a data set (PS3.4 C.4.2.1.3)."""
        return cls._retrieve_rsp(
            CommandField.C_MOVE_RSP, rq, status, remaining, completed, failed, warning, has_dataset
        )

    @classmethod
    def _retrieve_rsp(
        cls,
        command_field: int,
        rq: Command,
        status: int,
        remaining: int | None,
        completed: int | None,
        failed: int | None,
        warning: int | None,
        has_dataset: bool,
    ) -> Command:
        return cls(
            command_field,
            message_id_being_responded_to=rq.message_id,
            affected_sop_class_uid=rq.affected_sop_class_uid,
            status=status,
            remaining=remaining,
            completed=completed,
            failed=failed,
            warning=warning,
            has_dataset=has_dataset,
        )

    @classmethod
    def c_cancel_rq(cls, message_id_being_responded_to: int) -> Command:
        return cls(CommandField.C_CANCEL_RQ, message_id_being_responded_to=message_id_being_responded_to)

    # N-services (PS3.7 10.3): requests on an instance the SCP holds name it as *requested*; those that
    # create or report name it as *affected*; every response names it as affected.

    @classmethod
    def n_event_report_rq(
        cls,
        message_id: int,
        sop_class_uid: str,
        sop_instance_uid: str,
        event_type_id: int,
        has_dataset: bool = True,
    ) -> Command:
        """An N-EVENT-REPORT-RQ (PS3.7 Table 10.3-1); the Event Information follows as its data set."""
        return cls(
            CommandField.N_EVENT_REPORT_RQ,
            message_id,
            affected_sop_class_uid=sop_class_uid,
            affected_sop_instance_uid=sop_instance_uid,
            event_type_id=event_type_id,
            has_dataset=has_dataset,
        )

    @classmethod
    def n_get_rq(
        cls,
        message_id: int,
        sop_class_uid: str,
        sop_instance_uid: str,
        attribute_identifier_list: tuple[int, ...] | None = None,
    ) -> Command:
        """An N-GET-RQ (PS3.7 Table 10.3-3): the attributes asked for (None or empty: all of them)."""
        return cls(
            CommandField.N_GET_RQ,
            message_id,
            requested_sop_class_uid=sop_class_uid,
            requested_sop_instance_uid=sop_instance_uid,
            attribute_identifier_list=attribute_identifier_list,
        )

    @classmethod
    def n_set_rq(cls, message_id: int, sop_class_uid: str, sop_instance_uid: str) -> Command:
        """An N-SET-RQ (PS3.7 Table 10.3-5); the Modification List follows as its data set."""
        return cls(
            CommandField.N_SET_RQ,
            message_id,
            requested_sop_class_uid=sop_class_uid,
            requested_sop_instance_uid=sop_instance_uid,
            has_dataset=True,
        )

    @classmethod
    def n_action_rq(
        cls,
        message_id: int,
        sop_class_uid: str,
        sop_instance_uid: str,
        action_type_id: int,
        has_dataset: bool = True,
    ) -> Command:
        """An N-ACTION-RQ (PS3.7 Table 10.3-7); the Action Information follows as its data set."""
        return cls(
            CommandField.N_ACTION_RQ,
            message_id,
            requested_sop_class_uid=sop_class_uid,
            requested_sop_instance_uid=sop_instance_uid,
            action_type_id=action_type_id,
            has_dataset=has_dataset,
        )

    @classmethod
    def n_create_rq(
        cls,
        message_id: int,
        sop_class_uid: str,
        sop_instance_uid: str | None = None,
        has_dataset: bool = True,
    ) -> Command:
        """An N-CREATE-RQ (PS3.7 Table 10.3-9): without ``sop_instance_uid`` the SCP assigns one."""
        return cls(
            CommandField.N_CREATE_RQ,
            message_id,
            affected_sop_class_uid=sop_class_uid,
            affected_sop_instance_uid=sop_instance_uid,
            has_dataset=has_dataset,
        )

    @classmethod
    def n_delete_rq(cls, message_id: int, sop_class_uid: str, sop_instance_uid: str) -> Command:
        """An N-DELETE-RQ (PS3.7 Table 10.3-11)."""
        return cls(
            CommandField.N_DELETE_RQ,
            message_id,
            requested_sop_class_uid=sop_class_uid,
            requested_sop_instance_uid=sop_instance_uid,
        )

    @classmethod
    def n_rsp(
        cls,
        rq: Command,
        status: int,
        *,
        has_dataset: bool = False,
        affected_sop_instance_uid: str | None = None,
        error_comment: str | None = None,
        error_id: int | None = None,
        offending_elements: tuple[int, ...] | None = None,
        attribute_identifier_list: tuple[int, ...] | None = None,
    ) -> Command:
        """The response to any N-service request: its SOP class and instance as the affected ones
        (``affected_sop_instance_uid`` overrides: the instance an N-CREATE's SCP assigned), and its Event
        Type ID or Action Type ID echoed (PS3.7 Tables 10.3-2 to 10.3-12). ``attribute_identifier_list``
        is the Attribute Identifier List of an N-SET or N-CREATE response that names the attributes it
        could not set (with 0x0105, 0x0106 or 0x0107)."""
        instance = affected_sop_instance_uid or echoable_uid(rq.sop_instance_uid)
        return cls(
            rq.command_field | 0x8000,
            message_id_being_responded_to=rq.message_id,
            affected_sop_class_uid=echoable_uid(rq.sop_class_uid),
            affected_sop_instance_uid=instance,
            status=status,
            has_dataset=has_dataset,
            event_type_id=rq.event_type_id if rq.command_field == CommandField.N_EVENT_REPORT_RQ else None,
            action_type_id=rq.action_type_id if rq.command_field == CommandField.N_ACTION_RQ else None,
            error_comment=error_comment,
            error_id=error_id,
            offending_elements=offending_elements,
            attribute_identifier_list=attribute_identifier_list,
        )


def _install_fast_init(cls: type) -> None:
    """Replace a frozen slots dataclass's ``__init__`` with one that sets each slot through its descriptor.

    The generated one calls ``object.__setattr__`` per field (frozen): on CPython 3.11 that is about 2.5
    times slower, and a Command is made for every message sent and received. Same signature, defaults
    and semantics (the instance stays frozen: only ``__init__`` bypasses ``__setattr__``)."""
    params: list[str] = []
    body: list[str] = []
    scope: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is MISSING:
            params.append(f.name)
        else:
            scope[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        scope[f"_s_{f.name}"] = cls.__dict__[f.name].__set__
        body.append(f"    _s_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}) -> None:\n" + "\n".join(body)
    exec(source, scope)  # what dataclasses itself does, from our own field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__dict__["__init__"].__doc__
    setattr(cls, "__init__", init)  # noqa: B010 - mypy keeps the dataclass signature


_install_fast_init(Command)


def echoable_uid(uid: str | None) -> str | None:
    """A request's UID as its response may echo it: a UID that is not ASCII cannot be encoded (and is no
    UID), so the response leaves it out rather than fail."""
    return uid if uid is None or uid.isascii() else None


# ---------------------------------------------------------------------------------------------- encode


def _text(element: int, kind: int, value: str) -> bytes:
    # Error comments are free text (possibly an exception message): never fail a response over one
    raw = value.encode("ascii", "replace" if kind == _K_LO else "strict")
    if len(raw) & 1:
        raw += b"\x00" if kind == _K_UI else b" "  # UIDs pad with NUL, other strings with a space
    return _ELEMENT_HEADER.pack(0, element, len(raw)) + raw


def _tags(element: int, tags: tuple[int, ...]) -> bytes:
    halves = [half for tag in tags for half in (tag >> 16, tag & 0xFFFF)]
    return _ELEMENT_HEADER.pack(0, element, 2 * len(halves)) + struct.pack(f"<{len(halves)}H", *halves)


def encode_command(cmd: Command) -> bytes:
    """Encode a command set: (0000,0000) group length, then the present elements in ascending tag order.

    Values are written as given (no length checks). Raises ValueError for a value that does not fit its
    VR: an integer out of range for US, a non-ASCII UID or AE title, an ``extra`` element that is known.
    """
    parts: list[bytes] = []
    try:
        if _N_VALUES(cmd) == _NO_N_VALUES:
            layout, values = _C_LAYOUT, _C_VALUES(cmd)
        else:
            layout, values = _LAYOUT, _VALUES(cmd)
        for (element, kind, us_header), value in zip(layout, values, strict=True):
            if value is None:
                continue
            if kind == _K_US:
                parts.append(us_header + _U16.pack(value))
            elif kind == _K_DS:
                parts.append(_DATA_SET_TYPE[bool(value)])
            elif kind == _K_AT:
                parts.append(_tags(element, value))
            else:
                parts.append(_text(element, kind, value))
    except struct.error as exc:
        raise ValueError(f"{cmd.name}: value out of range ({exc})") from exc
    if cmd.extra:
        parts = _merge_extra(parts, cmd.extra)
    body = b"".join(parts)
    return _GROUP_LENGTH_HEADER + _U32.pack(len(body)) + body


def _merge_extra(parts: list[bytes], extra: tuple[tuple[int, bytes], ...]) -> list[bytes]:
    for element, _ in extra:
        if not 0 < element <= 0xFFFF or element in ELEMENTS:
            raise ValueError(f"extra element 0x{element:08X} is not an unknown group 0000 element")
    merged = [(_U16.unpack_from(part, 2)[0], part) for part in parts]
    merged += [(element, _ELEMENT_HEADER.pack(0, element, len(raw)) + raw) for element, raw in extra]
    merged.sort(key=lambda item: item[0])
    return [part for _, part in merged]


# ---------------------------------------------------------------------------------------------- decode

_FIELDS = [f.name for f in fields(Command)]
# element -> (index of the Command field, kind), and Command's defaults as positional arguments, for the
# decoder; command_field is first and required
_DECODE = {
    element: (_FIELDS.index(name), _K_DS if name == "has_dataset" else _KIND[vr])
    for element, (name, vr) in ELEMENTS.items()
}
_DEFAULTS: tuple[Any, ...] = tuple(None if f.default is MISSING else f.default for f in fields(Command))


def decode_command(data: bytes | bytearray | memoryview) -> Command:
    """Decode a command set. Raises :class:`InvalidCommand` for a malformed one.

    The group length is not required, and its value is not checked; unknown group-0000 elements go to
    ``extra``. Elements of other groups after the command group are ignored: Orthanc 1.10 appends the
    Failed SOP Instance UID List (0008,0058) to its pending C-GET responses there. A truncated element, a
    repeated element, a US value that is not 2 bytes long, or a missing Command Field (0000,0100) is an
    error.
    """
    buf = data if isinstance(data, bytes) else bytes(data)  # a command is small; bytes index fastest
    end = len(buf)
    offset = 0
    values: list[Any] = list(_DEFAULTS)  # positional arguments of Command, filled in by field index
    seen = 0  # a bit per field index, to catch repeated elements
    extra: list[tuple[int, bytes]] = []
    unpack = _ELEMENT_HEADER.unpack_from
    while offset < end:
        if end - offset < 8:
            raise InvalidCommand(f"command set truncated at byte {offset} (an element header needs 8)")
        group, element, length = unpack(buf, offset)
        start = offset + 8
        offset = start + length
        if group != 0:
            break  # not part of the command: see above
        if offset > end:
            raise InvalidCommand(
                f"command element (0000,{element:04X}) of length {length} overruns the command"
            )
        known = _DECODE.get(element)
        if known is None:
            if element:  # the group length is recomputed on encoding
                extra.append((element, buf[start:offset]))
            continue
        index, kind = known
        if seen >> index & 1:
            raise InvalidCommand(f"command element (0000,{element:04X}) appears twice")
        seen |= 1 << index
        if kind <= _K_DS:
            if length != 2:
                raise InvalidCommand(f"command element (0000,{element:04X}) is US but {length} bytes long")
            number = buf[start] | buf[start + 1] << 8
            values[index] = number if kind == _K_US else number != NO_DATASET
        elif kind == _K_AT:
            if length % 4:
                raise InvalidCommand(
                    f"command element (0000,{element:04X}) of {length} bytes is not a list of tags"
                )
            halves = struct.unpack_from(f"<{length // 2}H", buf, start)
            values[index] = tuple(halves[i] << 16 | halves[i + 1] for i in range(0, len(halves), 2))
        else:
            try:
                text = buf[start:offset].decode("ascii")
            except UnicodeDecodeError:
                # Some peers put non-ASCII text in error comments: keep it readable rather than abort
                text = buf[start:offset].decode("latin-1")
            # AE titles: leading spaces are not significant either (PS3.5 6.2)
            values[index] = text.strip("\x00 ") if kind == _K_AE else text.rstrip("\x00 ")
    if not seen & 1:
        raise InvalidCommand("command set without a Command Field (0000,0100)")
    if extra:
        values[-1] = tuple(extra)
    return Command(*values)
