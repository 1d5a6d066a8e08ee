"""PDU byte vectors written by hand from the field layouts of PS3.8 9.3 and PS3.7 D.3.3 (never by our
encoder), and PDUs captured from DCMTK 3.6.7.

Hex is annotated: ``#`` starts a comment, whitespace is ignored and "quoted" text stands for its ASCII bytes,
so that UIDs and AE titles stay readable. Every length field is written out by hand (the byte counts are in
the comments); only :func:`_verification_rq_with` computes two lengths, those of the PDU and of its user
information item around hand-written sub-items.

- ``VECTORS``: wire bytes and the PDU they decode to. ``encoded`` is what ``encode_pdu`` gives for a vector
  whose bytes are not canonical (padding, reserved fields set, unknown items); None: the bytes are canonical.
- ``MALFORMED``: bytes ``decode_pdu`` refuses, with the A-ABORT reason (PS3.8 Table 9-26) it must name.
"""

from __future__ import annotations

import dataclasses
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
    UserItem,
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


def h(text: str) -> bytes:
    """Bytes from annotated hex: ``# comments``, whitespace ignored, "quoted" ASCII text."""
    out = bytearray()
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split('"')
        if len(parts) % 2 == 0:
            raise ValueError(f"unbalanced quote in {line!r}")
        for i, part in enumerate(parts):
            out += part.encode("ascii") if i % 2 else bytes.fromhex(part)
    return bytes(out)


@dataclass(frozen=True)
class Vector:
    name: str
    data: bytes
    pdu: PDU
    encoded: bytes | None = None

    @property
    def canonical(self) -> bytes:
        """The bytes ``encode_pdu(self.pdu)`` must give."""
        return self.data if self.encoded is None else self.encoded


VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
DCMTK_CLASS_UID = "1.2.276.0.7230010.3.0.3.6.7"
JWT = b"eyJhbGciOiJub25lIn0.e30."

# ------------------------------------------------------------------------------------------ fragments

# The fixed fields of an A-ASSOCIATE-RQ after the PDU header (PS3.8 Table 9-11): 68 bytes
FIXED_RQ = h("""
    0001 0000                                           # protocol version 1, reserved
    "ANY-SCP         "                                  # called AE title, 16 bytes, space padded
    "ECHOSCU         "                                  # calling AE title
    00000000000000000000000000000000                    # 32 reserved bytes ...
    00000000000000000000000000000000                    # ... (16 per line)
""")
# Application context item (PS3.8 Table 9-12): 4 + 21 = 25 bytes
APP_CONTEXT = h('10 00 0015 "1.2.840.10008.3.1.1.1"')
# Presentation context item, RQ (PS3.8 Table 9-13): 4 + 46 = 50 bytes
VERIFICATION_CONTEXT = h("""
    20 00 002e                                          # presentation context (RQ), 46 bytes
       01 00 00 00                                      # context ID 1, three reserved bytes
       30 00 0011 "1.2.840.10008.1.1"                   # abstract syntax (17): Verification
       40 00 0011 "1.2.840.10008.1.2"                   # transfer syntax (17): Implicit VR LE
""")
# Maximum length (PS3.8 D.1) and implementation class UID (PS3.7 D.3.3.2) sub-items: 8 + 11 = 19 bytes
BASE_SUB_ITEMS = h("""
       51 00 0004 00004000                              # maximum length received: 16384
       52 00 0007 "1.2.3.4"                             # implementation class UID (7)
""")
BASE_USER_INFO = h("50 00 0013") + BASE_SUB_ITEMS  # user information item (PS3.8 Table 9-16): 4 + 19 = 23

# A-ASSOCIATE-RQ: 68 + 25 + 50 + 23 = 166 = 0xa6 bytes after the header
VERIFICATION_RQ = h("01 00 000000a6") + FIXED_RQ + APP_CONTEXT + VERIFICATION_CONTEXT + BASE_USER_INFO

BASE_ITEMS: tuple[UserItem, ...] = (MaximumLength(16384), ImplementationClassUID("1.2.3.4"))
VERIFICATION_PDU = AAssociateRQ(
    "ANY-SCP", "ECHOSCU", (PresentationContextRQ(1, VERIFICATION, (IMPLICIT,)),), UserInformation(BASE_ITEMS)
)


def _verification_rq_with(sub_items: bytes) -> bytes:
    """``VERIFICATION_RQ`` with hand-written sub-items appended to its user information item."""
    user_info = (
        h("50 00") + struct.pack(">H", len(BASE_SUB_ITEMS) + len(sub_items)) + BASE_SUB_ITEMS + sub_items
    )
    body = FIXED_RQ + APP_CONTEXT + VERIFICATION_CONTEXT + user_info
    return h("01 00") + struct.pack(">I", len(body)) + body


def _rq_with(name: str, sub_items: str, *decoded: UserItem) -> Vector:
    return Vector(
        f"A-ASSOCIATE-RQ with {name}",
        _verification_rq_with(h(sub_items)),
        dataclasses.replace(VERIFICATION_PDU, user_information=UserInformation((*BASE_ITEMS, *decoded))),
    )


# ------------------------------------------------------------------------------------- DCMTK captures
# Captured on loopback from the DCMTK 3.6.7 tools in /usr/bin (TCP_NODELAY=1), a bare Python socket playing
# the peer and recording what they sent (the echoscu on PATH may be pynetdicom's: use /usr/bin).
# DCMTK writes 0xFF into the reserved byte after the context ID of each presentation context (RQ) item
# (offset 6 + 68 + 25 + 6 = 105 for the first one): decoded all the same, re-encoded as 0x00.

# echoscu -aet DCMTK -aec ANY-SCP 127.0.0.1 PORT
DCMTK_ECHOSCU_RQ = bytes.fromhex(
    "0100000000cd00010000414e592d53435020202020202020202044434d544b20202020202020202020200000000000000000"
    "00000000000000000000000000000000000000000000000010000015312e322e3834302e31303030382e332e312e312e3120"
    "00002e0100ff0030000011312e322e3834302e31303030382e312e3140000011312e322e3834302e31303030382e312e3250"
    "00003a51000004000040005200001b312e322e3237362e302e373233303031302e332e302e332e362e375500000f4f464649"
    "535f44434d544b5f333637"
)
# storescu -aet DCMTK -aec ANY-SCP -R -usr alice -pwd s3cret -rsp 127.0.0.1 PORT ct.dcm
DCMTK_STORESCU_PASSWORD_RQ = bytes.fromhex(
    "01000000013d00010000414e592d53435020202020202020202044434d544b20202020202020202020200000000000000000"
    "00000000000000000000000000000000000000000000000010000015312e322e3834302e31303030382e332e312e312e3120"
    "0000380100ff0030000019312e322e3834302e31303030382e352e312e342e312e312e3240000013312e322e3834302e3130"
    "3030382e312e322e312000004d0300ff0030000019312e322e3834302e31303030382e352e312e342e312e312e3240000013"
    "312e322e3834302e31303030382e312e322e3240000011312e322e3834302e31303030382e312e325000004f510000040000"
    "40005200001b312e322e3237362e302e373233303031302e332e302e332e362e375500000f4f464649535f44434d544b5f33"
    "36375800001102010005616c6963650006733363726574"
)
# storescu -aet DCMTK -aec ANY-SCP -R --jwt jwt.txt 127.0.0.1 PORT ct.dcm
DCMTK_STORESCU_JWT_RQ = bytes.fromhex(
    "01000000014a00010000414e592d53435020202020202020202044434d544b20202020202020202020200000000000000000"
    "00000000000000000000000000000000000000000000000010000015312e322e3834302e31303030382e332e312e312e3120"
    "0000380100ff0030000019312e322e3834302e31303030382e352e312e342e312e312e3240000013312e322e3834302e3130"
    "3030382e312e322e312000004d0300ff0030000019312e322e3834302e31303030382e352e312e342e312e312e3240000013"
    "312e322e3834302e31303030382e312e322e3240000011312e322e3834302e31303030382e312e325000005c510000040000"
    "40005200001b312e322e3237362e302e373233303031302e332e302e332e362e375500000f4f464649535f44434d544b5f33"
    "3637580000"
    "1e0500001865794a68624763694f694a756232356c496e302e6533302e0000"
)
# storescp --aetitle ANY-SCP PORT, answering a request for contexts 1 (Verification, implicit), 3 (CT, JPEG
# baseline), 5 (abstract syntax 1.2.3.4) and 7 (CT, explicit or implicit)
DCMTK_STORESCP_AC = bytes.fromhex(
    "02000000011100010000414e592d5343502020202020202020204543484f5343552020202020202020200000000000000000"
    "00000000000000000000000000000000000000000000000010000015312e322e3834302e31303030382e332e312e312e3121"
    "0000190100000040000011312e322e3834302e31303030382e312e32210000190300040040000011312e322e3834302e3130"
    "3030382e312e32210000190500030040000011312e322e3834302e31303030382e312e322100001b070000004000001331"
    "2e322e3834302e31303030382e312e322e315000003a51000004000040005200001b312e322e3237362e302e373233303031"
    "302e332e302e332e362e375500000f4f464649535f44434d544b5f333637"
)
# storescp --refuse: rejected-permanent, service-user, no-reason-given
DCMTK_STORESCP_REFUSE_RJ = bytes.fromhex("03000000000400010101")
# storescu's C-STORE-RQ command and data set, each in a P-DATA-TF of its own, on context 1 (explicit VR LE)
DCMTK_CSTORE_COMMAND = bytes.fromhex(
    "0400000000720000006e0103000000000400000060000000000002001a000000312e322e3834302e31303030382e352e312e"
    "342e312e312e320000000001020000000100000010010200000001000000000702000000000000000008020000000100000000"
    "100e000000312e322e332e342e352e362e3700"
)
DCMTK_CSTORE_DATASET = bytes.fromhex(
    "04000000008c0000008801020800160055491a00312e322e3834302e31303030382e352e312e342e312e312e320008001800"
    "55490e00312e322e332e342e352e362e37000800600043530200435410001000504e0c00546573745e566563746f72201000"
    "20004c4f0200563120000d0055490a00312e322e332e342e350020000e0055490c00312e322e332e342e352e3600"
)

# The PDV values above, annotated: a command set is implicit VR little endian (PS3.7 E.1)
CSTORE_COMMAND_VALUE = h("""
    00000000 04000000 60000000                          # (0000,0000) command group length: 96
    00000200 1a000000 "1.2.840.10008.5.1.4.1.1.2" 00    # (0000,0002) affected SOP class (26, NUL padded)
    00000001 02000000 0100                              # (0000,0100) command field: C-STORE-RQ
    00001001 02000000 0100                              # (0000,0110) message ID 1
    00000007 02000000 0000                              # (0000,0700) priority: medium
    00000008 02000000 0100                              # (0000,0800) command data set type: present
    00000010 0e000000 "1.2.3.4.5.6.7" 00                # (0000,1000) affected SOP instance (14)
""")
CSTORE_DATASET_VALUE = h("""
    0800 1600 "UI" 1a00 "1.2.840.10008.5.1.4.1.1.2" 00  # (0008,0016) SOP class UID
    0800 1800 "UI" 0e00 "1.2.3.4.5.6.7" 00              # (0008,0018) SOP instance UID
    0800 6000 "CS" 0200 "CT"                            # (0008,0060) modality
    1000 1000 "PN" 0c00 "Test^Vector "                  # (0010,0010) patient's name
    1000 2000 "LO" 0200 "V1"                            # (0010,0020) patient ID
    2000 0d00 "UI" 0a00 "1.2.3.4.5" 00                  # (0020,000D) study instance UID
    2000 0e00 "UI" 0c00 "1.2.3.4.5.6" 00                # (0020,000E) series instance UID
""")


def _reserved_zeroed(data: bytes, *offsets: int) -> bytes:
    out = bytearray(data)
    for offset in offsets:
        assert out[offset] == 0xFF, f"byte {offset} is 0x{out[offset]:02X}, not DCMTK's 0xFF"
        out[offset] = 0
    return bytes(out)


DCMTK_USER_INFO = (MaximumLength(16384), ImplementationClassUID(DCMTK_CLASS_UID))
DCMTK_VERSION = ImplementationVersionName("OFFIS_DCMTK_367")
DCMTK_STORESCU_CONTEXTS = (
    PresentationContextRQ(1, CT, (EXPLICIT,)),
    PresentationContextRQ(3, CT, ("1.2.840.10008.1.2.2", IMPLICIT)),
)

DCMTK_VECTORS = [
    Vector(
        "A-ASSOCIATE-RQ from DCMTK echoscu",
        DCMTK_ECHOSCU_RQ,
        AAssociateRQ(
            "ANY-SCP",
            "DCMTK",
            (PresentationContextRQ(1, VERIFICATION, (IMPLICIT,)),),
            UserInformation((*DCMTK_USER_INFO, DCMTK_VERSION)),
        ),
        encoded=_reserved_zeroed(DCMTK_ECHOSCU_RQ, 105),
    ),
    Vector(
        "A-ASSOCIATE-RQ from DCMTK storescu, user identity type 2, positive response requested",
        DCMTK_STORESCU_PASSWORD_RQ,
        AAssociateRQ(
            "ANY-SCP",
            "DCMTK",
            DCMTK_STORESCU_CONTEXTS,
            UserInformation((*DCMTK_USER_INFO, DCMTK_VERSION, UserIdentityRQ(2, b"alice", b"s3cret", True))),
        ),
        # second context item: 105 + 56 (first item's length) + 4 (its header)
        encoded=_reserved_zeroed(DCMTK_STORESCU_PASSWORD_RQ, 105, 165),
    ),
    Vector(
        "A-ASSOCIATE-RQ from DCMTK storescu, user identity type 5 (JWT)",
        DCMTK_STORESCU_JWT_RQ,
        AAssociateRQ(
            "ANY-SCP",
            "DCMTK",
            DCMTK_STORESCU_CONTEXTS,
            UserInformation((*DCMTK_USER_INFO, DCMTK_VERSION, UserIdentityRQ(5, JWT, b"", False))),
        ),
        encoded=_reserved_zeroed(DCMTK_STORESCU_JWT_RQ, 105, 165),
    ),
    Vector(
        "A-ASSOCIATE-AC from DCMTK storescp (rejected contexts carry a transfer syntax)",
        DCMTK_STORESCP_AC,
        AAssociateAC(
            "ANY-SCP",
            "ECHOSCU",
            (
                PresentationContextAC(1, 0, IMPLICIT),
                PresentationContextAC(3, 4, IMPLICIT),
                PresentationContextAC(5, 3, IMPLICIT),
                PresentationContextAC(7, 0, EXPLICIT),
            ),
            UserInformation((*DCMTK_USER_INFO, DCMTK_VERSION)),
        ),
    ),
    Vector("A-ASSOCIATE-RJ from DCMTK storescp --refuse", DCMTK_STORESCP_REFUSE_RJ, AAssociateRJ(1, 1, 1)),
    Vector(
        "P-DATA-TF from DCMTK storescu: C-STORE-RQ command",
        DCMTK_CSTORE_COMMAND,
        PDataTF((PresentationDataValue(1, True, True, CSTORE_COMMAND_VALUE),)),
    ),
    Vector(
        "P-DATA-TF from DCMTK storescu: data set",
        DCMTK_CSTORE_DATASET,
        PDataTF((PresentationDataValue(1, False, True, CSTORE_DATASET_VALUE),)),
    ),
]

# ------------------------------------------------------------------------------ association vectors

USER_IDENTITY_VECTORS = [
    _rq_with(
        f"user identity type {kind}{', positive response requested' if response else ''}",
        sub_item.replace("RR", f"{response:02x}"),
        UserIdentityRQ(kind, primary, secondary, bool(response)),
    )
    for kind, sub_item, primary, secondary in [
        # PS3.7 Table D.3-14: type, positive-response-requested, u16 + primary field, u16 + secondary field
        (1, '58 00 000b 01 RR 0005 "alice" 0000', b"alice", b""),  # username: 2 + 7 + 2 = 11
        (2, '58 00 0011 02 RR 0005 "alice" 0006 "s3cret"', b"alice", b"s3cret"),  # + passcode: 2 + 7 + 8
        (
            3,
            "58 00 000e 03 RR 0008 6e06 3004 a002 0500 0000",
            bytes.fromhex("6e063004a0020500"),
            b"",
        ),  # Kerberos
        (4, '58 00 0017 04 RR 0011 "<saml:Assertion/>" 0000', b"<saml:Assertion/>", b""),  # SAML: 2 + 19 + 2
        (5, '58 00 001e 05 RR 0018 "eyJhbGciOiJub25lIn0.e30." 0000', JWT, b""),  # JWT: 2 + 26 + 2 = 30
    ]
    for response in (0, 1)
]

ASSOCIATION_VECTORS = [
    Vector(
        "A-ASSOCIATE-RQ, 3 transfer syntaxes, max length, class UID, version name",
        h("""
            01 00 000000e9                                  # A-ASSOCIATE-RQ, 68 + 25 + 107 + 33 = 233 bytes
            0001 0000                                       # protocol version 1, reserved
            "ANY-SCP         "                              # called AE title
            "STORESCU        "                              # calling AE title
            00000000000000000000000000000000                # 32 reserved bytes
            00000000000000000000000000000000
            10 00 0015 "1.2.840.10008.3.1.1.1"              # application context (21)
            20 00 0067                                      # presentation context (RQ), 4+29+23+21+26 = 103
               01 00 00 00                                  # context ID 1, reserved
               30 00 0019 "1.2.840.10008.5.1.4.1.1.2"       # abstract syntax (25): CT Image Storage
               40 00 0013 "1.2.840.10008.1.2.1"             # transfer syntax (19): Explicit VR LE
               40 00 0011 "1.2.840.10008.1.2"               # transfer syntax (17): Implicit VR LE
               40 00 0016 "1.2.840.10008.1.2.4.50"          # transfer syntax (22): JPEG baseline
            50 00 001d                                      # user information, 8 + 11 + 10 = 29
               51 00 0004 00004000                          # maximum length received: 16384
               52 00 0007 "1.2.3.4"                         # implementation class UID (7)
               55 00 0006 "TEST_1"                          # implementation version name (6)
        """),
        AAssociateRQ(
            "ANY-SCP",
            "STORESCU",
            (PresentationContextRQ(1, CT, (EXPLICIT, IMPLICIT, JPEG_BASELINE)),),
            UserInformation((*BASE_ITEMS, ImplementationVersionName("TEST_1"))),
        ),
    ),
    Vector("A-ASSOCIATE-RQ, Verification, implicit VR only", VERIFICATION_RQ, VERIFICATION_PDU),
    _rq_with(
        "asynchronous operations window",
        "53 00 0004 0003 0002",  # PS3.7 Table D.3-7: max operations invoked 3, performed 2
        AsyncOperationsWindow(3, 2),
    ),
    _rq_with(
        "SCP/SCU role selection",
        # PS3.7 Table D.3-9: u16 + SOP class UID, SCU role, SCP role: 2 + 25 + 1 + 1 = 29
        """
        54 00 001d 0019 "1.2.840.10008.5.1.4.1.1.2" 01 00   # CT: SCU role only
        54 00 001d 0019 "1.2.840.10008.5.1.4.1.1.4" 00 01   # MR: SCP role only
        """,
        RoleSelection(CT, True, False),
        RoleSelection(MR, False, True),
    ),
    _rq_with(
        "SOP class extended negotiation",
        # PS3.7 Table D.3-11: u16 + SOP class UID (27), service class application information (3)
        '56 00 0020 001b "1.2.840.10008.5.1.4.1.2.1.1" 01 01 00',
        SOPClassExtendedNegotiation("1.2.840.10008.5.1.4.1.2.1.1", b"\x01\x01\x00"),
    ),
    _rq_with(
        "SOP class common extended negotiation, two related general SOP classes",
        # PS3.7 Table D.3-12: byte 2 is the sub-item version (0); 2+29 + 2+17 + 2+62 = 114 = 0x72
        """
        57 00 0072
           001d "1.2.840.10008.5.1.4.1.1.88.33"            # SOP class: Comprehensive SR
           0011 "1.2.840.10008.4.2"                        # service class: Storage
           003e                                            # related general SOP class identification (62)
              001d "1.2.840.10008.5.1.4.1.1.88.22"         #   Enhanced SR
              001d "1.2.840.10008.5.1.4.1.1.88.11"         #   Basic Text SR
        """,
        SOPClassCommonExtendedNegotiation(
            "1.2.840.10008.5.1.4.1.1.88.33",
            "1.2.840.10008.4.2",
            ("1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.11"),
        ),
    ),
    _rq_with(
        "SOP class common extended negotiation, no related general SOP class",
        '57 00 0034 001d "1.2.840.10008.5.1.4.1.1.88.33" 0011 "1.2.840.10008.4.2" 0000',  # 2+29 + 2+17 + 2
        SOPClassCommonExtendedNegotiation("1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.4.2", ()),
    ),
    *USER_IDENTITY_VECTORS,
    Vector(
        "A-ASSOCIATE-AC, accepted and rejected contexts (each result), user identity AC",
        h("""
            02 00 000000f2                                  # A-ASSOCIATE-AC, 68+25+29+29+12+8+8+63 = 242
            0001 0000                                       # protocol version 1, reserved
            "ANY-SCP         "                              # reserved: the RQ's called AE title
            "ECHOSCU         "                              # reserved: the RQ's calling AE title
            00000000000000000000000000000000                # 32 reserved bytes
            00000000000000000000000000000000
            10 00 0015 "1.2.840.10008.3.1.1.1"              # application context
            21 00 0019 01 00 00 00 40 00 0011 "1.2.840.10008.1.2"  # context 1: acceptance, implicit VR
            21 00 0019 03 00 01 00 40 00 0011 "1.2.840.10008.1.2"  # 3: user-rejection (TS not significant)
            21 00 0008 05 00 02 00 40 00 0000               # 5: no-reason, empty transfer syntax sub-item
            21 00 0004 07 00 03 00                          # 7: abstract-syntax-not-supported, no sub-item
            21 00 0004 09 00 04 00                          # 9: transfer-syntaxes-not-supported
            50 00 003b                                      # user information, 8 + 11 + 10 + 30 = 59
               51 00 0004 00004000                          # maximum length received: 16384
               52 00 0007 "1.2.3.4"                         # implementation class UID
               55 00 0006 "TEST_1"                          # implementation version name
               59 00 001a 0018 "eyJhbGciOiJub25lIn0.e30."   # user identity AC: server response (24)
        """),
        AAssociateAC(
            "ANY-SCP",
            "ECHOSCU",
            (
                PresentationContextAC(1, 0, IMPLICIT),
                PresentationContextAC(3, 1, IMPLICIT),
                PresentationContextAC(5, 2, ""),
                PresentationContextAC(7, 3, None),
                PresentationContextAC(9, 4, None),
            ),
            UserInformation((*BASE_ITEMS, ImplementationVersionName("TEST_1"), UserIdentityAC(JWT))),
        ),
    ),
    Vector(
        "A-ASSOCIATE-AC, async window, role selection reply, empty user identity response",
        h("""
            02 00 000000c2                                  # A-ASSOCIATE-AC, 68 + 25 + 31 + 70 = 194
            0001 0000 "ANY-SCP         " "STORESCU        "
            00000000000000000000000000000000
            00000000000000000000000000000000
            10 00 0015 "1.2.840.10008.3.1.1.1"
            21 00 001b 01 00 00 00 40 00 0013 "1.2.840.10008.1.2.1"  # context 1: acceptance, explicit VR (19)
            50 00 0042                                      # user information, 8 + 11 + 8 + 33 + 6 = 66
               51 00 0004 00000000                          # maximum length 0: unlimited
               52 00 0007 "1.2.3.4"
               53 00 0004 0001 0001                         # asynchronous operations window 1/1
               54 00 001d 0019 "1.2.840.10008.5.1.4.1.1.2" 01 01   # CT: SCU and SCP roles
               59 00 0002 0000                              # user identity AC, empty server response
        """),
        AAssociateAC(
            "ANY-SCP",
            "STORESCU",
            (PresentationContextAC(1, 0, EXPLICIT),),
            UserInformation(
                (
                    MaximumLength(0),
                    ImplementationClassUID("1.2.3.4"),
                    AsyncOperationsWindow(1, 1),
                    RoleSelection(CT, True, True),
                    UserIdentityAC(b""),
                )
            ),
        ),
    ),
    Vector(
        "A-ASSOCIATE-AC whose reserved AE title field holds non-ASCII bytes (not tested, kept)",
        h("""
            02 00 00000091                                  # 68 + 25 + 29 + 23 = 145
            0001 0000
            ffffffffffffffffffffffffffffffff                # reserved, "shall not be tested"
            "ECHOSCU         "
            00000000000000000000000000000000
            00000000000000000000000000000000
            10 00 0015 "1.2.840.10008.3.1.1.1"
            21 00 0019 01 00 00 00 40 00 0011 "1.2.840.10008.1.2"
            50 00 0013 51 00 0004 00004000 52 00 0007 "1.2.3.4"
        """),
        AAssociateAC(
            "\xff" * 16, "ECHOSCU", (PresentationContextAC(1, 0, IMPLICIT),), UserInformation(BASE_ITEMS)
        ),
    ),
    Vector(
        "A-ASSOCIATE-RJ, rejected-permanent, service-user, called-AE-title-not-recognized",
        h("03 00 00000004  00 01 01 07"),  # PS3.8 Table 9-21: reserved, result, source, reason/diag.
        AAssociateRJ(1, 1, 7),
    ),
    Vector(
        "A-ASSOCIATE-RJ, rejected-transient, presentation provider, temporary-congestion",
        h("03 00 00000004  00 02 03 01"),
        AAssociateRJ(2, 3, 1),
    ),
]

# ---------------------------------------------------------------------- other PDUs (PS3.8 9.3.5-9.3.8)

OTHER_VECTORS = [
    Vector(
        "P-DATA-TF, one PDV",
        h("""
            04 00 0000000a                                  # P-DATA-TF, 10 bytes
               00000006 01 03 01020304                      # PDV: length 2 + 4, context 1, command + last
        """),
        PDataTF((PresentationDataValue(1, True, True, b"\x01\x02\x03\x04"),)),
    ),
    Vector(
        "P-DATA-TF, three PDVs (command not last, command last, data set not last)",
        h("""
            04 00 0000001d                                  # P-DATA-TF, 8 + 7 + 14 = 29 bytes
               00000004 03 01 0800                          # context 3, command, not last (E.2: 01)
               00000003 03 03 ff                            # context 3, command, last (03)
               0000000a 05 00 1000100004000000              # context 5, data set, not last (00): 2 + 8
        """),
        PDataTF(
            (
                PresentationDataValue(3, True, False, b"\x08\x00"),
                PresentationDataValue(3, True, True, b"\xff"),
                PresentationDataValue(5, False, False, bytes.fromhex("1000100004000000")),
            )
        ),
    ),
    Vector(
        "P-DATA-TF, data set last fragment with an empty value",
        h("04 00 00000006  00000002 ff 02"),  # context 255, data set, last (02)
        PDataTF((PresentationDataValue(255, False, True, b""),)),
    ),
    Vector(
        "P-DATA-TF, PDV longer than 65535 bytes (32-bit lengths)",
        h("04 00 00011176  00011172 01 02") + bytes(70000),  # 70000 + 2 = 0x11172, + 4 = 0x11176
        PDataTF((PresentationDataValue(1, False, True, bytes(70000)),)),
    ),
    Vector("A-RELEASE-RQ", h("05 00 00000004 00000000"), AReleaseRQ()),
    Vector("A-RELEASE-RP", h("06 00 00000004 00000000"), AReleaseRP()),
    Vector("A-ABORT, service-user", h("07 00 00000004  00 00 00 00"), AAbort(0, 0)),
    # PS3.8 Table 9-26: reserved, reserved, source, reason/diag.
    Vector("A-ABORT, service-provider, unexpected-PDU", h("07 00 00000004  00 00 02 02"), AAbort(2, 2)),
    Vector(
        "A-ABORT, service-provider, invalid-PDU-parameter-value",
        h("07 00 00000004  00 00 02 06"),
        AAbort(2, 6),
    ),
]

# ----------------------------------------------- accepted, not canonical: padding, reserved fields, unknown

LENIENT_VECTORS = [
    Vector(
        "AE titles with leading spaces and NUL padding",
        h("01 00 000000a6")
        + h("""
            0001 0000
            "  ANY-SCP       "                              # leading spaces are not significant
            "ECHOSCU" 000000000000000000                    # NUL padded
            00000000000000000000000000000000
            00000000000000000000000000000000
        """)
        + APP_CONTEXT
        + VERIFICATION_CONTEXT
        + BASE_USER_INFO,
        VERIFICATION_PDU,
        encoded=VERIFICATION_RQ,
    ),
    Vector(
        "UIDs padded with a trailing NUL",
        h("01 00 000000aa")  # 68 + 26 + 52 + 24 = 170
        + FIXED_RQ
        + h("""
            10 00 0016 "1.2.840.10008.3.1.1.1" 00           # 21 + 1
            20 00 0030                                      # 4 + 22 + 22 = 48
               01 00 00 00
               30 00 0012 "1.2.840.10008.1.1" 00
               40 00 0012 "1.2.840.10008.1.2" 00
            50 00 0014                                      # 8 + 12 = 20
               51 00 0004 00004000
               52 00 0008 "1.2.3.4" 00
        """),
        VERIFICATION_PDU,
        encoded=VERIFICATION_RQ,
    ),
    Vector(
        "UIDs padded with a trailing space",
        h("01 00 000000a8")  # 68 + 26 + 51 + 23 = 168
        + FIXED_RQ
        + h("""
            10 00 0016 "1.2.840.10008.3.1.1.1 "
            20 00 002f 01 00 00 00 30 00 0012 "1.2.840.10008.1.1 " 40 00 0011 "1.2.840.10008.1.2"
        """)
        + BASE_USER_INFO,
        VERIFICATION_PDU,
        encoded=VERIFICATION_RQ,
    ),
    Vector(
        "unknown PDU-level item 0x99 in an A-ASSOCIATE-RQ is skipped",
        h("01 00 000000b0")  # 166 + 10
        + FIXED_RQ
        + APP_CONTEXT
        + h('99 00 0006 "future"')
        + VERIFICATION_CONTEXT
        + BASE_USER_INFO,
        VERIFICATION_PDU,
        encoded=VERIFICATION_RQ,
    ),
    Vector(
        "unknown user information sub-item 0x5F is skipped",
        h("01 00 000000ab")  # 166 + 5
        + FIXED_RQ
        + APP_CONTEXT
        + VERIFICATION_CONTEXT
        + h("""
            50 00 0018                                      # 19 + 5
               5f 00 0001 3f                                # unknown sub-item, first
               51 00 0004 00004000
               52 00 0007 "1.2.3.4"
        """),
        VERIFICATION_PDU,
        encoded=VERIFICATION_RQ,
    ),
    Vector(
        "unknown sub-item in a presentation context (RQ) is skipped",
        h("01 00 000000aa")  # 166 + 4
        + FIXED_RQ
        + APP_CONTEXT
        + h("""
            20 00 0032 01 00 00 00                          # 46 + 4
               3f 00 0000                                   # unknown, empty
               30 00 0011 "1.2.840.10008.1.1"
               40 00 0011 "1.2.840.10008.1.2"
        """)
        + BASE_USER_INFO,
        VERIFICATION_PDU,
        encoded=VERIFICATION_RQ,
    ),
    Vector(
        "A-ASSOCIATE-RQ with every reserved field set",
        h("""
            01 ff 000000a6                                  # reserved byte of the PDU header
            0001 ffff                                       # reserved after the protocol version
            "ANY-SCP         " "ECHOSCU         "
            ffffffffffffffffffffffffffffffff                # 32 reserved bytes
            ffffffffffffffffffffffffffffffff
            10 ff 0015 "1.2.840.10008.3.1.1.1"              # reserved byte of every item ...
            20 ff 002e 01 ff ff ff                          # ... and of the presentation context
               30 ff 0011 "1.2.840.10008.1.1"
               40 ff 0011 "1.2.840.10008.1.2"
            50 ff 0013
               51 ff 0004 00004000
               52 ff 0007 "1.2.3.4"
        """),
        VERIFICATION_PDU,
        encoded=VERIFICATION_RQ,
    ),
    Vector(
        "P-DATA-TF with the reserved bits of the message control header set",
        h("04 ff 00000008  00000004 01 fe 0a0b"),  # bits 2-7 reserved (PS3.8 E.2): data set, last
        PDataTF((PresentationDataValue(1, False, True, b"\x0a\x0b"),)),
        encoded=h("04 00 00000008  00000004 01 02 0a0b"),
    ),
    Vector(
        "A-ASSOCIATE-RJ with reserved bytes set",
        h("03 ff 00000004  ff 01 02 02"),
        AAssociateRJ(1, 2, 2),
        encoded=h("03 00 00000004  00 01 02 02"),
    ),
    Vector(
        "A-RELEASE-RQ with reserved bytes set",
        h("05 ff 00000004 ffffffff"),
        AReleaseRQ(),
        encoded=h("05 00 00000004 00000000"),
    ),
    Vector(
        "A-RELEASE-RP with reserved bytes set",
        h("06 ff 00000004 ffffffff"),
        AReleaseRP(),
        encoded=h("06 00 00000004 00000000"),
    ),
    Vector(
        "A-ABORT with reserved bytes set",
        h("07 ff 00000004  ffff 02 01"),
        AAbort(2, 1),
        encoded=h("07 00 00000004  0000 02 01"),
    ),
]

VECTORS: list[Vector] = [*ASSOCIATION_VECTORS, *OTHER_VECTORS, *DCMTK_VECTORS, *LENIENT_VECTORS]

# ------------------------------------------------------------------------------------------ malformed

INVALID = AbortReason.INVALID_PDU_PARAMETER_VALUE
UNRECOGNIZED = AbortReason.UNRECOGNIZED_PDU_PARAMETER
UNEXPECTED = AbortReason.UNEXPECTED_PDU_PARAMETER

# A-ASSOCIATE-AC parts: the RQ's fixed fields and one accepted context (4 + 4 + 21 = 29 bytes)
ACCEPTED_CONTEXT = h('21 00 0019 01 00 00 00 40 00 0011 "1.2.840.10008.1.2"')


def _rq_user(length: str, user_info: str) -> bytes:
    """An A-ASSOCIATE-RQ of hand-written PDU length whose user information item is ``user_info``."""
    return h(f"01 00 {length}") + FIXED_RQ + APP_CONTEXT + VERIFICATION_CONTEXT + h(user_info)


def _rq_context(length: str, context: str) -> bytes:
    """An A-ASSOCIATE-RQ of hand-written PDU length whose presentation context item is ``context``."""
    return h(f"01 00 {length}") + FIXED_RQ + APP_CONTEXT + h(context) + BASE_USER_INFO


def _rq_sub_item(length: str, user_length: str, sub_item: str) -> bytes:
    """An A-ASSOCIATE-RQ, PDU and user information lengths written by hand, with ``sub_item`` appended."""
    return _rq_user(length, f"50 00 {user_length}") + BASE_SUB_ITEMS + h(sub_item)


def _ac(length: str, *items: bytes) -> bytes:
    return h(f"02 00 {length}") + FIXED_RQ + APP_CONTEXT + b"".join(items)


#: MALFORMED entries whose PDU length field deliberately disagrees with the bytes given
BAD_FRAMING = {
    "empty",
    "shorter than the 6-byte PDU header",
    "declared length longer than the bytes given",
    "declared length shorter than the bytes given",
    "unknown PDU type whose length is also wrong",
}

MALFORMED: list[tuple[str, bytes, AbortReason]] = [
    # -- the PDU header (PS3.8 9.3.1, Table 9-26)
    ("PDU type 0x08", h("08 00 00000004 00000000"), AbortReason.UNRECOGNIZED_PDU),
    ("PDU type 0xFF", h("ff 00 00000004 00000000"), AbortReason.UNRECOGNIZED_PDU),
    ("PDU type 0x00", h("00 00 00000000"), AbortReason.UNRECOGNIZED_PDU),
    ("unknown PDU type whose length is also wrong", h("08 00 00000010 00"), AbortReason.UNRECOGNIZED_PDU),
    ("empty", b"", INVALID),
    ("shorter than the 6-byte PDU header", h("05 00 000000"), INVALID),
    ("declared length longer than the bytes given", h("05 00 00000005 00000000"), INVALID),
    ("declared length shorter than the bytes given", h("05 00 00000003 00000000"), INVALID),
    ("A-ABORT of length 5", h("07 00 00000005 0000000000"), INVALID),
    ("A-RELEASE-RP of length 0", h("06 00 00000000"), INVALID),
    ("A-ASSOCIATE-RJ of length 3", h("03 00 00000003 000101"), INVALID),
    # -- P-DATA-TF (PS3.8 9.3.5, Annex E)
    ("P-DATA-TF without PDV", h("04 00 00000000"), INVALID),
    ("PDV length overruns the P-DATA-TF", h("04 00 00000008  00000009 01 03 0000"), INVALID),
    (
        "second PDV overruns the P-DATA-TF",
        h("04 00 0000000f  00000004 01 03 0000  00000004 01 02 00"),
        INVALID,
    ),
    ("PDV length 1 (below 2)", h("04 00 00000006  00000001 01 03"), INVALID),
    ("PDV length 0", h("04 00 00000006  00000000 01 03"), INVALID),
    ("truncated PDV header", h("04 00 00000003  000000"), INVALID),
    ("even presentation context ID 2 in a PDV", h("04 00 00000008  00000004 02 03 0000"), INVALID),
    ("presentation context ID 0 in a PDV", h("04 00 00000008  00000004 00 03 0000"), INVALID),
    # -- A-ASSOCIATE-RQ/AC variable items (PS3.8 9.3.2-9.3.3)
    ("A-ASSOCIATE-RQ shorter than its fixed fields", h('01 00 00000007 0001 0000 "ANY"'), INVALID),
    (
        "A-ASSOCIATE-RQ without application context",
        h("01 00 0000008d") + FIXED_RQ + VERIFICATION_CONTEXT + BASE_USER_INFO,  # 166 - 25 = 141
        UNRECOGNIZED,
    ),
    (
        "A-ASSOCIATE-RQ without user information",
        h("01 00 0000008f") + FIXED_RQ + APP_CONTEXT + VERIFICATION_CONTEXT,  # 166 - 23 = 143
        UNRECOGNIZED,
    ),
    (
        "A-ASSOCIATE-RQ with two application contexts",
        h("01 00 000000bf") + FIXED_RQ + APP_CONTEXT + APP_CONTEXT + VERIFICATION_CONTEXT + BASE_USER_INFO,
        UNEXPECTED,
    ),
    (
        "A-ASSOCIATE-RQ with two user information items",
        h("01 00 000000bd") + FIXED_RQ + APP_CONTEXT + VERIFICATION_CONTEXT + BASE_USER_INFO + BASE_USER_INFO,
        UNEXPECTED,
    ),
    (
        "A-ASSOCIATE-RQ with a presentation context (AC) item",
        h("01 00 000000ae")
        + FIXED_RQ
        + APP_CONTEXT
        + VERIFICATION_CONTEXT
        + h("21 00 0004 01 00 00 00")
        + BASE_USER_INFO,
        UNEXPECTED,
    ),
    (
        "presentation context (RQ) without abstract syntax",
        _rq_context("00000091", '20 00 0019 01 00 00 00 40 00 0011 "1.2.840.10008.1.2"'),  # 166 - 21
        UNRECOGNIZED,
    ),
    (
        "presentation context (RQ) without transfer syntax",
        _rq_context("00000091", '20 00 0019 01 00 00 00 30 00 0011 "1.2.840.10008.1.1"'),
        UNRECOGNIZED,
    ),
    (
        "presentation context (RQ) with two abstract syntaxes",
        _rq_context(
            "000000bb",  # 166 + 21
            """20 00 0043 01 00 00 00
                  30 00 0011 "1.2.840.10008.1.1" 30 00 0011 "1.2.840.10008.1.1" 40 00 0011 "1.2.840.10008.1.2"
            """,
        ),
        UNEXPECTED,
    ),
    (
        "presentation context (RQ) with an even ID",
        _rq_context(
            "000000a6", '20 00 002e 02 00 00 00 30 00 0011 "1.2.840.10008.1.1" 40 00 0011 "1.2.840.10008.1.2"'
        ),
        INVALID,
    ),
    ("presentation context (RQ) shorter than 4 bytes", _rq_context("0000007a", "20 00 0002 0100"), INVALID),
    (
        "abstract syntax that is not ASCII",
        _rq_context(
            "000000a6",
            '20 00 002e 01 00 00 00 30 00 0011 "1.2.840.10008.1." c3 40 00 0011 "1.2.840.10008.1.2"',
        ),
        INVALID,
    ),
    (
        "application context item overruns the PDU",
        h("01 00 000000a6")
        + FIXED_RQ
        + h('10 00 00ff "1.2.840.10008.3.1.1.1"')
        + VERIFICATION_CONTEXT
        + BASE_USER_INFO,
        INVALID,
    ),
    (
        "abstract syntax sub-item overruns its presentation context",
        _rq_context(
            "000000a6", '20 00 002e 01 00 00 00 30 00 0030 "1.2.840.10008.1.1" 40 00 0011 "1.2.840.10008.1.2"'
        ),
        INVALID,
    ),
    (
        "truncated item header after the user information",
        VERIFICATION_RQ[:2] + h("000000a9") + VERIFICATION_RQ[6:] + h("50 00 00"),
        INVALID,
    ),
    (
        "user information sub-item overruns the user information item",
        _rq_user("000000a6", '50 00 0013 51 00 0004 00004000 52 00 0009 "1.2.3.4"'),
        INVALID,
    ),
    (
        "maximum length sub-item of 3 bytes",
        _rq_user("000000a5", '50 00 0012 51 00 0003 004000 52 00 0007 "1.2.3.4"'),  # 166 - 1
        INVALID,
    ),
    # the sub-item follows BASE_SUB_ITEMS (19 bytes); lengths: (PDU, user information item)
    (
        "asynchronous operations window of 2 bytes",
        _rq_sub_item("000000ac", "0019", "53 00 0002 0001"),  # 6 bytes: PDU 166 + 6, user info 19 + 6
        INVALID,
    ),
    (
        "role selection with a role value of 2",
        # 2 + 17 + 2 = 21 = 0x15; user information 19 + 25 = 44; PDU 166 + 25 = 191
        _rq_sub_item("000000bf", "002c", '54 00 0015 0011 "1.2.840.10008.1.1" 02 00'),
        INVALID,
    ),
    (
        "role selection without its role fields",
        _rq_sub_item("000000bd", "002a", '54 00 0013 0011 "1.2.840.10008.1.1"'),  # 23 bytes
        INVALID,
    ),
    (
        "role selection whose UID length overruns the sub-item",
        _rq_sub_item("000000bf", "002c", '54 00 0015 0020 "1.2.840.10008.1.1" 01 00'),
        INVALID,
    ),
    (
        "SOP class extended negotiation whose UID length overruns the sub-item",
        _rq_sub_item("000000ae", "001b", "56 00 0004 0009 0101"),  # 8 bytes
        INVALID,
    ),
    (
        "SOP class common extended negotiation whose related-classes field overruns",
        # 2+5 + 2+5 + 2+7 = 23 = 0x17; user information 19 + 27 = 46; PDU 166 + 27 = 193
        _rq_sub_item("000000c1", "002e", '57 00 0017 0005 "1.2.3" 0005 "1.2.4" 0009 0005 "1.2.5"'),
        INVALID,
    ),
    (
        "SOP class common extended negotiation whose related UID overruns",
        _rq_sub_item("000000c1", "002e", '57 00 0017 0005 "1.2.3" 0005 "1.2.4" 0007 0009 "1.2.5"'),
        INVALID,
    ),
    (
        "user identity sub-item of 3 bytes",
        _rq_sub_item("000000ad", "001a", "58 00 0003 01 00 00"),  # 7 bytes
        INVALID,
    ),
    (
        "user identity primary field overruns the sub-item",
        _rq_sub_item("000000b5", "0022", '58 00 000b 01 00 0009 "alice" 0000'),  # 15 bytes
        INVALID,
    ),
    (
        "presentation context (AC) with result 5",
        _ac("00000091", h('21 00 0019 01 00 05 00 40 00 0011 "1.2.840.10008.1.2"'), BASE_USER_INFO),
        INVALID,
    ),
    (
        "accepted presentation context (AC) without transfer syntax",
        _ac("0000007c", h("21 00 0004 01 00 00 00"), BASE_USER_INFO),  # 145 - 21
        UNRECOGNIZED,
    ),
    (
        "presentation context (AC) with two transfer syntaxes",
        _ac(
            "000000a6",  # 145 + 21
            h('21 00 002e 01 00 00 00 40 00 0011 "1.2.840.10008.1.2" 40 00 0011 "1.2.840.10008.1.2"'),
            BASE_USER_INFO,
        ),
        UNEXPECTED,
    ),
    (
        "A-ASSOCIATE-AC with a presentation context (RQ) item",
        _ac("000000c3", ACCEPTED_CONTEXT, VERIFICATION_CONTEXT, BASE_USER_INFO),  # 145 + 50
        UNEXPECTED,
    ),
    (
        "A-ASSOCIATE-AC without user information",
        _ac("0000007a", ACCEPTED_CONTEXT),  # 145 - 23
        UNRECOGNIZED,
    ),
    (
        "user identity AC sub-item of 1 byte",
        _ac(
            "00000096",
            ACCEPTED_CONTEXT,
            h('50 00 0018 51 00 0004 00004000 52 00 0007 "1.2.3.4" 59 00 0001 00'),
        ),
        INVALID,
    ),
]
