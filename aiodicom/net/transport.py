"""The asyncio side of one connection: a ``BufferedProtocol`` driving a sans-IO ``Connection``.

Bytes are received straight into the connection's buffer (``recv_into``), events go to a listener
synchronously, outgoing buffers go out with ``writelines``. ARTIM and the A-ASSOCIATE-AC wait are deadlines
armed with ``loop.call_at``. Flow control works both ways: :meth:`drain` waits while the transport's write
buffer is full, and :meth:`pause_reading` stops reading while the listener is behind.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence

from aiodicom.ul.connection import Buffers, Connection, ConnectionEvent

log = logging.getLogger("aiodicom.net")

EventListener = Callable[[list[ConnectionEvent]], None]


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle's algorithm: small PDUs (commands, responses) must not wait for an ACK."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DicomProtocol(asyncio.BufferedProtocol):
    """Moves bytes between a transport and a sans-IO :class:`Connection`; decides nothing itself."""

    def __init__(self, connection: Connection, listener: EventListener | None = None) -> None:
        self.conn = connection
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.bytes_received = 0
        #: When bytes last arrived (loop time): timeouts measure the peer's silence from there.
        self.last_received = self.loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._read_pauses = 0

    # ---------------------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        set_nodelay(transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (str(peer[0]), int(peer[1]))
        self.write(self.conn.connection_made(self.loop.time()))
        self._rearm()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.conn.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.bytes_received += nbytes
        self.last_received = now = self.loop.time()
        self._deliver(self.conn.buffer_updated(nbytes, now))

    def eof_received(self) -> bool:
        return False  # close our side too: DICOM has no half-closed connections

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        events = self.conn.connection_lost(self.loop.time())
        self._wake_drainers(exc or ConnectionResetError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)
        if events and self.listener is not None:
            self.listener(events)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers(None)

    # ------------------------------------------------------------------------------------ sending

    def write(self, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
        """Write buffers as they are (no join); closes the transport if the connection asks for it."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if buffers:
            transport.writelines(buffers)
        if self.conn.wants_close:
            transport.close()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        if not self._write_paused:
            return
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    def send(self, buffers: Buffers) -> None:
        """Write what a ``Connection.send`` returned, then flush automatic sends and re-arm timers."""
        self.write(buffers)
        self.write(self.conn.data_to_send())
        self._rearm()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort_transport(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------------------------ receiving

    def pause_reading(self) -> None:
        """Stop reading from the socket until :meth:`resume_reading` (calls nest)."""
        self._read_pauses += 1
        if self._read_pauses == 1 and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    @property
    def reading_paused(self) -> bool:
        """Whether this side stopped reading (backpressure): the peer's silence then means nothing."""
        return self._read_pauses > 0

    def resume_reading(self) -> None:
        self._read_pauses = max(0, self._read_pauses - 1)
        if self._read_pauses == 0 and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _deliver(self, events: list[ConnectionEvent]) -> None:
        self.write(self.conn.data_to_send())
        if events and self.listener is not None:
            try:
                self.listener(events)
            except Exception:  # a listener bug must not kill the event loop's reader
                log.exception("error while handling upper-layer events from %s:%s", *self.peer)
                self.abort_transport()
        self.write(self.conn.data_to_send())
        self._rearm()

    # --------------------------------------------------------------------------------------- timers

    def _rearm(self) -> None:
        deadline = self.conn.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and not self.closed.done():
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        # call_at may fire within the clock's resolution before the deadline: it counts as reached
        now = max(self.loop.time(), self._timer_at or 0.0)
        self._timer = None
        self._timer_at = None
        self._deliver(self.conn.handle_timer(now))
