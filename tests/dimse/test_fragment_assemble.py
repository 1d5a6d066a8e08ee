from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiodicom.dimse import (
    Command,
    CommandReceived,
    DatasetChunk,
    InvalidCommand,
    MessageAssembler,
    encode_command,
    fragment,
    max_pdv_value,
)
from aiodicom.errors import AbortReason, ProtocolError
from aiodicom.ul.pdu import decode_pdu


def test_max_pdv_value() -> None:
    assert max_pdv_value(16384) == 16378
    assert max_pdv_value(0) == 262144 - 6  # "unlimited" still gets bounded PDUs
    assert max_pdv_value(0, 1 << 20) == (1 << 20) - 6
    assert max_pdv_value(1 << 20, 65536) == 65530
    with pytest.raises(ValueError):
        max_pdv_value(6)


@given(st.binary(max_size=5000), st.integers(1, 700))
def test_fragments_respect_the_maximum_and_reassemble(data: bytes, max_value: int) -> None:
    buffers = fragment(3, False, data, max_value)
    assert len(buffers) % 2 == 0
    joined = b""
    for i in range(0, len(buffers), 2):
        header, value = bytes(buffers[i]), buffers[i + 1]
        assert isinstance(value, memoryview) and len(value) <= max_value
        pdu = decode_pdu(header + bytes(value))
        (pdv,) = pdu.pdvs  # type: ignore[union-attr]
        assert pdv.context_id == 3 and not pdv.is_command
        assert pdv.is_last == (i == len(buffers) - 2)
        joined += bytes(value)
    assert joined == data


def test_exact_header_bytes() -> None:
    header, value = fragment(1, True, b"abcd", 100)
    assert header == struct.pack(">BxIIBB", 4, 10, 6, 1, 3) and bytes(value) == b"abcd"


def pdvs(cmd: Command, dataset: bytes, size: int, context_id: int = 1) -> list[tuple[int, bool, bool, bytes]]:
    out = []
    raw = encode_command(cmd)
    for i in range(0, len(raw), size):
        out.append((context_id, True, i + size >= len(raw), raw[i : i + size]))
    for i in range(0, len(dataset), size):
        out.append((context_id, False, i + size >= len(dataset), dataset[i : i + size]))
    return out


def test_assembler_command_over_many_pdvs_then_chunks_in_order() -> None:
    cmd = Command.c_store_rq(5, "1.2.840.10008.5.1.4.1.1.2", "1.2.3")
    assembler = MessageAssembler()
    events = [e for pdv in pdvs(cmd, b"0123456789" * 10, 7) for e in assembler.feed(*pdv)]
    assert events[0] == CommandReceived(1, cmd)
    chunks = events[1:]
    assert all(isinstance(c, DatasetChunk) for c in chunks)
    assert b"".join(bytes(c.data) for c in chunks) == b"0123456789" * 10  # type: ignore[union-attr]
    assert [c.is_last for c in chunks] == [False] * (len(chunks) - 1) + [True]  # type: ignore[union-attr]
    assert not assembler.expecting_dataset and assembler.message_context_id is None
    echo = Command.c_echo_rq(6)
    assert assembler.feed(3, True, True, encode_command(echo)) == [CommandReceived(3, echo)]


def test_assembler_protocol_errors() -> None:
    store = encode_command(Command.c_store_rq(5, "1.2", "1.2.3"))
    with pytest.raises(ProtocolError) as info:
        MessageAssembler().feed(1, False, True, b"data")  # a data set nobody announced
    assert info.value.reason is AbortReason.UNEXPECTED_PDU_PARAMETER
    assembler = MessageAssembler()
    assembler.feed(1, True, True, store)
    with pytest.raises(ProtocolError):
        assembler.feed(1, True, True, store)  # a command while the data set is expected
    assembler = MessageAssembler()
    assembler.feed(1, True, True, store)
    with pytest.raises(ProtocolError):
        assembler.feed(3, False, True, b"x")  # another presentation context mid-message
    with pytest.raises(InvalidCommand):
        MessageAssembler(max_command_bytes=16).feed(1, True, False, b"x" * 17)
