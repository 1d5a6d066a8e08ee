"""Per-instance event dispatch: handlers may be plain functions or coroutine functions.

Every server or client owns its own :class:`EventEmitter`, so two servers in one process never see each
other's events. A handler that raises is logged and never breaks the association that emitted the event.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger("aiodicom.events")

Handler = Callable[[Any], Any]

#: Events kept for a slow ``async for`` consumer before the oldest are dropped (with a warning).
STREAM_BUFFER = 10_000


async def call(callback: Callable[[Any], Any] | None, payload: object) -> Any:
    """Call a plain function or a coroutine function (None: nothing) and return its result."""
    if callback is None:
        return None
    result = callback(payload)
    if inspect.isawaitable(result):
        result = await result
    return result


class EventEmitter:
    """Named events to registered handlers and to ``async for`` streams."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._handlers: dict[str, list[Handler]] = {name: [] for name in names}
        self._streams: list[asyncio.Queue[object]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def on(self, name: str, handler: Handler) -> Handler:
        if name not in self._handlers:
            raise ValueError(f"unknown event {name!r}; events are {', '.join(self._handlers)}")
        if not callable(handler):
            raise TypeError(f"an event handler must be callable, not {type(handler).__name__}")
        self._handlers[name].append(handler)
        return handler

    def off(self, name: str, handler: Handler) -> None:
        """Stop calling ``handler`` (nothing happens if it was not registered)."""
        if handler in self._handlers.get(name, []):
            self._handlers[name].remove(handler)

    def emit(self, name: str, payload: object) -> None:
        for handler in self._handlers[name]:
            try:
                result = handler(payload)
            except Exception:
                log.exception("the %s handler %r raised", name, handler)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(self._guard(name, handler, result))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        for queue in self._streams:
            if queue.full():
                queue.get_nowait()
                log.warning("an event stream is not keeping up: dropped its oldest event")
            queue.put_nowait(payload)

    @staticmethod
    async def _guard(name: str, handler: Handler, awaitable: Any) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("the %s handler %r raised", name, handler)

    async def stream(self) -> AsyncIterator[object]:
        """Every event from now on, in order, until the consumer stops iterating."""
        queue: asyncio.Queue[object] = asyncio.Queue(STREAM_BUFFER)
        self._streams.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._streams.remove(queue)

    async def drain(self) -> None:
        """Wait for the coroutine handlers still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
