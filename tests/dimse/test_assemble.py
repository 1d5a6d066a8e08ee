"""Reassembly of PDVs into messages: split commands, data set chunks in order, misplaced PDVs."""

from __future__ import annotations

from io import BytesIO

import pytest
from hypothesis import given, strategies as st

from aiodicom.dimse import (
    Command,
    CommandReceived,
    DatasetChunk,
    InvalidCommand,
    MessageAssembler,
    encode_command,
    fragment,
)
from aiodicom.errors import AbortReason, ProtocolError
from aiodicom.ul.pdu import PDataTF, PresentationDataValue, decode_pdu, encode_pdu

CT = "1.2.840.10008.5.1.4.1.1.2"
STORE = Command.c_store_rq(5, CT, "1.2.3.4.5")
DATASET = bytes(range(256)) * 4

Pdv = tuple[int, bool, bool, bytes | memoryview]


def pdvs(cmd: Command, dataset: bytes, size: int, context_id: int = 1) -> list[Pdv]:
    """The PDVs of a message, through our fragmenter and the PDU decoder, as the network layer sees them."""
    out: list[Pdv] = []
    buffers = fragment(context_id, True, encode_command(cmd), size)
    if cmd.has_dataset:
        buffers += fragment(context_id, False, dataset, size)
    for i in range(0, len(buffers), 2):
        pdu = decode_pdu(bytes(buffers[i]) + bytes(buffers[i + 1]))
        assert isinstance(pdu, PDataTF)
        out += [(p.context_id, p.is_command, p.is_last, p.data) for p in pdu.pdvs]
    return out


def feed_all(assembler: MessageAssembler, items: list[Pdv]) -> list[CommandReceived | DatasetChunk]:
    return [event for item in items for event in assembler.feed(*item)]


def chunks_of(events: list[CommandReceived | DatasetChunk]) -> list[DatasetChunk]:
    chunks = [e for e in events if isinstance(e, DatasetChunk)]
    assert len(chunks) == len(events) - 1
    return chunks


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_command_over_many_pdvs_then_chunks_in_order(size: int) -> None:
    assembler = MessageAssembler()
    events = feed_all(assembler, pdvs(STORE, DATASET, size))
    assert events[0] == CommandReceived(1, STORE)
    chunks = chunks_of(events)
    assert b"".join(bytes(c.data) for c in chunks) == DATASET
    assert [c.is_last for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert {c.context_id for c in chunks} == {1}
    assert not assembler.expecting_dataset and assembler.message_context_id is None
    # the next message may use another presentation context
    echo = Command.c_echo_rq(6)
    assert assembler.feed(3, True, True, encode_command(echo)) == [CommandReceived(3, echo)]


def test_state_between_fragments() -> None:
    assembler = MessageAssembler()
    wire = encode_command(STORE)
    assert assembler.message_context_id is None and not assembler.expecting_dataset
    assert assembler.feed(5, True, False, wire[:10]) == []
    assert assembler.message_context_id == 5 and not assembler.expecting_dataset
    assert assembler.feed(5, True, True, wire[10:]) == [CommandReceived(5, STORE)]
    assert assembler.message_context_id == 5 and assembler.expecting_dataset
    assert assembler.feed(5, False, False, b"ab") == [DatasetChunk(5, b"ab", False)]
    assert assembler.expecting_dataset
    assert assembler.feed(5, False, True, b"") == [DatasetChunk(5, b"", True)]
    assert assembler.message_context_id is None and not assembler.expecting_dataset


def test_chunks_pass_through_without_copy() -> None:
    assembler = MessageAssembler()
    assembler.feed(1, True, True, encode_command(STORE))
    buffer = bytearray(b"received bytes")
    view = memoryview(buffer)[9:]
    (chunk,) = assembler.feed(1, False, True, view)
    assert isinstance(chunk, DatasetChunk) and chunk.data is view
    buffer[9:14] = b"BYTES"  # the caller reused its buffer: the chunk sees it
    assert bytes(chunk.data) == b"BYTES"


def test_several_pdvs_in_one_pdata() -> None:
    wire = encode_command(STORE)
    pdu = PDataTF(
        (
            PresentationDataValue(1, True, False, wire[:20]),
            PresentationDataValue(1, True, True, wire[20:]),
            PresentationDataValue(1, False, False, DATASET[:100]),
            PresentationDataValue(1, False, True, DATASET[100:]),
        )
    )
    decoded = decode_pdu(encode_pdu(pdu))
    assert isinstance(decoded, PDataTF)
    events = feed_all(
        MessageAssembler(), [(p.context_id, p.is_command, p.is_last, p.data) for p in decoded.pdvs]
    )
    assert events[0] == CommandReceived(1, STORE)
    assert b"".join(bytes(c.data) for c in chunks_of(events)) == DATASET


@pytest.mark.parametrize("max_pdu", [20, 64, 16384])
def test_messages_from_pynetdicom(max_pdu: int) -> None:
    primitives = pytest.importorskip("pynetdicom.dimse_primitives")
    messages = pytest.importorskip("pynetdicom.dimse_messages")
    from pynetdicom.pdu import P_DATA_TF

    primitive = primitives.C_STORE()
    primitive.MessageID, primitive.Priority = 5, 0
    primitive.AffectedSOPClassUID, primitive.AffectedSOPInstanceUID = CT, "1.2.3.4.5"
    primitive.DataSet = BytesIO(DATASET)
    message = messages.C_STORE_RQ()
    message.primitive_to_message(primitive)
    echo = primitives.C_ECHO()
    echo.MessageID, echo.AffectedSOPClassUID = 6, "1.2.840.10008.1.1"
    echo_message = messages.C_ECHO_RQ()
    echo_message.primitive_to_message(echo)

    assembler = MessageAssembler()
    events: list[CommandReceived | DatasetChunk] = []
    for pdata in [*message.encode_msg(7, max_pdu), *echo_message.encode_msg(9, max_pdu)]:
        pdu = decode_pdu(P_DATA_TF(pdata).encode())
        assert isinstance(pdu, PDataTF)
        for pdv in pdu.pdvs:
            events += assembler.feed(pdv.context_id, pdv.is_command, pdv.is_last, pdv.data)
    assert events[0] == CommandReceived(7, STORE)
    assert events[-1] == CommandReceived(9, Command.c_echo_rq(6))
    chunks = chunks_of(events[:-1])
    assert b"".join(bytes(c.data) for c in chunks) == DATASET and chunks[-1].is_last


def _raises_unexpected(assembler: MessageAssembler, *pdv: object) -> None:
    with pytest.raises(ProtocolError) as info:
        assembler.feed(*pdv)  # type: ignore[arg-type]
    assert info.value.reason is AbortReason.UNEXPECTED_PDU_PARAMETER


def test_data_set_nobody_announced() -> None:
    _raises_unexpected(MessageAssembler(), 1, False, True, b"data")
    assembler = MessageAssembler()
    assembler.feed(1, True, True, encode_command(Command.c_echo_rq(1)))  # no data set follows an echo
    _raises_unexpected(assembler, 1, False, True, b"data")
    assembler = MessageAssembler()
    assembler.feed(1, True, False, encode_command(STORE)[:10])  # the command is not complete yet
    _raises_unexpected(assembler, 1, False, True, b"data")


def test_command_while_the_data_set_is_expected() -> None:
    assembler = MessageAssembler()
    assembler.feed(1, True, True, encode_command(STORE))
    assembler.feed(1, False, False, b"part")
    _raises_unexpected(assembler, 1, True, True, encode_command(STORE))


def test_another_presentation_context_mid_message() -> None:
    assembler = MessageAssembler()
    assembler.feed(1, True, True, encode_command(STORE))
    _raises_unexpected(assembler, 3, False, True, b"x")  # in the data set
    assembler = MessageAssembler()
    assembler.feed(1, True, False, encode_command(STORE)[:10])
    _raises_unexpected(assembler, 3, True, True, encode_command(STORE)[10:])  # in the command


def test_command_size_bound() -> None:
    wire = encode_command(STORE)
    assert MessageAssembler(max_command_bytes=len(wire)).feed(1, True, True, wire) == [
        CommandReceived(1, STORE)
    ]
    assembler = MessageAssembler(max_command_bytes=len(wire) - 1)
    assembler.feed(1, True, False, wire[:-10])
    with pytest.raises(InvalidCommand) as info:
        assembler.feed(1, True, True, wire[-10:])
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE
    with pytest.raises(InvalidCommand):
        MessageAssembler(max_command_bytes=16).feed(1, True, False, b"x" * 17)


def test_undecodable_command() -> None:
    assembler = MessageAssembler()
    assembler.feed(1, True, False, b"\x00\x00\x00\x01")
    with pytest.raises(InvalidCommand):
        assembler.feed(1, True, True, b"\x02\x00\x00")


@given(
    st.binary(max_size=2000),
    st.integers(1, 300),
    st.sampled_from(
        [STORE, Command.c_echo_rq(2), Command.c_find_rsp(Command.c_find_rq(3, "1.2"), 0xFF00, True)]
    ),
)
def test_any_fragmentation_reassembles(dataset: bytes, size: int, command: Command) -> None:
    assembler = MessageAssembler()
    events = feed_all(assembler, pdvs(command, dataset, size) * 2)  # two messages in a row
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    for message in (first, second):
        assert message[0] == CommandReceived(1, command)
        if command.has_dataset:
            chunks = chunks_of(message)
            assert b"".join(bytes(c.data) for c in chunks) == dataset
            assert [c.is_last for c in chunks][-1] and not any(c.is_last for c in chunks[:-1])
        else:
            assert len(message) == 1
    assert not assembler.expecting_dataset
