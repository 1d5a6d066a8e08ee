"""Sending a batch with several C-STOREs in flight on one association (PS3.7 D.3.3.3).

Used by :class:`~aiodicom.services.send.SendBatch` when the peer granted a window larger than one: the
files go out one after another without waiting for each response, at most the window's size unanswered,
and each response is counted for the file it answers (by Message ID, in any order). The files prepared
ahead stay as many as without a window: a file's bytes are let go once it has gone out, so memory does not
grow with the window. When the association ends, every file still unanswered fails (its response never
came: the peer may or may not have stored it) and the worker goes on with the rest on a new association.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from typing import TYPE_CHECKING

from aiodicom.errors import DicomError
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.window import OperationsWindow

if TYPE_CHECKING:
    from aiodicom.services.send import Outgoing, QueuedFile, SendBatch

__all__ = ["put_back", "send_windowed"]

Ahead = collections.deque[tuple["QueuedFile", "asyncio.Task[Outgoing]"]]


async def send_windowed(
    batch: SendBatch,
    assoc: Association,
    queue: asyncio.Queue[QueuedFile],
    ahead: Ahead,
    lookahead: int,
) -> None:
    """Send files from ``ahead`` and ``queue`` on ``assoc`` with its window, until none is left or the
    association ends; return once every file sent is answered or failed."""
    settings = batch.settings
    window = OperationsWindow(assoc, timeout=settings.options.dimse_timeout)
    others = settings.concurrency - 1
    answers: set[asyncio.Task[None]] = set()
    stop: list[BaseException] = []  # a file that fails with fail_first set ends the batch
    room = asyncio.Event()  # a file in flight was counted: another may go (after its outcome is known)

    def answered(task: asyncio.Task[None]) -> None:
        answers.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if not stop and assoc.is_open:  # nothing more is sent; what is in flight is not waited for
                assoc.abort(f"stopped at the first failure: {exc}")
            stop.append(exc)
        room.set()

    first = True
    try:
        while assoc.is_open and not stop:
            while len(ahead) < lookahead and queue.qsize() > (others if ahead else 0):
                item = queue.get_nowait()
                ahead.append((item, asyncio.ensure_future(batch.outgoing(assoc, item))))
            if not ahead:
                break
            while len(answers) >= window.size and assoc.is_open and not stop:
                room.clear()
                await room.wait()
            try:
                await window.wait_for_room()
            except DicomError:
                break  # the association ended: what is in flight fails in its own task
            if stop:
                break
            if settings.throttle_delay_ms and not first:
                await asyncio.sleep(settings.throttle_delay_ms / 1000)
            first = False
            item, prepared = ahead.popleft()
            await batch.sending(item)
            began = time.perf_counter()
            try:
                out = await prepared
                del prepared  # the task holds the file's bytes too
                try:
                    response = await window.c_store(out.source, header=out.header)
                finally:
                    if out.temporary is not None:
                        with contextlib.suppress(OSError):
                            os.unlink(out.temporary)
            except (DicomError, OSError, ValueError) as exc:
                await batch.fail(item, str(exc))
                continue
            # only what the answer needs is kept: the bytes sent are let go now
            task = asyncio.ensure_future(
                _answer(batch, item, out.syntax, out.sop_instance_uid, response, began)
            )
            del out
            answers.add(task)
            task.add_done_callback(answered)
    except BaseException:
        # stopped (cancelled, or fail_first): the responses outstanding can no longer be counted
        if answers and assoc.is_open:
            assoc.abort("sending stopped with files in flight")
        for task in answers:
            task.cancel()
        raise
    finally:
        if answers:
            await asyncio.gather(*answers, return_exceptions=True)
        batch.log.debug(
            "window of %d on %s:%s: at most %d in flight", window.size, *assoc.peer, window.most_outstanding
        )
    if stop:
        raise stop[0]


async def _answer(
    batch: SendBatch,
    item: QueuedFile,
    syntax: str,
    sent_uid: str,
    response: asyncio.Future[DimseMessage],
    began: float,
) -> None:
    timeout = batch.settings.options.dimse_timeout
    try:
        message = await response
    except TimeoutError:
        await batch.fail(item, f"no C-STORE response within {timeout:g} s (dimse_timeout)")
        return
    except (DicomError, OSError) as exc:
        await batch.fail(item, f"no C-STORE response: {exc}")
        return
    await batch.answered(item, syntax, sent_uid, message.command, began)


def put_back(ahead: Ahead, queue: asyncio.Queue[QueuedFile]) -> None:
    """Files prepared for an association that ended go back to the queue; what was converted for them is
    dropped when the conversion ends (not cancelled: a worker would still write its temporary file)."""
    while ahead:
        item, task = ahead.popleft()
        task.add_done_callback(_drop_prepared)
        queue.put_nowait(item)


def _drop_prepared(task: asyncio.Task[Outgoing]) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    temporary = task.result().temporary
    if temporary is not None:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
