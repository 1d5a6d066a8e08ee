"""A scripted raw DICOM peer over loopback TCP, and hand-built data set bytes.

Tests use it to send what no well-behaved peer would: truncated data sets with the last-fragment bit set,
malformed command sets, PDU headers that promise gigabytes, requests with tens of thousands of contexts.
Well-formed PDUs are encoded with :mod:`aiodicom.ul`; anything else is built here byte by byte. Every read has
a timeout and every loop a bound, so a test that meets an unexpected server fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Self

from aiodicom.dimse import Command, CommandField, decode_command, encode_command
from aiodicom.ul import decode_pdu, encode_pdu
from aiodicom.ul.items import (
    PresentationContextAC,
    PresentationContextRQ,
    RoleSelection,
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
)

TIMEOUT = 5.0
#: The largest PDU the peer reads back: a server that answers more is broken, and memory stays bounded.
MAX_READ_PDU = 256 << 20

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.9.7777.1"

P_DATA_TF = 0x04
A_ASSOCIATE_RQ = 0x01
A_RELEASE_RQ = 0x05

ContextSpec = tuple[int, str, Sequence[str]]


class PeerClosed(Exception):
    """The other side closed the connection while the raw peer was reading."""


# ----------------------------------------------------------------------------------------- PDU bytes


def pdu_header(pdu_type: int, length: int) -> bytes:
    """The 6-byte header of any PDU, declaring ``length`` bytes to follow (true or not)."""
    return struct.pack(">BxI", pdu_type, length)


@dataclass(frozen=True, slots=True)
class Pdv:
    """One presentation data value: context, command or data set fragment, last or not, value bytes."""

    context_id: int
    is_command: bool
    is_last: bool
    data: bytes


def pdata(*pdvs: Pdv) -> bytes:
    """A P-DATA-TF carrying ``pdvs``, hand-built (any context ID, any control bits, any value)."""
    body = b"".join(
        struct.pack(">IBB", len(p.data) + 2, p.context_id, int(p.is_command) | int(p.is_last) << 1) + p.data
        for p in pdvs
    )
    return pdu_header(P_DATA_TF, len(body)) + body


def fragments(
    context_id: int, is_command: bool, data: bytes, max_value: int, *, last: bool = True
) -> list[Pdv]:
    """``data`` cut into PDVs of at most ``max_value`` bytes; the final one flagged last when ``last``."""
    pieces = [data[i : i + max_value] for i in range(0, len(data), max_value)] or [b""]
    return [
        Pdv(context_id, is_command, last and i == len(pieces) - 1, piece) for i, piece in enumerate(pieces)
    ]


def associate_rq(
    contexts: Iterable[ContextSpec],
    *,
    called_ae_title: str = "ANY-SCP",
    calling_ae_title: str = "RAWPEER",
    max_pdu_length: int | None = 16384,
    role_selections: Sequence[RoleSelection] = (),
) -> AAssociateRQ:
    """A well-formed A-ASSOCIATE-RQ proposing ``(context id, abstract syntax, transfer syntaxes)``."""
    return AAssociateRQ(
        called_ae_title,
        calling_ae_title,
        tuple(PresentationContextRQ(cid, abstract, tuple(ts)) for cid, abstract, ts in contexts),
        UserInformation.build(
            max_length=max_pdu_length,
            implementation_class_uid=IMPLEMENTATION_UID,
            role_selections=tuple(role_selections),
        ),
    )


def accept_all(rq: AAssociateRQ, max_pdu_length: int = 16384) -> AAssociateAC:
    """An A-ASSOCIATE-AC accepting every proposed context with its first transfer syntax."""
    return AAssociateAC(
        rq.called_ae_title,
        rq.calling_ae_title,
        tuple(
            PresentationContextAC(pc.context_id, 0, pc.transfer_syntaxes[0])
            for pc in rq.presentation_contexts
        ),
        UserInformation.build(max_length=max_pdu_length, implementation_class_uid=IMPLEMENTATION_UID),
    )


def command_bytes(elements: Iterable[tuple[int, bytes]]) -> bytes:
    """A command set built by hand from ``(element, raw value)`` pairs of group 0000 (group length first)."""
    body = b"".join(struct.pack("<HHI", 0, element, len(value)) + value for element, value in elements)
    return struct.pack("<HHI", 0, 0, 4) + struct.pack("<I", len(body)) + body


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def ui(value: str | bytes) -> bytes:
    raw = value.encode("ascii") if isinstance(value, str) else value
    return raw + b"\x00" if len(raw) % 2 else raw


# -------------------------------------------------------------------------------------------- the peer


@dataclass(slots=True)
class Message:
    """A DIMSE message read back: its context, its command, its data set bytes (None without one)."""

    context_id: int
    command: Command
    dataset: bytes | None = None


class RawPeer:
    """One TCP connection to 127.0.0.1 driven by a test script."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.max_value = 16384 - 6  # PDV value size when sending data sets (the peer's maximum - 6)
        self._message_id = 0

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> RawPeer:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
        return cls(reader, writer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    # ------------------------------------------------------------------------------------ raw I/O

    async def send(self, data: bytes, timeout: float = TIMEOUT) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), timeout)

    async def read_exactly(self, n: int, timeout: float = TIMEOUT) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.readexactly(n), timeout)
        except asyncio.IncompleteReadError as exc:
            raise PeerClosed(f"connection closed after {len(exc.partial)} of {n} bytes") from exc
        except ConnectionError as exc:
            raise PeerClosed(f"connection lost: {exc}") from exc

    async def read_pdu_bytes(self, timeout: float = TIMEOUT) -> bytes:
        """One whole PDU, header included, within ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            header = await self.read_exactly(6, timeout)
            (length,) = struct.unpack(">I", header[2:])
            if length > MAX_READ_PDU:
                raise AssertionError(f"the other side sent a PDU header declaring {length} bytes")
            return header + await self.read_exactly(length, timeout)

    async def read_pdu(self, timeout: float = TIMEOUT) -> PDU:
        return decode_pdu(await self.read_pdu_bytes(timeout))

    async def wait_closed(self, timeout: float = TIMEOUT, max_bytes: int = 1 << 20) -> bytes:
        """Read until the other side closes; return what came meanwhile. TimeoutError if it stays open."""
        received = bytearray()
        async with asyncio.timeout(timeout):
            while len(received) <= max_bytes:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionError:
                    return bytes(received)
                if not chunk:
                    return bytes(received)
                received += chunk
        raise AssertionError(f"more than {max_bytes} bytes received while waiting for the close")

    async def closes_within(self, timeout: float) -> bool:
        """Whether the other side closes the connection within ``timeout`` seconds."""
        try:
            await self.wait_closed(timeout)
        except TimeoutError:
            return False
        return True

    async def expect_abort(self, timeout: float = TIMEOUT) -> AAbort:
        """The next PDU must be an A-ABORT (then the connection must close)."""
        pdu = await self.read_pdu(timeout)
        assert isinstance(pdu, AAbort), f"expected an A-ABORT, received {pdu!r}"
        return pdu

    # -------------------------------------------------------------------------------- association

    async def associate(
        self, contexts: Iterable[ContextSpec] | AAssociateRQ | bytes, timeout: float = TIMEOUT
    ) -> AAssociateAC:
        """Send an A-ASSOCIATE-RQ (built from ``contexts``, given, or raw bytes); the AC must come back."""
        pdu = await self.request(contexts, timeout)
        assert isinstance(pdu, AAssociateAC), f"expected an A-ASSOCIATE-AC, received {pdu!r}"
        peer_max = pdu.user_information.max_length or 0
        self.max_value = (peer_max or 16384) - 6
        return pdu

    async def request(
        self, contexts: Iterable[ContextSpec] | AAssociateRQ | bytes, timeout: float = TIMEOUT
    ) -> PDU:
        """Send an A-ASSOCIATE-RQ and return whatever PDU answers it.

        The answer is read while the request is still being written: a server may refuse a large request
        before it has read all of it, and stop reading.
        """
        if isinstance(contexts, bytes):
            raw = contexts
        elif isinstance(contexts, AAssociateRQ):
            raw = encode_pdu(contexts)
        else:
            raw = encode_pdu(associate_rq(contexts))
        answer = asyncio.ensure_future(self.read_pdu(timeout))
        try:
            await self.send(raw, timeout)
        except ConnectionError:
            pass  # refused before the whole request was read: the answer says why
        except BaseException:
            answer.cancel()
            raise
        return await answer

    async def release(self, timeout: float = TIMEOUT) -> None:
        """A-RELEASE-RQ; the A-RELEASE-RP must come back; then the requestor closes (PS3.8 AR-3)."""
        await self.send(encode_pdu(AReleaseRQ()), timeout)
        pdu = await self.read_pdu(timeout)
        assert isinstance(pdu, AReleaseRP), f"expected an A-RELEASE-RP, received {pdu!r}"
        await self.close()

    # --------------------------------------------------------------------------------------- DIMSE

    def next_message_id(self) -> int:
        self._message_id += 1
        return self._message_id

    async def send_pdvs(self, *pdvs: Pdv, timeout: float = TIMEOUT) -> None:
        """One P-DATA-TF carrying ``pdvs``."""
        await self.send(pdata(*pdvs), timeout)

    async def send_command(self, context_id: int, command: Command | bytes, timeout: float = TIMEOUT) -> None:
        raw = encode_command(command) if isinstance(command, Command) else command
        for pdv in fragments(context_id, True, raw, self.max_value):
            await self.send_pdvs(pdv, timeout=timeout)

    async def send_dataset(
        self, context_id: int, data: bytes, *, last: bool = True, timeout: float = TIMEOUT
    ) -> None:
        """The data set in PDVs of the peer's maximum size, one P-DATA-TF each."""
        pdvs = fragments(context_id, False, data, self.max_value, last=last)
        for start in range(0, len(pdvs), 64):  # a few PDUs per write
            await self.send(b"".join(pdata(p) for p in pdvs[start : start + 64]), timeout)

    async def receive_message(self, timeout: float = TIMEOUT) -> Message:
        """The next DIMSE message; AssertionError if another PDU (an A-ABORT...) comes instead."""
        command = bytearray()
        dataset: bytearray | None = None
        context: int | None = None
        parsed: Command | None = None
        async with asyncio.timeout(timeout):
            for _ in range(1 << 20):
                pdu = await self.read_pdu(timeout)
                if not isinstance(pdu, PDataTF):
                    raise AssertionError(f"expected a DIMSE message, received {pdu!r}")
                for pdv in pdu.pdvs:
                    context = pdv.context_id
                    if pdv.is_command:
                        command += pdv.data
                        if pdv.is_last:
                            parsed = decode_command(bytes(command))
                            if not parsed.has_dataset:
                                return Message(context, parsed)
                            dataset = bytearray()
                    else:
                        assert dataset is not None, "data set fragment before the command"
                        dataset += pdv.data
                        if pdv.is_last:
                            assert parsed is not None
                            return Message(context, parsed, bytes(dataset))
        raise AssertionError("no complete message in a million PDUs")

    async def c_echo(self, context_id: int, timeout: float = TIMEOUT) -> Command:
        """A C-ECHO-RQ on ``context_id``; returns the C-ECHO-RSP command."""
        message_id = self.next_message_id()
        await self.send_command(context_id, Command.c_echo_rq(message_id), timeout)
        rsp = (await self.receive_message(timeout)).command
        assert rsp.command_field == CommandField.C_ECHO_RSP, rsp
        assert rsp.message_id_being_responded_to == message_id, rsp
        return rsp

    async def c_store(
        self,
        context_id: int,
        instance: Instance,
        *,
        data: bytes | None = None,
        command: Command | bytes | None = None,
        timeout: float = TIMEOUT,
    ) -> Command:
        """A C-STORE-RQ of ``instance`` (or of ``data`` under its command); returns the C-STORE-RSP."""
        if command is None:
            command = Command.c_store_rq(self.next_message_id(), instance.sop_class, instance.sop_instance)
        await self.send_command(context_id, command, timeout)
        await self.send_dataset(context_id, instance.data if data is None else data, timeout=timeout)
        rsp = (await self.receive_message(timeout)).command
        assert rsp.command_field == CommandField.C_STORE_RSP, rsp
        return rsp


def rejected(pdu: PDU) -> bool:
    return isinstance(pdu, AAssociateRJ)


# ---------------------------------------------------------------------------------------- the acceptor


Script = Callable[[RawPeer], Awaitable[None]]


class RawAcceptor:
    """A listener on 127.0.0.1 that runs ``script(peer)`` for each connection it accepts.

    ``async with RawAcceptor(script) as acceptor:`` then connect to ``acceptor.port``. Exceptions in a script
    are kept in :attr:`errors` for the test to check.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.port = 0
        self.errors: list[BaseException] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = RawPeer(reader, writer)
        try:
            await self.script(peer)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # kept for the test: a script that failed must fail the test
            self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            await peer.close()


async def accept_association(peer: RawPeer, timeout: float = TIMEOUT) -> AAssociateRQ:
    """Acceptor side: read the A-ASSOCIATE-RQ and accept every context."""
    rq = await peer.read_pdu(timeout)
    assert isinstance(rq, AAssociateRQ), f"expected an A-ASSOCIATE-RQ, received {rq!r}"
    await peer.send(encode_pdu(accept_all(rq)), timeout)
    peer_max = rq.user_information.max_length or 0
    peer.max_value = (peer_max or 16384) - 6
    return rq


# ------------------------------------------------------------------------------------ data set bytes

#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Encoding:
    """How a data set is encoded: implicit or explicit VR, little or big endian."""

    implicit: bool = False
    little: bool = True

    @property
    def order(self) -> str:
        return "<" if self.little else ">"


LE = Encoding()
IMPLICIT = Encoding(implicit=True)
BE = Encoding(little=False)


def element(tag: int, vr: str, value: bytes, enc: Encoding = LE, *, length: int | None = None) -> bytes:
    """One data element; ``length`` overrides the value's true length (to lie about it)."""
    size = len(value) if length is None else length
    head = struct.pack(enc.order + "HH", tag >> 16, tag & 0xFFFF)
    if enc.implicit:
        head += struct.pack(enc.order + "I", size)
    elif vr in _LONG_VRS:
        head += vr.encode("ascii") + b"\x00\x00" + struct.pack(enc.order + "I", size)
    else:
        head += vr.encode("ascii") + struct.pack(enc.order + "H", size)
    return head + value


def text(tag: int, vr: str, value: str | bytes, enc: Encoding = LE) -> bytes:
    """A string element padded to even length (NUL for UI, space otherwise)."""
    raw = value.encode("ascii") if isinstance(value, str) else value
    if len(raw) % 2:
        raw += b"\x00" if vr == "UI" else b" "
    return element(tag, vr, raw, enc)


def ushort(tag: int, value: int, enc: Encoding = LE) -> bytes:
    return element(tag, "US", struct.pack(enc.order + "H", value), enc)


def delimiter(tag: int, enc: Encoding = LE, length: int = 0) -> bytes:
    """An item tag or a delimiter, (FFFE,xxxx): tag and 4-byte length, never a VR."""
    return struct.pack(enc.order + "HHI", tag >> 16, tag & 0xFFFF, length)


ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


def item(content: bytes, enc: Encoding = LE, *, undefined: bool = False) -> bytes:
    if undefined:
        return delimiter(ITEM, enc, UNDEFINED) + content + delimiter(ITEM_END, enc)
    return delimiter(ITEM, enc, len(content)) + content


def sequence(tag: int, items: Sequence[bytes], enc: Encoding = LE, *, undefined: bool = False) -> bytes:
    body = b"".join(items)
    if undefined:
        return element(tag, "SQ", body, enc, length=UNDEFINED) + delimiter(SEQUENCE_END, enc)
    return element(tag, "SQ", body, enc)


def new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


@dataclass(frozen=True, slots=True)
class Instance:
    """A C-STORE instance: its UIDs, and the data set bytes as they go on the wire."""

    sop_class: str
    sop_instance: str
    study: str
    series: str
    data: bytes

    @property
    def relative_path(self) -> str:
        return f"{self.study}/{self.series}/{self.sop_instance}.dcm"


def leading(
    enc: Encoding = LE, *, sop_class: str = CT_IMAGE_STORAGE, sop_instance: str | bytes | None = None
) -> tuple[bytes, dict[str, str]]:
    """The elements that place an instance (SOP class and instance, study, series, patient), in tag order;
    returns the bytes and the UIDs."""
    instance = sop_instance if sop_instance is not None else new_uid()
    uids = {
        "sop_class": sop_class,
        "sop_instance": instance if isinstance(instance, str) else instance.decode("latin-1"),
        "study": new_uid(),
        "series": new_uid(),
    }
    data = b"".join(
        [
            text(0x00080016, "UI", sop_class, enc),
            text(0x00080018, "UI", instance, enc),
            text(0x00080060, "CS", "CT", enc),
            text(0x00100010, "PN", "Raw^Peer", enc),
            text(0x00100020, "LO", "RAW1", enc),
            text(0x0020000D, "UI", uids["study"], enc),
            text(0x0020000E, "UI", uids["series"], enc),
        ]
    )
    return data, uids


def image_pixel(enc: Encoding = LE, rows: int = 16, columns: int = 16) -> bytes:
    """The Image Pixel module for 16-bit monochrome pixels."""
    return b"".join(
        [
            ushort(0x00280002, 1, enc),
            text(0x00280004, "CS", "MONOCHROME2", enc),
            ushort(0x00280010, rows, enc),
            ushort(0x00280011, columns, enc),
            ushort(0x00280100, 16, enc),
            ushort(0x00280101, 16, enc),
            ushort(0x00280102, 15, enc),
            ushort(0x00280103, 0, enc),
        ]
    )


def native_pixels(nbytes: int, enc: Encoding = LE) -> bytes:
    """Pixel Data (7FE0,0010) OW of ``nbytes`` bytes of a simple pattern."""
    pattern = bytes(range(256)) * (nbytes // 256 + 1)
    return element(0x7FE00010, "OW", pattern[:nbytes], enc)


def encapsulated_pixels(fragments_: Sequence[bytes], offsets: bytes = b"") -> bytes:
    """Encapsulated Pixel Data (explicit VR LE): Basic Offset Table item, fragments, sequence delimiter."""
    items = delimiter(ITEM, LE, len(offsets)) + offsets
    items += b"".join(delimiter(ITEM, LE, len(f)) + f for f in fragments_)
    return element(0x7FE00010, "OB", items, LE, length=UNDEFINED) + delimiter(SEQUENCE_END, LE)


def instance(body: bytes = b"", enc: Encoding = LE, **options: object) -> Instance:
    """An instance whose data set is the placing elements followed by ``body`` (elements after
    (0020,000E), in tag order)."""
    head, uids = leading(enc, **options)  # type: ignore[arg-type]
    return Instance(uids["sop_class"], uids["sop_instance"], uids["study"], uids["series"], head + body)


def ct_image(pixel_bytes: int = 512, enc: Encoding = LE) -> Instance:
    """A small, whole CT image with native pixel data."""
    return instance(image_pixel(enc) + native_pixels(pixel_bytes, enc), enc)
