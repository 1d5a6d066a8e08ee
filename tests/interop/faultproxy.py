"""A TCP proxy on loopback that can black out or delay: for tests of what happens when a peer's network
fails or is far away."""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``.

    :meth:`blackout_after` arms a fault: once that many bytes have gone upstream, every connection is cut
    and new ones are refused (closed at once) for ``seconds``; then traffic passes again.

    ``latency`` (seconds, each way) delays every chunk: it is released at its arrival time plus the delay
    by a writer of its own, while the next chunks are read (a sleep per chunk would cap the throughput at
    one read per delay). At most ``max_in_transit`` bytes wait in each direction; past that, reading
    pauses, as a full network would. With ``record=True``, :attr:`timeline` keeps every chunk in the order
    the proxy read them, ``(True, data)`` upstream and ``(False, data)`` downstream.
    """

    def __init__(
        self,
        target: int,
        *,
        latency: float = 0.0,
        max_in_transit: int = 16 << 20,
        record: bool = False,
        port: int = 0,
    ) -> None:
        self.target = target
        self.record = record
        self.timeline: list[tuple[bool, bytes]] = []
        self.latency = latency
        self.max_in_transit = max_in_transit
        self.port = port  # 0: a free one
        self.upstream_bytes = 0
        self.downstream_bytes = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._armed: tuple[int, float, bool] | None = None  # (byte count, seconds, downstream?)
        self._dark_until = 0.0
        self.blackout_started = asyncio.Event()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def blackout_after(self, upstream_bytes: int, seconds: float, *, downstream: bool = False) -> None:
        """Cut once that many more bytes went upstream (to the target), or downstream when asked."""
        count = self.downstream_bytes if downstream else self.upstream_bytes
        self._armed = (count + upstream_bytes, seconds, downstream)

    def dark_for(self) -> float:
        """Seconds until traffic passes again (0 or less: it passes)."""
        return self._dark_until - asyncio.get_running_loop().time()

    def _dark(self) -> bool:
        return asyncio.get_running_loop().time() < self._dark_until

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dark():
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
        if self.latency > 0:
            await self._delayed_pipe(reader, writer, upstream)
            return
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self._dark():
                    break
                if upstream:
                    self.upstream_bytes += len(data)
                else:
                    self.downstream_bytes += len(data)
                armed = self._armed
                counted = self.downstream_bytes if armed and armed[2] else self.upstream_bytes
                if armed is not None and armed[2] != upstream and counted >= armed[0]:
                    self._cut(armed[1])
                    break
                if self.record:
                    self.timeline.append((upstream, data))
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _delayed_pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        transit: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        room = asyncio.Event()  # set while fewer than max_in_transit bytes wait
        room.set()
        waiting = [0]

        async def release() -> None:
            while (entry := await transit.get()) is not None:
                due, data = entry
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                waiting[0] -= len(data)
                if waiting[0] <= self.max_in_transit:
                    room.set()

        releaser = asyncio.create_task(release())
        releaser.add_done_callback(lambda _: room.set())  # a writer that failed holds nobody up
        try:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    if self._dark() or releaser.done():
                        break
                    if upstream:
                        self.upstream_bytes += len(data)
                    else:
                        self.downstream_bytes += len(data)
                    armed = self._armed
                    counted = self.downstream_bytes if armed and armed[2] else self.upstream_bytes
                    if armed is not None and armed[2] != upstream and counted >= armed[0]:
                        self._cut(armed[1])
                        break
                    if self.record:
                        self.timeline.append((upstream, data))
                    transit.put_nowait((loop.time() + self.latency, data))
                    waiting[0] += len(data)
                    if waiting[0] > self.max_in_transit:
                        room.clear()
                    await room.wait()
                transit.put_nowait(None)  # what was read still arrives, then the end
                await releaser
        finally:
            releaser.cancel()
            with contextlib.suppress(BaseException):
                await releaser
            writer.close()

    def _cut(self, seconds: float) -> None:
        self._armed = None
        self.cuts += 1
        self._dark_until = asyncio.get_running_loop().time() + seconds
        self.blackout_started.set()
        for writer in list(self._writers):
            writer.transport.abort()
