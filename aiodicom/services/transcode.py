"""The transcoding executor: :func:`aiodicom.dataset.transcode.transcode` off the event loop, in a bounded
pool of worker threads or processes.

``kind="auto"`` picks, per conversion, the pool measured faster for its codecs on two cores
(benchmarks/transcode_vs_dcmtk.py): processes where the codec, or the Python work around a fast one, holds
the GIL; threads where the codec's own time dominates and it releases the GIL.
At most ``max_workers`` conversions run at once, whichever pool they run in.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from aiodicom.dataset.codecs import (
    EXPLICIT,
    HTJ2K_FAMILY,
    J2K_FAMILY,
    JPEG_FAMILY,
    JPEG_LS_FAMILY,
    RLE,
    resolve,
)
from aiodicom.dataset.files import read_header
from aiodicom.services.workers import ProcessWorkers

if TYPE_CHECKING:  # the converter (pydicom, numpy) is imported by the first conversion
    from aiodicom.dataset.transcode import Transcoded

__all__ = [
    "PARALLEL_PROCESS_FAMILIES",
    "PROCESS_DECODES",
    "PROCESS_ENCODES",
    "Transcoder",
    "transcode_bytes",
    "transcode_to_file",
]

Kind = Literal["thread", "process", "auto"]

#: The codec families that ``kind="auto"`` runs in processes, as measured with two workers on two cores
#: (benchmarks/transcode_vs_dcmtk.py, MB/s threads vs processes): RLE (pylibjpeg-rle holds the GIL; encode
#: 41 vs 96, decode 140 vs 181), HTJ2K (OpenJPH decoding holds it; encode 154 vs 180, decode 168 vs 222) and
#: JPEG (libjpeg-turbo is so fast that the GIL-bound reading and writing of the data set dominates; Baseline
#: encode 104 vs 205, decode 106 vs 171). JPEG 2000 (36 vs 36, 41 vs 40) stays in threads, and so do
#: uncompressed and deflated conversions.
PROCESS_ENCODES: frozenset[str] = frozenset(("rle", "htj2k", "jpeg"))
PROCESS_DECODES: frozenset[str] = frozenset(("rle", "htj2k", "jpeg"))

#: JPEG-LS runs in processes only with two workers or more: pyjpegls holds the GIL while it encodes, so two
#: threads encode no faster than one (encode 43 vs 83 MB/s threads vs processes, decode 94 vs 107), while
#: with one worker a thread is faster (encode 47 vs 40, decode 62 vs 52): no copy through a pipe.
PARALLEL_PROCESS_FAMILIES: frozenset[str] = frozenset(("jpeg-ls",))


def _family(uid: str) -> str:
    if uid in JPEG_FAMILY:
        return "jpeg"
    if uid in JPEG_LS_FAMILY:
        return "jpeg-ls"
    if uid in HTJ2K_FAMILY:
        return "htj2k"
    if uid in J2K_FAMILY:
        return "jpeg2000"
    if uid == RLE:
        return "rle"
    return "uncompressed"


def transcode_bytes(
    source: str | os.PathLike[str] | bytes, target: str, allow_lossy: bool, file_meta: bool
) -> tuple[bytes, Transcoded]:
    """:func:`transcode` into bytes (what a worker runs)."""
    from aiodicom.dataset.transcode import transcode

    out = io.BytesIO()
    result = transcode(source, target, out, allow_lossy=allow_lossy, file_meta=file_meta)
    return out.getvalue(), result


def transcode_to_file(
    source: str | os.PathLike[str], target: str, destination: str, allow_lossy: bool, file_meta: bool
) -> Transcoded:
    """:func:`transcode` into ``destination``, through a temporary file in its folder renamed into place
    when the conversion succeeded: on failure nothing is left behind."""
    from aiodicom.dataset.transcode import transcode

    folder = os.path.dirname(os.path.abspath(destination))
    fd, temporary = tempfile.mkstemp(prefix=".transcode-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            result = transcode(source, target, out, allow_lossy=allow_lossy, file_meta=file_meta)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return result


class Transcoder:
    """Converts instances between transfer syntaxes without blocking the event loop.

    ``max_workers`` bounds the conversions running at once (default: the number of CPUs); ``kind`` says where
    they run: ``"thread"``, ``"process"`` (:class:`~aiodicom.services.workers.ProcessWorkers`), or ``"auto"``
    (threads, but processes for the codecs measured faster there: :data:`PROCESS_ENCODES` and
    :data:`PROCESS_DECODES`, and with two workers or more :data:`PARALLEL_PROCESS_FAMILIES`).
    Pools start on first use; :meth:`close` (or leaving ``async with``) shuts them down.
    """

    def __init__(self, max_workers: int | None = None, *, kind: str = "auto") -> None:
        if kind not in ("thread", "process", "auto"):
            raise ValueError(f"kind must be 'thread', 'process' or 'auto', not {kind!r}")
        workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
        if workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = workers
        self.kind = kind
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessWorkers | None = None
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    # -- pools --------------------------------------------------------------------------------------------

    def _where(self, source: str | os.PathLike[str] | bytes, target: str) -> str:
        if self.kind != "auto":
            return self.kind
        try:
            uid = resolve(target)
            header = read_header(io.BytesIO(source) if isinstance(source, bytes) else source)
        except (OSError, ValueError):
            return "thread"  # the worker will say what is wrong
        source = header.transfer_syntax_uid
        if source == uid:
            return "thread"  # copied as it is
        return "process" if self._held(source, uid) else "thread"

    def _held(self, source: str, target: str) -> bool:
        """Whether converting ``source`` to ``target`` runs faster in processes (see the constants)."""
        if source == target:
            return False
        encode, decode = _family(target), _family(source)
        if encode in PROCESS_ENCODES or decode in PROCESS_DECODES:
            return True
        return self.max_workers > 1 and bool({encode, decode} & PARALLEL_PROCESS_FAMILIES)

    def warm(self, target: str, sources: Iterable[str] = ()) -> None:
        """Start the worker processes now (they load the codecs meanwhile) when converting ``sources`` (their
        transfer syntax UIDs; none: any uncompressed one) to ``target`` would use them, so that the first
        conversions do not wait for them."""
        workers = self._workers_for(target, sources)
        if workers is not None:
            workers.start()

    async def start(self, target: str, sources: Iterable[str] = ()) -> None:
        """:meth:`warm`, and wait until the worker processes are ready: a long-lived sender calls it once
        before it serves, so that no send waits for them."""
        workers = self._workers_for(target, sources)
        if workers is not None:
            await asyncio.to_thread(workers.start, wait=True)

    def _workers_for(self, target: str, sources: Iterable[str]) -> ProcessWorkers | None:
        if self.kind == "thread" or self._closed:
            return None
        uid = resolve(target)
        if self.kind == "auto" and not any(self._held(s, uid) for s in (list(sources) or [EXPLICIT])):
            return None
        executor = self._executor("process")
        assert isinstance(executor, ProcessWorkers)
        return executor

    def _executor(self, where: str) -> Executor:
        if self._closed:
            raise RuntimeError("the transcoder is closed")
        if where == "process":
            if self._processes is None:
                # the first conversions run in threads while the processes start (kind="auto")
                self._processes = ProcessWorkers(
                    self.max_workers, run_here_while_starting=self.kind == "auto"
                )
            return self._processes
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.max_workers, thread_name_prefix="aiodicom-transcode")
        return self._threads

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_workers)
        return self._slots

    # -- work ---------------------------------------------------------------------------------------------

    async def transcode(
        self,
        source: str | os.PathLike[str] | bytes,
        target: str,
        *,
        allow_lossy: bool = False,
        file_meta: bool = True,
    ) -> tuple[bytes, Transcoded]:
        """``source`` (a path or the bytes of an instance) converted to ``target``: the bytes written and what
        they are. Raises :class:`~aiodicom.errors.TranscodeError` when it cannot be converted."""
        loop = asyncio.get_running_loop()
        async with self._semaphore():
            where = self._where(source, target)
            if where == "process" and isinstance(source, os.PathLike):
                source = os.fspath(source)
            return await loop.run_in_executor(
                self._executor(where), transcode_bytes, source, target, allow_lossy, file_meta
            )

    async def transcode_file(
        self,
        source: str | os.PathLike[str],
        target: str,
        destination: str | os.PathLike[str],
        *,
        allow_lossy: bool = False,
        file_meta: bool = True,
    ) -> Transcoded:
        """Write ``source`` converted to ``target`` to ``destination`` (atomically: a temporary file in the
        same folder renamed into place; nothing is left there when the conversion fails)."""
        loop = asyncio.get_running_loop()
        async with self._semaphore():
            where = self._where(source, target)
            return await loop.run_in_executor(
                self._executor(where),
                transcode_to_file,
                os.fspath(source),
                target,
                os.fspath(destination),
                allow_lossy,
                file_meta,
            )

    async def close(self) -> None:
        """Shut the pools down, waiting (in a thread) for the conversions under way."""
        self._closed = True
        pools: list[Executor] = [p for p in (self._threads, self._processes) if p is not None]
        self._threads = self._processes = None
        for pool in pools:
            await asyncio.to_thread(pool.shutdown, True)

    async def __aenter__(self) -> Transcoder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
