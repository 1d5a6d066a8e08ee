"""PDVs -> DIMSE messages: the command is decoded once complete; data set bytes pass through chunk by chunk.

No files and no buffering of data set bytes: the caller routes each :class:`DatasetChunk` to a sink. Only the
command (small, bounded by ``max_command_bytes``) is accumulated. Messages are not interleaved: all the
fragments of one message come before any of the next, on one presentation context (PS3.7 6.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiodicom.dimse.commands import Command, InvalidCommand, decode_command
from aiodicom.errors import AbortReason, ProtocolError


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """A complete command; ``command.has_dataset`` says whether data set chunks follow."""

    context_id: int
    command: Command


@dataclass(frozen=True, slots=True)
class DatasetChunk:
    """The value of one data set PDV, in order; ``is_last`` on the message's final one.

    ``data`` is the PDV value as fed, not copied: a memoryview is valid only until the caller's receive
    buffer is reused, so consume or copy it before the next read.
    """

    context_id: int
    data: memoryview | bytes
    is_last: bool


class MessageAssembler:
    """Reassembles the messages of one association from its PDVs, one message at a time."""

    def __init__(self, max_command_bytes: int = 65536) -> None:
        self.max_command_bytes = max_command_bytes
        self._command = bytearray()
        self._context_id: int | None = None
        self._expecting_dataset = False

    @property
    def expecting_dataset(self) -> bool:
        """True between a command that announced a data set and the data set's last PDV."""
        return self._expecting_dataset

    @property
    def message_context_id(self) -> int | None:
        """The presentation context of the message being received, or None between messages."""
        return self._context_id

    def feed(
        self, context_id: int, is_command: bool, is_last: bool, data: memoryview | bytes
    ) -> list[CommandReceived | DatasetChunk]:
        """Take one PDV (a P-DATA-TF may hold several: feed each); return the events it completes.

        Raises :class:`~aiodicom.errors.ProtocolError` (reason UNEXPECTED_PDU_PARAMETER) for a PDV out of
        place, and :class:`~aiodicom.dimse.commands.InvalidCommand` for a command set that is too large or
        cannot be decoded.
        """
        if self._context_id is not None and context_id != self._context_id:
            raise ProtocolError(
                f"PDV for presentation context {context_id} inside a message on context {self._context_id}",
                AbortReason.UNEXPECTED_PDU_PARAMETER,
            )
        if self._expecting_dataset:
            if is_command:
                raise ProtocolError(
                    "command fragment received while a data set was expected",
                    AbortReason.UNEXPECTED_PDU_PARAMETER,
                )
            if is_last:
                self._expecting_dataset = False
                self._context_id = None
            return [DatasetChunk(context_id, data, is_last)]
        if not is_command:
            what = "before its command was complete" if self._command else "without a command announcing it"
            raise ProtocolError(f"data set fragment received {what}", AbortReason.UNEXPECTED_PDU_PARAMETER)
        if len(self._command) + len(data) > self.max_command_bytes:
            raise InvalidCommand(f"command set larger than {self.max_command_bytes} bytes")
        self._context_id = context_id
        if not is_last:
            self._command += data
            return []
        raw: bytes | bytearray | memoryview = data
        if self._command:
            self._command += data
            raw = self._command
            self._command = bytearray()
        command = decode_command(raw)  # a command in one PDV, the common case, is not accumulated first
        if command.has_dataset:
            self._expecting_dataset = True
        else:
            self._context_id = None
        return [CommandReceived(context_id, command)]
