"""One worker process of a StoreScp with ``workers=N`` (see :mod:`aiodicom.scp.workers`):
``python -m aiodicom.scp.worker CHANNEL_FD LISTEN_FD`` (started by :func:`aiodicom.net.processes.spawn`).

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
import sys
import threading
from typing import Any

from aiodicom.errors import StorageError
from aiodicom.net.processes import Channel, WorkerEnds

log = logging.getLogger("aiodicom.scp.workers")

#: The attributes of a log record that go to the parent (values of ``extra=`` may not pickle).
_RECORD_FIELDS = frozenset(
    (
        "name", "levelno", "levelname", "pathname", "filename", "module", "lineno", "funcName", "created",
        "msecs", "relativeCreated", "thread", "threadName", "process", "taskName", "stack_info",
    )
)  # fmt: skip


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


async def serve(config: dict[str, Any], ends: WorkerEnds) -> int:
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

    channel = await ends.channel()
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
        scp.listen_socket = ends.listener
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
    """Read the configuration (before an event loop runs: it says which loop), then serve."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's: it stops the workers
    ends = WorkerEnds(argv)
    try:
        config = pickle.loads(ends.receive_blocking())
    except EOFError:
        return 1
    except Exception as exc:
        reason = f"a worker process cannot load the server's configuration: {type(exc).__name__}: {exc}"
        ends.send_blocking(("failed", ValueError(reason)))
        return 2
    if config["uvloop"]:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return int(uvloop.run(serve(config, ends)))
    return asyncio.run(serve(config, ends))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
