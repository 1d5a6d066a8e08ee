"""N-service command sets (PS3.7 10.3): a hand-built vector, pynetdicom's encoding of all twelve messages as
a reference peer (byte for byte, both ways), the response constructor, context refusal, statuses."""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

import pytest

from aiodicom.dimse import (
    N_REQUESTS,
    N_SERVICE_STATUSES,
    Command,
    CommandField,
    InvalidCommand,
    Status,
    category,
    decode_command,
    encode_command,
    status_name,
)
from aiodicom.dimse.refusal import wrong_context

MPPS = "1.2.840.10008.3.1.2.3.3"
COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"
UID = "1.2.826.0.1.3680043.8.498.77"


def element(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0, elem, len(value)) + value


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def ui(uid: str) -> bytes:
    return uid.encode() + b"\x00" * (len(uid) & 1)  # UIDs pad to even length with NUL


def with_group_length(body: bytes) -> bytes:
    return element(0x0000, struct.pack("<I", len(body))) + body


# N-GET-RQ laid out from PS3.7 Table 10.3-3: requested SOP class (0000,0003) before the command field,
# requested instance (0000,1001) after the data set type, then the attribute list (0000,1005) as AT pairs
N_GET_RQ = with_group_length(
    element(0x0003, ui(PRINTER))
    + element(0x0100, us(0x0110))
    + element(0x0110, us(3))
    + element(0x0800, us(0x0101))
    + element(0x1001, ui(PRINTER_INSTANCE))
    + element(0x1005, struct.pack("<4H", 0x2110, 0x0010, 0x2110, 0x0030))
)


def test_n_get_vector() -> None:
    ours = Command.n_get_rq(3, PRINTER, PRINTER_INSTANCE, (0x21100010, 0x21100030))
    assert encode_command(ours) == N_GET_RQ
    assert decode_command(N_GET_RQ) == ours
    assert ours.sop_class_uid == PRINTER and ours.sop_instance_uid == PRINTER_INSTANCE
    assert ours.name == "N-GET-RQ" and ours.extra == ()


def test_an_empty_attribute_list_is_kept_apart_from_none() -> None:
    """An empty Attribute Identifier List (all attributes) is present, with length 0; None is absent."""
    empty = encode_command(Command.n_get_rq(3, PRINTER, PRINTER_INSTANCE, ()))
    absent = encode_command(Command.n_get_rq(3, PRINTER, PRINTER_INSTANCE))
    assert element(0x1005, b"") in empty and b"\x05\x10" not in absent[-8:]
    assert decode_command(empty).attribute_identifier_list == ()
    assert decode_command(absent).attribute_identifier_list is None


def test_an_attribute_list_that_is_not_tags_is_refused() -> None:
    broken = N_GET_RQ[12:-16] + element(0x1005, b"\x10\x21")  # 2 bytes: half a tag
    assert decode_command(with_group_length(N_GET_RQ[12:-16])).attribute_identifier_list is None
    with pytest.raises(InvalidCommand, match="0000,1005"):
        decode_command(with_group_length(broken))


# ------------------------------------------------------------------------------- pynetdicom as reference


def pynetdicom_command(primitive: Any, message_class: type) -> bytes:
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


DATA = BytesIO(b"\x00")  # any data set: pynetdicom only needs one to set (0000,0800)
EVENT_RQ = Command.n_event_report_rq(7, COMMITMENT, COMMITMENT_INSTANCE, 1)
GET_RQ = Command.n_get_rq(8, MPPS, UID, (0x00400252, 0x00080018))
SET_RQ = Command.n_set_rq(9, MPPS, UID)
ACTION_RQ = Command.n_action_rq(10, COMMITMENT, COMMITMENT_INSTANCE, 1)
CREATE_RQ = Command.n_create_rq(11, MPPS, UID)
CREATE_RQ_NO_UID = Command.n_create_rq(12, MPPS)
DELETE_RQ = Command.n_delete_rq(13, PRINTER, PRINTER_INSTANCE)

REFERENCE: list[tuple[str, Command, dict[str, Any]]] = [
    (
        "N_EVENT_REPORT_RQ",
        EVENT_RQ,
        dict(
            _="N_EVENT_REPORT",
            MessageID=7,
            AffectedSOPClassUID=COMMITMENT,
            AffectedSOPInstanceUID=COMMITMENT_INSTANCE,
            EventTypeID=1,
            EventInformation=DATA,
        ),
    ),
    (
        "N_EVENT_REPORT_RSP",
        Command.n_rsp(EVENT_RQ, 0),
        dict(
            _="N_EVENT_REPORT",
            MessageIDBeingRespondedTo=7,
            AffectedSOPClassUID=COMMITMENT,
            AffectedSOPInstanceUID=COMMITMENT_INSTANCE,
            EventTypeID=1,
            Status=0,
        ),
    ),
    (
        "N_GET_RQ",
        GET_RQ,
        dict(
            _="N_GET",
            MessageID=8,
            RequestedSOPClassUID=MPPS,
            RequestedSOPInstanceUID=UID,
            AttributeIdentifierList=[0x00400252, 0x00080018],
        ),
    ),
    (
        "N_GET_RSP",
        Command.n_rsp(GET_RQ, 0, has_dataset=True),
        dict(
            _="N_GET",
            MessageIDBeingRespondedTo=8,
            AffectedSOPClassUID=MPPS,
            AffectedSOPInstanceUID=UID,
            Status=0,
            AttributeList=DATA,
        ),
    ),
    (
        "N_SET_RQ",
        SET_RQ,
        dict(
            _="N_SET",
            MessageID=9,
            RequestedSOPClassUID=MPPS,
            RequestedSOPInstanceUID=UID,
            ModificationList=DATA,
        ),
    ),
    (
        "N_SET_RSP",
        Command.n_rsp(SET_RQ, 0x0110, error_comment="no longer IN PROGRESS", error_id=0xA710),
        dict(
            _="N_SET",
            MessageIDBeingRespondedTo=9,
            AffectedSOPClassUID=MPPS,
            AffectedSOPInstanceUID=UID,
            Status=0x0110,
            ErrorComment="no longer IN PROGRESS",
            ErrorID=0xA710,
        ),
    ),
    (
        "N_ACTION_RQ",
        ACTION_RQ,
        dict(
            _="N_ACTION",
            MessageID=10,
            RequestedSOPClassUID=COMMITMENT,
            RequestedSOPInstanceUID=COMMITMENT_INSTANCE,
            ActionTypeID=1,
            ActionInformation=DATA,
        ),
    ),
    (
        "N_ACTION_RSP",
        Command.n_rsp(ACTION_RQ, 0),
        dict(
            _="N_ACTION",
            MessageIDBeingRespondedTo=10,
            AffectedSOPClassUID=COMMITMENT,
            AffectedSOPInstanceUID=COMMITMENT_INSTANCE,
            ActionTypeID=1,
            Status=0,
        ),
    ),
    (
        "N_CREATE_RQ",
        CREATE_RQ,
        dict(
            _="N_CREATE",
            MessageID=11,
            AffectedSOPClassUID=MPPS,
            AffectedSOPInstanceUID=UID,
            AttributeList=DATA,
        ),
    ),
    (
        "N_CREATE_RQ",
        CREATE_RQ_NO_UID,
        dict(_="N_CREATE", MessageID=12, AffectedSOPClassUID=MPPS, AttributeList=DATA),
    ),
    (
        "N_CREATE_RSP",
        Command.n_rsp(CREATE_RQ_NO_UID, 0, affected_sop_instance_uid=UID, has_dataset=True),
        dict(
            _="N_CREATE",
            MessageIDBeingRespondedTo=12,
            AffectedSOPClassUID=MPPS,
            AffectedSOPInstanceUID=UID,
            Status=0,
            AttributeList=DATA,
        ),
    ),
    (
        "N_DELETE_RQ",
        DELETE_RQ,
        dict(
            _="N_DELETE", MessageID=13, RequestedSOPClassUID=PRINTER, RequestedSOPInstanceUID=PRINTER_INSTANCE
        ),
    ),
    (
        "N_DELETE_RSP",
        Command.n_rsp(DELETE_RQ, 0x0112),
        dict(
            _="N_DELETE",
            MessageIDBeingRespondedTo=13,
            AffectedSOPClassUID=PRINTER,
            AffectedSOPInstanceUID=PRINTER_INSTANCE,
            Status=0x0112,
        ),
    ),
]


@pytest.mark.parametrize(
    ("message", "ours", "attributes"), REFERENCE, ids=[f"{r[0]}-{i}" for i, r in enumerate(REFERENCE)]
)
def test_same_bytes_as_pynetdicom(message: str, ours: Command, attributes: dict[str, Any]) -> None:
    messages = pytest.importorskip("pynetdicom.dimse_messages")
    fields = dict(attributes)
    theirs = pynetdicom_command(_primitive(fields.pop("_"), **fields), getattr(messages, message))
    assert encode_command(ours) == theirs
    assert decode_command(theirs) == ours
    assert encode_command(decode_command(theirs)) == theirs
    assert decode_command(theirs).extra == ()  # every N element is known now, none left raw


def test_pynetdicom_decodes_ours() -> None:
    """The other direction: pynetdicom reads our N-ACTION-RQ and N-CREATE-RSP with every value."""
    messages = pytest.importorskip("pynetdicom.dimse_messages")
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset

    def parse(command: Command) -> Any:
        fp = DicomBytesIO(encode_command(command))
        fp.is_implicit_VR, fp.is_little_endian = True, True
        return read_dataset(fp, True, True)

    assert messages  # imported for the skip only
    ds = parse(ACTION_RQ)
    assert ds.RequestedSOPClassUID == COMMITMENT and ds.RequestedSOPInstanceUID == COMMITMENT_INSTANCE
    assert ds.ActionTypeID == 1 and ds.CommandField == 0x0130 and ds.MessageID == 10
    ds = parse(Command.n_rsp(CREATE_RQ_NO_UID, 0, affected_sop_instance_uid=UID))
    assert ds.AffectedSOPInstanceUID == UID and ds.CommandField == 0x8140 and ds.Status == 0
    ds = parse(GET_RQ)
    assert list(ds.AttributeIdentifierList) == [0x00400252, 0x00080018]


# ------------------------------------------------------------------------------------- behaviour


def test_responses_echo_the_request() -> None:
    rsp = Command.n_rsp(ACTION_RQ, 0x0123, error_comment="no such action")
    assert rsp.command_field == CommandField.N_ACTION_RSP and rsp.is_response
    assert rsp.affected_sop_class_uid == COMMITMENT and rsp.affected_sop_instance_uid == COMMITMENT_INSTANCE
    assert rsp.action_type_id == 1 and rsp.event_type_id is None and rsp.requested_sop_class_uid is None
    # the instance an N-CREATE's SCP assigned overrides the request's (absent) one
    assert Command.n_rsp(CREATE_RQ_NO_UID, 0, affected_sop_instance_uid=UID).affected_sop_instance_uid == UID
    assert Command.n_rsp(CREATE_RQ, 0).affected_sop_instance_uid == UID
    assert Command.n_rsp(EVENT_RQ, 0).event_type_id == 1
    assert {c.name for c in (EVENT_RQ, GET_RQ, SET_RQ, ACTION_RQ, CREATE_RQ, DELETE_RQ)} == {
        f"N-{n}-RQ" for n in ("EVENT-REPORT", "GET", "SET", "ACTION", "CREATE", "DELETE")
    }
    assert {
        c.command_field for c in (EVENT_RQ, GET_RQ, SET_RQ, ACTION_RQ, CREATE_RQ, DELETE_RQ)
    } == N_REQUESTS


def test_the_requested_sop_class_is_checked_against_the_context() -> None:
    """An N-SET names its class as *requested*: it is served on its own context, refused on another."""
    assert wrong_context(SET_RQ, MPPS) is None
    refusal = wrong_context(SET_RQ, COMMITMENT)
    assert refusal is not None and refusal.status == Status.SOP_CLASS_NOT_SUPPORTED
    assert wrong_context(CREATE_RQ, MPPS) is None


def test_fast_init_is_frozen_and_keeps_defaults() -> None:
    import dataclasses

    command = Command(CommandField.N_SET_RQ, 1)
    assert command.has_dataset is False and command.extra == () and command.requested_sop_class_uid is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.status = 0  # type: ignore[misc]
    assert dataclasses.replace(command, status=5).status == 5 and hash(command) == hash(Command(0x0120, 1))
    with pytest.raises(TypeError):
        Command()  # type: ignore[call-arg]


def test_status_tables() -> None:
    for code in (0x0105, 0x0106, 0x0110, 0x0111, 0x0112, 0x0113, 0x0114, 0x0115, 0x0117, 0x0118, 0x0119):
        assert category(code).value == "Failure", hex(code)
    for code in (0x0120, 0x0121, 0x0122, 0x0123, 0x0124, 0x0210, 0x0211, 0x0212, 0x0213):
        assert category(code).value == "Failure", hex(code)
    for code in (0x0001, 0x0107, 0x0116):
        assert category(code).value == "Warning", hex(code)
    assert status_name(Status.DUPLICATE_SOP_INSTANCE) == "Failure: Duplicate SOP Instance"
    assert status_name(0x0113, "N-EVENT-REPORT-RSP") == "Failure: No such event type"
    assert Status.NO_SUCH_ACTION == 0x0123 and Status.NO_SUCH_ATTRIBUTE == 0x0105
    assert 0x0111 in N_SERVICE_STATUSES["N-CREATE"] and 0x0111 not in N_SERVICE_STATUSES["N-SET"]
    assert 0x0123 in N_SERVICE_STATUSES["N-ACTION"] and 0x0113 in N_SERVICE_STATUSES["N-EVENT-REPORT"]
    assert all(0x0000 in codes and 0x0211 in codes for codes in N_SERVICE_STATUSES.values())
