"""PDU byte vectors, written from the field layouts of PS3.8 9.3 and PS3.7 D.3.3 (not by our encoder).

Each vector: a name, wire bytes, and the PDU they decode to; ``canonical`` ones re-encode to the same bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aiodicom.errors import AbortReason
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
    PDU,
    AAbort,
    AAssociateAC,
    AAssociateRJ,
    AAssociateRQ,
    AReleaseRP,
    AReleaseRQ,
    PDataTF,
    PresentationDataValue,
)

APP = b"1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class Vector:
    name: str
    data: bytes
    pdu: PDU
    canonical: bool = True


def item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(value)) + value


def u16(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxI", pdu_type, len(body)) + body


def ae(title: str) -> bytes:
    return title.encode().ljust(16, b" ")


def assoc(pdu_type: int, called: bytes, calling: bytes, *items: bytes) -> bytes:
    return pdu(pdu_type, b"\x00\x01\x00\x00" + called + calling + bytes(32) + b"".join(items))


def rq_context(cid: int, abstract: str, *transfer: str) -> bytes:
    body = bytes((cid, 0, 0, 0)) + item(0x30, abstract.encode())
    return item(0x20, body + b"".join(item(0x40, ts.encode()) for ts in transfer))


def ac_context(cid: int, result: int, transfer: str | None) -> bytes:
    return item(0x21, bytes((cid, 0, result, 0)) + (item(0x40, transfer.encode()) if transfer else b""))


MAX16K = item(0x51, struct.pack(">I", 16384))
IMPL_UID = "1.2.3.4"
IMPL = item(0x52, IMPL_UID.encode())
VERSION = item(0x55, b"TEST_1")
BASE_ITEMS = (MaximumLength(16384), ImplementationClassUID(IMPL_UID))


def user_info(*sub_items: bytes) -> bytes:
    return item(0x50, b"".join(sub_items))


def rq_with(name: str, wire_items: tuple[bytes, ...], decoded: tuple[object, ...]) -> Vector:
    return Vector(
        name,
        assoc(
            0x01,
            ae("ANY-SCP"),
            ae("ECHOSCU"),
            item(0x10, APP),
            rq_context(1, VERIFICATION, IMPLICIT),
            user_info(MAX16K, IMPL, *wire_items),
        ),
        AAssociateRQ(
            "ANY-SCP",
            "ECHOSCU",
            (PresentationContextRQ(1, VERIFICATION, (IMPLICIT,)),),
            UserInformation((*BASE_ITEMS, *decoded)),
        ),  # type: ignore[arg-type]
    )


# An A-ASSOCIATE-RQ captured from DCMTK 3.6.7 echoscu (-aet DCMTK -aec ANY-SCP).
DCMTK_ECHOSCU_RQ = bytes.fromhex(
    "0100000000cd00010000414e592d53435020202020202020202044434d544b20202020202020202020200000000000000000"
    "00000000000000000000000000000000000000000000000010000015312e322e3834302e31303030382e332e312e312e3120"
    "00002e0100ff0030000011312e322e3834302e31303030382e312e3140000011312e322e3834302e31303030382e312e3250"
    "00003a51000004000040005200001b312e322e3237362e302e373233303031302e332e302e332e362e375500000f4f464649"
    "535f44434d544b5f333637"
)

VECTORS: list[Vector] = [
    Vector(
        "A-ASSOCIATE-RQ from DCMTK echoscu",
        DCMTK_ECHOSCU_RQ,
        AAssociateRQ(
            "ANY-SCP",
            "DCMTK",
            (PresentationContextRQ(1, VERIFICATION, (IMPLICIT,)),),
            UserInformation(
                (
                    MaximumLength(16384),
                    ImplementationClassUID("1.2.276.0.7230010.3.0.3.6.7"),
                    ImplementationVersionName("OFFIS_DCMTK_367"),
                )
            ),
        ),
        canonical=False,  # DCMTK writes 0xFF in a reserved byte of the presentation context item
    ),
    Vector(
        "A-ASSOCIATE-RQ, 3 transfer syntaxes, max length, class UID, version name",
        assoc(
            0x01,
            ae("ANY-SCP"),
            ae("ECHOSCU"),
            item(0x10, APP),
            rq_context(1, CT, EXPLICIT, IMPLICIT, "1.2.840.10008.1.2.4.50"),
            user_info(MAX16K, IMPL, VERSION),
        ),
        AAssociateRQ(
            "ANY-SCP",
            "ECHOSCU",
            (PresentationContextRQ(1, CT, (EXPLICIT, IMPLICIT, "1.2.840.10008.1.2.4.50")),),
            UserInformation((*BASE_ITEMS, ImplementationVersionName("TEST_1"))),
        ),
    ),
    rq_with(
        "async operations window", (item(0x53, struct.pack(">HH", 3, 2)),), (AsyncOperationsWindow(3, 2),)
    ),
    rq_with(
        "SCP/SCU role selection",
        (item(0x54, u16(CT.encode()) + b"\x00\x01"),),
        (RoleSelection(CT, False, True),),
    ),
    rq_with(
        "SOP class extended negotiation",
        (item(0x56, u16(CT.encode()) + b"\x01\x00\x01"),),
        (SOPClassExtendedNegotiation(CT, b"\x01\x00\x01"),),
    ),
    rq_with(
        "SOP class common extended negotiation",
        (item(0x57, u16(CT.encode()) + u16(b"1.2.840.10008.4.2") + u16(u16(b"1.2.3"))),),
        (SOPClassCommonExtendedNegotiation(CT, "1.2.840.10008.4.2", ("1.2.3",)),),
    ),
    rq_with(
        "SOP class common extended negotiation without related classes",
        (item(0x57, u16(CT.encode()) + u16(b"1.2.840.10008.4.2") + u16(b"")),),
        (SOPClassCommonExtendedNegotiation(CT, "1.2.840.10008.4.2", ()),),
    ),
    *[
        rq_with(
            f"user identity type {kind}",
            (item(0x58, bytes((kind, response)) + u16(b"user") + u16(b"secret" if kind in (2, 5) else b"")),),
            (UserIdentityRQ(kind, b"user", b"secret" if kind in (2, 5) else b"", bool(response)),),
        )
        for kind in (1, 2, 3, 4, 5)
        for response in (0, 1)
    ],
    Vector(
        "A-ASSOCIATE-AC, accepted and rejected contexts, user identity AC",
        assoc(
            0x02,
            ae("ANY-SCP"),
            ae("ECHOSCU"),
            item(0x10, APP),
            ac_context(1, 0, IMPLICIT),
            ac_context(3, 3, None),
            ac_context(5, 4, None),
            user_info(MAX16K, IMPL, item(0x59, u16(b"token"))),
        ),
        AAssociateAC(
            "ANY-SCP",
            "ECHOSCU",
            (
                PresentationContextAC(1, 0, IMPLICIT),
                PresentationContextAC(3, 3, None),
                PresentationContextAC(5, 4, None),
            ),
            UserInformation((*BASE_ITEMS, UserIdentityAC(b"token"))),
        ),
    ),
    Vector("A-ASSOCIATE-RJ", bytes.fromhex("03000000000400010107"), AAssociateRJ(1, 1, 7)),
    Vector(
        "P-DATA-TF, one PDV",
        bytes.fromhex("04000000000a00000006010301020304"),
        PDataTF((PresentationDataValue(1, True, True, b"\x01\x02\x03\x04"),)),
    ),
    Vector(
        "P-DATA-TF, three PDVs",
        pdu(
            0x04,
            struct.pack(">IBB", 3, 1, 3)
            + b"c"
            + struct.pack(">IBB", 4, 1, 0)
            + b"ab"
            + struct.pack(">IBB", 2, 1, 2),
        ),
        PDataTF(
            (
                PresentationDataValue(1, True, True, b"c"),
                PresentationDataValue(1, False, False, b"ab"),
                PresentationDataValue(1, False, True, b""),
            )
        ),
    ),
    Vector("A-RELEASE-RQ", bytes.fromhex("05000000000400000000"), AReleaseRQ()),
    Vector("A-RELEASE-RP", bytes.fromhex("06000000000400000000"), AReleaseRP()),
    Vector("A-ABORT (service-user)", bytes.fromhex("07000000000400000000"), AAbort(0, 0)),
    Vector("A-ABORT (provider, unexpected PDU)", bytes.fromhex("07000000000400000202"), AAbort(2, 2)),
    Vector(
        "padded AE titles and UIDs, unknown items skipped",
        assoc(
            0x01,
            b"  ANY-SCP       ",
            ae("ECHOSCU"),
            item(0x10, APP + b"\x00"),
            item(0x99, b"future"),
            rq_context(1, VERIFICATION + "\x00", IMPLICIT + "\x00"),
            user_info(MAX16K, IMPL, item(0x5F, b"?")),
        ),
        AAssociateRQ(
            "ANY-SCP",
            "ECHOSCU",
            (PresentationContextRQ(1, VERIFICATION, (IMPLICIT,)),),
            UserInformation(BASE_ITEMS),
        ),
        canonical=False,
    ),
]

_GOOD_RQ = VECTORS[1].data


def _without(data: bytes, needle: bytes) -> bytes:
    start = data.index(needle)
    body = data[6:start] + data[start + len(needle) :]
    return pdu(data[0], body)


MALFORMED: list[tuple[str, bytes, AbortReason]] = [
    ("unknown PDU type 0x08", bytes.fromhex("08000000000400000000"), AbortReason.UNRECOGNIZED_PDU),
    ("unknown PDU type 0xFF", bytes.fromhex("ff000000000400000000"), AbortReason.UNRECOGNIZED_PDU),
    (
        "declared length differs",
        bytes.fromhex("05000000000500000000"),
        AbortReason.INVALID_PDU_PARAMETER_VALUE,
    ),
    ("A-ABORT of length 5", bytes.fromhex("0700000000050000000000"), AbortReason.INVALID_PDU_PARAMETER_VALUE),
    (
        "PDV overruns its PDU",
        bytes.fromhex("04000000000800000009010300"),
        AbortReason.INVALID_PDU_PARAMETER_VALUE,
    ),
    (
        "PDV length below 2",
        bytes.fromhex("040000000006000000010103"),
        AbortReason.INVALID_PDU_PARAMETER_VALUE,
    ),
    ("P-DATA-TF without PDV", bytes.fromhex("040000000000"), AbortReason.INVALID_PDU_PARAMETER_VALUE),
    (
        "even presentation context ID",
        pdu(0x04, struct.pack(">IBB", 4, 2, 3) + b"\x00\x00"),
        AbortReason.INVALID_PDU_PARAMETER_VALUE,
    ),
    ("no application context", _without(_GOOD_RQ, item(0x10, APP)), AbortReason.UNRECOGNIZED_PDU_PARAMETER),
    (
        "no user information",
        pdu(0x01, _GOOD_RQ[6 : _GOOD_RQ.index(user_info(MAX16K, IMPL, VERSION))]),
        AbortReason.UNRECOGNIZED_PDU_PARAMETER,
    ),
    (
        "item overruns the PDU",
        pdu(0x01, _GOOD_RQ[6:74] + b"\x10\x00\x00\xff" + APP),
        AbortReason.INVALID_PDU_PARAMETER_VALUE,
    ),
    ("fixed fields truncated", pdu(0x01, b"\x00\x01\x00\x00ANY"), AbortReason.INVALID_PDU_PARAMETER_VALUE),
]
