"""A loopback TCP proxy that records what each connection sent upstream: to see which associations a
retrieve opened (the abstract syntaxes of an A-ASSOCIATE-RQ are plain text in its bytes)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

#: The C-FIND, C-GET and C-MOVE SOP classes of both models, as they appear in an A-ASSOCIATE-RQ.
FIND = (b"1.2.840.10008.5.1.4.1.2.1.1", b"1.2.840.10008.5.1.4.1.2.2.1")
GET = (b"1.2.840.10008.5.1.4.1.2.1.3", b"1.2.840.10008.5.1.4.1.2.2.3")
MOVE = (b"1.2.840.10008.5.1.4.1.2.1.2", b"1.2.840.10008.5.1.4.1.2.2.2")


class RecordingProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``; ``sent[i]`` is what connection i sent."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.sent: list[bytearray] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        if self._tasks:  # connections still open: give them a moment, then cut them
            await asyncio.wait(self._tasks, timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def associations(self, *sop_classes: bytes) -> int:
        """How many connections proposed one of ``sop_classes`` (their A-ASSOCIATE-RQ names it)."""
        return sum(1 for data in self.sent if any(uid in bytes(data[:4096]) for uid in sop_classes))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        record = bytearray()
        self.sent.append(record)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        pipes = {
            asyncio.create_task(self._pipe(reader, up_writer, record)),
            asyncio.create_task(self._pipe(up_reader, writer, None)),
        }
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait(pipes, timeout=0.5)  # let the other direction flush what it has
        finally:
            for pipe in pipes:
                pipe.cancel()
            for w in (writer, up_writer):  # closed even when the test's loop cancels us
                w.close()
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray | None
    ) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            while data := await reader.read(65536):
                if record is not None:
                    record += data
                writer.write(data)
                await writer.drain()
            writer.write_eof()
