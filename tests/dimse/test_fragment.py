"""Fragmentation into P-DATA-TF PDUs: sizes, exact headers, no copies, pynetdicom's PDUs for the same size."""

from __future__ import annotations

import struct
from io import BytesIO

import pytest
from hypothesis import given, strategies as st

from aiodicom.dimse import DEFAULT_MAX_SEND_PDU, Command, encode_command, fragment, max_pdv_value
from aiodicom.ul.pdu import PDataTF, decode_pdu


@pytest.mark.parametrize(
    ("peer", "ours", "expected"),
    [
        (16384, None, 16378),
        (0, None, 262144 - 6),  # "unlimited" still gets bounded PDUs
        (0, 1 << 20, (1 << 20) - 6),
        (1 << 20, 65536, 65530),
        (4096, 65536, 4090),
        (16384, 0, 16378),  # 0 for our own limit means none
        (7, None, 1),
        (0, 7, 1),
        (0xFFFFFFFF, None, 0xFFFFFFFF - 6),
    ],
)
def test_max_pdv_value(peer: int, ours: int | None, expected: int) -> None:
    assert max_pdv_value(peer, ours) == expected
    assert DEFAULT_MAX_SEND_PDU == 256 * 1024


@pytest.mark.parametrize(("peer", "ours"), [(6, None), (1, None), (0, 6), (100, 3), (-1, None), (100, -5)])
def test_max_pdv_value_that_carries_nothing(peer: int, ours: int | None) -> None:
    with pytest.raises(ValueError):
        max_pdv_value(peer, ours)


def test_exact_header_bytes() -> None:
    header, value = fragment(1, True, b"abcd", 100)
    # PDU type 4, reserved, PDU length 10; item length 6, context 1, control: command + last
    assert header == bytes.fromhex("04 00 0000000a 00000006 01 03") and bytes(value) == b"abcd"
    buffers = fragment(5, False, b"0123456789", 4)
    assert [bytes(b) for b in buffers] == [
        bytes.fromhex("04 00 0000000a 00000006 05 00"),
        b"0123",
        bytes.fromhex("04 00 0000000a 00000006 05 00"),
        b"4567",
        bytes.fromhex("04 00 00000008 00000004 05 02"),
        b"89",
    ]
    assert struct.unpack_from(">BxIIBB", fragment(7, True, b"xy", 2)[0]) == (4, 8, 4, 7, 3)


def test_not_last_block_and_empty_data() -> None:
    buffers = fragment(1, False, b"abcdef", 4, last=False)
    assert buffers[0][11] == 0 and buffers[2][11] == 0  # no PDV of a middle block is last
    assert fragment(1, False, b"ab", 4, last=False)[0][11] == 0
    header, value = fragment(3, False, b"", 100)
    assert header == bytes.fromhex("04 00 00000006 00000002 03 02") and len(value) == 0
    with pytest.raises(ValueError):
        fragment(1, False, b"ab", 0)


def test_values_are_views_of_the_data() -> None:
    data = bytearray(b"x" * 100)
    buffers = fragment(1, False, data, 30)
    values = buffers[1::2]
    assert all(isinstance(v, memoryview) and v.obj is data for v in values)
    assert [len(v) for v in values] == [30, 30, 30, 10]
    words = memoryview(bytearray(range(8))).cast("H")  # a non-byte view is sliced by bytes
    assert b"".join(bytes(v) for v in fragment(1, False, words, 3)[1::2]) == bytes(range(8))


def test_unlimited_peer_gets_256_kib_pdus() -> None:
    data = bytes(1_000_000)
    buffers = fragment(1, False, data, max_pdv_value(0))
    lengths = [struct.unpack_from(">I", header, 2)[0] for header in buffers[0::2]]
    assert lengths == [262144, 262144, 262144, 1_000_000 - 3 * (262144 - 6) + 6]


@given(
    st.binary(max_size=3000), st.integers(1, 700), st.integers(0, 127).map(lambda n: 2 * n + 1), st.booleans()
)
def test_fragments_respect_the_maximum_and_reassemble(
    data: bytes, max_value: int, context: int, command: bool
) -> None:
    buffers = fragment(context, command, data, max_value)
    assert len(buffers) == 2 * max(1, -(-len(data) // max_value))
    joined = b""
    for i in range(0, len(buffers), 2):
        header, value = bytes(buffers[i]), buffers[i + 1]
        assert len(header) == 12 and len(value) <= max_value
        pdu = decode_pdu(header + bytes(value))
        assert isinstance(pdu, PDataTF)
        (pdv,) = pdu.pdvs
        assert (pdv.context_id, pdv.is_command) == (context, command)
        assert pdv.is_last == (i == len(buffers) - 2)
        joined += bytes(value)
    assert joined == data


@pytest.mark.parametrize("max_pdu", [12, 40, 100, 16384, 0])
def test_same_pdus_as_pynetdicom(max_pdu: int) -> None:
    primitives = pytest.importorskip("pynetdicom.dimse_primitives")
    messages = pytest.importorskip("pynetdicom.dimse_messages")
    from pynetdicom.pdu import P_DATA_TF

    dataset = bytes(range(256)) * 3
    primitive = primitives.C_STORE()
    primitive.MessageID, primitive.Priority = 12, 0
    primitive.AffectedSOPClassUID, primitive.AffectedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"
    primitive.DataSet = BytesIO(dataset)
    message = messages.C_STORE_RQ()
    message.primitive_to_message(primitive)
    theirs = b"".join(P_DATA_TF(pdata).encode() for pdata in message.encode_msg(3, max_pdu))

    command = Command.c_store_rq(12, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4")
    # pynetdicom sends 0 ("unlimited") as one PDU per message part: compare with a limit that fits everything
    max_value = max_pdv_value(max_pdu) if max_pdu else len(dataset)
    ours = fragment(3, True, encode_command(command), max_value) + fragment(3, False, dataset, max_value)
    assert b"".join(bytes(b) for b in ours) == theirs


@pytest.mark.parametrize(
    ("command", "data", "max_value", "pdus"),
    [(90, 150, 16372, 1), (90, 16276, 16372, 1), (90, 16277, 16372, 2), (90, 40000, 16372, 4)],
)
def test_a_small_message_is_one_pdata_with_two_pdvs(
    command: int, data: int, max_value: int, pdus: int
) -> None:
    """Command and data set share a P-DATA-TF when both fit the peer's maximum; the bytes decode to the
    same PDVs (command first, each flagged last) either way."""
    from aiodicom.dimse import message_pdvs
    from aiodicom.ul.pdu import decode_pdu

    cmd, ds = bytes(range(command)), bytes(i % 251 for i in range(data))
    wire = b"".join(bytes(b) for b in message_pdvs(7, cmd, ds, max_value))
    decoded, offset = [], 0
    while offset < len(wire):
        length = int.from_bytes(wire[offset + 2 : offset + 6], "big")
        assert length <= max_value + 6  # the peer's maximum PDU length
        decoded.append(decode_pdu(wire[offset : offset + 6 + length]))
        offset += 6 + length
    assert len(decoded) == pdus
    pdvs = [pdv for pdu in decoded for pdv in pdu.pdvs]
    assert b"".join(bytes(p.data) for p in pdvs if p.is_command) == cmd
    assert b"".join(bytes(p.data) for p in pdvs if not p.is_command) == ds
    assert [p.is_last for p in pdvs if p.is_command][-1] and pdvs[-1].is_last and not pdvs[-1].is_command
    assert all(p.context_id == 7 for p in pdvs)
    assert message_pdvs(7, cmd, None, max_value) == fragment(7, True, cmd, max_value)
