"""Where a received data set goes, PDV by PDV: the sink protocol, and a sink that keeps it in memory.

A service opens a :class:`DatasetSink` per incoming data set; the association writes each PDV value into it
as it arrives (a memoryview valid only during the call: a sink that keeps bytes copies them). ``write`` may
return an awaitable: the association then stops reading from the peer until it completes (backpressure).
A sink is finished by its owner, or dropped with :meth:`DatasetSink.abort`, which must leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, runtime_checkable

from aiodicom.errors import StorageError


@runtime_checkable
class DatasetSink(Protocol):
    """Receives one data set's bytes in order."""

    def write(self, data: memoryview) -> Awaitable[None] | None:
        """Take the next bytes; return an awaitable to pause reading until it is done."""

    async def abort(self) -> None:
        """Discard everything written; nothing of it may remain."""


class MemorySink:
    """Collects a data set in memory, up to ``limit`` bytes (responses of C-FIND and the like)."""

    def __init__(self, limit: int = 64 << 20) -> None:
        self.limit = limit
        self._data = bytearray()

    def write(self, data: memoryview) -> None:
        if len(self._data) + len(data) > self.limit:
            raise StorageError(f"data set larger than {self.limit} bytes in memory")
        self._data += data

    @property
    def data(self) -> bytes:
        return bytes(self._data)

    async def abort(self) -> None:
        self._data = bytearray()


class DiscardSink:
    """Swallows the rest of a data set (after its sink failed, or for a message that is refused)."""

    def write(self, data: memoryview) -> None:
        pass

    async def abort(self) -> None:
        pass
