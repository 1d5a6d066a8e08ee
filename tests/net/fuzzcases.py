"""Hostile inputs for a live DICOM acceptor, and a blocking runner that plays one against it.

Shared by ``tests/net/test_fuzz.py`` (hypothesis drives the choices) and ``benchmarks/fuzz.py`` (a seeded
``random.Random`` does, for hundreds of thousands of cases). Every case starts from real bytes: PDUs encoded
by :mod:`aiodicom.ul`, command sets by :mod:`aiodicom.dimse`, data sets by ``tests.interop.rawpeer``; then
flips, inserts, deletes, truncates or sets length fields to extremes. A case either sends its bytes on a fresh
connection, or first associates for real (A-ASSOCIATE-AC required) and then sends them.

The runner half-closes after sending (the acceptor must then close: DICOM has no half-open connections) and
reads until the close; an acceptor that neither closes nor answers within the bound is a hang. Whatever the
acceptor sent back must be well-formed PDUs.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from dataclasses import dataclass, field

from aiodicom.dimse import Command, CommandField, decode_command, encode_command
from aiodicom.errors import ProtocolError
from aiodicom.ul import decode_pdu, encode_pdu
from aiodicom.ul.items import (
    AsyncOperationsWindow,
    PresentationContextRQ,
    RoleSelection,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityRQ,
    UserInformation,
)
from aiodicom.ul.pdu import AAbort, AAssociateAC, AAssociateRQ, AReleaseRP, AReleaseRQ, PDataTF
from tests.interop.rawpeer import (
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    IMPLEMENTATION_UID,
    IMPLICIT_LE,
    UNDEFINED,
    VERIFICATION,
    Instance,
    Pdv,
    command_bytes,
    element,
    fragments,
    image_pixel,
    native_pixels,
    pdata,
    sequence,
    text,
    ui,
    us,
)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
#: The contexts of an association a P-DATA case runs on: 1 Verification, 3 CT (explicit), 5 CT (implicit).
CONTEXTS = (
    (1, VERIFICATION, (IMPLICIT_LE,)),
    (3, CT_IMAGE_STORAGE, (EXPLICIT_LE,)),
    (5, MR_IMAGE_STORAGE, (IMPLICIT_LE,)),
)
#: Length values that break parsers: zero, tiny, one off a field's size, sign bits, all ones.
EXTREME_U16 = (0, 1, 2, 3, 4, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
EXTREME_U32 = (0, 1, 2, 5, 6, 7, 0x3FFF, 0x4000, 0x4001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
KINDS = ("random", "associate", "pdata", "lengths")


@dataclass(frozen=True, slots=True)
class Case:
    """One attack: ``kind`` (for reports), whether to associate first, and the bytes then sent."""

    kind: str
    payload: bytes
    associate_first: bool = False


# ------------------------------------------------------------------------------------ real bytes


def _rq(
    contexts: tuple[tuple[int, str, tuple[str, ...]], ...] = CONTEXTS,
    *,
    calling: str = "FUZZER",
    called: str = "STORE-SCP",
    max_length: int | None = 16384,
    extras: tuple[object, ...] = (),
) -> AAssociateRQ:
    base = UserInformation.build(max_length=max_length, implementation_class_uid=IMPLEMENTATION_UID)
    return AAssociateRQ(
        called,
        calling,
        tuple(PresentationContextRQ(cid, abstract, ts) for cid, abstract, ts in contexts),
        UserInformation((*base.items, *extras)),  # type: ignore[arg-type]
    )


def _requests() -> tuple[bytes, ...]:
    """Real A-ASSOCIATE-RQs: plain, with every kind of user-information sub-item, with many contexts."""
    many = tuple((2 * i + 1, CT_IMAGE_STORAGE, (EXPLICIT_LE, IMPLICIT_LE)) for i in range(40))
    return tuple(
        encode_pdu(rq)
        for rq in (
            _rq(),
            _rq(max_length=0),
            _rq(
                extras=(
                    AsyncOperationsWindow(4, 4),
                    RoleSelection(CT_IMAGE_STORAGE, True, True),
                    SOPClassExtendedNegotiation(STUDY_ROOT_FIND, b"\x01\x01\x01"),
                    SOPClassCommonExtendedNegotiation(CT_IMAGE_STORAGE, "1.2.840.10008.4.2", ("1.2.3",)),
                )
            ),
            _rq(extras=(UserIdentityRQ(2, b"alice", b"secret", True),)),
            _rq(extras=(UserIdentityRQ(5, b"eyJhbGciOiJub25lIn0.e30.", b"", True),)),
            _rq(many),
        )
    )


REQUESTS = _requests()
#: The A-ASSOCIATE-RQ that P-DATA cases associate with.
SETUP_RQ = REQUESTS[0]


def length_fields(rq: bytes) -> list[tuple[int, int]]:
    """``(offset, size)`` of every length field of an encoded A-ASSOCIATE-RQ/AC: the PDU's (4 bytes), each
    item's and sub-item's (2 bytes), and the 2-byte lengths inside user-information sub-items (role
    selection, extended negotiation, user identity)."""
    fields = [(2, 4)]
    pos = 74
    while pos + 4 <= len(rq):
        item_type = rq[pos]
        (length,) = struct.unpack_from(">H", rq, pos + 2)
        fields.append((pos + 2, 2))
        end = min(pos + 4 + length, len(rq))
        if item_type in (0x20, 0x21, 0x50):
            sub = pos + 8 if item_type != 0x50 else pos + 4
            while sub + 4 <= end:
                fields.append((sub + 2, 2))
                (sub_length,) = struct.unpack_from(">H", rq, sub + 2)
                if rq[sub] in (0x54, 0x56, 0x57) and sub + 6 <= end:
                    fields.append((sub + 4, 2))  # the SOP class UID length inside the sub-item
                if rq[sub] == 0x58 and sub + 8 <= end:
                    fields.append((sub + 6, 2))  # the user identity's primary field length
                sub += 4 + sub_length
        pos = end
    return fields


def _pdata_of(context_id: int, is_command: bool, data: bytes, max_value: int = 16378) -> bytes:
    return b"".join(pdata(p) for p in fragments(context_id, is_command, data, max_value))


def echo_rq(message_id: int = 1, context_id: int = 1) -> bytes:
    return _pdata_of(context_id, True, encode_command(Command.c_echo_rq(message_id)))


#: Every P-DATA case ends with this C-ECHO-RQ (perhaps then an A-RELEASE-RQ): its answer shows the acceptor
#: went on serving after what came before.
FINAL_ECHO_ID = 0xFFFF
FINAL_ECHO = echo_rq(FINAL_ECHO_ID)
RELEASE_RQ = encode_pdu(AReleaseRQ())


def _image(rnd: random.Random, pixel_bytes: int) -> Instance:
    """A small CT image whose UIDs come from ``rnd`` (a case is the same whenever its draws are)."""
    sop, study, series = (f"2.25.{rnd.randrange(1 << 96)}" for _ in range(3))
    head = b"".join(
        [
            text(0x00080016, "UI", CT_IMAGE_STORAGE),
            text(0x00080018, "UI", sop),
            text(0x00080060, "CS", "CT"),
            text(0x00100010, "PN", "Fuzz^Case"),
            text(0x0020000D, "UI", study),
            text(0x0020000E, "UI", series),
        ]
    )
    return Instance(CT_IMAGE_STORAGE, sop, study, series, head + image_pixel() + native_pixels(pixel_bytes))


def _store_parts(rnd: random.Random) -> tuple[bytes, bytes, int]:
    """A real C-STORE of a small CT image: its command set, its data set, and its context (3)."""
    image = _image(rnd, rnd.choice((0, 16, 512, 3000)))
    command = encode_command(
        Command.c_store_rq(rnd.randrange(1, 0x10000), image.sop_class, image.sop_instance)
    )
    return command, image.data, 3


def _odd_command(rnd: random.Random) -> bytes:
    """Command sets no client sends: unknown fields, a C-FIND on a storage context, responses, cancels."""
    choices = [
        command_bytes(
            [
                (0x0002, ui(VERIFICATION)),
                (0x0100, us(rnd.randrange(0x10000))),
                (0x0110, us(1)),
                (0x0800, us(0x0101)),
            ]
        ),
        encode_command(Command.c_find_rq(2, STUDY_ROOT_FIND)),
        encode_command(Command.c_echo_rsp(1)),
        encode_command(Command.c_cancel_rq(1)),
        command_bytes([(0x0100, us(0x0030)), (0x0110, us(1)), (0x0800, us(0x0101))]),
        command_bytes([(0x0100, us(0x0001)), (0x0110, us(1)), (0x0800, us(0x0001))]),  # store without UIDs
        command_bytes([(0x0100, b"\x01"), (0x0110, b"")]),
    ]
    return rnd.choice(choices)


def _odd_dataset(rnd: random.Random) -> bytes:
    """Data sets with lying element lengths, undefined lengths, deep nesting."""
    head = _image(rnd, 0).data
    choices = [
        head + element(0x7FE00010, "OW", b"\x00" * 8, length=rnd.choice(EXTREME_U32)),
        head + element(0x00280010, "US", b"\x00\x01", length=rnd.choice(EXTREME_U16)),
        head + sequence(0x00081115, [b"" for _ in range(3)], undefined=True),
        head + element(0x00081115, "SQ", b"", length=UNDEFINED),  # never delimited
        head
        + b"".join(
            element(0x00081115, "SQ", b"\xfe\xff\x00\xe0\xff\xff\xff\xff", length=UNDEFINED)
            for _ in range(rnd.choice((10, 200)))
        ),
        text(0x00080016, "UI", b"1.2.3\\4.5") + text(0x00080018, "UI", b"../../etc/passwd"),
        text(0x00080016, "UI", CT_IMAGE_STORAGE) + text(0x00080018, "UI", b"1." * 40),
        head[: rnd.randrange(len(head) + 1)],
    ]
    return rnd.choice(choices)


# -------------------------------------------------------------------------------------- mutations


def mutate(data: bytes, rnd: random.Random, count: int | None = None) -> bytes:
    """``data`` with 1-4 random edits: bit flips, random bytes, inserts, deletes, duplicates, truncation."""
    out = bytearray(data)
    for _ in range(count if count is not None else rnd.randint(1, 4)):
        op = rnd.randrange(7)
        pos = rnd.randrange(len(out) + 1)
        if op == 0 and out:
            pos = min(pos, len(out) - 1)
            out[pos] ^= 1 << rnd.randrange(8)
        elif op == 1 and out:
            pos = min(pos, len(out) - 1)
            out[pos] = rnd.choice((0x00, 0xFF, 0x7F, 0x80, rnd.randrange(256)))
        elif op == 2:
            out[pos:pos] = rnd.randbytes(rnd.choice((1, 2, 4, rnd.randrange(1, 64))))
        elif op == 3:
            del out[pos : pos + rnd.choice((1, 2, 4, rnd.randrange(1, 64)))]
        elif op == 4 and out:
            start = rnd.randrange(len(out))
            out[pos:pos] = out[start : start + rnd.randrange(1, 128)]
        elif op == 5:
            del out[pos:]
        elif op == 6 and len(out) >= 4:
            pos = min(pos, len(out) - 4)
            out[pos : pos + 4] = struct.pack(">I", rnd.choice(EXTREME_U32))
    return bytes(out)


def set_length(data: bytes, offset: int, size: int, rnd: random.Random, order: str = ">") -> bytes:
    """``data`` with the ``size``-byte length field at ``offset`` set to an extreme or off-by-one value."""
    if offset + size > len(data):
        return data
    fmt = order + ("H" if size == 2 else "I")
    (true,) = struct.unpack_from(fmt, data, offset)
    values = EXTREME_U16 if size == 2 else EXTREME_U32
    limit = 0xFFFF if size == 2 else 0xFFFFFFFF
    value = rnd.choice((*values, max(true - 1, 0), min(true + 1, limit)))
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


# ------------------------------------------------------------------------------------------ cases


def random_case(rnd: random.Random) -> Case:
    """Random bytes; sometimes behind a PDU type, or a whole header that tells the truth about them."""
    body = rnd.randbytes(rnd.choice((0, 1, 5, 6, 10, 74, rnd.randrange(2048))))
    style = rnd.randrange(3)
    if style == 1 and body:
        body = bytes([rnd.randint(1, 7)]) + body[1:]
    elif style == 2:
        body = struct.pack(">BxI", rnd.randint(0, 8), len(body)) + body
    return Case("random", body, associate_first=rnd.random() < 0.25)


def associate_case(rnd: random.Random) -> Case:
    """A real A-ASSOCIATE-RQ, mutated (or its length fields set to extremes), perhaps followed by more."""
    rq = rnd.choice(REQUESTS)
    if rnd.random() < 0.5:
        fields = length_fields(rq)
        for _ in range(rnd.randint(1, 2)):
            offset, size = rnd.choice(fields)
            rq = set_length(rq, offset, size, rnd)
        if rnd.random() < 0.3:
            rq = mutate(rq, rnd, 1)
    else:
        rq = mutate(rq, rnd)
    tail = rnd.choice((b"", b"", echo_rq(), encode_pdu(AReleaseRQ()), rq))
    return Case("associate", rq + tail)


def pdata_case(rnd: random.Random) -> Case:
    """After a real association: real or odd messages, mutated at the PDU, PDV, command or data set level;
    then a real C-ECHO-RQ (and sometimes an A-RELEASE-RQ)."""
    command, dataset, cid = _store_parts(rnd)
    level = rnd.randrange(6)
    if level == 0:  # the P-DATA-TF bytes of a whole C-STORE
        message = mutate(_pdata_of(cid, True, command) + _pdata_of(cid, False, dataset, 1000), rnd)
    elif level == 1:  # the command set, in well-formed PDVs
        message = _pdata_of(cid, True, mutate(command, rnd)) + _pdata_of(cid, False, dataset)
    elif level == 2:  # a command element's length set to an extreme
        offset = 8
        offsets = []
        while offset + 8 <= len(command):
            offsets.append(offset + 4)
            offset += 8 + struct.unpack_from("<I", command, offset + 4)[0]
        bad = set_length(command, rnd.choice(offsets), 4, rnd, "<")
        message = _pdata_of(cid, True, bad) + _pdata_of(cid, False, dataset)
    elif level == 3:  # the data set
        data = mutate(dataset, rnd) if rnd.random() < 0.5 else _odd_dataset(rnd)
        message = _pdata_of(cid, True, command) + _pdata_of(rnd.choice((cid, cid, 5)), False, data)
    elif level == 4:  # PDV framing: context, control bits, value lengths
        pdvs = [
            Pdv(rnd.choice((cid, 1, 5, 0, 2, 255)), rnd.random() < 0.5, rnd.random() < 0.5, command),
            Pdv(cid, rnd.random() < 0.2, rnd.random() < 0.7, dataset),
        ]
        message = pdata(*pdvs)
        # the first PDV's length (offset 6) or the PDU's (offset 2)
        message = set_length(message, rnd.choice((2, 6)), 4, rnd)
    else:  # odd commands, whole
        odd = _odd_command(rnd)
        message = _pdata_of(rnd.choice((1, 3, 5)), True, odd)
        if rnd.random() < 0.3:
            message += _pdata_of(cid, False, dataset)
    tail = FINAL_ECHO + (RELEASE_RQ if rnd.random() < 0.3 else b"")
    return Case("pdata", message + tail, associate_first=True)


def lengths_case(rnd: random.Random) -> Case:
    """PDU headers that declare extreme lengths (with some or none of the bytes), before or after
    associating; a P-DATA-TF bigger than the maximum we advertised."""
    after = rnd.random() < 0.5
    pdu_type = rnd.choice((1, 2, 3, 4, 4, 5, 6, 7, 0, 8, 0xFF))
    length = rnd.choice(EXTREME_U32)
    body = rnd.randbytes(rnd.choice((0, 4, 100, 4096)))
    if rnd.random() < 0.2:
        # one PDV of the right size in a PDU longer than the acceptor's maximum (16384)
        value = encode_command(Command.c_echo_rq(7))
        payload = pdata(Pdv(1, True, True, value + b"\x00" * (20000 + rnd.randrange(40000))))
    else:
        payload = struct.pack(">BxI", pdu_type, length) + body
    return Case("lengths", payload, associate_first=after)


GENERATORS = {
    "random": random_case,
    "associate": associate_case,
    "pdata": pdata_case,
    "lengths": lengths_case,
}


def make_case(rnd: random.Random, kind: str | None = None) -> Case:
    return GENERATORS[kind or rnd.choice(KINDS)](rnd)


# -------------------------------------------------------------------------------------- the runner


def boundaries(data: bytes) -> set[int]:
    """Where PDUs start and end in ``data``, by their headers."""
    found, pos = {0}, 0
    while pos + 6 <= len(data):
        pos += 6 + struct.unpack_from(">I", data, pos + 2)[0]
        found.add(pos)
    return found


def owes_answer(case: Case) -> bool:
    """Whether the acceptor has the final C-ECHO-RQ as a PDU of its own, whole, after a real association
    (not swallowed by an earlier PDU that declares more bytes, nor cut): then it must answer it, or end
    the association."""
    data = case.payload
    if not case.associate_first:
        return False
    cuts = boundaries(data)
    if len(data) not in cuts:
        return False
    for tail in (FINAL_ECHO, FINAL_ECHO + RELEASE_RQ):
        if data.endswith(tail) and len(data) - len(tail) in cuts:
            return True
    return False


@dataclass(slots=True)
class Outcome:
    """What the acceptor did: closed (after ``seconds``), hung, or refused the setup; what it answered."""

    case: Case
    closed: bool = False
    hung: bool = False
    setup_failed: str | None = None
    seconds: float = 0.0
    answered: list[str] = field(default_factory=list)  # PDU class names, in order (commands by name)
    malformed: str | None = None  # a PDU from the acceptor that does not decode
    #: The case ended with a C-ECHO-RQ in whole PDUs and the acceptor neither answered it, nor released,
    #: aborted or closed within ``answer_within``: it sat waiting for bytes that would never come.
    stalled: bool = False

    @property
    def ok(self) -> bool:
        return self.closed and not self.hung and self.setup_failed is None and self.malformed is None


class _Answers:
    """The acceptor's PDUs as they arrive: decoded, named, and whether the final C-ECHO was answered."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.data = bytearray()
        self.pos = 0
        self.command = bytearray()
        self.settled = False  # the C-ECHO-RSP, an A-RELEASE-RP or an A-ABORT came

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        while self.pos + 6 <= len(self.data) and self.outcome.malformed is None:
            (length,) = struct.unpack_from(">I", self.data, self.pos + 2)
            end = self.pos + 6 + length
            if end > len(self.data):
                break  # a cut tail is allowed at the close: an abort drops the write buffer
            try:
                pdu = decode_pdu(bytes(self.data[self.pos : end]))
            except ProtocolError as exc:
                self.outcome.malformed = f"{self.data[self.pos : self.pos + 16].hex()}...: {exc}"
                return
            self.pos = end
            self._seen(pdu)

    def _seen(self, pdu: object) -> None:
        if isinstance(pdu, PDataTF):
            for pdv in pdu.pdvs:
                if pdv.is_command:
                    self.command += pdv.data
                    if pdv.is_last:
                        try:
                            command = decode_command(bytes(self.command))
                        except ProtocolError as exc:
                            self.outcome.malformed = f"a command set that does not decode: {exc}"
                            return
                        self.command.clear()
                        self.outcome.answered.append(command.name)
                        if command.command_field == CommandField.C_ECHO_RSP:
                            self.settled = command.message_id_being_responded_to == FINAL_ECHO_ID
            return
        self.outcome.answered.append(type(pdu).__name__)
        if isinstance(pdu, (AAbort, AReleaseRP)):
            self.settled = True


def _read_pdu(sock: socket.socket, deadline: float) -> bytes:
    data = b""
    while len(data) < 6 or len(data) < 6 + struct.unpack_from(">I", data, 2)[0]:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} bytes of the answer")
        data += chunk
    return data


def run_case(
    port: int,
    case: Case,
    *,
    host: str = "127.0.0.1",
    hang_after: float = 10.0,
    answer_within: float = 3.0,
) -> Outcome:
    """Play ``case`` on a new connection to ``host:port``; see the module docstring.

    A case whose payload is whole PDUs ending with the final C-ECHO-RQ waits up to ``answer_within`` seconds
    for its answer (or a release, an abort, the close) before half-closing: the acceptor must handle what it
    received, not only parse it.
    """
    outcome = Outcome(case)
    started = time.monotonic()
    deadline = started + hang_after
    sock = socket.create_connection((host, port), timeout=hang_after)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if case.associate_first:
            sock.sendall(SETUP_RQ)
            try:
                pdu = decode_pdu(_read_pdu(sock, deadline))
            except (OSError, ProtocolError) as exc:
                outcome.setup_failed = f"no A-ASSOCIATE-AC: {exc}"
                return outcome
            if not isinstance(pdu, AAssociateAC):
                outcome.setup_failed = f"answered {type(pdu).__name__}"
                return outcome
        answers = _Answers(outcome)
        owed = owes_answer(case)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            sock.sendall(case.payload)
        except TimeoutError:
            outcome.hung = True  # neither reads nor closes
        except OSError:
            owed = False  # closed on us mid-send: the read below sees the close
        half_closed = False
        wait_answer_until = time.monotonic() + answer_within
        while not outcome.hung and outcome.malformed is None:
            if not half_closed and (not owed or answers.settled or time.monotonic() >= wait_answer_until):
                if owed and not answers.settled:
                    outcome.stalled = True
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                half_closed = True
            until = deadline if half_closed else min(deadline, wait_answer_until)
            try:
                sock.settimeout(max(until - time.monotonic(), 0.01))
                chunk = sock.recv(65536)
            except TimeoutError:
                if half_closed:
                    outcome.hung = True
                continue
            except OSError:
                chunk = b""
            if not chunk:
                outcome.closed = True
                break
            answers.feed(chunk)
            if len(answers.data) > 4 << 20:
                outcome.malformed = "more than 4 MiB answered"
        outcome.seconds = time.monotonic() - started
    finally:
        sock.close()
    return outcome
