"""Command set codec: hand-built vectors, pynetdicom's encoding as a reference peer, round trips, errors."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from hypothesis import given, strategies as st

from aiodicom.dimse import NO_DATASET, Command, CommandField, InvalidCommand, decode_command, encode_command
from aiodicom.dimse.commands import ELEMENTS
from aiodicom.errors import AbortReason, ProtocolError

CT = "1.2.840.10008.5.1.4.1.1.2"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def element(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0, elem, len(value)) + value


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def with_group_length(body: bytes) -> bytes:
    return element(0x0000, struct.pack("<I", len(body))) + body


# C-ECHO-RQ, message ID 7, laid out from PS3.7 Table 9.3-12 (implicit VR little endian, group length first)
ECHO_RQ = with_group_length(
    element(0x0002, b"1.2.840.10008.1.1\x00")
    + element(0x0100, us(0x0030))
    + element(0x0110, us(7))
    + element(0x0800, us(0x0101))
)
# C-ECHO-RSP to it, success, from PS3.7 Table 9.3-13
ECHO_RSP = with_group_length(
    element(0x0002, b"1.2.840.10008.1.1\x00")
    + element(0x0100, us(0x8030))
    + element(0x0120, us(7))
    + element(0x0800, us(0x0101))
    + element(0x0900, us(0x0000))
)


def test_echo_vectors() -> None:
    assert ECHO_RQ[:12] == bytes.fromhex("00000000 04000000 38000000")
    assert decode_command(ECHO_RQ) == Command.c_echo_rq(7)
    assert encode_command(Command.c_echo_rq(7)) == ECHO_RQ
    assert decode_command(ECHO_RSP) == Command.c_echo_rsp(7)
    assert encode_command(Command.c_echo_rsp(7)) == ECHO_RSP
    for data in (bytearray(ECHO_RQ), memoryview(ECHO_RQ), memoryview(b"xx" + ECHO_RQ)[2:]):
        assert decode_command(data) == Command.c_echo_rq(7)


def test_names_and_direction() -> None:
    rq = Command.c_echo_rq(7)
    assert (rq.name, rq.is_request, rq.is_response, rq.has_dataset) == ("C-ECHO-RQ", True, False, False)
    assert Command.c_echo_rsp(7).name == "C-ECHO-RSP" and Command.c_echo_rsp(7).is_response
    assert Command.c_cancel_rq(3).name == "C-CANCEL-RQ" and Command.c_cancel_rq(3).is_request
    assert Command(CommandField.C_MOVE_RSP).name == "C-MOVE-RSP"
    assert Command(0x8120).name == "N-SET-RSP"
    assert Command(0x4242).name == "unknown command 0x4242"


def test_constructors() -> None:
    store = Command.c_store_rq(12, CT, "1.2.3", 1, "MOVER", 3)
    assert store.has_dataset and store.priority == 1 and store.move_originator_message_id == 3
    rsp = Command.c_store_rsp(store, 0xA700, "disk full")
    assert rsp == Command(
        CommandField.C_STORE_RSP,
        message_id_being_responded_to=12,
        affected_sop_class_uid=CT,
        affected_sop_instance_uid="1.2.3",
        status=0xA700,
        error_comment="disk full",
    )
    find = Command.c_find_rq(4, STUDY_FIND, 2)
    assert find.has_dataset and Command.c_find_rsp(find, 0xFF00, True).has_dataset
    assert not Command.c_find_rsp(find, 0).has_dataset
    get = Command.c_get_rq(5, STUDY_GET)
    get_rsp = Command.c_get_rsp(get, 0xFF00, remaining=3, completed=1, failed=0, warning=0)
    assert (get_rsp.command_field, get_rsp.message_id_being_responded_to, get_rsp.remaining) == (0x8010, 5, 3)
    move = Command.c_move_rq(6, STUDY_MOVE, "DEST")
    move_rsp = Command.c_move_rsp(move, 0xB000, 0, 2, 1, 0, has_dataset=True)
    assert move_rsp.command_field == 0x8021 and move_rsp.failed == 1 and move_rsp.has_dataset
    assert Command.c_cancel_rq(6) == Command(0x0FFF, message_id_being_responded_to=6)


# ------------------------------------------------------------------------------- pynetdicom as reference


def pynetdicom_command(primitive: Any, message_class: type) -> bytes:
    """The command set bytes pynetdicom sends for ``primitive`` (its own P-DATA fragmentation, joined)."""
    message = message_class()
    message.primitive_to_message(primitive)
    values = [value for pdata in message.encode_msg(1, 0) for _, value in pdata.presentation_data_value_list]
    return b"".join(value[1:] for value in values if value[0] & 1)


def _primitive(name: str, **attributes: Any) -> Any:
    primitives = pytest.importorskip("pynetdicom.dimse_primitives")
    primitive = getattr(primitives, name)()
    for key, value in attributes.items():
        setattr(primitive, key, value)
    return primitive


def _store_rq() -> Any:
    return _primitive(
        "C_STORE",
        MessageID=12,
        AffectedSOPClassUID=CT,
        AffectedSOPInstanceUID="1.2.826.0.1.3680043.8.498.1",
        Priority=0,
        MoveOriginatorApplicationEntityTitle="MOVER",
        MoveOriginatorMessageID=3,
        DataSet=BytesIO(b"\x00"),
    )


STORE_RQ = Command.c_store_rq(12, CT, "1.2.826.0.1.3680043.8.498.1", 0, "MOVER", 3)
FIND_RQ = Command.c_find_rq(3, STUDY_FIND, 2)
GET_RQ = Command.c_get_rq(5, STUDY_GET, 1)
MOVE_RQ = Command.c_move_rq(4, STUDY_MOVE, "DEST")
COUNTS = {
    "NumberOfRemainingSuboperations": 5,
    "NumberOfCompletedSuboperations": 1,
    "NumberOfFailedSuboperations": 0,
    "NumberOfWarningSuboperations": 2,
}

REFERENCE: list[tuple[str, Command, Callable[[], Any]]] = [
    (
        "C_ECHO_RQ",
        Command.c_echo_rq(9),
        lambda: _primitive("C_ECHO", MessageID=9, AffectedSOPClassUID="1.2.840.10008.1.1"),
    ),
    (
        "C_ECHO_RSP",
        Command.c_echo_rsp(9),
        lambda: _primitive(
            "C_ECHO", MessageIDBeingRespondedTo=9, AffectedSOPClassUID="1.2.840.10008.1.1", Status=0
        ),
    ),
    ("C_STORE_RQ", STORE_RQ, _store_rq),
    (
        "C_STORE_RSP",
        Command.c_store_rsp(STORE_RQ, 0xB000, "coerced"),
        lambda: _primitive(
            "C_STORE",
            MessageIDBeingRespondedTo=12,
            AffectedSOPClassUID=CT,
            AffectedSOPInstanceUID="1.2.826.0.1.3680043.8.498.1",
            Status=0xB000,
            ErrorComment="coerced",
        ),
    ),
    (
        "C_FIND_RQ",
        FIND_RQ,
        lambda: _primitive(
            "C_FIND", MessageID=3, AffectedSOPClassUID=STUDY_FIND, Priority=2, Identifier=BytesIO(b"\x00")
        ),
    ),
    (
        "C_FIND_RSP",
        Command.c_find_rsp(FIND_RQ, 0xFF00, has_dataset=True),
        lambda: _primitive(
            "C_FIND",
            MessageIDBeingRespondedTo=3,
            AffectedSOPClassUID=STUDY_FIND,
            Status=0xFF00,
            Identifier=BytesIO(b"\x00"),
        ),
    ),
    (
        "C_GET_RQ",
        GET_RQ,
        lambda: _primitive(
            "C_GET", MessageID=5, AffectedSOPClassUID=STUDY_GET, Priority=1, Identifier=BytesIO(b"\x00")
        ),
    ),
    (
        "C_GET_RSP",
        Command.c_get_rsp(GET_RQ, 0xFF00, remaining=5, completed=1, failed=0, warning=2),
        lambda: _primitive(
            "C_GET", MessageIDBeingRespondedTo=5, AffectedSOPClassUID=STUDY_GET, Status=0xFF00, **COUNTS
        ),
    ),
    (
        "C_MOVE_RQ",
        MOVE_RQ,
        lambda: _primitive(
            "C_MOVE",
            MessageID=4,
            AffectedSOPClassUID=STUDY_MOVE,
            Priority=0,
            MoveDestination="DEST",
            Identifier=BytesIO(b"\x00"),
        ),
    ),
    (
        "C_MOVE_RSP",
        Command.c_move_rsp(MOVE_RQ, 0xFF00, remaining=5, completed=1, failed=0, warning=2),
        lambda: _primitive(
            "C_MOVE", MessageIDBeingRespondedTo=4, AffectedSOPClassUID=STUDY_MOVE, Status=0xFF00, **COUNTS
        ),
    ),
    ("C_CANCEL_RQ", Command.c_cancel_rq(4), lambda: _primitive("C_CANCEL", MessageIDBeingRespondedTo=4)),
]


@pytest.mark.parametrize(("message", "ours", "primitive"), REFERENCE, ids=[r[0] for r in REFERENCE])
def test_same_bytes_as_pynetdicom(message: str, ours: Command, primitive: Callable[[], Any]) -> None:
    messages = pytest.importorskip("pynetdicom.dimse_messages")
    theirs = pynetdicom_command(primitive(), getattr(messages, message))
    assert encode_command(ours) == theirs
    assert decode_command(theirs) == ours
    assert encode_command(decode_command(theirs)) == theirs


def test_offending_elements_match_pynetdicom() -> None:
    messages = pytest.importorskip("pynetdicom.dimse_messages")
    primitive = _primitive(
        "C_STORE",
        MessageIDBeingRespondedTo=12,
        AffectedSOPClassUID=CT,
        AffectedSOPInstanceUID="1.2.3",
        Status=0xA900,
        OffendingElement=[0x00100010, 0x7FE00010],
    )
    theirs = pynetdicom_command(primitive, messages.C_STORE_RSP)
    decoded = decode_command(theirs)
    assert decoded.offending_elements == (0x00100010, 0x7FE00010)
    assert encode_command(decoded) == theirs


# ------------------------------------------------------------------------------- decoding details


def test_data_set_type_any_value_but_0101_means_present() -> None:
    for value, present in ((0x0101, False), (0x0001, True), (0x0000, True), (0x0102, True), (0xFEFE, True)):
        wire = with_group_length(element(0x0100, us(0x0001)) + element(0x0800, us(value)))
        assert decode_command(wire).has_dataset is present
    assert NO_DATASET == 0x0101
    assert encode_command(Command(1, has_dataset=True)).endswith(element(0x0800, us(0x0001)))


def test_padding_is_stripped() -> None:
    wire = (
        element(0x0002, b"1.2.3\x00")
        + element(0x0100, us(0x0021))
        + element(0x0600, b" DEST   ")
        + element(0x0902, b"bad \xe9t\xe9  ")  # latin-1 from a careless peer
        + element(0x1000, b"1.2.34 ")  # a UID padded with a space, not the standard NUL
    )
    command = decode_command(wire)  # no group length: not required
    assert command.affected_sop_class_uid == "1.2.3" and command.affected_sop_instance_uid == "1.2.34"
    assert command.move_destination == "DEST" and command.error_comment == "bad \xe9t\xe9"


def test_strings_are_padded_to_even_length() -> None:
    wire = encode_command(
        Command(0x8021, affected_sop_class_uid="1.2.3", move_destination="ABC", error_comment="x")
    )
    assert element(0x0002, b"1.2.3\x00") in wire
    assert element(0x0600, b"ABC ") in wire and element(0x0902, b"x ") in wire


def test_unknown_elements_round_trip() -> None:
    wire = encode_command(Command.c_get_rsp(GET_RQ, 0xFF00, remaining=5, completed=1, failed=0, warning=2))
    body = wire[12:] + element(0x5555, b"ab") + element(0x7000, b"xyz")
    decoded = decode_command(with_group_length(body))
    assert decoded.extra == ((0x5555, b"ab"), (0x7000, b"xyz")) and decoded.warning == 2
    assert encode_command(decoded) == with_group_length(body)
    # extra elements are merged in tag order
    early = Command(0x8001, status=0, extra=((0x0001, b"zz"),))
    assert encode_command(early)[12:20] == struct.pack("<HHI", 0, 0x0001, 2)


def test_encoding_errors() -> None:
    with pytest.raises(ValueError):
        encode_command(Command(0x10000))
    with pytest.raises(ValueError):
        encode_command(Command(1, affected_sop_class_uid="1.2.\u00e9"))
    with pytest.raises(ValueError):
        encode_command(Command(1, extra=((0x0900, b"\x00\x00"),)))  # a known element in extra
    # free text never fails a response
    assert (
        decode_command(encode_command(Command(0x8001, error_comment="d\u00e9j\u00e0"))).error_comment
        == "d?j?"
    )


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (ECHO_RQ[:-5], "truncated value"),
        (ECHO_RQ + b"\x00\x00\x00", "truncated header"),
        (ECHO_RQ + struct.pack("<HHI", 0, 0x0900, 40), "element overruns"),
        (ECHO_RQ + struct.pack("<HHI", 0, 0x0900, 0xFFFFFFFF), "undefined length"),
        (struct.pack("<HHI", 8, 0x10, 0) + ECHO_RQ, "outside group first"),
        (element(0x0110, us(7)), "no command field"),
        (b"", "empty"),
        (element(0x0100, b"\x30\x00\x00\x00"), "US of 4 bytes"),
        (element(0x0100, us(0x30)) + element(0x0800, b"\x01"), "data set type of 1 byte"),
        (ECHO_RQ + element(0x0110, us(8)), "repeated element"),
        (element(0x0100, us(0x8001)) + element(0x0901, b"\x10\x00"), "AT not a tag list"),
    ],
)
def test_malformed_commands(data: bytes, what: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        decode_command(data)
    assert isinstance(info.value, ProtocolError)
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


# ------------------------------------------------------------------------------- properties

u16 = st.integers(0, 0xFFFF)
uids = st.lists(st.integers(0, 99999).map(str), min_size=1, max_size=8).map(".".join)
aes = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\\"), min_size=1, max_size=16
).filter(lambda s: s == s.strip())
texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=64).map(str.rstrip)
extras = st.dictionaries(
    st.integers(1, 0xFFFF).filter(lambda e: e not in ELEMENTS), st.binary(max_size=12), max_size=3
).map(lambda d: tuple(sorted(d.items())))
commands = st.builds(
    Command,
    command_field=st.sampled_from(list(CommandField)).map(int) | u16,
    message_id=st.none() | u16,
    message_id_being_responded_to=st.none() | u16,
    affected_sop_class_uid=st.none() | uids,
    affected_sop_instance_uid=st.none() | uids,
    priority=st.none() | st.sampled_from([0, 1, 2]),
    has_dataset=st.booleans(),
    status=st.none() | u16,
    move_destination=st.none() | aes,
    move_originator_ae_title=st.none() | aes,
    move_originator_message_id=st.none() | u16,
    remaining=st.none() | u16,
    completed=st.none() | u16,
    failed=st.none() | u16,
    warning=st.none() | u16,
    error_comment=st.none() | texts,
    error_id=st.none() | u16,
    offending_elements=st.none() | st.lists(st.integers(0, 0xFFFFFFFF), max_size=4).map(tuple),
    requested_sop_class_uid=st.none() | uids,
    requested_sop_instance_uid=st.none() | uids,
    event_type_id=st.none() | u16,
    action_type_id=st.none() | u16,
    attribute_identifier_list=st.none() | st.lists(st.integers(0, 0xFFFFFFFF), max_size=4).map(tuple),
    extra=extras,
)


@given(commands)
def test_any_command_round_trips(command: Command) -> None:
    wire = encode_command(command)
    assert decode_command(wire) == command
    assert encode_command(decode_command(wire)) == wire
    # canonical layout: group length first and exact, then ascending tags, all in group 0000
    group, elem, length = struct.unpack_from("<HHI", wire)
    assert (group, elem, length) == (0, 0, 4) and struct.unpack_from("<I", wire, 8)[0] == len(wire) - 12
    offset, tags = 12, []
    while offset < len(wire):
        group, elem, length = struct.unpack_from("<HHI", wire, offset)
        assert group == 0
        tags.append(elem)
        offset += 8 + length
    assert tags == sorted(set(tags)) and 0x0100 in tags and 0x0800 in tags


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_invalid_command(data: bytes) -> None:
    with contextlib.suppress(InvalidCommand):
        decode_command(data)


@given(commands, st.data())
def test_a_cut_inside_an_element_raises(command: Command, data: st.DataObject) -> None:
    wire = encode_command(command)
    boundaries, offset = {0}, 0
    while offset < len(wire):
        offset += 8 + struct.unpack_from("<I", wire, offset + 4)[0]
        boundaries.add(offset)
    cut = data.draw(st.integers(1, len(wire) - 1).filter(lambda n: n not in boundaries))
    with pytest.raises(InvalidCommand):
        decode_command(wire[:cut])


def test_elements_after_the_command_group_are_ignored() -> None:
    """Orthanc 1.10 appends (0008,0058) to pending C-GET responses, inside the command PDV."""
    failed_list = (
        struct.pack("<HHI", 8, 0, 4) + b"\x0c\x00\x00\x00" + struct.pack("<HHI", 8, 0x58, 4) + b"1.2\x00"
    )
    assert decode_command(ECHO_RQ + failed_list) == decode_command(ECHO_RQ)
