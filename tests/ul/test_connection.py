"""The sans-IO connection: an in-memory pair of peers, timers as plain numbers, faults byte by byte."""

from __future__ import annotations

import contextlib
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Literal

import pytest
from hypothesis import given, settings, strategies as st

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
from aiodicom.ul.fsm import TRANSITIONS, Action, Event, State, next_state
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
    pdata_header,
)
from tests.ul.streamed import kept, pdvs


@contextlib.contextmanager
def allocated() -> Iterator[list[int]]:
    """The peak memory allocated within the block, above what was allocated before it (tracemalloc)."""
    result = [0]
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        yield result
        result[0] = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


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


def test_no_answer_to_the_request_is_a_local_abort_request() -> None:
    # Evt15 in Sta5 (AA-1): the A-ABORT goes out, then Sta13 until the transport closes or ARTIM expires.
    conn = Connection("requestor", acse_timeout=2.0, artim_timeout=5.0)
    conn.associate(make_rq(), 0.0)
    assert conn.connection_made(0.0)
    assert conn.state is State.STA5 and conn.get_timer() == 2.0
    assert conn.handle_timer(1.9) == [] and conn.state is State.STA5
    events = conn.handle_timer(2.0)
    assert events == [
        ProviderAbort(AbortReason.NOT_SPECIFIED, "no answer to the A-ASSOCIATE-RQ in time", True)
    ]
    assert joined(conn.data_to_send()) == bytes.fromhex("07 00 00000004 00 00 00 00")  # source 0, reason 0
    assert conn.state is State.STA13 and not conn.wants_close
    assert conn.get_timer() == 7.0  # ARTIM, from the abort; the wait for the A-ASSOCIATE-AC is over
    assert conn.handle_timer(6.9) == [] and conn.state is State.STA13
    assert conn.handle_timer(7.0) == []  # Evt18 in Sta13: AA-2
    assert conn.state is State.STA1 and conn.wants_close and conn.get_timer() is None
    assert conn.data_to_send() == []


def test_the_peer_closing_after_the_acse_timeout_abort_ends_quietly() -> None:
    conn = Connection("requestor", acse_timeout=2.0)
    conn.associate(make_rq(), 0.0)
    conn.connection_made(0.0)
    conn.handle_timer(2.0)
    conn.data_to_send()
    assert conn.connection_lost(2.5) == []  # Evt17 in Sta13: AR-5, no second indication
    assert conn.state is State.STA1 and conn.get_timer() is None


def test_a_local_abort_while_awaiting_the_answer_stops_waiting_for_it() -> None:
    conn = Connection("requestor", acse_timeout=2.0, artim_timeout=30.0)
    conn.associate(make_rq(), 0.0)
    conn.connection_made(0.0)
    assert decode_pdu(joined(conn.send(AAbort(AbortSource.SERVICE_USER, 0), 1.0))) == AAbort(0, 0)
    assert conn.state is State.STA13
    assert conn.get_timer() == 31.0  # ARTIM only: a deadline that can no longer fire would spin the timer
    assert conn.handle_timer(2.0) == [] and conn.data_to_send() == []


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
        conn.send_data([pdata_header(1, True, True, 1), b"x"])
    assert conn.data_to_send() == [] and conn.state is State.STA1


def _data_buffers() -> list[bytes | memoryview]:
    """Two PDVs as aiodicom.dimse.fragment cuts them: a P-DATA-TF header, then a slice of the value."""
    value = memoryview(b"0123456789")
    return [pdata_header(1, False, False, 6), value[:6], pdata_header(1, False, True, 4), value[6:]]


def test_data_goes_through_the_table_and_its_buffers_pass_through_untouched() -> None:
    pair = Pair()
    pair.associate()
    buffers = _data_buffers()
    items = list(buffers)
    out = pair.req.send_data(buffers)  # Sta6, Evt9: DT-1
    assert out is buffers and all(a is b for a, b in zip(out, items, strict=True))  # no copy, no join
    assert pair.req.state is State.STA6 and pair.req.data_to_send() == []
    assert pdvs(pair.acc.receive_data(joined(out), pair.now)) == [(1, False, True, b"0123456789")]
    # Sta8 (the peer asked to release, we have not answered): Evt9 is AR-7, and the state stays.
    pair.to_acceptor(joined(pair.req.send(AReleaseRQ(), pair.now)))
    assert pair.acc.state is State.STA8 and pair.req.state is State.STA7
    buffers = _data_buffers()
    items = list(buffers)
    out = pair.acc.send_data(buffers)
    assert out is buffers and all(a is b for a, b in zip(out, items, strict=True))
    assert pair.acc.state is State.STA8
    # The requestor, awaiting the A-RELEASE-RP, still takes the data (AR-6).
    assert pdvs(pair.req.receive_data(joined(out), pair.now)) == [(1, False, True, b"0123456789")]
    assert pair.req.state is State.STA7


def test_data_buffers_in_any_sequence_come_back_as_a_list_of_the_same_objects() -> None:
    pair = Pair()
    pair.associate()
    items = _data_buffers()
    out = pair.req.send_data(tuple(items))
    assert isinstance(out, list) and all(a is b for a, b in zip(out, items, strict=True))


def test_sending_a_pdata_pdu_object_takes_the_same_cell() -> None:
    pair = Pair()
    pair.associate()
    pdu = PDataTF((PresentationDataValue(1, True, True, b"ab"),))
    assert pair.req.send(pdu, pair.now) == [encode_pdu(pdu)] and pair.req.state is State.STA6


_BLANK_FOR_DATA = [State.STA1, State.STA2, State.STA3, State.STA4, State.STA5, State.STA7, State.STA10,
                   State.STA11, State.STA13]  # fmt: skip


@pytest.mark.parametrize("state", _BLANK_FOR_DATA, ids=lambda s: s.value)
def test_data_where_the_cell_is_blank_is_a_usage_error_and_sends_nothing(state: State) -> None:
    assert (state, Event.EVT9) not in TRANSITIONS
    for role in ("requestor", "acceptor"):
        if state not in _REACH[role]:
            continue
        conn = _REACH[role][state]()
        assert conn.state is state
        with pytest.raises(
            UsageError, match=rf"P-DATA request primitive \(Evt9\) is not allowed in {state.value} "
        ):
            conn.send_data(_data_buffers())
        assert conn.data_to_send() == [] and conn.state is state


# Every cell of Table 9-10, through the public API: a connection is brought to the cell's state, the event
# happens, and the connection must end in the action's next state having sent what the action sends.
# Sta9 and Sta12 pass by themselves (the connection answers a release collision at once): their cells run
# only as the continuation of AR-8 and AR-10.


def _requestor(*pdus: object) -> Callable[[], Connection]:
    def make() -> Connection:
        conn = Connection("requestor")
        conn.associate(make_rq(), 0.0)
        conn.connection_made(0.0)
        for pdu in pdus:
            _apply(conn, pdu)
        conn.data_to_send()
        return conn

    return make


def _acceptor(*pdus: object) -> Callable[[], Connection]:
    def make() -> Connection:
        conn = Connection("acceptor")
        conn.connection_made(0.0)
        for pdu in pdus:
            _apply(conn, pdu)
        conn.data_to_send()
        return conn

    return make


def _apply(conn: Connection, step: object) -> None:
    """("in", pdu): received from the peer; ("out", pdu): sent by the local user."""
    assert isinstance(step, tuple)
    direction, pdu = step
    if direction == "in":
        conn.receive_data(encode_pdu(pdu), 0.0)
    else:
        conn.send(pdu, 0.0)


def _unassociated(role: Literal["requestor", "acceptor"], associate: bool) -> Callable[[], Connection]:
    def make() -> Connection:
        conn = Connection(role)
        if associate:
            conn.associate(make_rq(), 0.0)
        return conn

    return make


_AC = AAssociateAC("SCP", "SCU", (PresentationContextAC(1, 0, IMPLICIT),), user_information(16384))
_ABORT = AAbort(AbortSource.SERVICE_USER, 0)
_REACH: dict[str, dict[State, Callable[[], Connection]]] = {
    "requestor": {
        State.STA1: _unassociated("requestor", False),
        State.STA4: _unassociated("requestor", True),
        State.STA5: _requestor(),
        State.STA6: _requestor(("in", _AC)),
        State.STA7: _requestor(("in", _AC), ("out", AReleaseRQ())),
        State.STA8: _requestor(("in", _AC), ("in", AReleaseRQ())),
        State.STA11: _requestor(("in", _AC), ("out", AReleaseRQ()), ("in", AReleaseRQ())),
        State.STA13: _requestor(("in", _AC), ("out", _ABORT)),
    },
    "acceptor": {
        State.STA1: _unassociated("acceptor", False),
        State.STA2: _acceptor(),
        State.STA3: _acceptor(("in", make_rq())),
        State.STA6: _acceptor(("in", make_rq()), ("out", _AC)),
        State.STA7: _acceptor(("in", make_rq()), ("out", _AC), ("out", AReleaseRQ())),
        State.STA8: _acceptor(("in", make_rq()), ("out", _AC), ("in", AReleaseRQ())),
        State.STA10: _acceptor(("in", make_rq()), ("out", _AC), ("out", AReleaseRQ()), ("in", AReleaseRQ())),
        State.STA13: _acceptor(("in", make_rq()), ("out", _AC), ("out", _ABORT)),
    },
}
_PEER_PDUS = {Event.EVT3: _AC, Event.EVT4: AAssociateRJ(1, 1, 1), Event.EVT6: make_rq(),
              Event.EVT10: PDataTF((PresentationDataValue(1, True, True, b"\x00\x00"),)),
              Event.EVT12: AReleaseRQ(), Event.EVT13: AReleaseRP(), Event.EVT16: _ABORT}  # fmt: skip
_USER_PDUS = {Event.EVT7: _AC, Event.EVT8: AAssociateRJ(1, 1, 1), Event.EVT11: AReleaseRQ(),
              Event.EVT14: AReleaseRP(), Event.EVT15: _ABORT}  # fmt: skip
#: The types of the PDUs each action puts on the wire (none for the others); the P-DATA request here is two
#: P-DATA-TF PDUs (see _data_buffers).
_SENDS = {Action.AE_2: [1], Action.AE_7: [2], Action.AE_8: [3], Action.DT_1: [4, 4], Action.AR_7: [4, 4],
          Action.AR_1: [5], Action.AR_4: [6], Action.AR_9: [6], Action.AA_1: [7], Action.AA_7: [7],
          Action.AA_8: [7]}  # fmt: skip


def _fire(conn: Connection, event: Event) -> Buffers | None:
    """Make ``event`` happen to ``conn``; returns what it sent, or None when the role cannot have it."""
    out: Buffers = []
    if event is Event.EVT1:
        conn.associate(make_rq(), 1.0)
    elif event in (Event.EVT2, Event.EVT5):
        if (event is Event.EVT2) != conn.requestor:
            return None
        out = conn.connection_made(1.0)
    elif event in _PEER_PDUS:
        conn.receive_data(encode_pdu(_PEER_PDUS[event]), 1.0)
    elif event is Event.EVT9:
        out = conn.send_data(_data_buffers())
    elif event in _USER_PDUS:
        out = conn.send(_USER_PDUS[event], 1.0)
    elif event is Event.EVT17:
        conn.connection_lost(1.0)
    elif event is Event.EVT18:
        deadline = conn.get_timer()
        assert deadline is not None  # ARTIM runs in both states that have an Evt18 cell
        conn.handle_timer(deadline)
    else:
        assert event is Event.EVT19
        conn.receive_data(b"\x0a\x00\x00\x00\x00\x00", 1.0)  # an unrecognized PDU type
    return out + conn.data_to_send()


def _expected(action: Action, requestor: bool) -> tuple[State, list[int]]:
    """The state after ``action`` and the PDU types sent, with the release collision run to its end."""
    if action is Action.AR_8 and requestor:
        return State.STA11, [6]  # Sta9, then the A-RELEASE response at once: AR-9
    if action is Action.AR_10:
        return State.STA13, [6]  # Sta12, then the A-RELEASE response at once: AR-4
    return next_state(action, requestor=requestor), _SENDS.get(action, [])


_CELLS = [(state, event, action) for (state, event), action in TRANSITIONS.items()
          if state not in (State.STA9, State.STA12)]  # fmt: skip


@pytest.mark.parametrize(("state", "event", "action"), _CELLS, ids=lambda v: v.value)
def test_every_cell_takes_its_action(state: State, event: Event, action: Action) -> None:
    ran = 0
    for role, reach in _REACH.items():
        if state not in reach:
            continue
        conn = reach[state]()
        assert conn.state is state
        buffers = _fire(conn, event)
        if buffers is None:
            continue
        ran += 1
        expected_state, expected_sent = _expected(action, role == "requestor")
        out = joined(buffers)
        sent = []
        while out:
            sent.append(out[0])
            out = out[6 + struct.unpack_from(">I", out, 2)[0] :]
        assert (conn.state, sent) == (expected_state, expected_sent), role
    assert ran, "no role reaches this cell"


def test_every_action_is_taken_through_the_public_api() -> None:
    taken = {action for _, _, action in _CELLS} | {Action.AR_9, Action.AR_4}
    assert taken == set(Action)
    assert len(_CELLS) == 123 - 2 * 11  # all but the 11 cells each of Sta9 and Sta12


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
    # a P-DATA-TF declaring 4 GiB, then one PDV header declaring almost as much: streamed, never buffered
    header = struct.pack(">BxI", 4, 0xFFFFFFFF) + struct.pack(">IBB", 0xFFFFFFF0, 1, 2)
    piece = b"v" * 100_000
    with allocated() as header_cost:
        assert pair.acc.receive_data(header, pair.now) == []
    assert header_cost[0] < 16 * 1024
    with allocated() as piece_cost:
        events = pair.acc.receive_data(piece, pair.now)
        assert b"".join(bytes(e.data) for e in events if isinstance(e, PDVData)) == piece
    assert piece_cost[0] <= 256 * 1024 + 2 * len(piece)  # the streaming buffer, the piece and its copy


def test_before_association_only_an_association_request_is_buffered() -> None:
    for pdu_type in (2, 3, 4, 5, 6):  # AC, RJ, P-DATA, RELEASE RQ/RP: an A-ABORT on their header alone
        conn = Connection("acceptor")
        conn.connection_made(0.0)
        length = 4 if pdu_type != 4 else 1 << 30
        with allocated() as cost:
            events = conn.receive_data(struct.pack(">BxI", pdu_type, length), 0.0)
        assert isinstance(events[0], ProviderAbort), pdu_type
        out = joined(conn.data_to_send())
        assert decode_pdu(out) == AAbort(2, AbortReason.UNEXPECTED_PDU)
        assert cost[0] <= 8 * 1024, pdu_type
    conn = Connection("acceptor")
    conn.connection_made(0.0)
    with allocated() as cost:
        assert conn.receive_data(struct.pack(">BxI", 1, 1 << 20), 0.0) == []  # held, capped, and small
    assert cost[0] <= 8 * 1024


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
