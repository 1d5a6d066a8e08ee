"""The asyncio side of one connection: a ``BufferedProtocol`` that moves bytes, and nothing else.

Bytes are received straight into the receiver's buffer (``recv_into``) and handed to it synchronously; what
the receiver wants sent goes out with ``writelines``; its one deadline is armed with ``loop.call_at``. The
receiver is the :class:`~aiodicom.net.association.Association`, the one owner of the sans-IO
``Connection``: this class never looks at the connection. Flow control works both ways: :meth:`drain` waits
while the transport's write buffer is full, and :meth:`pause_reading` stops reading while the receiver is
behind.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger("aiodicom.net")


#: How early a timer may fire and still count as its deadline (the loop clock's resolution and more).
_TIMER_SLACK = 0.001


class Receiver(Protocol):
    """What the protocol hands the bytes and the transport's events to."""

    def transport_ready(self, now: float) -> None: ...

    def get_buffer(self, sizehint: int) -> memoryview: ...

    def bytes_arrived(self, nbytes: int, now: float) -> None: ...

    def deadline_passed(self, now: float) -> None: ...

    def transport_lost(self, now: float) -> None: ...


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle's algorithm: small PDUs (commands, responses) must not wait for an ACK."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DicomProtocol(asyncio.BufferedProtocol):
    """Moves bytes between a transport and its :class:`Receiver`; decides nothing itself."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.bytes_received = 0
        #: Why the connection was lost, when it was an error (a TLS alert after the handshake...).
        self.lost_error: Exception | None = None
        #: When bytes last arrived (loop time): timeouts measure the peer's silence from there.
        self.last_received = self.loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._write_paused = False
        self._tls = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._read_pauses = 0

    # ---------------------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        set_nodelay(transport)
        # A TLS transport seals each buffer it is given as its own records: a PDU's 6-byte header would be
        # a record of its own (a seal, 22 bytes more, and a decrypt at the peer), so buffers are joined.
        self._tls = transport.get_extra_info("ssl_object") is not None
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (str(peer[0]), int(peer[1]))
        self._guarded(self.receiver.transport_ready, self.loop.time())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.receiver.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.bytes_received += nbytes
        self.last_received = now = self.loop.time()
        self._guarded(self.receiver.bytes_arrived, nbytes, now)

    def eof_received(self) -> bool:
        return False  # close our side too: DICOM has no half-closed connections

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_error = exc
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake_drainers(exc or ConnectionResetError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._guarded(self.receiver.transport_lost, self.loop.time())

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers(None)

    def _guarded(self, call: object, *args: object) -> None:
        try:
            call(*args)  # type: ignore[operator]
        except Exception:  # a receiver bug must not kill the event loop's reader
            log.exception("error while handling the connection with %s:%s", *self.peer)
            self.abort_transport()

    # ------------------------------------------------------------------------------------ sending

    def write(self, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
        """Write buffers as they are (no join), or joined into one when the transport is TLS."""
        transport = self.transport
        if buffers and transport is not None and not transport.is_closing():
            if self._tls and len(buffers) > 1:
                transport.write(b"".join(buffers))
            else:
                transport.writelines(buffers)

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

    def close(self) -> None:
        """Close the transport once what was written has gone out."""
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

    # --------------------------------------------------------------------------------------- timers

    def set_deadline(self, deadline: float | None) -> None:
        """Call the receiver's ``deadline_passed`` at ``deadline`` (loop time; None: no deadline)."""
        if deadline == self._timer_at:
            return
        armed = self._timer
        self._timer_at = deadline
        if armed is not None and deadline is not None and armed.when() <= deadline:
            return  # a later deadline (the usual case: each message moves it on): the armed timer re-arms
        if armed is not None:
            armed.cancel()
            self._timer = None
        if deadline is not None and not self.closed.done():
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._timer_at
        if deadline is None:
            return
        # call_at may fire within the clock's resolution before the deadline: that counts as reached
        now = self.loop.time()
        if deadline - now > _TIMER_SLACK:  # moved on since it was armed
            if not self.closed.done():
                self._timer = self.loop.call_at(deadline, self._on_timer)
            return
        self._timer_at = None
        self._guarded(self.receiver.deadline_passed, max(now, deadline))


async def wait_while_talking(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[None],
    timeout: float,
    protocol: DicomProtocol | None,
    peer: tuple[str, int],
) -> None:
    """Wait for ``waiter`` while the peer talks: TimeoutError (set on ``waiter``) once nothing came from
    it for ``timeout`` seconds while this side was not holding it back (paused reading is not silence).

    One timer, armed again while bytes keep coming: cheaper than ``asyncio.wait`` once per message.
    """
    since = loop.time()
    handle: asyncio.TimerHandle | None = None

    def check() -> None:
        nonlocal since, handle
        if waiter.done():
            return
        now = loop.time()
        if protocol is not None and protocol.reading_paused:
            since = now  # this side holds the peer back (a slow hook, a slow disk): not silence
        elif protocol is not None:
            since = max(since, protocol.last_received)
        remaining = since + timeout - now
        if remaining <= 0:
            waiter.set_exception(TimeoutError(f"nothing received from {peer[0]}:{peer[1]} for {timeout:g} s"))
        else:
            handle = loop.call_at(now + remaining, check)

    handle = loop.call_at(since + timeout, check)
    try:
        await waiter
    finally:
        handle.cancel()
