"""Callbacks: called with or without the event, as they are written; notifications never raise."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest

from aiodicom.services.events import Callback, EventEmitter, call, callback_name, notify, takes_event


class Counter:
    def __init__(self) -> None:
        self.seen: list[object] = []

    def with_event(self, event: object) -> None:
        self.seen.append(event)

    def without(self) -> None:
        self.seen.append(None)

    def __call__(self, event: object) -> None:
        self.seen.append(event)


def two(a: object, b: object) -> None: ...


def keyword_only(*, event: object) -> None: ...


@pytest.mark.parametrize(
    ("callback", "expected"),
    [
        (lambda: None, False),
        (lambda e: None, True),
        (lambda *args: None, True),
        (lambda e=None: None, True),
        (lambda e, f=1: None, True),
        (Counter().with_event, True),
        (Counter().without, False),
        (Counter(), True),
        (functools.partial(two, 1), True),
        (functools.partial(two, 1, 2), False),
        ([].append, True),
        (print, True),
        (keyword_only, True),  # neither way fits: called with the event, and the error says why
    ],
)
def test_takes_event(callback: Any, expected: bool) -> None:
    assert takes_event(callback) is expected
    assert takes_event(callback) is expected  # cached the second time


async def test_call_passes_the_event_or_nothing_and_awaits_coroutines() -> None:
    counter = Counter()
    await call(counter.with_event, 1)
    await call(counter.without, 2)

    async def coro() -> str:
        return "done"

    async def coro_event(event: int) -> int:
        return event * 2

    assert await call(coro, 3) == "done"
    assert await call(coro_event, 4) == 8
    assert await call(None, 5) is None
    assert counter.seen == [1, None]


async def test_call_propagates_and_notify_logs_once_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: object) -> None:
        raise RuntimeError(f"broken by {event}")

    with pytest.raises(RuntimeError):
        await call(broken, 1)
    with caplog.at_level(logging.ERROR, logger="aiodicom.services.events"):
        assert await notify(broken, 2, event="on_file_sent") is None
        assert await Callback(lambda: 1 / 0, "on_file_error").notify(3) is None
    records = [r for r in caplog.records if r.name == "aiodicom.services.events"]
    assert len(records) == 2
    assert "on_file_sent" in records[0].getMessage() and "broken" in records[0].getMessage()
    assert "broken by 2" in records[0].getMessage()
    assert "on_file_error" in records[1].getMessage() and "ZeroDivisionError" in records[1].getMessage()


def test_callback_names() -> None:
    assert callback_name(two) == "two"
    assert callback_name(functools.partial(two, 1)) == "two"
    assert callback_name(Counter().without) == "Counter.without"
    with pytest.raises(TypeError, match="callable"):
        Callback(42)  # type: ignore[arg-type]


async def test_emitter_handlers_without_the_event() -> None:
    emitter = EventEmitter(("x",))
    seen: list[object] = []
    emitter.on("x", lambda: seen.append("bare"))
    emitter.on("x", seen.append)

    async def bare_coroutine() -> None:
        seen.append("coro")

    emitter.on("x", bare_coroutine)
    emitter.emit("x", "payload")
    await emitter.drain()
    assert seen == ["bare", "payload", "coro"]
