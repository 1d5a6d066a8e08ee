"""Sub-items of the association PDUs (PS3.8 9.3.2-9.3.3, PS3.7 D.3.3), one at a time."""

from __future__ import annotations

import pytest

from aiodicom.errors import AbortReason, AssociationRejected, ProtocolError, describe_rejection
from aiodicom.ul.items import (
    AsyncOperationsWindow,
    ImplementationClassUID,
    ImplementationVersionName,
    MaximumLength,
    PresentationContextAC,
    PresentationContextResult,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityAC,
    UserIdentityRQ,
    UserIdentityType,
    UserInformation,
    decode_uid,
    encode_uid,
    iter_items,
)
from tests.ul.vectors import h

CT = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"


def _encoded(item: object) -> bytes:
    out = bytearray()
    item.encode(out)  # type: ignore[attr-defined]
    return bytes(out)


def _value(item_bytes: bytes) -> memoryview:
    """The value of a single encoded item (after its 4-byte header)."""
    [(_, value)] = list(iter_items(memoryview(item_bytes), "test"))
    return value


# ---------------------------------------------------------------------------------- user information


ROLE = RoleSelection(CT, True, False)
EXTENDED = SOPClassExtendedNegotiation("1.2.840.10008.5.1.4.1.2.1.1", b"\x01")
COMMON = SOPClassCommonExtendedNegotiation("1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.4.2")
IDENTITY = UserIdentityRQ(UserIdentityType.USERNAME, b"alice")


def test_build_puts_the_sub_items_in_item_type_order() -> None:
    # keyword arguments in the reverse order: the result does not depend on it
    info = UserInformation.build(
        user_identity=IDENTITY,
        sop_class_common_extended=(COMMON,),
        sop_class_extended=(EXTENDED,),
        implementation_version_name="V1",
        role_selections=(ROLE, RoleSelection(VERIFICATION, False, True)),
        async_ops_window=AsyncOperationsWindow(2, 1),
        implementation_class_uid="1.2.3.4",
        max_length=0,
    )
    assert info.items == (
        MaximumLength(0),
        ImplementationClassUID("1.2.3.4"),
        AsyncOperationsWindow(2, 1),
        ROLE,
        RoleSelection(VERIFICATION, False, True),
        ImplementationVersionName("V1"),
        EXTENDED,
        COMMON,
        IDENTITY,
    )
    wire_types = [item_type for item_type, _ in iter_items(_value(_encoded(info)), "user information")]
    assert wire_types == [0x51, 0x52, 0x53, 0x54, 0x54, 0x55, 0x56, 0x57, 0x58]


def test_build_properties() -> None:
    info = UserInformation.build(
        max_length=0,  # 0 (unlimited) is a value, not "absent"
        implementation_class_uid="1.2.3.4",
        implementation_version_name="V1",
        async_ops_window=AsyncOperationsWindow(2, 1),
        role_selections=(ROLE,),
        sop_class_extended=(EXTENDED,),
        sop_class_common_extended=(COMMON,),
        user_identity=IDENTITY,
    )
    assert info.max_length == 0
    assert info.implementation_class_uid == "1.2.3.4"
    assert info.implementation_version_name == "V1"
    assert info.async_ops_window == AsyncOperationsWindow(2, 1)
    assert info.role_selections == (ROLE,)
    assert info.sop_class_extended == (EXTENDED,)
    assert info.sop_class_common_extended == (COMMON,)
    assert info.user_identity_rq == IDENTITY
    assert info.user_identity_ac is None
    assert UserInformation.build(user_identity=UserIdentityAC(b"ok")).user_identity_ac == UserIdentityAC(
        b"ok"
    )


def test_empty_user_information() -> None:
    info = UserInformation.build()
    assert info == UserInformation() and info.items == ()
    assert info.max_length is None
    assert info.implementation_class_uid is None
    assert info.implementation_version_name is None
    assert info.async_ops_window is None
    assert info.role_selections == info.sop_class_extended == info.sop_class_common_extended == ()
    assert info.user_identity_rq is None and info.user_identity_ac is None
    assert _encoded(info) == h("50 00 0000")


def test_decode_keeps_the_wire_order_and_skips_unknown_sub_items() -> None:
    wire = h("""
        50 00 001f                                          # 10 + 5 + 8 + 8 = 31
           55 00 0006 "PEER_1"                              # version name first
           5f 00 0001 00                                    # unknown: skipped
           53 00 0004 0000 0000                             # window 0/0: unlimited
           51 00 0004 00008000                              # maximum length last
    """)
    info = UserInformation.decode(_value(wire))
    assert info.items == (
        ImplementationVersionName("PEER_1"),
        AsyncOperationsWindow(0, 0),
        MaximumLength(0x8000),
    )
    assert info.max_length == 0x8000
    assert info.implementation_class_uid is None
    assert _encoded(info) == h('50 00 001a 55 00 0006 "PEER_1" 53 00 0004 0000 0000 51 00 0004 00008000')


def test_properties_read_the_first_of_repeated_sub_items() -> None:
    info = UserInformation(
        (MaximumLength(1), MaximumLength(2), ImplementationVersionName("A"), ImplementationVersionName("B"))
    )
    assert info.max_length == 1
    assert info.implementation_version_name == "A"


# ------------------------------------------------------------------------------- simple sub-items


@pytest.mark.parametrize("value", [0, 16384, 0xFFFFFFFF])
def test_maximum_length(value: int) -> None:
    wire = h("51 00 0004") + value.to_bytes(4, "big")
    assert _encoded(MaximumLength(value)) == wire
    assert MaximumLength.decode(_value(wire)) == MaximumLength(value)


@pytest.mark.parametrize("wire", ["51 00 0003 000040", "51 00 0005 0000400000", "51 00 0000"])
def test_maximum_length_of_the_wrong_size(wire: str) -> None:
    with pytest.raises(ProtocolError) as info:
        MaximumLength.decode(_value(h(wire)))
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


def test_asynchronous_operations_window() -> None:
    assert AsyncOperationsWindow() == AsyncOperationsWindow(1, 1)  # the default: synchronous
    assert _encoded(AsyncOperationsWindow(0xFFFF, 0)) == h("53 00 0004 ffff 0000")
    assert AsyncOperationsWindow.decode(_value(h("53 00 0004 0005 0003"))) == AsyncOperationsWindow(5, 3)
    with pytest.raises(ProtocolError):
        AsyncOperationsWindow.decode(_value(h("53 00 0002 0005")))


def test_implementation_version_name_is_decoded_losslessly() -> None:
    assert _encoded(ImplementationVersionName("OFFIS_DCMTK_367")) == h('55 00 000f "OFFIS_DCMTK_367"')
    # trailing NUL or space padding is not part of the name
    assert ImplementationVersionName.decode(memoryview(b"PEER_1 \x00")) == ImplementationVersionName("PEER_1")
    # not ISO 646, but informative only: kept (latin-1) rather than refused or garbled, and re-encodable
    odd = ImplementationVersionName.decode(memoryview(b"D\xe9MO"))
    assert odd == ImplementationVersionName("D\xe9MO")
    assert _encoded(odd) == h("55 00 0004 44 e9 4d 4f")


def test_implementation_class_uid() -> None:
    assert _encoded(ImplementationClassUID("1.2.3")) == h('52 00 0005 "1.2.3"')
    assert ImplementationClassUID.decode(memoryview(b"1.2.3\x00")) == ImplementationClassUID("1.2.3")


# --------------------------------------------------------------------------------- role selection


@pytest.mark.parametrize(("scu", "scp"), [(False, False), (True, False), (False, True), (True, True)])
def test_role_selection(scu: bool, scp: bool) -> None:
    # PS3.7 Table D.3-9: u16 UID length, SOP class UID, SCU role, SCP role: 2 + 17 + 1 + 1 = 21
    wire = h(f'54 00 0015 0011 "1.2.840.10008.1.1" 0{int(scu)} 0{int(scp)}')
    role = RoleSelection(VERIFICATION, scu, scp)
    assert _encoded(role) == wire
    assert RoleSelection.decode(_value(wire)) == role


def test_role_selection_accepts_a_padded_uid() -> None:
    wire = h('54 00 0016 0012 "1.2.840.10008.1.1" 00 01 00')
    assert RoleSelection.decode(_value(wire)) == RoleSelection(VERIFICATION, True, False)


@pytest.mark.parametrize(
    "wire",
    [
        '54 00 0015 0011 "1.2.840.10008.1.1" 02 00',  # SCU role 2
        '54 00 0015 0011 "1.2.840.10008.1.1" 00 ff',  # SCP role 0xFF
        '54 00 0014 0011 "1.2.840.10008.1.1" 01',  # SCP role missing
        '54 00 0016 0011 "1.2.840.10008.1.1" 01 01 00',  # a byte too many
        '54 00 0015 0013 "1.2.840.10008.1.1" 01 01',  # UID length overruns
        "54 00 0001 00",  # truncated UID length
    ],
)
def test_malformed_role_selection(wire: str) -> None:
    with pytest.raises(ProtocolError) as info:
        RoleSelection.decode(_value(h(wire)))
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


# --------------------------------------------------------------------------- extended negotiation


def test_sop_class_extended_negotiation() -> None:
    item = SOPClassExtendedNegotiation("1.2.840.10008.5.1.4.1.2.1.1", b"\x01\x01\x00")
    wire = h('56 00 0020 001b "1.2.840.10008.5.1.4.1.2.1.1" 01 01 00')
    assert _encoded(item) == wire
    assert SOPClassExtendedNegotiation.decode(_value(wire)) == item
    # no service class application information at all
    assert SOPClassExtendedNegotiation.decode(_value(h('56 00 0007 0005 "1.2.3"'))) == (
        SOPClassExtendedNegotiation("1.2.3", b"")
    )


def test_sop_class_common_extended_negotiation() -> None:
    item = SOPClassCommonExtendedNegotiation("1.2.3", "1.2.840.10008.4.2", ("1.2.4", "1.2.5"))
    # PS3.7 Table D.3-12: byte 2 is the sub-item version, 0
    wire = h('57 00 002a 0005 "1.2.3" 0011 "1.2.840.10008.4.2" 000e 0005 "1.2.4" 0005 "1.2.5"')  # 7 + 19 + 16
    assert _encoded(item) == wire
    assert SOPClassCommonExtendedNegotiation.decode(_value(wire)) == item
    assert _encoded(SOPClassCommonExtendedNegotiation("1.2.3", "1.2.4")) == (
        h('57 00 0010 0005 "1.2.3" 0005 "1.2.4" 0000')
    )


def test_sop_class_common_extended_negotiation_leniency() -> None:
    expected = SOPClassCommonExtendedNegotiation("1.2.3", "1.2.4")
    # the related general SOP class identification length missing altogether
    assert (
        SOPClassCommonExtendedNegotiation.decode(_value(h('57 00 000e 0005 "1.2.3" 0005 "1.2.4"')))
        == expected
    )
    # bytes after the related classes (reserved in later editions) are ignored
    assert SOPClassCommonExtendedNegotiation.decode(
        _value(h('57 00 0012 0005 "1.2.3" 0005 "1.2.4" 0000 ffff'))
    ) == (expected)


# ---------------------------------------------------------------------------------- user identity


def test_user_identity_types() -> None:
    assert (
        UserIdentityType.USERNAME,
        UserIdentityType.USERNAME_PASSWORD,
        UserIdentityType.KERBEROS,
        UserIdentityType.SAML,
        UserIdentityType.JWT,
    ) == (1, 2, 3, 4, 5)


@pytest.mark.parametrize(
    ("item", "wire"),
    [
        # PS3.7 Table D.3-14: type, positive response requested, u16 + primary, u16 + secondary
        (UserIdentityRQ(1, b"alice"), '58 00 000b 01 00 0005 "alice" 0000'),
        (UserIdentityRQ(1, b"alice", positive_response_requested=True), '58 00 000b 01 01 0005 "alice" 0000'),
        (UserIdentityRQ(2, b"alice", b"s3cret", True), '58 00 0011 02 01 0005 "alice" 0006 "s3cret"'),
        (UserIdentityRQ(3, b"\x60\x82"), "58 00 0008 03 00 0002 6082 0000"),
        (UserIdentityRQ(4, b"<saml/>"), '58 00 000d 04 00 0007 "<saml/>" 0000'),
        (UserIdentityRQ(5, b"a.b.c"), '58 00 000b 05 00 0005 "a.b.c" 0000'),
        (UserIdentityRQ(2, b"", b""), "58 00 0006 02 00 0000 0000"),
    ],
)
def test_user_identity_rq(item: UserIdentityRQ, wire: str) -> None:
    assert _encoded(item) == h(wire)
    assert UserIdentityRQ.decode(_value(h(wire))) == item


def test_user_identity_rq_without_a_secondary_length_field_is_accepted() -> None:
    assert UserIdentityRQ.decode(_value(h('58 00 0009 01 00 0005 "alice"'))) == UserIdentityRQ(1, b"alice")


@pytest.mark.parametrize(
    "wire",
    [
        "58 00 0003 01 00 00",  # shorter than type, flag and primary length
        '58 00 000b 01 00 0009 "alice" 0000',  # primary overruns
        '58 00 000b 01 00 0005 "alice" 0001',  # secondary overruns
    ],
)
def test_malformed_user_identity_rq(wire: str) -> None:
    with pytest.raises(ProtocolError) as info:
        UserIdentityRQ.decode(_value(h(wire)))
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


def test_user_identity_ac() -> None:
    assert _encoded(UserIdentityAC(b"ticket")) == h('59 00 0008 0006 "ticket"')
    assert _encoded(UserIdentityAC(b"")) == h("59 00 0002 0000")
    assert UserIdentityAC.decode(_value(h('59 00 0008 0006 "ticket"'))) == UserIdentityAC(b"ticket")
    for wire in ("59 00 0001 00", '59 00 0004 0006 "ti"'):
        with pytest.raises(ProtocolError):
            UserIdentityAC.decode(_value(h(wire)))


def test_fields_longer_than_65535_bytes_are_refused_on_encode() -> None:
    with pytest.raises(ValueError, match="65535"):
        _encoded(UserIdentityRQ(4, bytes(0x10000)))
    with pytest.raises(ValueError, match="65535"):
        _encoded(SOPClassExtendedNegotiation("1.2.3", bytes(0xFFFF)))


# ------------------------------------------------------------------------------ presentation contexts


def test_presentation_context_rq() -> None:
    context = PresentationContextRQ(255, VERIFICATION, ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2"))
    wire = h("""
        20 00 0045 ff 00 00 00                              # 4 + 21 + 23 + 21 = 69
           30 00 0011 "1.2.840.10008.1.1"
           40 00 0013 "1.2.840.10008.1.2.1"
           40 00 0011 "1.2.840.10008.1.2"
    """)
    assert _encoded(context) == wire
    assert PresentationContextRQ.decode(_value(wire)) == context


@pytest.mark.parametrize(
    ("result", "accepted"),
    [(0, True), (1, False), (2, False), (3, False), (4, False)],
)
def test_presentation_context_ac_results(result: int, accepted: bool) -> None:
    context = PresentationContextAC(1, result, "1.2.840.10008.1.2" if accepted else None)
    assert context.accepted is accepted
    assert PresentationContextResult.NAMES[result]
    wire = _encoded(context)
    assert PresentationContextAC.decode(_value(wire)) == context
    assert wire[:8] == h(f"21 00 00{len(wire) - 4:02x} 01 00 0{result} 00")


def test_presentation_context_result_names() -> None:
    assert PresentationContextResult.NAMES == {
        PresentationContextResult.ACCEPTANCE: "acceptance",
        PresentationContextResult.USER_REJECTION: "user-rejection",
        PresentationContextResult.NO_REASON: "no-reason (provider rejection)",
        PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED: (
            "abstract-syntax-not-supported (provider rejection)"
        ),
        PresentationContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED: (
            "transfer-syntaxes-not-supported (provider rejection)"
        ),
    }


@pytest.mark.parametrize("context_id", [0, 2, 254])
def test_even_presentation_context_ids_are_refused(context_id: int) -> None:
    value = bytes((context_id, 0, 0, 0)) + h('30 00 0011 "1.2.840.10008.1.1" 40 00 0011 "1.2.840.10008.1.2"')
    with pytest.raises(ProtocolError) as info:
        PresentationContextRQ.decode(memoryview(value))
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE
    with pytest.raises(ProtocolError) as info:
        PresentationContextAC.decode(_value(h(f"21 00 0004 {context_id:02x} 00 03 00")))
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


# ------------------------------------------------------------------------------------- UIDs, items


def test_uids() -> None:
    assert decode_uid(b"1.2.3") == "1.2.3"
    assert (
        decode_uid(b"1.2.3\x00") == decode_uid(b"1.2.3 ") == decode_uid(memoryview(b"1.2.3\x00")) == "1.2.3"
    )
    assert encode_uid("1.2.3") == b"1.2.3"  # never padded in a PDU (PS3.8 Annex F)
    with pytest.raises(ProtocolError) as info:
        decode_uid(b"1.2.\xb3")
    assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE
    with pytest.raises(ValueError, match="not ASCII"):
        encode_uid("1.2.\u00b3")


def test_iter_items() -> None:
    data = memoryview(h('10 00 0003 "abc" 99 ff 0000 40 00 0001 "x"'))
    assert [(item_type, bytes(value)) for item_type, value in iter_items(data, "test")] == [
        (0x10, b"abc"),
        (0x99, b""),
        (0x40, b"x"),
    ]
    for bad in ('10 00 0003 "abc" 40 00 00', '10 00 0004 "abc"'):
        with pytest.raises(ProtocolError) as info:
            list(iter_items(memoryview(h(bad)), "test"))
        assert info.value.reason is AbortReason.INVALID_PDU_PARAMETER_VALUE


# ------------------------------------------------------------------------------------------ rejection


@pytest.mark.parametrize(
    ("result", "source", "reason", "text"),
    [
        (1, 1, 1, "association rejected permanently by the service-user: no-reason-given"),
        (
            1,
            1,
            2,
            "association rejected permanently by the service-user: application-context-name-not-supported",
        ),
        (1, 1, 3, "association rejected permanently by the service-user: calling-AE-title-not-recognized"),
        (1, 1, 7, "association rejected permanently by the service-user: called-AE-title-not-recognized"),
        (2, 2, 1, "association rejected transiently by the service-provider (ACSE): no-reason-given"),
        (
            1,
            2,
            2,
            "association rejected permanently by the service-provider (ACSE): protocol-version-not-supported",
        ),
        (
            2,
            3,
            1,
            "association rejected transiently by the service-provider (presentation): temporary-congestion",
        ),
        (
            2,
            3,
            2,
            "association rejected transiently by the service-provider (presentation): local-limit-exceeded",
        ),
        # reserved or unknown values are named by number, never refused
        (1, 1, 5, "association rejected permanently by the service-user: reason 5"),
        (3, 4, 9, "association rejected (result 3) by the source 4: reason 9"),
    ],
)
def test_describe_rejection(result: int, source: int, reason: int, text: str) -> None:
    assert describe_rejection(result, source, reason) == text
    error = AssociationRejected(result, source, reason)
    assert str(error) == text
    assert (error.result, error.source, error.reason) == (result, source, reason)
