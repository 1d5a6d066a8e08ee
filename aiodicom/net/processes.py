"""The socket side of a server's worker processes (:mod:`aiodicom.scp.workers`): one listening socket that
the parent binds and every worker inherits, and a channel between the parent and each worker.

A worker is ``python -m MODULE CHANNEL_FD LISTEN_FD``: a fresh interpreter given the listening socket and
one end of a UNIX socket pair with ``pass_fds`` (the kernel hands each new connection to one of the
processes waiting on the socket). Over the pair go length-prefixed pickles, both ways; what configures a
worker is pickled by :func:`portable_dumps`, which sends functions and classes by name (refusing those a
fresh interpreter could not import) and a TLS context as the :func:`~aiodicom.net.tls.server_context`
call that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pickle
import socket
import ssl
import struct
import subprocess
import sys
import types
from typing import Any

from aiodicom.net.server import listen_error
from aiodicom.net.tls import remade_server_context

__all__ = ["Channel", "Listener", "Unportable", "WorkerEnds", "child_environment", "portable_dumps", "spawn"]

_LENGTH = struct.Struct("<I")
_BACKLOG = 100  # asyncio's default


class Channel:
    """Length-prefixed pickles over a stream, both ways (between a parent and one worker). Messages sent
    in one turn of the event loop are written together."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._queued: list[bytes] = []

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def send(self, message: object) -> None:
        self.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, data: bytes) -> None:
        """Send a message pickled already."""
        if self.writer.is_closing():
            return
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._flush)
        self._queued += (_LENGTH.pack(len(data)), data)

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        if queued and not self.writer.is_closing():
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


class Listener:
    """The listening socket of every worker: ``host`` None (or ``""``) on every interface (one dual-stack
    socket: IPv4 peers are seen as ``::ffff:a.b.c.d``), else the one address ``host`` names (a ValueError
    when it names several). Binding errors are :class:`~aiodicom.errors.ListenError` as for one process."""

    def __init__(self, host: str | None, port: int) -> None:
        try:
            self.socket = _bind(host, port)
        except OSError as exc:
            raise listen_error(exc, f"{host or '*'}:{port}") from exc

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def close(self) -> None:
        """Close this process's copy (the workers keep theirs until they stop listening)."""
        self.socket.close()


def _bind(host: str | None, port: int) -> socket.socket:
    if not host:
        dual = socket.has_dualstack_ipv6()
        family = socket.AF_INET6 if dual else socket.AF_INET
        return socket.create_server(("", port), family=family, backlog=_BACKLOG, dualstack_ipv6=dual)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if len(addresses) > 1:
        raise ValueError(
            f"with workers, host must be one address: {host} is {', '.join(addresses)} (give one of them, "
            "or None for every interface)"
        )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # as asyncio binds "::": IPv6 only
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


async def spawn(
    module: str, listener: Listener, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Channel]:
    """Start ``python -m module`` with the listening socket and a channel to it (its own process group:
    Ctrl+C reaches the parent alone, which stops its workers)."""
    ours, theirs = socket.socketpair()
    listen_fd = listener.socket.fileno()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno()), str(listen_fd)],
            pass_fds=(theirs.fileno(), listen_fd),
            stdin=subprocess.DEVNULL,
            env=env,
            process_group=0,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    try:
        reader, writer = await asyncio.open_unix_connection(sock=ours)
    except BaseException:
        ours.close()
        process.kill()
        process.wait()
        raise
    return process, Channel(reader, writer)


class WorkerEnds:
    """A worker's side: the channel and the listening socket it was started with (``argv`` of
    :func:`spawn`)."""

    def __init__(self, argv: list[str]) -> None:
        self._channel = socket.socket(fileno=int(argv[0]))
        #: The listening socket, for :attr:`DicomServer.listen_socket
        #: <aiodicom.net.server.DicomServer.listen_socket>`.
        self.listener = socket.socket(fileno=int(argv[1]))

    def receive_blocking(self) -> bytes:
        """The first message, before an event loop runs (the configuration says which loop)."""

        def exactly(n: int) -> bytes:
            data = bytearray()
            while len(data) < n:
                chunk = self._channel.recv(n - len(data))
                if not chunk:
                    raise EOFError("the parent process closed the channel")
                data += chunk
            return bytes(data)

        (length,) = _LENGTH.unpack(exactly(_LENGTH.size))
        return exactly(length)

    def send_blocking(self, message: object) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(OSError):
            self._channel.sendall(_LENGTH.pack(len(data)) + data)

    async def channel(self) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=self._channel)
        return Channel(reader, writer)


# -------------------------------------------------------------------- what a worker is configured with


class Unportable(Exception):
    """Something cannot be made again in another process (the reason, in words)."""


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, ssl.SSLContext):
            remake = remade_server_context(obj)
            if remake is None:
                raise Unportable(
                    "a TLS context cannot be sent to another process: make it with "
                    "aiodicom.net.tls.server_context (each worker makes it again from the same files)"
                )
            return remake, ()
        if isinstance(obj, types.FunctionType | type):
            name = getattr(obj, "__qualname__", repr(obj))
            if obj.__module__ == "__main__":
                raise Unportable(
                    f"{name} is defined in the script being run (__main__), which the worker processes do "
                    "not run: define it in a module they can import"
                )
            if "<lambda>" in name or "<locals>" in name:
                raise Unportable(
                    f"{name} is a lambda or a nested function: worker processes import functions by "
                    "name; give a function defined at the top level of a module"
                )
        return NotImplemented


def portable_dumps(value: object) -> bytes:
    """``value`` pickled for a fresh interpreter: functions and classes by name (:class:`Unportable` for a
    lambda, a nested function or one of ``__main__``), a TLS context of
    :func:`~aiodicom.net.tls.server_context` as the call that made it (any other is Unportable)."""
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return out.getvalue()


def child_environment() -> dict[str, str]:
    """This process's environment with its import path: a worker finds the modules this process found
    (hooks in modules beside the script, too)."""
    paths = [p or os.getcwd() for p in sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
