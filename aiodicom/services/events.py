"""Per-instance event dispatch: handlers may be plain functions or coroutine functions.

Every server or client owns its own :class:`EventEmitter`, so two servers in one process never see each
other's events. A handler that raises is logged and never breaks the association that emitted the event.
A handler or callback written without a parameter (``lambda: ...``) is called without the event.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger("aiodicom.services.events")

Handler = Callable[..., Any]

#: Events kept for a slow ``async for`` consumer before the oldest are dropped (with a warning).
STREAM_BUFFER = 10_000


_PLAIN: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_BOUND: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _inspect_arity(callback: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # some builtins have no signature: give them the event
        return True
    try:
        signature.bind(None)
        return True
    except TypeError:
        pass
    try:
        signature.bind()
        return False
    except TypeError:  # takes neither (keyword-only arguments): the call will say why
        return True


def takes_event(callback: Callable[..., Any]) -> bool:
    """Whether ``callback`` is called with the event: False for ``lambda: ...`` and ``def f(): ...``.

    Functions with ``*args``, a parameter with a default, bound methods and ``functools.partial`` objects
    are called with it when they can take one positional argument. The answer is cached per function.
    """
    cache, key = (_BOUND, callback.__func__) if inspect.ismethod(callback) else (_PLAIN, callback)
    try:
        return cache[key]
    except KeyError:
        answer = _inspect_arity(callback)
        cache[key] = answer
        return answer
    except TypeError:  # neither hashable nor weakly referable: inspect it each time
        return _inspect_arity(callback)


def callback_name(callback: object) -> str:
    """A readable name for logs: the qualified name of the function (of a partial's function)."""
    target = callback.func if isinstance(callback, functools.partial) else callback
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return str(name) if name else repr(callback)


async def call(callback: Callable[..., Any] | None, payload: object) -> Any:
    """Call a plain function or a coroutine function (None: nothing) and return its result.

    The callback gets ``payload`` unless it takes no argument (:func:`takes_event`). Its exceptions
    propagate: hooks whose failure decides an answer use this; notifications use :func:`notify`.
    """
    if callback is None:
        return None
    result = callback(payload) if takes_event(callback) else callback()
    if inspect.isawaitable(result):
        result = await result
    return result


async def notify(callback: Callable[..., Any] | None, payload: object, *, event: str = "event") -> Any:
    """:func:`call` for a notification: an exception is logged (with the callback's name) and swallowed,
    so that a faulty progress callback never stops the work it reports on. Returns None then."""
    try:
        return await call(callback, payload)
    except Exception as exc:
        _log_failure(event, callback, exc)
        return None


def _log_failure(event: str, callback: object, exc: Exception) -> None:
    log.error(
        "the %s callback %s raised %s: %s (ignored; the operation goes on)",
        event,
        callback_name(callback),
        type(exc).__name__,
        exc,
        exc_info=exc,
    )


class Callback:
    """A user callback inspected once (:func:`takes_event`), then notified many times."""

    __slots__ = ("event", "function", "with_event")

    def __init__(self, function: Callable[..., Any], event: str = "event") -> None:
        if not callable(function):
            raise TypeError(f"the {event} callback must be callable, not {type(function).__name__}")
        self.function = function
        self.event = event
        self.with_event = takes_event(function)

    async def notify(self, payload: object) -> Any:
        """Call it; an exception is logged and swallowed (see :func:`notify`)."""
        try:
            result = self.function(payload) if self.with_event else self.function()
            if inspect.isawaitable(result):
                result = await result
            return result
        except Exception as exc:
            _log_failure(self.event, self.function, exc)
            return None


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
                result = handler(payload) if takes_event(handler) else handler()
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


_instances = itertools.count(1)


def instance_logger(name: str, verbose: bool) -> logging.Logger:
    """The logger of one user-facing object: the shared ``name`` logger, or with ``verbose`` a child of it
    of its own (``name.<n>``) at INFO, so that raising one instance's level never changes another's."""
    if not verbose:
        return logging.getLogger(name)
    logger = logging.getLogger(f"{name}.{next(_instances)}")
    logger.setLevel(logging.INFO)
    return logger
