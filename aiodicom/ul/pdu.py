"""The seven upper-layer PDUs (PS3.8 9.3) as frozen dataclasses, with ``decode_pdu`` / ``encode_pdu``.

A PDU is parsed once, from a memoryview of a whole PDU (header included). P-DATA-TF values stay
memoryviews into the caller's buffer: they are valid only until that buffer is reused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from aiodicom.errors import AbortReason, ProtocolError
from aiodicom.ul.items import (
    APPLICATION_CONTEXT,
    DICOM_APPLICATION_CONTEXT,
    PRESENTATION_CONTEXT_AC,
    PRESENTATION_CONTEXT_RQ,
    USER_INFORMATION,
    PresentationContextAC,
    PresentationContextRQ,
    UserInformation,
    _item,
    decode_uid,
    encode_uid,
    iter_items,
)

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

PDU_HEADER = struct.Struct(">BxI")
PDU_HEADER_LENGTH = 6
PDV_HEADER = struct.Struct(">IBB")
_PDATA_SINGLE = struct.Struct(">BxIIBB")
_ASSOC_FIXED = struct.Struct(">Hxx16s16s32x")
_ITEM_HEADER = struct.Struct(">BxH")


def _ae(value: memoryview) -> str:
    # AE titles are padded with spaces; leading and trailing spaces are not significant (PS3.5 6.2).
    # Decoded losslessly (latin-1), so that a title is never tested here (the AC's fields are reserved)
    # and whatever was received can be echoed back (the AC repeats the RQ's titles) or re-encoded.
    # Titles given by the application are checked by aiodicom.net.address.validate_ae_title.
    return bytes(value).decode("latin-1").strip(" \x00")


def _pad_ae(title: str) -> bytes:
    raw = title.encode("latin-1")
    if len(raw) > 16:
        raise ValueError(f"AE title {title!r} is longer than 16 characters")
    return raw.ljust(16, b" ")


@dataclass(frozen=True, slots=True)
class AAssociateRQ:
    """A-ASSOCIATE-RQ: the requestor's proposal."""

    called_ae_title: str
    calling_ae_title: str
    presentation_contexts: tuple[PresentationContextRQ, ...]
    user_information: UserInformation = field(default_factory=UserInformation)
    application_context_name: str = DICOM_APPLICATION_CONTEXT
    protocol_version: int = 1


@dataclass(frozen=True, slots=True)
class AAssociateAC:
    """A-ASSOCIATE-AC: the acceptor's answer; the AE title fields echo the request's (PS3.8 9.3.3)."""

    called_ae_title: str
    calling_ae_title: str
    presentation_contexts: tuple[PresentationContextAC, ...]
    user_information: UserInformation = field(default_factory=UserInformation)
    application_context_name: str = DICOM_APPLICATION_CONTEXT
    protocol_version: int = 1


@dataclass(frozen=True, slots=True)
class AAssociateRJ:
    """A-ASSOCIATE-RJ: result 1 permanent / 2 transient; source 1-3; reason (PS3.8 Table 9-21)."""

    result: int
    source: int
    reason: int


@dataclass(frozen=True, slots=True)
class PresentationDataValue:
    """One PDV item: a fragment of a DIMSE command or data set."""

    context_id: int
    is_command: bool
    is_last: bool
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class PDataTF:
    """P-DATA-TF: one or more PDV items."""

    pdvs: tuple[PresentationDataValue, ...]


@dataclass(frozen=True, slots=True)
class AReleaseRQ:
    """A-RELEASE-RQ."""


@dataclass(frozen=True, slots=True)
class AReleaseRP:
    """A-RELEASE-RP."""


@dataclass(frozen=True, slots=True)
class AAbort:
    """A-ABORT: source 0 service-user, 2 service-provider; reason per PS3.8 Table 9-26."""

    source: int = 0
    reason: int = 0


PDU = AAssociateRQ | AAssociateAC | AAssociateRJ | PDataTF | AReleaseRQ | AReleaseRP | AAbort


# ---------------------------------------------------------------------------------------------- encode


def _encode_associate(pdu_type: int, pdu: AAssociateRQ | AAssociateAC) -> bytes:
    body = bytearray(
        _ASSOC_FIXED.pack(pdu.protocol_version, _pad_ae(pdu.called_ae_title), _pad_ae(pdu.calling_ae_title))
    )
    _item(body, APPLICATION_CONTEXT, encode_uid(pdu.application_context_name))
    for context in pdu.presentation_contexts:
        context.encode(body)
    pdu.user_information.encode(body)
    return PDU_HEADER.pack(pdu_type, len(body)) + body


def encode_pdu(pdu: PDU) -> bytes:
    """Encode any PDU to its wire bytes (header included)."""
    if isinstance(pdu, PDataTF):
        parts = []
        for pdv in pdu.pdvs:
            control = (1 if pdv.is_command else 0) | (2 if pdv.is_last else 0)
            parts.append(PDV_HEADER.pack(len(pdv.data) + 2, pdv.context_id, control))
            parts.append(bytes(pdv.data))
        body = b"".join(parts)
        return PDU_HEADER.pack(P_DATA_TF, len(body)) + body
    if isinstance(pdu, AAssociateRQ):
        return _encode_associate(A_ASSOCIATE_RQ, pdu)
    if isinstance(pdu, AAssociateAC):
        return _encode_associate(A_ASSOCIATE_AC, pdu)
    if isinstance(pdu, AAssociateRJ):
        return PDU_HEADER.pack(A_ASSOCIATE_RJ, 4) + bytes((0, pdu.result, pdu.source, pdu.reason))
    if isinstance(pdu, AReleaseRQ):
        return PDU_HEADER.pack(A_RELEASE_RQ, 4) + bytes(4)
    if isinstance(pdu, AReleaseRP):
        return PDU_HEADER.pack(A_RELEASE_RP, 4) + bytes(4)
    if isinstance(pdu, AAbort):
        return PDU_HEADER.pack(A_ABORT, 4) + bytes((0, 0, pdu.source, pdu.reason))
    raise TypeError(f"not a PDU: {pdu!r}")


def pdata_header(context_id: int, is_command: bool, is_last: bool, value_length: int) -> bytes:
    """The 12 header bytes of a P-DATA-TF that carries a single PDV of ``value_length`` bytes.

    The fast path for sending: write this header followed by the value (a memoryview slice).
    """
    control = (1 if is_command else 0) | (2 if is_last else 0)
    return _PDATA_SINGLE.pack(P_DATA_TF, value_length + 6, value_length + 2, context_id, control)


# ---------------------------------------------------------------------------------------------- decode


def _decode_associate(pdu_type: int, body: memoryview) -> AAssociateRQ | AAssociateAC:
    name = "A-ASSOCIATE-RQ" if pdu_type == A_ASSOCIATE_RQ else "A-ASSOCIATE-AC"
    if len(body) < _ASSOC_FIXED.size:
        raise ProtocolError(
            f"{name} is shorter than its fixed fields", AbortReason.INVALID_PDU_PARAMETER_VALUE
        )
    version, called, calling = _ASSOC_FIXED.unpack_from(body)
    app_context: str | None = None
    user_info: UserInformation | None = None
    rq_contexts: list[PresentationContextRQ] = []
    ac_contexts: list[PresentationContextAC] = []
    wanted = PRESENTATION_CONTEXT_RQ if pdu_type == A_ASSOCIATE_RQ else PRESENTATION_CONTEXT_AC
    unwanted = PRESENTATION_CONTEXT_AC if pdu_type == A_ASSOCIATE_RQ else PRESENTATION_CONTEXT_RQ
    for item_type, value in iter_items(body[_ASSOC_FIXED.size :], name):
        if item_type == APPLICATION_CONTEXT:
            if app_context is not None:
                raise ProtocolError(
                    f"{name} has two application context items", AbortReason.UNEXPECTED_PDU_PARAMETER
                )
            app_context = decode_uid(value)
        elif item_type == wanted:
            if pdu_type == A_ASSOCIATE_RQ:
                rq_contexts.append(PresentationContextRQ.decode(value))
            else:
                ac_contexts.append(PresentationContextAC.decode(value))
        elif item_type == USER_INFORMATION:
            if user_info is not None:
                raise ProtocolError(
                    f"{name} has two user information items", AbortReason.UNEXPECTED_PDU_PARAMETER
                )
            user_info = UserInformation.decode(value)
        elif item_type == unwanted:
            raise ProtocolError(
                f"{name} carries a presentation context item of type 0x{item_type:02X}",
                AbortReason.UNEXPECTED_PDU_PARAMETER,
            )
        # other item types are skipped (PS3.8 9.3.1)
    if app_context is None:
        raise ProtocolError(f"{name} has no application context item", AbortReason.UNRECOGNIZED_PDU_PARAMETER)
    if user_info is None:
        raise ProtocolError(f"{name} has no user information item", AbortReason.UNRECOGNIZED_PDU_PARAMETER)
    called_ae, calling_ae = _ae(memoryview(called)), _ae(memoryview(calling))
    if pdu_type == A_ASSOCIATE_RQ:
        return AAssociateRQ(called_ae, calling_ae, tuple(rq_contexts), user_info, app_context, version)
    return AAssociateAC(called_ae, calling_ae, tuple(ac_contexts), user_info, app_context, version)


def read_pdv_header(data: bytes | bytearray | memoryview, offset: int, room: int) -> tuple[int, int, int]:
    """``(item length, context ID, message control header)`` of the PDV item at ``offset``, which has
    ``room`` bytes left in its P-DATA-TF. Raises :class:`ProtocolError` for an item that is truncated,
    does not fit, or names an even presentation context."""
    if room < 6:
        raise ProtocolError("P-DATA-TF has a truncated PDV item", AbortReason.INVALID_PDU_PARAMETER_VALUE)
    length, context_id, control = PDV_HEADER.unpack_from(data, offset)
    if length < 2 or length + 4 > room:
        raise ProtocolError(
            f"PDV item length {length} does not fit its P-DATA-TF", AbortReason.INVALID_PDU_PARAMETER_VALUE
        )
    if context_id % 2 == 0:
        raise ProtocolError(
            f"PDV for presentation context {context_id}, which is not odd",
            AbortReason.INVALID_PDU_PARAMETER_VALUE,
        )
    return length, context_id, control


def decode_pdata(body: memoryview) -> PDataTF:
    """Decode the variable field of a P-DATA-TF; PDV values are memoryviews into ``body``."""
    pdvs = []
    offset = 0
    end = len(body)
    if end == 0:
        raise ProtocolError("P-DATA-TF carries no PDV item", AbortReason.INVALID_PDU_PARAMETER_VALUE)
    while offset < end:
        length, context_id, control = read_pdv_header(body, offset, end - offset)
        # bits 2-7 of the message control header are reserved: not checked (PS3.8 E.2)
        pdvs.append(
            PresentationDataValue(
                context_id, bool(control & 1), bool(control & 2), body[offset + 6 : offset + 4 + length]
            )
        )
        offset += 4 + length
    return PDataTF(tuple(pdvs))


def decode_pdu(data: bytes | bytearray | memoryview) -> PDU:
    """Decode one whole PDU (header included).

    Raises :class:`~aiodicom.errors.ProtocolError` whose ``reason`` is the A-ABORT reason to send.
    """
    view = memoryview(data)
    if len(view) < PDU_HEADER_LENGTH:
        raise ProtocolError("PDU is shorter than its 6-byte header", AbortReason.INVALID_PDU_PARAMETER_VALUE)
    pdu_type, length = PDU_HEADER.unpack_from(view)
    if not A_ASSOCIATE_RQ <= pdu_type <= A_ABORT:
        raise ProtocolError(f"unrecognized PDU type 0x{pdu_type:02X}", AbortReason.UNRECOGNIZED_PDU)
    if len(view) != PDU_HEADER_LENGTH + length:
        raise ProtocolError(
            f"PDU type 0x{pdu_type:02X} declares {length} bytes, "
            f"but {len(view) - PDU_HEADER_LENGTH} were given",
            AbortReason.INVALID_PDU_PARAMETER_VALUE,
        )
    body = view[PDU_HEADER_LENGTH:]
    if pdu_type == P_DATA_TF:
        return decode_pdata(body)
    if pdu_type in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC):
        return _decode_associate(pdu_type, body)
    # A-ASSOCIATE-RJ, A-RELEASE-RQ, A-RELEASE-RP, A-ABORT: 4 bytes
    if length != 4:
        raise ProtocolError(
            f"PDU type 0x{pdu_type:02X} has length {length}, not 4",
            AbortReason.INVALID_PDU_PARAMETER_VALUE,
        )
    if pdu_type == A_ASSOCIATE_RJ:
        return AAssociateRJ(body[1], body[2], body[3])
    if pdu_type == A_ABORT:
        return AAbort(body[2], body[3])
    return AReleaseRQ() if pdu_type == A_RELEASE_RQ else AReleaseRP()


def check_request_contexts(data: bytes | bytearray | memoryview) -> None:
    """Refuse, before decoding it, an A-ASSOCIATE-RQ (a whole PDU) whose presentation context IDs are
    even or repeated (hence also more than 128: the IDs are the odd numbers 1-255, PS3.8 9.3.2.2). Only
    the item headers are read, so a request with tens of thousands of contexts costs little. Raises
    :class:`ProtocolError` (invalid PDU parameter value)."""
    view = memoryview(data)
    offset, end = PDU_HEADER_LENGTH + _ASSOC_FIXED.size, len(view)
    seen: set[int] = set()
    while offset + 4 <= end:
        item_type, length = _ITEM_HEADER.unpack_from(view, offset)
        if item_type == PRESENTATION_CONTEXT_RQ and length >= 1 and offset + 4 < end:
            context_id = view[offset + 4]
            if context_id % 2 == 0 or context_id in seen:
                what = "an even" if context_id % 2 == 0 else "a repeated"
                raise ProtocolError(
                    f"A-ASSOCIATE-RQ has {what} presentation context ID ({context_id})",
                    AbortReason.INVALID_PDU_PARAMETER_VALUE,
                )
            seen.add(context_id)
        offset += 4 + length


def describe(pdu: PDU) -> str:
    """A short name for logs."""
    names = {
        AAssociateRQ: "A-ASSOCIATE-RQ",
        AAssociateAC: "A-ASSOCIATE-AC",
        AAssociateRJ: "A-ASSOCIATE-RJ",
        PDataTF: "P-DATA-TF",
        AReleaseRQ: "A-RELEASE-RQ",
        AReleaseRP: "A-RELEASE-RP",
        AAbort: "A-ABORT",
    }
    return names[type(pdu)]
