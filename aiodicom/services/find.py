"""C-FIND, the requestor's side: one query, its matches as they come, C-CANCEL when the caller stops early."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset

from aiodicom.dimse import Command, CommandField, is_pending, status_name
from aiodicom.dimse.status import is_failure
from aiodicom.errors import AssociationAborted, DimseError
from aiodicom.net.association import Association
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES, Requestor
from aiodicom.services.events import notify
from aiodicom.services.query import QueryModel, decode_identifier, encode_identifier, identifier_to_dict

log = logging.getLogger("aiodicom.find")

Match = dict[str, Any] | Dataset


@dataclass(frozen=True, slots=True)
class FindCompleted:
    """The end of a C-FIND: how many matches came back and the final status (0xFE00 when cancelled)."""

    total: int
    status: int
    cancelled: bool
    duration_seconds: float

    @property
    def message(self) -> str:
        how = "cancelled" if self.cancelled else status_name(self.status)
        return f"{self.total} matches in {self.duration_seconds:.2f} s ({how})"


@dataclass(slots=True)
class FindResult:
    """What an awaited :meth:`FindScu.find` returns."""

    matches: list[Match] = field(default_factory=list)
    status: int = 0
    cancelled: bool = False
    duration_seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.matches)


class FindOperation:
    """One C-FIND: ``await`` it for a :class:`FindResult`, or ``async for match in`` it.

    Stopping early (``break``, or ``limit`` reached) sends C-CANCEL and reads on to the final response, so
    the association ends cleanly. After ``break``, the cancel runs when the iterator is closed: use
    ``contextlib.aclosing(scu.find(...))`` to have it happen at once.
    """

    def __init__(
        self,
        scu: Requestor,
        model: QueryModel,
        query: dict[str, Any],
        *,
        on_result: Callable[[Any], Any] | None,
        on_completed: Callable[[FindCompleted], Any] | None,
        limit: int | None,
        as_dataset: bool,
        priority: int,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        self.scu = scu
        self.model = model
        self.query = query
        self.on_result = on_result
        self.on_completed = on_completed
        self.limit = limit
        self.as_dataset = as_dataset
        self.priority = priority
        self.completed: FindCompleted | None = None
        self._iterator: AsyncIterator[Match] | None = None

    def __aiter__(self) -> AsyncIterator[Match]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def aclose(self) -> None:
        """Stop early: cancel the C-FIND and end the association (what ``aclosing`` calls)."""
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    def __await__(self) -> Generator[Any, None, FindResult]:
        return self._collect().__await__()

    async def _collect(self) -> FindResult:
        result = FindResult()
        async for match in self:
            result.matches.append(match)
        assert self.completed is not None
        result.status = self.completed.status
        result.cancelled = self.completed.cancelled
        result.duration_seconds = self.completed.duration_seconds
        return result

    async def _run(self) -> AsyncIterator[Match]:
        started = time.perf_counter()
        sop_class = self.model.find_sop_class
        async with self.scu.connect([(sop_class, DEFAULT_TRANSFER_SYNTAXES)]) as assoc:
            ctx = assoc.context_for(sop_class)
            message_id = assoc.next_message_id()
            identifier = encode_identifier(self.query, ctx.transfer_syntax)
            log.info("C-FIND (%s) to %s: %s", self.model.value, self.scu.address, self.query)
            await assoc.send(
                ctx.context_id, Command.c_find_rq(message_id, sop_class, self.priority), identifier
            )
            count, status, cancelled, stopped = 0, None, False, False
            try:
                while True:
                    message = await assoc.receive_response(
                        message_id, CommandField.C_FIND_RSP, self.scu.dimse_timeout
                    )
                    code = message.command.status if message.command.status is not None else 0xC000
                    if not is_pending(code):
                        status = code
                        break
                    if message.dataset is None or cancelled:
                        continue
                    ds = decode_identifier(message.data, ctx.transfer_syntax)
                    match: Match = ds if self.as_dataset else identifier_to_dict(ds)
                    count += 1
                    if self.limit is not None and count >= self.limit:
                        cancelled = await _cancel(assoc, ctx.context_id, message_id)
                    await notify(self.on_result, match, event="on_result")
                    yield match
            except GeneratorExit:  # the caller stopped iterating: cancel, then read to the final response
                stopped = True
                if assoc.is_open:
                    if not cancelled:
                        cancelled = await _cancel(assoc, ctx.context_id, message_id)
                    status = await _drain(assoc, message_id, self.scu.dimse_timeout)
            self.completed = FindCompleted(
                count, status if status is not None else 0xC000, cancelled, time.perf_counter() - started
            )
        log.info("C-FIND done: %s", self.completed.message)
        await notify(self.on_completed, self.completed, event="on_completed")
        if stopped:
            return
        if is_failure(self.completed.status) and not cancelled:
            code = self.completed.status
            raise DimseError(f"C-FIND answered {status_name(code)} (0x{code:04X})", code)


async def _cancel(assoc: Association, context_id: int, message_id: int) -> bool:
    log.info("sending C-CANCEL for C-FIND %d", message_id)
    await assoc.send(context_id, Command.c_cancel_rq(message_id))
    return True


async def _drain(assoc: Association, message_id: int, timeout: float | None) -> int | None:
    """Read responses after a C-CANCEL until the final one; None if the association ended first."""
    try:
        while True:
            message = await assoc.receive_response(message_id, CommandField.C_FIND_RSP, timeout)
            code = message.command.status if message.command.status is not None else 0xC000
            if not is_pending(code):
                return code
    except (AssociationAborted, DimseError, TimeoutError) as exc:
        log.warning("no final C-FIND response after C-CANCEL: %s", exc)
        assoc.abort()
        return None
