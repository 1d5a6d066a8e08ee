"""The sans-IO connection: an in-memory pair of peers, timers as plain numbers, faults byte by byte."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiodicom.errors import AbortReason, AbortSource, UsageError
from aiodicom.ul.connection import (
    ASSOCIATION_PDU_CAP,
    AssociationRequestRefused,
    Buffers,
    Connection,
    ConnectionEvent,
    PDVData,
    ProviderAbort,
    ReleaseComplete,
)
from aiodicom.ul.fsm import State
from aiodicom.ul.items import PresentationContextAC, PresentationContextRQ
from aiodicom.ul.negotiation import ContextPolicy, accept, user_information
from aiodicom.ul.pdu import (
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    PresentationDataValue,
    decode_pdu,
    encode_pdu,
)
from tests.ul.streamed import kept, pdvs

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT = "1.2.840.10008.1.2"


def make_rq(contexts: int = 1) -> AAssociateRQ:
    return AAssociateRQ(
        "SCP",
        "SCU",
        tuple(PresentationContextRQ(2 * i + 1, VERIFICATION, (IMPLICIT,)) for i in range(contexts)),
        user_information(16384),
    )


def joined(buffers: Buffers) -> bytes:
    return b"".join(bytes(b) for b in buffers)


class Pair:
    """A requestor and an acceptor wired together in memory; ``now`` is the shared clock."""

    def __init__(self, **acceptor_options: object) -> None:
        self.now = 0.0
        self.req = Connection("requestor")
        self.acc = Connection("acceptor", **acceptor_options)  # type: ignore[arg-type]
        self.req_events: list[ConnectionEvent] = []
        self.acc_events: list[ConnectionEvent] = []

    def to_acceptor(self, data: bytes, byte_by_byte: bool = False) -> None:
        chunks = [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]
        for chunk in chunks:
            self.acc_events += kept(self.acc.receive_data(chunk, self.now))
        self.to_requestor(joined(self.acc.data_to_send()))

    def to_requestor(self, data: bytes) -> None:
        if data:
            self.req_events += kept(self.req.receive_data(data, self.now))
            out = joined(self.req.data_to_send())
            if out:
                self.to_acceptor(out)

    def associate(self, byte_by_byte: bool = False) -> AAssociateRQ:
        rq = make_rq()
        self.req.associate(rq, self.now)
        assert self.req.state is State.STA4
        assert joined(self.acc.connection_made(self.now)) == b""
        assert self.acc.state is State.STA2
        self.to_acceptor(joined(self.req.connection_made(self.now)), byte_by_byte)
        assert self.req.state is State.STA5
        assert self.acc_events == [rq] and self.acc.state is State.STA3
        ac, accepted = accept(rq, ContextPolicy(), max_pdu_length=16384)
        assert set(accepted) == {1}
        self.to_requestor(joined(self.acc.send(ac, self.now)))
        assert self.req_events == [ac]
        assert self.req.state is State.STA6 and self.acc.state is State.STA6
        self.req_events.clear()
        self.acc_events.clear()
        return rq


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_associate_exchange_and_release(byte_by_byte: bool) -> None:
    pair = Pair()
    pair.associate(byte_by_byte)
    pdata = PDataTF(
        (PresentationDataValue(1, True, True, b"\x01\x02"), PresentationDataValue(1, False, False, b"ab"))
    )
    pair.to_acceptor(joined(pair.req.send(pdata, pair.now)), byte_by_byte)
    assert pdvs(pair.acc_events) == [(1, True, True, b"\x01\x02"), (1, False, False, b"ab")]
    pair.acc_events.clear()
    pair.to_acceptor(joined(pair.req.send(AReleaseRQ(), pair.now)), byte_by_byte)
    assert pair.acc_events == [AReleaseRQ()] and pair.acc.state is State.STA8
    pair.to_requestor(joined(pair.acc.send(AReleaseRP(), pair.now)))
    assert pair.req_events == [ReleaseComplete()]
    assert pair.req.state is State.STA1 and pair.req.wants_close
    assert pair.acc.state is State.STA13 and pair.acc.get_timer() == pytest.approx(30.0)
    assert pair.acc.connection_lost(pair.now) == []
    assert pair.acc.state is State.STA1


def test_trailing_bytes_wait_for_the_next_pdu() -> None:
    pair = Pair()
    pair.associate()
    data = encode_pdu(PDataTF((PresentationDataValue(1, True, True, b"xy"),)))
    events = pair.acc.receive_data(data + data[:7], pair.now)
    assert pdvs(events) == [(1, True, True, b"xy")]
    assert pdvs(pair.acc.receive_data(data[7:], pair.now)) == [(1, True, True, b"xy")]


def test_release_collision_runs_to_the_end_on_both_roles() -> None:
    pair = Pair()
    pair.associate()
    rq_from_requestor = joined(pair.req.send(AReleaseRQ(), pair.now))
    rq_from_acceptor = joined(pair.acc.send(AReleaseRQ(), pair.now))  # the two RQs cross on the wire
    assert pair.acc.state is State.STA7 and pair.req.state is State.STA7
    # Each receives the other's RQ: AR-8, then Sta9 (requestor, which answers at once) and Sta10 (acceptor).
    req_events = pair.req.receive_data(rq_from_acceptor, pair.now)
    assert req_events == [] and pair.req.state is State.STA11
    rp_from_requestor = joined(pair.req.data_to_send())
    assert decode_pdu(rp_from_requestor) == AReleaseRP()
    assert pair.acc.receive_data(rq_from_requestor, pair.now) == [] and pair.acc.state is State.STA10
    # The acceptor gets the RP (AR-10, Sta12), answers with its own RP (AR-4) and waits in Sta13.
    assert pair.acc.receive_data(rp_from_requestor, pair.now) == [ReleaseComplete()]
    assert pair.acc.state is State.STA13
    rp_from_acceptor = joined(pair.acc.data_to_send())
    assert pair.req.receive_data(rp_from_acceptor, pair.now) == [ReleaseComplete()]
    assert pair.req.state is State.STA1 and pair.req.wants_close


def test_peer_abort_is_an_event_and_closes() -> None:
    pair = Pair()
    pair.associate()
    events = pair.req.receive_data(encode_pdu(AAbort(AbortSource.SERVICE_USER, 0)), pair.now)
    assert events == [AAbort(0, 0)]
    assert pair.req.state is State.STA1 and pair.req.wants_close


def test_local_abort_goes_to_sta13_and_artim_closes() -> None:
    pair = Pair()
    pair.associate()
    out = joined(pair.req.send(AAbort(AbortSource.SERVICE_USER, 0), pair.now))
    assert decode_pdu(out) == AAbort(0, 0)
    assert pair.req.state is State.STA13
    deadline = pair.req.get_timer()
    assert deadline is not None
    assert pair.req.handle_timer(deadline - 1) == [] and pair.req.state is State.STA13
    assert pair.req.handle_timer(deadline) == []
    assert pair.req.state is State.STA1 and pair.req.wants_close


def test_artim_closes_a_connection_that_never_sends_a_request() -> None:
    conn = Connection("acceptor", artim_timeout=5.0)
    conn.connection_made(100.0)
    assert conn.state is State.STA2 and conn.get_timer() == 105.0
    assert conn.handle_timer(104.0) == [] and not conn.wants_close
    conn.handle_timer(105.0)
    assert conn.state is State.STA1 and conn.wants_close and conn.get_timer() is None


def test_no_answer_to_the_request_aborts_locally() -> None:
    conn = Connection("requestor", acse_timeout=2.0)
    conn.associate(make_rq(), 0.0)
    assert conn.connection_made(0.0)
    assert conn.state is State.STA5 and conn.get_timer() == 2.0
    events = conn.handle_timer(2.0)
    assert len(events) == 1 and isinstance(events[0], ProviderAbort) and events[0].local
    assert decode_pdu(joined(conn.data_to_send())) == AAbort(AbortSource.SERVICE_USER, 0)
    assert conn.state is State.STA1 and conn.wants_close


def test_rejection_closes_the_requestor() -> None:
    conn = Connection("requestor")
    conn.associate(make_rq(), 0.0)
    conn.connection_made(0.0)
    events = conn.receive_data(encode_pdu(AAssociateRJ(1, 1, 7)), 0.0)
    assert events == [AAssociateRJ(1, 1, 7)]
    assert conn.state is State.STA1 and conn.wants_close


def test_unsupported_protocol_version_is_refused_by_the_provider() -> None:
    conn = Connection("acceptor")
    conn.connection_made(0.0)
    rq = AAssociateRQ("A", "B", make_rq().presentation_contexts, user_information(0), protocol_version=2)
    events = conn.receive_data(encode_pdu(rq), 0.0)
    assert events == [AssociationRequestRefused(rq, AAssociateRJ(1, 2, 2))]
    assert decode_pdu(joined(conn.data_to_send())) == AAssociateRJ(1, 2, 2)
    assert conn.state is State.STA13


def _aborted_with(conn: Connection, reason: AbortReason) -> None:
    out = joined(conn.data_to_send())
    assert decode_pdu(out) == AAbort(AbortSource.SERVICE_PROVIDER, reason)
    assert conn.state is State.STA13 and conn.get_timer() is not None


def test_unrecognized_pdu_type_aborts_at_once_without_waiting_for_its_body() -> None:
    pair = Pair()
    pair.associate()
    events = pair.acc.receive_data(b"\x0a\x00\xff\xff\xff\xff", pair.now)
    assert isinstance(events[0], ProviderAbort) and events[0].reason is AbortReason.UNRECOGNIZED_PDU
    _aborted_with(pair.acc, AbortReason.UNRECOGNIZED_PDU)
    assert pair.acc.receive_data(b"garbage after the fault", pair.now) == []


def test_unexpected_pdu_aborts_the_association() -> None:
    pair = Pair()
    pair.associate()
    events = pair.acc.receive_data(encode_pdu(AAssociateAC("A", "B", (), user_information(0))), pair.now)
    assert isinstance(events[0], ProviderAbort) and events[0].reason is AbortReason.UNEXPECTED_PDU
    _aborted_with(pair.acc, AbortReason.UNEXPECTED_PDU)


def test_strict_pdata_larger_than_advertised_is_refused() -> None:
    pair = Pair(strict=True, max_pdu_length=16384)
    pair.associate()
    big = encode_pdu(PDataTF((PresentationDataValue(1, False, True, bytes(16384)),)))
    events = pair.acc.receive_data(big[:6], pair.now)  # refused on its header alone
    assert isinstance(events[0], ProviderAbort)
    _aborted_with(pair.acc, AbortReason.INVALID_PDU_PARAMETER_VALUE)


def test_lenient_pdata_larger_than_advertised_is_accepted() -> None:
    pair = Pair(max_pdu_length=16384)
    pair.associate()
    pdu = PDataTF((PresentationDataValue(1, False, True, bytes(range(256)) * 256),))
    assert pdvs(pair.acc.receive_data(encode_pdu(pdu), pair.now)) == [
        (1, False, True, bytes(range(256)) * 256)
    ]


def test_association_pdus_are_not_bound_by_max_length_but_by_their_own_cap() -> None:
    conn = Connection("acceptor", max_pdu_length=4096, strict=True)
    conn.connection_made(0.0)
    rq = make_rq(contexts=128)
    assert len(encode_pdu(rq)) > 4096
    assert conn.receive_data(encode_pdu(rq), 0.0) == [rq]
    too_big = Connection("acceptor")
    too_big.connection_made(0.0)
    events = too_big.receive_data(struct.pack(">BxI", 1, ASSOCIATION_PDU_CAP + 1), 0.0)
    assert isinstance(events[0], ProviderAbort)


def test_malformed_pdu_aborts_with_its_reason() -> None:
    pair = Pair()
    pair.associate()
    bad_pdv = b"\x04\x00\x00\x00\x00\x06" + b"\x00\x00\x00\x02\x02\x03"  # even presentation context ID
    events = pair.acc.receive_data(bad_pdv, pair.now)
    assert isinstance(events[0], ProviderAbort)
    _aborted_with(pair.acc, AbortReason.INVALID_PDU_PARAMETER_VALUE)


def test_transport_closed_mid_association_is_a_provider_abort() -> None:
    pair = Pair()
    pair.associate()
    pair.acc.receive_data(encode_pdu(PDataTF((PresentationDataValue(1, True, True, b"ab"),)))[:9], pair.now)
    events = pair.acc.connection_lost(pair.now)
    assert len(events) == 1 and isinstance(events[0], ProviderAbort) and not events[0].local
    assert pair.acc.state is State.STA1


def test_local_primitive_in_a_blank_cell_is_a_usage_error_and_sends_nothing() -> None:
    conn = Connection("requestor")
    with pytest.raises(UsageError):
        conn.send(PDataTF((PresentationDataValue(1, True, True, b"x"),)), 0.0)
    with pytest.raises(UsageError):
        conn.check_send_data()
    assert conn.data_to_send() == [] and conn.state is State.STA1


def test_the_receive_buffer_is_not_resized_under_exported_views() -> None:
    pair = Pair(max_pdu_length=16384)
    pair.associate()
    small = encode_pdu(PDataTF((PresentationDataValue(1, False, False, b"z" * 100),)))
    held = pair.acc.receive_data(small, pair.now)
    assert isinstance(held[0], PDVData)
    big = encode_pdu(PDataTF((PresentationDataValue(1, False, True, b"q" * 600_000),)))
    # The buffer grows while a view into the old one is still held (resizing it would raise BufferError).
    # Views are valid only until the next receive, by contract.
    events = pair.acc.receive_data(big, pair.now)
    assert pdvs(events) == [(1, False, True, b"q" * 600_000)]
    assert len(held[0].data) == 100


def test_a_pdu_header_costs_nothing_until_its_bytes_arrive() -> None:
    pair = Pair(max_pdu_length=0)
    pair.associate()
    size = len(pair.acc._buf)
    # a P-DATA-TF declaring 4 GiB, then one PDV header declaring almost as much: streamed, never buffered
    header = struct.pack(">BxI", 4, 0xFFFFFFFF) + struct.pack(">IBB", 0xFFFFFFF0, 1, 2)
    assert pair.acc.receive_data(header, pair.now) == []
    assert len(pair.acc._buf) == size
    piece = b"v" * 100_000
    events = pair.acc.receive_data(piece, pair.now)
    assert b"".join(bytes(e.data) for e in events if isinstance(e, PDVData)) == piece
    assert len(pair.acc._buf) <= 256 * 1024


def test_before_association_only_an_association_request_is_buffered() -> None:
    for pdu_type in (2, 3, 4, 5, 6):  # AC, RJ, P-DATA, RELEASE RQ/RP: an A-ABORT on their header alone
        conn = Connection("acceptor")
        conn.connection_made(0.0)
        length = 4 if pdu_type != 4 else 1 << 30
        events = conn.receive_data(struct.pack(">BxI", pdu_type, length), 0.0)
        assert isinstance(events[0], ProviderAbort), pdu_type
        out = joined(conn.data_to_send())
        assert decode_pdu(out) == AAbort(2, AbortReason.UNEXPECTED_PDU)
        assert len(conn._buf) <= 4096
    conn = Connection("acceptor")
    conn.connection_made(0.0)
    assert conn.receive_data(struct.pack(">BxI", 1, 1 << 20), 0.0) == []  # held, capped, and small
    assert len(conn._buf) <= 4096


def test_request_with_bad_context_ids_or_tiny_max_length_is_aborted() -> None:
    contexts = (
        PresentationContextRQ(1, VERIFICATION, (IMPLICIT,)),
        PresentationContextRQ(1, VERIFICATION, (IMPLICIT,)),
    )
    for rq in (
        AAssociateRQ("SCP", "SCU", contexts, user_information(16384)),
        AAssociateRQ("SCP", "SCU", contexts[:1], user_information(6)),
    ):
        conn = Connection("acceptor")
        conn.connection_made(0.0)
        events = conn.receive_data(encode_pdu(rq), 0.0)
        assert isinstance(events[0], ProviderAbort)
        assert decode_pdu(joined(conn.data_to_send())) == AAbort(2, AbortReason.INVALID_PDU_PARAMETER_VALUE)


_PDUS = st.sampled_from(
    [
        make_rq(),
        AAssociateAC("SCP", "SCU", (PresentationContextAC(1, 0, IMPLICIT),), user_information(16384)),
        AAssociateRJ(1, 1, 1),
        PDataTF((PresentationDataValue(1, True, True, b"\x00\x00"),)),
        AReleaseRQ(),
        AReleaseRP(),
        AAbort(0, 0),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    role=st.sampled_from(["requestor", "acceptor"]),
    steps=st.lists(
        st.one_of(_PDUS.map(encode_pdu), st.binary(min_size=6, max_size=40), st.just(b"timer")), max_size=12
    ),
)
def test_any_sequence_of_input_leaves_a_valid_state(role: str, steps: list[bytes]) -> None:
    conn = Connection(role)  # type: ignore[arg-type]
    now = 0.0
    if role == "requestor":
        conn.associate(make_rq(), now)
    conn.connection_made(now)
    for step in steps:
        now += 1.0
        if step == b"timer":
            conn.handle_timer(now + 1000)
        else:
            conn.receive_data(step, now)
        assert isinstance(conn.state, State)
        out = joined(conn.data_to_send())
        if out:
            decode_pdu(out[: 6 + struct.unpack(">I", out[2:6])[0]])  # whatever we send is a valid PDU
    conn.connection_lost(now)
    assert conn.state is State.STA1
