"""Every PDU vector decoded whole, byte by byte through a connection, with trailing bytes; round trips."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiodicom.errors import AbortReason, ProtocolError
from aiodicom.ul import decode_pdu, encode_pdu
from aiodicom.ul.connection import Connection, ReleaseComplete
from aiodicom.ul.items import (
    AsyncOperationsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityAC,
    UserIdentityRQ,
    UserInformation,
)
from aiodicom.ul.pdu import (
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    PresentationDataValue,
)
from tests.ul.vectors import MALFORMED, VECTORS, Vector


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_decodes_whole(vector: Vector) -> None:
    for form in (vector.data, bytearray(vector.data), memoryview(vector.data)):
        assert decode_pdu(form) == vector.pdu
    if vector.canonical:
        assert encode_pdu(vector.pdu) == vector.data
    assert decode_pdu(encode_pdu(vector.pdu)) == vector.pdu


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_with_trailing_bytes_is_refused_whole(vector: Vector) -> None:
    with pytest.raises(ProtocolError):
        decode_pdu(vector.data + b"\x00")


def _connection_for(vector: Vector) -> Connection:
    """A connection in a state where the vector's PDU is expected."""
    if isinstance(vector.pdu, AAssociateRQ):
        conn = Connection("acceptor")
        conn.connection_made(0.0)
        return conn
    conn = Connection("requestor")
    conn.associate(next(v.pdu for v in VECTORS if isinstance(v.pdu, AAssociateRQ)), 0.0)  # type: ignore[arg-type]
    conn.connection_made(0.0)
    if not isinstance(vector.pdu, AAssociateAC | AAssociateRJ | AAbort):
        conn.receive_data(next(v.data for v in VECTORS if isinstance(v.pdu, AAssociateAC)), 0.0)
    if isinstance(vector.pdu, AReleaseRP):
        conn.send(AReleaseRQ(), 0.0)  # Sta7: awaiting the A-RELEASE-RP
    return conn


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_fed_one_byte_at_a_time_and_followed_by_more(vector: Vector) -> None:
    conn = _connection_for(vector)
    events = []
    for i in range(len(vector.data)):
        events += conn.receive_data(vector.data[i : i + 1], 0.0)
    expected = ReleaseComplete() if isinstance(vector.pdu, AReleaseRP) else vector.pdu
    assert events == [expected]
    # a PDU followed by the start of another: the first is delivered, the rest waits
    conn = _connection_for(vector)
    events = conn.receive_data(vector.data + vector.data[:3], 0.0)
    assert events[0] == expected


@pytest.mark.parametrize(("name", "data", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_pdus_name_the_abort_reason(name: str, data: bytes, reason: AbortReason) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_pdu(data)
    assert info.value.reason is reason


# ------------------------------------------------------------------------------------------- hypothesis

uids = (
    st.lists(st.integers(0, 99999).map(str), min_size=2, max_size=8)
    .map(".".join)
    .filter(lambda u: len(u) <= 64)
)
ae_titles = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\\"), min_size=1, max_size=16
)
u16 = st.integers(0, 0xFFFF)
short_bytes = st.binary(max_size=40)

user_items = st.one_of(
    st.builds(MaximumLength, st.integers(0, 0xFFFFFFFF)),
    st.builds(ImplementationClassUID, uids),
    st.builds(
        ImplementationVersionName,
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16),
    ),
    st.builds(AsyncOperationsWindow, u16, u16),
    st.builds(RoleSelection, uids, st.booleans(), st.booleans()),
    st.builds(SOPClassExtendedNegotiation, uids, short_bytes),
    st.builds(SOPClassCommonExtendedNegotiation, uids, uids, st.lists(uids, max_size=3).map(tuple)),
    st.builds(UserIdentityRQ, st.integers(1, 5), short_bytes, short_bytes, st.booleans()),
    st.builds(UserIdentityAC, short_bytes),
)
user_infos = st.lists(user_items, max_size=6).map(lambda items: UserInformation(tuple(items)))
odd_ids = st.integers(0, 127).map(lambda i: 2 * i + 1)
rq_contexts = st.builds(
    PresentationContextRQ, odd_ids, uids, st.lists(uids, min_size=1, max_size=4).map(tuple)
)
ac_contexts = st.one_of(
    st.builds(PresentationContextAC, odd_ids, st.just(0), uids),
    st.builds(PresentationContextAC, odd_ids, st.integers(1, 4), st.none()),
)
pdus = st.one_of(
    st.builds(
        AAssociateRQ, ae_titles, ae_titles, st.lists(rq_contexts, max_size=5).map(tuple), user_infos, uids
    ),
    st.builds(
        AAssociateAC, ae_titles, ae_titles, st.lists(ac_contexts, max_size=5).map(tuple), user_infos, uids
    ),
    st.builds(AAssociateRJ, st.integers(1, 2), st.integers(1, 3), st.integers(0, 7)),
    st.builds(
        PDataTF,
        st.lists(
            st.builds(PresentationDataValue, odd_ids, st.booleans(), st.booleans(), short_bytes),
            min_size=1,
            max_size=4,
        ).map(tuple),
    ),
    st.just(AReleaseRQ()),
    st.just(AReleaseRP()),
    st.builds(AAbort, st.sampled_from([0, 2]), st.integers(0, 6)),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(pdus)
def test_any_pdu_round_trips(pdu: object) -> None:
    wire = encode_pdu(pdu)  # type: ignore[arg-type]
    assert decode_pdu(wire) == pdu
    assert encode_pdu(decode_pdu(wire)) == wire


@settings(max_examples=500)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.sampled_from([v.data for v in VECTORS]).flatmap(
            lambda data: st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)).map(
                lambda mut: data[: mut[0]] + bytes([mut[1]]) + data[mut[0] + 1 :]
            )
        ),
    )
)
def test_arbitrary_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    try:
        decode_pdu(data)
    except ProtocolError as exc:
        assert isinstance(exc.reason, AbortReason)
