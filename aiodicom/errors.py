"""One exception tree for everything aiodicom raises.

Every error derives from :class:`DicomError`. Errors raised by the sans-IO core carry what the
network layer needs to act on them (for a protocol error: which A-ABORT to send).
"""

from __future__ import annotations

from enum import IntEnum


class AbortSource(IntEnum):
    """A-ABORT source field (PS3.8 Table 9-26)."""

    SERVICE_USER = 0
    RESERVED = 1
    SERVICE_PROVIDER = 2


class AbortReason(IntEnum):
    """A-ABORT reason/diag field when the source is the service provider (PS3.8 Table 9-26)."""

    NOT_SPECIFIED = 0
    UNRECOGNIZED_PDU = 1
    UNEXPECTED_PDU = 2
    RESERVED = 3
    UNRECOGNIZED_PDU_PARAMETER = 4
    UNEXPECTED_PDU_PARAMETER = 5
    INVALID_PDU_PARAMETER_VALUE = 6


class DicomError(Exception):
    """Base class of every error raised by aiodicom."""


class ProtocolError(DicomError):
    """The peer (or, with ``local=True``, this side) broke the DICOM upper layer protocol.

    ``reason`` is the A-ABORT reason to send to the peer (PS3.8 Table 9-26).
    """

    def __init__(
        self,
        message: str,
        reason: AbortReason = AbortReason.INVALID_PDU_PARAMETER_VALUE,
        *,
        local: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.local = local


class UsageError(DicomError):
    """The application asked for something the current association state does not allow.

    Nothing was sent on the wire.
    """


class AssociationRejected(DicomError):
    """The peer rejected the association (A-ASSOCIATE-RJ): ``result``, ``source`` and ``reason``."""

    def __init__(self, result: int, source: int, reason: int, message: str | None = None) -> None:
        self.result = result
        self.source = source
        self.reason = reason
        super().__init__(message or describe_rejection(result, source, reason))


class AssociationAborted(DicomError):
    """The association was aborted (A-ABORT or A-P-ABORT); ``source`` and ``reason`` when known."""

    def __init__(self, message: str, source: int | None = None, reason: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.reason = reason


class AssociationReleased(DicomError):
    """The association was released (normally, by either side): nothing more can be sent or received on it."""


class PeerUnreachable(DicomError, ConnectionError):
    """No transport connection to the peer could be made (refused, unreachable, timed out)."""


class TlsError(PeerUnreachable):
    """The TLS handshake with the peer failed; ``kind`` says why in one word (``unknown_ca``, ``expired``,
    ``protocol_version``, ``no_certificate``, ``not_tls``, ``timeout``...), the message in a few more."""

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


class DimseError(DicomError):
    """A DIMSE operation failed: ``status`` is the response status (or None without a response)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StorageError(DicomError):
    """A storage backend could not store, read or remove an instance."""


class NoAcceptableContext(DicomError):
    """No accepted presentation context fits the abstract/transfer syntax asked for."""


class ListenError(DicomError, OSError):
    """A server could not listen on its address (port in use, privileged port, unknown host)."""


class InvalidCommand(ProtocolError):
    """A command set that cannot be decoded; the association is aborted with ``reason``."""

    def __init__(self, message: str, reason: AbortReason = AbortReason.INVALID_PDU_PARAMETER_VALUE) -> None:
        super().__init__(message, reason)


class StoreRejected(DicomError):
    """Raised by an ``on_before_store`` hook to refuse an instance with a status (default 0x0124)."""

    def __init__(self, message: str = "rejected by the receiver", status: int = 0x0124) -> None:
        super().__init__(message)
        self.status = status


class DatasetParseError(DicomError, ValueError):
    """A data set that cannot be walked: truncated, malformed, or over a limit. The message says what is
    wrong in a few words (it goes into a response's Error Comment)."""


class TranscodeError(DicomError):
    """An instance could not be converted to another transfer syntax: no codec for its syntax or the target
    (the message names the syntax, and ``aiodicom[codecs]`` when a codec package is missing), a corrupt
    compressed stream, a frame count that does not match the pixel data, or pixel data the target cannot carry
    (JPEG Baseline from 12 or 16 bits). ``transfer_syntax`` is the syntax concerned, when one is."""

    def __init__(self, message: str, transfer_syntax: str | None = None) -> None:
        super().__init__(message)
        self.transfer_syntax = transfer_syntax

    def __reduce__(self) -> tuple[type[TranscodeError], tuple[str, str | None]]:
        # raised in a worker process: it comes back whole
        return type(self), (str(self), self.transfer_syntax)


class IdentityNotConfirmed(DicomError):
    """A positive response to our user identity was requested and the peer's A-ASSOCIATE-AC had none.

    The association was released: the peer did not confirm who we are.
    """


class QueryRejected(DicomError):
    """Raised by a C-FIND, C-GET or C-MOVE handler (or an archive behind one) to answer the request with a
    failure ``status`` and ``comment`` (the Error Comment, cut to 64 characters): 0xA900 for a query the
    information model cannot answer, 0xA700 when out of resources, 0xC000 (the default) when it cannot be
    processed, 0x0124 when the requestor is not allowed to ask."""

    def __init__(self, status: int = 0xC000, comment: str = "") -> None:
        super().__init__(comment or f"query rejected with status 0x{status:04X}")
        self.status = status
        self.comment = comment


class UnmatchableKey(DicomError, ValueError):
    """The PACS returned matches without the value of a matching key: it does not match on that key, so what
    it returned cannot be told to match the query."""


# The words of PS3.8 Table 9-21, written one way: for the errors, the logs and the command line.
_RJ_SOURCES = {1: "service-user", 2: "service-provider (ACSE)", 3: "service-provider (presentation)"}
_RJ_REASONS = {
    1: {
        1: "no-reason-given",
        2: "application-context-name-not-supported",
        3: "calling-AE-title-not-recognized",
        7: "called-AE-title-not-recognized",
    },
    2: {1: "no-reason-given", 2: "protocol-version-not-supported"},
    3: {1: "temporary-congestion", 2: "local-limit-exceeded"},
}


def describe_rejection(result: int, source: int, reason: int) -> str:
    """A one-line description of an A-ASSOCIATE-RJ (PS3.8 Table 9-21)."""
    kind = {1: "permanently", 2: "transiently"}.get(result, f"(result {result})")
    who = _RJ_SOURCES.get(source, f"source {source}")
    why = _RJ_REASONS.get(source, {}).get(reason, f"reason {reason}")
    return f"association rejected {kind} by the {who}: {why}"


class NServiceError(DicomError):
    """Raised by an N-service handler (N-ACTION, N-CREATE, N-SET, N-GET, N-DELETE, N-EVENT-REPORT) to answer
    the request with a failure ``status`` (PS3.7 Annex C: 0x0110 processing failure, the default; 0x0106
    invalid attribute value, 0x0111 duplicate SOP instance, 0x0112 no such SOP instance...) and ``comment``
    (the Error Comment, cut to 64 characters). ``error_id`` is the Error ID (0000,0903) a service class
    defines (PS3.4 F.7.2.2: 0xA710 for an MPPS no longer IN PROGRESS); ``offending_elements`` (0000,0901)
    and ``attribute_identifier_list`` (0000,1005) name the attributes at fault."""

    def __init__(
        self,
        status: int = 0x0110,
        comment: str = "",
        *,
        error_id: int | None = None,
        offending_elements: tuple[int, ...] | None = None,
        attribute_identifier_list: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(comment or f"refused with status 0x{status:04X}")
        self.status = status
        self.comment = comment
        self.error_id = error_id
        self.offending_elements = offending_elements
        self.attribute_identifier_list = attribute_identifier_list
