"""One worker process of a StoreScp with ``workers=N`` (see :mod:`aiodicom.scp.workers`):
``python -m aiodicom.scp.worker CHANNEL_FD LISTEN_FD``.

It reads its configuration from the channel, builds the same StoreScp on the inherited listening socket and
serves until the parent says stop (or closes the channel, or SIGTERM comes), then drains as one server
does. What happens goes to the parent: stored instances and the other events, the associations to count,
its log records (so that the parent's logging configuration applies to them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import threading
from typing import Any

from aiodicom.errors import StorageError

log = logging.getLogger("aiodicom.scp.workers")

_LENGTH = struct.Struct("<I")
#: The attributes of a log record that go to the parent (values of ``extra=`` may not pickle).
_RECORD_FIELDS = frozenset(
    (
        "name", "levelno", "levelname", "pathname", "filename", "module", "lineno", "funcName", "created",
        "msecs", "relativeCreated", "thread", "threadName", "process", "taskName", "stack_info",
    )
)  # fmt: skip


class Channel:
    """Length-prefixed pickles over a stream, both ways (between a parent and one worker)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._queued: list[bytes] = []  # written together once the loop is free: one send for many

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def send(self, message: object) -> None:
        self.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._flush)
        self._queued += (_LENGTH.pack(len(data)), data)

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        if not self.writer.is_closing():
            self.writer.write(b"".join(queued))

    async def receive(self) -> Any:
        """The next message; EOFError once the other side closed."""
        try:
            (length,) = _LENGTH.unpack(await self.reader.readexactly(_LENGTH.size))
            data = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise EOFError("the other process closed the channel") from exc
        return pickle.loads(data)

    async def close(self) -> None:
        """Close, once what was sent is written."""
        self._flush()
        if not self.writer.is_closing():
            with contextlib.suppress(OSError):
                await self.writer.drain()
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def _receive_blocking(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("the parent process closed the channel")
            data += chunk
        return bytes(data)

    (length,) = _LENGTH.unpack(exactly(_LENGTH.size))
    return exactly(length)


def _portable(exc: BaseException) -> Exception:
    """``exc`` if it survives a trip through pickle, else a StorageError that says what it was."""
    try:
        back = pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
        if type(back) is type(exc) and isinstance(back, Exception):
            return back
    except Exception:
        pass
    return StorageError(f"{type(exc).__name__}: {exc}")


class _AskParent:
    """The worker's :class:`~aiodicom.net.server.Admission`: each association is counted by the parent."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._tokens = itertools.count()
        self._waiting: dict[int, asyncio.Future[bool]] = {}
        self._abandoned: dict[int, str] = {}  # asked, then cancelled: a yes that comes is given back

    async def admit(self, host: str) -> bool:
        if self.channel.closed:
            return False
        token = next(self._tokens)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        self.channel.send(("admit", token, host))
        try:
            return await future
        except asyncio.CancelledError:
            self._abandoned[token] = host
            raise
        finally:
            del self._waiting[token]

    def release(self, host: str) -> None:
        self.channel.send(("release", host))

    def answer(self, token: int, admitted: bool) -> None:
        future = self._waiting.get(token)
        if future is not None and not future.done():
            future.set_result(admitted)
        elif (host := self._abandoned.pop(token, None)) is not None and admitted:
            self.release(host)

    def refuse_all(self) -> None:
        """The parent is gone: nothing more is admitted."""
        for future in self._waiting.values():
            if not future.done():
                future.set_result(False)


class _LogForward(logging.Handler):
    """Sends this process's log records to the parent; the server's own logger under the parent's name."""

    def __init__(self, channel: Channel, names: dict[str, str]) -> None:
        super().__init__()
        self.channel = channel
        self.names = names
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()  # the loop's: records from other threads are handed to it

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {k: v for k, v in record.__dict__.items() if k in _RECORD_FIELDS}
            fields["msg"] = record.getMessage()
            fields["args"] = None
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            elif record.exc_text:
                fields["exc_text"] = record.exc_text
            fields["name"] = self.names.get(record.name, record.name)
            if threading.get_ident() == self.thread:
                self.channel.send(("log", fields))
            elif not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self.channel.send, ("log", fields))
        except Exception:
            self.handleError(record)


async def serve(config: dict[str, Any], channel_socket: socket.socket, listener: socket.socket) -> int:
    """Build the server, say ready (or why not), serve until told to stop, drain, say stopped."""
    from aiodicom.scp.store import StoreErrorEvent, StoreScp
    from aiodicom.services.events import EventEmitter
    from aiodicom.services.studies import StudyTracker

    class Forward(EventEmitter):
        """The events go to the parent (which says ``server_started`` once, for every worker)."""

        def emit(self, name: str, payload: object) -> None:
            if name == "server_started":
                return
            if isinstance(payload, StoreErrorEvent):  # its exception may not pickle
                payload = dataclasses.replace(payload, error=_portable(payload.error))
            try:
                channel.send(("event", name, payload))
            except Exception:
                log.exception("cannot send the %s event to the parent process", name)

    class Untracked(StudyTracker):
        """Studies are completed by the parent, which sees the instances of every worker."""

        def add(self, instance: Any) -> None:
            pass

    reader, writer = await asyncio.open_unix_connection(sock=channel_socket)
    channel = Channel(reader, writer)
    admission = _AskParent(channel)
    stop = asyncio.Event()
    timeout: list[float | None] = [None]
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def control() -> None:
        try:
            while True:
                message = await channel.receive()
                if message[0] == "admitted":
                    admission.answer(message[1], message[2])
                elif message[0] == "stop":
                    timeout[0] = message[1]
                    stop.set()
        except EOFError:  # the parent is gone: stop as it would have asked
            admission.refuse_all()
            stop.set()

    controlling = asyncio.ensure_future(control())
    names: dict[str, str] = {}
    _setup_logging(_LogForward(channel, names), config["log_levels"])
    server: type[StoreScp] = config["server"]
    scp: StoreScp | None = None
    try:
        scp = server(**config["arguments"])
        names[scp.log.name] = config["log_name"]  # a verbose server's own logger: the parent's
        scp.listen_socket = listener
        scp.admission = admission
        scp._events = Forward(())
        scp.studies = Untracked(0.0, lambda _: None)
        if config["hook"] is not None:
            scp.on_before_store(config["hook"])
        await scp.start()
    except Exception as exc:
        channel.send(("failed", _portable(exc)))
        if scp is not None:
            with contextlib.suppress(Exception):
                await scp.stop(0)
        controlling.cancel()
        await channel.close()
        return 1
    channel.send(("ready", os.getpid()))
    await stop.wait()
    await scp.stop(timeout[0])
    channel.send(("stopped",))
    controlling.cancel()
    await channel.close()
    return 0


def _setup_logging(handler: logging.Handler, levels: dict[str, int]) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def main(argv: list[str]) -> int:
    """Read the configuration (blocking: the loop it asks for is not running yet), then serve."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's: it stops the workers
    channel = socket.socket(fileno=int(argv[0]))
    listener = socket.socket(fileno=int(argv[1]))
    try:
        config = pickle.loads(_receive_blocking(channel))
    except EOFError:
        return 1
    except Exception as exc:
        reason = f"a worker process cannot load the server's configuration: {type(exc).__name__}: {exc}"
        data = pickle.dumps(("failed", ValueError(reason)), protocol=pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(OSError):
            channel.sendall(_LENGTH.pack(len(data)) + data)
        return 2
    if config["uvloop"]:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return int(uvloop.run(serve(config, channel, listener)))
    return asyncio.run(serve(config, channel, listener))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
