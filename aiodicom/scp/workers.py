"""A StoreScp receiving in several processes (``workers=N``): N workers share one listening socket and the
parent keeps the events, the study completion and the limits of the whole server.

Each worker is ``python -m aiodicom.scp.worker`` (:mod:`aiodicom.scp.worker`): a fresh interpreter (not
:mod:`multiprocessing`, whose ``spawn`` runs the parent's main module again and whose ``fork`` copies a
running event loop), started with the listening socket the parent bound (inherited: the kernel hands each
new connection to one of the processes waiting on it; ``SO_REUSEPORT`` spread connections unevenly in most
runs measured) and a channel to the parent (:mod:`aiodicom.net.processes`). Over it the worker gets the
server's arguments (hooks sent by name, a TLS context as the :func:`~aiodicom.net.tls.server_context` call
that made it) and builds the same StoreScp, which stores into the same ``out_dir`` (with a temporary
folder of its process's own). The messages:

- worker to parent: ``("ready", pid)``, ``("failed", error)``, ``("event", name, payload)`` (a stored
  instance, a connection, an error, a TLS failure), ``("admit", token, host)`` and ``("release", host)``
  (every association is counted by the parent, so ``max_associations`` and ``max_associations_per_peer``
  hold for the whole server whichever worker the kernel chose), ``("log", record)``, ``("stopped",)``;
- parent to worker: the configuration first, then ``("admitted", token, ok)`` and ``("stop", timeout)``.

Hooks (``on_before_store``, ``on_connection``, ``on_user_identity``, ``on_association_request``) run in the
worker that received the connection; event handlers, ``events()`` and ``on_study_completed`` in the parent,
which sees every instance. A worker that dies is replaced; on stop every worker drains as one server does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pickle
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from aiodicom.errors import DicomError
from aiodicom.net.access import peer_key
from aiodicom.net.options import KEEP
from aiodicom.net.processes import Channel, Listener, Unportable, child_environment, portable_dumps, spawn

if TYPE_CHECKING:
    from aiodicom.scp.store import StoreScp

__all__ = ["WorkerPool"]

log = logging.getLogger("aiodicom.scp.workers")

#: A worker imports pydicom and builds its storage before it is ready; seconds on a loaded machine.
_READY_TIMEOUT = 120.0
#: Beyond the drain deadline, for a worker's storage to stop and its last events to arrive.
_STOP_MARGIN = 15.0
_EXIT_TIMEOUT = 10.0
#: A worker that ended sooner than this after it started counts as failing to start: replacements of
#: such workers wait longer each time (0.5 s doubling up to 30 s), so that a crash loop does not spin.
_SHORT_LIFE = 10.0
#: The options of a DicomServer that live in its AssociationOptions (sent as ``options``).
_OPTION_ARGUMENTS = (
    "ae_title",
    "max_pdu_length",
    "strict",
    "idle_timeout",
    "artim_timeout",
    "implementation_class_uid",
    "implementation_version_name",
    "tls",
    "tls_handshake_timeout",
)


# ------------------------------------------------------------------ what goes to the worker processes


def worker_arguments(scp: StoreScp) -> dict[str, Any]:
    """The arguments each worker makes its StoreScp with: the server's own, as they are now, with the
    limits that protect the process (pending connections, TLS handshakes, conversions) divided between the
    workers; the association limits stay whole (the parent counts those)."""
    n = scp.workers
    access = scp.access
    arguments = dict(scp.arguments)
    arguments.update(
        port=scp.port,
        host=scp.host,
        options=scp.options,
        max_associations=scp.max_associations,
        max_associations_per_peer=access.max_associations_per_peer,
        allowed_hosts=access.allowed_hosts,
        on_connection=access.on_connection,
        on_user_identity=access.on_user_identity,
        require_user_identity=access.require_user_identity,
        on_association_request=access.on_association_request,
        require_called_ae_title=scp.require_called_ae_title,
        allowed_calling_ae_titles=scp.allowed_calling_ae_titles,
        drain_timeout=scp.drain_timeout,
        max_pending_connections=-(-scp.max_pending_connections // n),
        max_tls_handshakes=-(-scp.max_tls_handshakes // n),
    )
    arguments.update(dict.fromkeys(_OPTION_ARGUMENTS, KEEP))  # in options
    if scp.transcode_on_receipt is not None:
        total = scp.transcode_on_receipt.max_workers or os.cpu_count() or 1
        arguments["max_transcode_workers"] = -(-total // n)
    return arguments


def worker_config(scp: StoreScp) -> bytes:
    """The configuration each worker gets, pickled; a ValueError names what cannot be sent and why."""
    arguments = worker_arguments(scp)
    hook = scp._hook
    parts: dict[str, object] = {"server class": type(scp), "on_before_store": hook, "tls": scp.options.tls}
    parts.update((name, value) for name, value in arguments.items() if name not in parts)
    for name, value in parts.items():  # one at a time: the error names the option
        try:
            portable_dumps(value)
        except Unportable as exc:
            raise ValueError(f"workers={scp.workers}: {name}: {exc}") from None
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"workers={scp.workers}: {name} cannot be sent to the worker processes: {exc}"
            ) from None
    loggers = logging.root.manager.loggerDict.items()
    levels = {name: lg.level for name, lg in loggers if isinstance(lg, logging.Logger) and lg.level}
    levels[""] = logging.root.level
    loop = asyncio.get_running_loop()
    return portable_dumps(
        {  # the hook first: one the workers cannot import fails before they import the rest
            "hook": hook,
            "server": type(scp),
            "arguments": arguments,
            "log_name": scp.log.name,
            "log_levels": levels,
            "uvloop": type(loop).__module__.startswith("uvloop"),
        }
    )


def _relog(fields: dict[str, Any]) -> None:
    """A worker's log record, handled by this process's logging (its handlers, its levels)."""
    record = logging.makeLogRecord(fields)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


# ---------------------------------------------------------------------------------------- the parent


class _Worker:
    def __init__(self, index: int, process: subprocess.Popen[bytes], channel: Channel) -> None:
        self.index = index
        self.process = process
        self.channel = channel
        self.started = time.monotonic()
        self.ready = False
        self.stopped = False  # said it stopped (on the parent's request or on its own SIGTERM)
        self.held: collections.Counter[str] = collections.Counter()  # admitted associations by peer
        self.task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


class WorkerPool:
    """The worker processes of one StoreScp with ``workers`` > 1 (made by :meth:`StoreScp.start`)."""

    def __init__(self, scp: StoreScp) -> None:
        self.scp = scp
        self.serving = False
        self._workers: dict[int, _Worker] = {}
        self._listener: Listener | None = None
        self._config = b""
        self._environment: dict[str, str] = {}
        self._stopping = False
        self._stop_task: asyncio.Future[None] | None = None
        self._respawning: set[asyncio.Task[None]] = set()
        self._failures = 0  # workers in a row that ended soon after they started
        self._total = 0
        self._peers: collections.Counter[str] = collections.Counter()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers.values() if w.ready and w.process.returncode is None]

    async def start(self) -> None:
        """Bind, start every worker and wait until each listens. Raises (and leaves no process behind) when
        the arguments cannot go to another process (ValueError), the port cannot be bound
        (ListenError) or a worker fails to start (what it raised, e.g. a StorageError)."""
        self._config = worker_config(self.scp)
        self._environment = child_environment()
        self._listener = Listener(self.scp.host, self.scp.requested_port)
        self.scp._bound_port = self._listener.port
        try:
            results = await asyncio.gather(
                *(self._spawn(i) for i in range(self.scp.workers)), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0]
        except BaseException:  # a failure, or cancelled: the workers that started stop again
            await self.stop(0.0)
            raise
        self.serving = True

    async def _spawn(self, index: int) -> _Worker:
        assert self._listener is not None
        process, channel = await spawn("aiodicom.scp.worker", self._listener, self._environment)
        worker = _Worker(index, process, channel)
        failure: BaseException | None = None  # what the worker raised as it started
        try:
            self._workers[index] = worker
            worker.channel.send_bytes(self._config)
            async with asyncio.timeout(_READY_TIMEOUT):
                while not worker.ready and failure is None:
                    message = await worker.channel.receive()
                    if message[0] == "failed":
                        failure = message[1]
                    elif message[0] == "ready":
                        worker.ready = True
                    else:
                        self._handle(worker, message)
        except EOFError:
            failure = DicomError(f"a worker process ended as it started ({_exit_text(process.poll())})")
        except TimeoutError:
            failure = DicomError(f"a worker process did not start within {_READY_TIMEOUT:g} s")
            process.kill()
        finally:
            if not worker.ready:  # failed, or cancelled
                if failure is None:  # cancelled: not waited for
                    process.kill()
                self._workers.pop(index, None)
                await channel.close()
                await _end(process)
        if failure is not None:
            raise failure
        worker.task = asyncio.ensure_future(self._watch(worker))
        self.scp.log.info("worker %d of %d listening (pid %d)", index + 1, self.scp.workers, worker.pid)
        return worker

    async def _watch(self, worker: _Worker) -> None:
        """Handle what a worker sends until it ends; then count its associations out and replace it."""
        try:
            while True:
                self._handle(worker, await worker.channel.receive())
        except EOFError:
            pass
        finally:
            await worker.channel.close()
        await _end(worker.process)
        for key, count in list(worker.held.items()):  # its associations ended with it
            self._count_out(worker, key, count)
        if self._workers.get(worker.index) is worker:
            del self._workers[worker.index]
        if self._stopping:
            return
        how = _exit_text(worker.process.returncode)
        if worker.stopped:
            self.scp.log.info("worker process %d stopped on its own (%s): starting another", worker.pid, how)
        else:
            self.scp.log.warning("worker process %d ended (%s): starting another", worker.pid, how)
        short = time.monotonic() - worker.started < _SHORT_LIFE
        self._failures = self._failures + 1 if short else 0
        task = asyncio.ensure_future(self._respawn(worker.index))
        self._respawning.add(task)
        task.add_done_callback(self._respawning.discard)

    async def _respawn(self, index: int) -> None:
        while not self._stopping:
            if self._failures > 1:
                await asyncio.sleep(min(0.5 * 2 ** (self._failures - 2), 30.0))
            try:
                await self._spawn(index)
                return
            except Exception as exc:
                self._failures += 1
                self.scp.log.error("cannot start a worker process again: %s", exc)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "event":
            _, name, payload = message
            self.scp._events.emit(name, payload)
            if name == "file_stored":
                self.scp.studies.add(payload)
        elif kind == "admit":
            _, token, host = message
            worker.channel.send(("admitted", token, self._admit(worker, host)))
        elif kind == "release":
            self._count_out(worker, peer_key(message[1]), 1)
        elif kind == "log":
            _relog(message[1])
        elif kind == "stopped":
            worker.stopped = True

    def _admit(self, worker: _Worker, host: str) -> bool:
        """Whether one more association from ``host`` fits the limits of the whole server (then counted)."""
        key = peer_key(host)
        per_peer = self.scp.access.max_associations_per_peer
        if self._stopping or self._total >= self.scp.max_associations:
            return False
        if per_peer is not None and self._peers[key] >= per_peer:
            return False
        self._total += 1
        self._peers[key] += 1
        worker.held[key] += 1
        return True

    def _count_out(self, worker: _Worker, key: str, count: int) -> None:
        """``count`` associations of ``worker`` from the peer ``key`` ended."""
        count = min(count, worker.held[key])
        for counter in (worker.held, self._peers):
            counter[key] -= count
            if counter[key] <= 0:
                del counter[key]
        self._total -= count

    async def stop(self, timeout: float) -> None:
        """Stop every worker: each stops listening, lets its associations finish the message they are
        receiving for at most ``timeout`` seconds (as one server's ``drain_timeout``), then ends. One that
        is still running well after is killed."""
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop(timeout))
        await asyncio.shield(self._stop_task)

    async def _stop(self, timeout: float) -> None:
        self._stopping = True
        self.serving = False
        for task in list(self._respawning):
            task.cancel()
        if self._respawning:
            await asyncio.wait(self._respawning)
        if self._listener is not None:  # the workers close their copies as they stop listening
            self._listener.close()
        workers = list(self._workers.values())
        for worker in workers:
            worker.channel.send(("stop", timeout))
        tasks = [w.task for w in workers if w.task is not None]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout + _STOP_MARGIN)
        for worker in workers:
            if worker.task in late and worker.process.returncode is None:
                self.scp.log.warning("worker process %d did not stop in time: killed", worker.pid)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
        if late:
            await asyncio.wait(late, timeout=_EXIT_TIMEOUT)


async def _end(process: subprocess.Popen[bytes]) -> None:
    """Wait for a process that is ending (its channel closed) without blocking the loop; kill it if it
    lingers."""
    deadline = time.monotonic() + _EXIT_TIMEOUT
    while process.poll() is None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.get_running_loop().run_in_executor(None, process.wait)
            return
        await asyncio.sleep(0.02)
