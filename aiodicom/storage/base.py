"""The storage seam: what a backend gives the store services for one instance (an :class:`InstanceSink`,
written PDV by PDV, then placed and committed or aborted), and what a backend is (:class:`Storage`).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable
from typing import Protocol


class InstanceSink(abc.ABC):
    """What the store services need of a backend's sink for one instance, whatever the backend.

    The owner writes the data set (after the file meta, when it writes one: :attr:`meta_length` bytes);
    once it knows where the instance goes it calls :meth:`place` (as early as it can: a streaming backend
    starts uploading then), and finally :meth:`commit` or :meth:`abort`.
    """

    def __init__(self) -> None:
        self.meta_length = 0  # bytes of file meta written first, when the owner writes one

    @abc.abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> Awaitable[None] | None:
        """Take the next bytes (the caller's buffer is reused once this returns); an awaitable pauses the
        association's reading until it is done."""

    @abc.abstractmethod
    async def place(
        self,
        relative_path: str,
        leading: bytes | None = None,
        leading_end: int = 0,
        *,
        deflated: bool = False,
    ) -> None:
        """Say where the instance goes (``Study/Series/SOP.dcm``, relative to the backend's root).

        With ``leading``, the bytes from :attr:`meta_length` to ``leading_end`` (offsets in what was
        written) are replaced by ``leading``: the leading elements, changed by a hook. With ``deflated`` the
        data set is deflated: ``leading_end`` is an offset in the inflated data set, and the whole data set is
        deflated again with its new leading elements (``aiodicom.dataset.rewrite.redeflate``).
        """

    @abc.abstractmethod
    async def commit(self) -> str:
        """Make the placed instance visible; return its location (a path, or ``s3://bucket/key``)."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard everything written; nothing of it may remain. Later writes are ignored."""


class Storage(Protocol):
    """A storage backend: opens a sink per instance. Implemented by the filesystem and S3 backends."""

    #: Whether sinks want their place before the data set is complete (to stream it out).
    streams: bool

    def open(self) -> InstanceSink: ...

    async def start(self) -> None:
        """Check that the storage is usable (raises :class:`StorageError` saying why not)."""

    async def stop(self) -> None:
        """Release what the storage holds, once no sink is open any more."""

    def location(self, relative_path: str) -> str:
        """Where an instance placed at ``relative_path`` is stored (a path or an ``s3://`` URI)."""
        ...
