"""What C-GET and C-MOVE share: progress events, results, the sub-operation counts of the responses, and
stopping a retrieve early (C-CANCEL)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiodicom.dataset.tags import uid_name
from aiodicom.dimse import Command, is_failure, is_pending, is_warning, status_name
from aiodicom.errors import AssociationAborted
from aiodicom.net.association import Association
from aiodicom.services.events import notify
from aiodicom.services.relay import ForwardOutcome

__all__ = ["RetrieveCompleted", "RetrieveOperation", "RetrieveResult", "SubOperation"]

log = logging.getLogger("aiodicom.services.retrieve")

_T = TypeVar("_T")

#: How long a cancelled task waits for the final response after its C-CANCEL-RQ before it aborts.
CANCEL_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class SubOperation:
    """Progress of a retrieve: counts so far, and the instance this event is about (if any).

    ``file`` is where it was stored (a path, or ``s3://bucket/key``); with the forward backend it is None
    and ``forwarded_to``, ``forward_status`` and ``forward_error`` say how relaying it went.
    ``transfer_syntax`` is the syntax it was stored or forwarded in; ``converted_from`` the one it came in,
    when it was converted; ``stored_sop_instance_uid`` the new UID a lossy conversion on receipt gave it
    (``sop_instance_uid`` is always the UID the peer sent).
    """

    remaining: int
    completed: int
    failed: int
    warning: int
    file: str | None = None
    sop_instance_uid: str | None = None
    forwarded_to: str | None = None
    forward_status: int | None = None
    forward_error: str | None = None
    transfer_syntax: str | None = None
    converted_from: str | None = None
    stored_sop_instance_uid: str | None = None

    @property
    def total(self) -> int:
        return self.remaining + self.completed + self.failed + self.warning

    @property
    def message(self) -> str:
        done = self.completed + self.failed + self.warning
        what = f": {self.file or self.sop_instance_uid}" if self.file or self.sop_instance_uid else ""
        if self.converted_from and self.transfer_syntax:
            what += f" (converted from {uid_name(self.converted_from)} to {uid_name(self.transfer_syntax)})"
        if self.forward_error:
            what += f" (forward to {self.forwarded_to} failed: {self.forward_error})"
        return f"{done}/{self.total} sub-operations{what}"


@dataclass(frozen=True, slots=True)
class RetrieveCompleted:
    """The end of a retrieve: the sub-operation counts and how long it took; ``cancelled`` when a C-CANCEL
    was sent, ``matched`` False when nothing matched the query (and nothing was asked for); ``status`` the
    last final response's (None when none came: a cancelled task that had to abort)."""

    total: int
    completed: int
    failed: int
    warning: int
    duration_seconds: float
    cancelled: bool = False
    matched: bool = True
    status: int | None = 0

    @property
    def message(self) -> str:
        if not self.matched:
            return "nothing matches the query: no retrieve was sent"
        how = " (cancelled)" if self.cancelled else ""
        return (
            f"{self.completed} completed, {self.warning} with warnings, {self.failed} failed "
            f"of {self.total} in {self.duration_seconds:.2f} s{how}"
        )


@dataclass(slots=True)
class RetrieveResult:
    """What ``get_study()`` / ``move_study()`` return.

    ``completed`` counts sub-operations that succeeded, ``warning`` those with a warning status (also
    stored), ``failed`` the rest; ``status`` is the final response's (0xB000: completed with failures,
    0xFE00: cancelled). ``files`` are the instances stored here (GetScu, or MoveScu's built-in receiver);
    ``failed_sop_instance_uids`` the instances of this retrieve that did not arrive; ``forward_failed``
    every instance that could not be relayed (forward backend). ``matched`` is False when nothing matched
    the query: no C-GET or C-MOVE was sent. ``cancelled`` is True when a C-CANCEL was sent (``limit``, the
    progress iterator closed early); the peer may still have finished first (status 0x0000 or 0xB000).
    """

    total: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    duration_seconds: float = 0.0
    status: int = 0
    files: list[str] = field(default_factory=list)
    failed_sop_instance_uids: list[str] = field(default_factory=list)
    forward_failed: list[ForwardOutcome] = field(default_factory=list)
    cancelled: bool = False
    matched: bool = True

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    @property
    def message(self) -> str:
        """One line: what happened."""
        if not self.matched:
            return "nothing matches the query: no retrieve was sent"
        how = ", cancelled" if self.cancelled else ""
        return (
            f"{self.completed} completed, {self.warning} with warnings, {self.failed} failed of {self.total} "
            f"(status 0x{self.status:04X}{how})"
        )

    @property
    def refused(self) -> bool:
        """The peer refused the retrieve itself: a failure status and nothing retrieved (0xA702, unable to
        perform sub-operations, is about the sub-operations, which the counts report; a cancelled retrieve
        is not refused)."""
        return (
            is_failure(self.status)
            and self.completed + self.warning == 0
            and self.status not in (0xA702, 0xFE00)
            and not self.cancelled
        )


class Tally:
    """Counts a retrieve's sub-operations. A C-GET (``receiving``) answers every sub-operation that reaches
    it, so its own answers count what completed (a peer's final count after a C-CANCEL may leave out an
    instance it sent meanwhile); the peer alone knows what failed before reaching us. A C-MOVE has only
    the peer's counts."""

    def __init__(self, expected: int = 0, *, receiving: bool = False) -> None:
        self.started = time.perf_counter()
        self.expected = expected
        self.receiving = receiving
        self.result = RetrieveResult()
        self._base = (0, 0, 0)  # counts of earlier C-GETs/C-MOVEs of the same retrieve
        self._answered = [0, 0, 0]  # completed, failed, warning answered here in the current one
        self._peer = [0, 0, 0]  # the same, as the peer's latest response says
        self._remaining: int | None = None
        self._since = 0  # sub-operations answered since the peer last said how many remain
        self._again = False

    def begin(self, again: bool = False) -> None:
        """A new C-GET/C-MOVE of the same retrieve starts; ``again`` when it asks again for instances that
        failed (their failures were counted already: what arrives is counted, what fails again is not)."""
        r = self.result
        self._base = (r.completed, r.failed, r.warning)
        self._answered = [0, 0, 0]
        self._peer = [0, 0, 0]
        self._remaining = None
        self._since = 0
        self._again = again

    def stored(self, status: int) -> None:
        index = 1 if is_failure(status) else 2 if is_warning(status) else 0
        self._answered[index] += 1
        self._since += 1
        self._apply()

    def response(self, command: Command) -> None:
        """A C-GET-RSP or C-MOVE-RSP: take its counts where it has them."""
        if command.remaining is not None:
            self._remaining = command.remaining
            self._since = 0
        elif command.status is not None and not is_pending(command.status):
            self._remaining, self._since = 0, 0  # a final response without the count: nothing remains
        counts = (command.completed, command.failed, command.warning)
        if all(c is not None for c in counts):
            self._peer = [c or 0 for c in counts]
            self._apply()

    def _apply(self) -> None:
        answered, peer = self._answered, self._peer
        if self.receiving:
            completed, failed, warning = answered[0], max(answered[1], peer[1]), answered[2]
        else:
            completed, failed, warning = (max(a, p) for a, p in zip(answered, peer, strict=True))
        base = self._base
        r = self.result
        r.completed, r.warning = base[0] + completed, base[2] + warning
        r.failed = base[1] if self._again else base[1] + failed

    def recovered(self, count: int) -> None:
        """``count`` instances that failed earlier arrived on a later attempt."""
        r = self.result
        r.failed = max(0, r.failed - count)

    @property
    def done(self) -> int:
        r = self.result
        return r.completed + r.failed + r.warning

    @property
    def remaining(self) -> int:
        if self._remaining is not None:
            return max(self._remaining - self._since, 0)
        return max(self.expected - self.done, 0)

    def event(self, **fields: Any) -> SubOperation:
        r = self.result
        return SubOperation(self.remaining, r.completed, r.failed, r.warning, **fields)

    def finish(self, status: int | None, *, cancelled: bool = False) -> RetrieveCompleted:
        """The end: ``status`` is the final response's (None: none came)."""
        r = self.result
        r.status = status if status is not None else 0xFE00
        r.cancelled = cancelled
        r.duration_seconds = time.perf_counter() - self.started
        r.total = r.completed + r.failed + r.warning
        return RetrieveCompleted(
            r.total, r.completed, r.failed, r.warning, r.duration_seconds, cancelled, r.matched, status
        )


def _rank(status: int) -> int:
    if status == 0xFE00:
        return 3
    if is_failure(status):
        return 2
    return 1 if is_warning(status) else 0


def worse_status(first: int, second: int) -> int:
    """The status of a retrieve made of several C-GETs or C-MOVEs: cancel, then failure, then warning."""
    return second if _rank(second) >= _rank(first) else first


def no_match() -> tuple[RetrieveResult, RetrieveCompleted]:
    """The result of a retrieve whose survey matched nothing: zero counts, ``matched`` False."""
    return RetrieveResult(matched=False), RetrieveCompleted(0, 0, 0, 0, 0.0, matched=False)


# ------------------------------------------------------------------------------------------ cancel


class Control:
    """Stopping one retrieve early: after ``limit`` sub-operations, when the caller closes the progress
    iterator, or when the task is cancelled.

    Whatever the reason, the C-GET or C-MOVE that runs gets one C-CANCEL-RQ, what still arrives is answered,
    stored and counted until the final response (0xFE00, or 0x0000/0xB000 when the cancel came too late),
    and nothing new starts. A cancelled task waits at most ``cancel_timeout`` seconds for that final
    response, then aborts the association.
    """

    def __init__(
        self,
        limit: int | None = None,
        cancel_timeout: float = CANCEL_TIMEOUT,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        if cancel_timeout < 0:
            raise ValueError("cancel_timeout may not be negative")
        self.limit = limit
        self.cancel_timeout = cancel_timeout
        self.on_sub_operation = on_sub_operation
        self.requested = False  # stop: nothing new starts
        self.cancelled = False  # a C-CANCEL-RQ went out
        self.final_status: int | None = None  # of the request that ran last, once its final response came
        self._running: tuple[Association, int, int] | None = None
        self._sent_for: int | None = None
        self._queue: asyncio.Queue[SubOperation | None] | None = None
        self._taken = asyncio.Event()

    def start(self, assoc: Association, context_id: int, message_id: int) -> None:
        """A C-GET-RQ or C-MOVE-RQ went out: this is what a cancel is about until :meth:`end`."""
        self._running = (assoc, context_id, message_id)
        self.final_status = None

    def final(self, status: int) -> None:
        """The final response of the request that runs came, with ``status``."""
        self.final_status = status

    def end(self) -> None:
        self._running = None

    async def cancel(self) -> None:
        """Stop the retrieve: a C-CANCEL-RQ for the request that runs (once), and nothing new."""
        self.requested = True
        self._taken.set()  # a sub-operation waiting for an iterator that is gone goes on
        if self._running is None:
            return
        assoc, context_id, message_id = self._running
        if self._sent_for == message_id or not assoc.is_open:
            return
        self._sent_for = message_id
        log.info("sending C-CANCEL for message %d", message_id)
        try:
            await assoc.send(context_id, Command.c_cancel_rq(message_id))
        except AssociationAborted:
            return
        self.cancelled = True

    async def progress(self, event: SubOperation | None, done: int) -> None:
        """After each sub-operation: tell ``on_sub_operation`` and the iterator about ``event``, then stop
        once ``done`` reaches the limit."""
        if event is not None:
            await self.report(event)
        if self.limit is not None and done >= self.limit and not self.requested:
            log.info("%d sub-operations done: the limit", done)
            await self.cancel()

    async def report(self, event: SubOperation) -> None:
        """Tell ``on_sub_operation`` and the iterator about ``event`` (no limit check)."""
        await notify(self.on_sub_operation, event, event="on_sub_operation")
        if self._queue is not None and not self.requested:
            self._taken.clear()
            self._queue.put_nowait(event)
            await self._taken.wait()  # the caller goes at its own pace (backpressure)

    async def run(self, reading: Awaitable[_T], assoc: Association) -> _T:
        """Await ``reading`` (the loop reading a request's responses to the final one); if this task is
        cancelled meanwhile, cancel the request, give the final response ``cancel_timeout`` seconds,
        abort the association, and re-raise."""
        task = asyncio.ensure_future(reading)
        task.add_done_callback(_retrieve_exception)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            try:
                await self.cancel()
                await asyncio.wait({task}, timeout=self.cancel_timeout)
                if not task.done():
                    log.warning("no final response %.1f s after C-CANCEL: aborting", self.cancel_timeout)
            finally:
                assoc.abort()
                if not task.done():
                    await asyncio.wait({task}, timeout=1.0)
            raise

    def attach(self, queue: asyncio.Queue[SubOperation | None]) -> None:
        self._queue = queue

    def taken(self) -> None:
        self._taken.set()


def _retrieve_exception(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class RetrieveOperation:
    """One C-GET or C-MOVE retrieve: ``await`` it for the :class:`RetrieveResult`, or ``async for event in``
    it for each :class:`SubOperation` as it happens (then ``result`` holds the result).

    Leaving the loop early cancels the retrieve (C-CANCEL) when the iterator is closed: iterate inside
    ``contextlib.aclosing(...)`` to have that happen at once, as with :meth:`FindScu.find`. The retrieve
    runs at the loop's pace: the next sub-operation is answered once the loop asks for it.
    """

    def __init__(self, run: Callable[[Control], Awaitable[RetrieveResult]], control: Control) -> None:
        self._run = run
        self.control = control
        self.result: RetrieveResult | None = None
        self._iterator: AsyncIterator[SubOperation] | None = None

    def __await__(self) -> Generator[Any, None, RetrieveResult]:
        return self._collect().__await__()

    async def _collect(self) -> RetrieveResult:
        self.result = await self._run(self.control)
        return self.result

    def __aiter__(self) -> AsyncIterator[SubOperation]:
        if self._iterator is None:
            self._iterator = self._iterate()
        return self._iterator

    async def aclose(self) -> None:
        """Stop early: cancel the retrieve and wait for its end (what ``aclosing`` calls)."""
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    async def _iterate(self) -> AsyncIterator[SubOperation]:
        control = self.control
        queue: asyncio.Queue[SubOperation | None] = asyncio.Queue()
        control.attach(queue)
        worker = asyncio.ensure_future(self._run(control))
        worker.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while True:
                event = await queue.get()
                if event is None:
                    break
                yield event
                control.taken()
        except GeneratorExit:  # the caller stopped: cancel, then let the retrieve read to its end
            await control.cancel()
            await asyncio.wait({worker}, timeout=control.cancel_timeout)
            if not worker.done():
                worker.cancel()
                await asyncio.wait({worker})
            if not worker.cancelled():
                self.result = worker.result()
            return
        except asyncio.CancelledError:
            worker.cancel()
            await asyncio.wait({worker})
            raise
        self.result = await worker
