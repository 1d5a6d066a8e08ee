"""Command set codec: a hand-built vector, pynetdicom's encoding as a reference peer, round trips, errors."""

from __future__ import annotations

import contextlib
import struct
from io import BytesIO

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiodicom.dimse import Command, CommandField, InvalidCommand, decode_command, encode_command
from aiodicom.errors import AbortReason


def element(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0, elem, len(value)) + value


# C-ECHO-RQ, message ID 7, from the layout of PS3.7 Table 9.3-12 (implicit VR little endian)
ECHO_RQ_BODY = (
    element(0x0002, b"1.2.840.10008.1.1\x00")
    + element(0x0100, struct.pack("<H", 0x0030))
    + element(0x0110, struct.pack("<H", 7))
    + element(0x0800, struct.pack("<H", 0x0101))
)
ECHO_RQ = element(0x0000, struct.pack("<I", len(ECHO_RQ_BODY))) + ECHO_RQ_BODY


def test_echo_rq_vector() -> None:
    assert decode_command(ECHO_RQ) == Command.c_echo_rq(7)
    assert encode_command(Command.c_echo_rq(7)) == ECHO_RQ
    assert not Command.c_echo_rq(7).has_dataset and Command.c_echo_rq(7).name == "C-ECHO-RQ"


def _pynetdicom_bytes(primitive: object, message_class: type) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    message = message_class()
    message.primitive_to_message(primitive)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, message.command_set)
    return bytes(fp.getvalue())


def test_store_rq_and_rsp_match_pynetdicom() -> None:
    from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP
    from pynetdicom.dimse_primitives import C_STORE

    rq = C_STORE()
    rq.MessageID, rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = (
        12,
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.3.4.5",
    )
    rq.Priority, rq.DataSet = 0, BytesIO(b"\x00")
    rq.MoveOriginatorApplicationEntityTitle, rq.MoveOriginatorMessageID = "MOVER", 3
    theirs = _pynetdicom_bytes(rq, C_STORE_RQ)
    ours = Command.c_store_rq(12, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", 0, "MOVER", 3)
    decoded = decode_command(theirs)
    assert (decoded.message_id, decoded.affected_sop_instance_uid, decoded.move_originator_ae_title) == (
        12,
        "1.2.3.4.5",
        "MOVER",
    )
    assert decoded.has_dataset and decoded.command_field == CommandField.C_STORE_RQ
    assert decoded.move_originator_message_id == 3
    assert decode_command(encode_command(ours)) == ours
    assert encode_command(decoded) == theirs  # canonical bytes round-trip

    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo, rsp.Status = 12, 0xB000
    rsp.AffectedSOPClassUID, rsp.AffectedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5"
    theirs = _pynetdicom_bytes(rsp, C_STORE_RSP)
    decoded = decode_command(theirs)
    assert decoded == Command.c_store_rsp(ours, 0xB000)
    assert encode_command(decoded) == theirs


def test_find_and_move_requests_match_pynetdicom() -> None:
    from pynetdicom.dimse_messages import C_FIND_RQ, C_MOVE_RQ
    from pynetdicom.dimse_primitives import C_FIND, C_MOVE

    find = C_FIND()
    find.MessageID, find.AffectedSOPClassUID, find.Priority = 3, "1.2.840.10008.5.1.4.1.2.2.1", 2
    find.Identifier = BytesIO(b"\x00")  # a data set follows
    theirs = decode_command(_pynetdicom_bytes(find, C_FIND_RQ))
    assert theirs.command_field == CommandField.C_FIND_RQ and theirs.priority == 2 and theirs.has_dataset

    move = C_MOVE()
    move.MessageID, move.AffectedSOPClassUID, move.Priority = 4, "1.2.840.10008.5.1.4.1.2.2.2", 0
    move.MoveDestination, move.Identifier = "DEST", BytesIO(b"\x00")
    wire = _pynetdicom_bytes(move, C_MOVE_RQ)
    assert decode_command(wire) == Command.c_move_rq(4, "1.2.840.10008.5.1.4.1.2.2.2", "DEST")
    assert encode_command(decode_command(wire)) == wire


def test_unknown_elements_round_trip_and_counts() -> None:
    rsp = Command.retrieve_rsp(
        Command.c_get_rq(9, "1.2.3"), 0xFF00, remaining=5, completed=1, failed=0, warning=2
    )
    wire = encode_command(rsp)
    wire_with_extra = wire[:8] + struct.pack("<I", len(wire) - 12 + 10) + wire[12:] + element(0x5555, b"ab")
    decoded = decode_command(wire_with_extra)
    assert decoded.extra == ((0x5555, b"ab"),) and decoded.remaining == 5 and decoded.warning == 2
    assert encode_command(decoded) == wire_with_extra


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("truncated header", ECHO_RQ[:-5]),
        ("element overruns", ECHO_RQ[:-2] + b"\xff\xff"[:0] + struct.pack("<HHI", 0, 0x900, 40)),
        ("outside group 0000", ECHO_RQ + struct.pack("<HHI", 8, 0x10, 0)),
        ("no command field", element(0x0110, struct.pack("<H", 7))),
        ("US of the wrong length", element(0x0100, b"\x30\x00\x00")),
    ],
)
def test_malformed_commands(name: str, data: bytes) -> None:
    with pytest.raises(InvalidCommand) as info:
        decode_command(data)
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


uids = st.lists(st.integers(0, 9999).map(str), min_size=2, max_size=6).map(".".join)
aes = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\\"), min_size=1, max_size=16
)
u16 = st.integers(0, 0xFFFF)
commands = st.builds(
    Command,
    command_field=st.sampled_from(list(CommandField)).map(int),
    message_id=st.none() | u16,
    message_id_being_responded_to=st.none() | u16,
    affected_sop_class_uid=st.none() | uids,
    affected_sop_instance_uid=st.none() | uids,
    priority=st.none() | st.integers(0, 2),
    data_set_type=st.sampled_from([0x0101, 0x0001, 0x0000, 0x0102]),
    status=st.none() | u16,
    move_destination=st.none() | aes,
    move_originator_ae_title=st.none() | aes,
    remaining=st.none() | u16,
    completed=st.none() | u16,
    error_comment=st.none()
    | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64),
    offending_elements=st.none() | st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=3).map(tuple),
)


@given(commands)
def test_any_command_round_trips(command: Command) -> None:
    assert decode_command(encode_command(command)) == command


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_invalid_command(data: bytes) -> None:
    with contextlib.suppress(InvalidCommand):
        decode_command(data)
