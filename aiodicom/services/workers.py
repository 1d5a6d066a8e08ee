"""A pool of worker processes for CPU work that holds the GIL, usable wherever an ``Executor`` is.

Each worker is ``python -m aiodicom.services.workers``, fed pickled calls on its stdin and answering on its
stdout. Not :mod:`multiprocessing`: its ``spawn`` and ``forkserver`` children import the parent's main
module again, which runs a script's top-level code (an unguarded ``asyncio.run(main())``, as most scripts
are written) once more in every worker; and ``fork`` would copy a running event loop and its threads.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import IO, Any, TypeVar, cast

__all__ = ["ProcessWorkers", "WorkerDied"]

T = TypeVar("T")
_LENGTH = struct.Struct("<Q")


class WorkerDied(RuntimeError):
    """A worker process ended while it had a call (killed, out of memory, a crash in a C library)."""


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiodicom.services.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        try:
            _read_message(self.stdout)  # the worker has loaded what the work needs
        except (OSError, EOFError) as exc:
            self.close()
            raise WorkerDied(
                f"a worker process ended as it started (exit code {self.process.returncode})"
            ) from exc

    def call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        data = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.stdin.write(_LENGTH.pack(len(data)) + data)
            self.stdin.flush()
            ok, value = pickle.loads(_read_message(self.stdout))
        except (OSError, EOFError) as exc:
            self.close()
            raise WorkerDied(f"a worker process ended (exit code {self.process.returncode})") from exc
        if not ok:
            raise value
        return cast(T, value)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            self.stdout.close()


def _read_message(stream: IO[bytes]) -> bytes:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the worker process closed its pipe")
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        raise EOFError("the worker process closed its pipe")
    return data


class ProcessWorkers(Executor):
    """Up to ``max_workers`` worker processes, started when first needed and reused. A call's function and
    arguments must pickle (a module-level function); its exception is raised in the caller. A worker that
    dies fails its call with :class:`WorkerDied` and is replaced by the next call.

    With ``run_here_while_starting``, a call that finds no worker ready runs in a thread of this process
    while the workers start in the background (about 0.6 s: each imports pydicom and numpy), rather than
    waiting for one: for work that is correct either way and only faster in processes."""

    def __init__(self, max_workers: int, *, run_here_while_starting: bool = False) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._here = run_here_while_starting
        self._starting = 0  # workers being started by start()
        self._threads = ThreadPoolExecutor(max_workers, thread_name_prefix="aiodicom-worker")
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def start(self, *, wait: bool = False) -> None:
        """Start every worker now, in the background, rather than at the first calls; with ``wait``, return
        when the ones this call started are ready."""
        if self._closed:
            return
        with self._lock:
            missing = self._max_workers - len(self._all) - self._starting
            self._starting += max(missing, 0)
        threads = [threading.Thread(target=self._start_one, daemon=True) for _ in range(missing)]
        for thread in threads:
            thread.start()
        if wait:
            for thread in threads:
                thread.join()

    def _start_one(self) -> None:
        try:
            worker = _Worker()
        except WorkerDied:
            return  # the next call that needs one starts it again
        finally:
            with self._lock:
                self._starting -= 1
        with self._lock:
            if self._closed:
                closing = True
            else:
                closing = False
                self._all.append(worker)
        if closing:
            worker.close()
        else:
            self._idle.put(worker)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._closed:
            raise RuntimeError("the worker processes are shut down")
        return self._threads.submit(self._run, fn, args, kwargs)

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        if self._here:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                self.start()
                return fn(*args, **kwargs)
            return self._call(worker, fn, args, kwargs)
        wait = 0.0
        while True:
            try:
                worker = self._idle.get(timeout=wait) if wait else self._idle.get_nowait()
                break
            except queue.Empty:
                wait = 0.05
                with self._lock:
                    starting = self._starting > 0
                if not starting:  # no more threads than max_workers: no more workers either
                    worker = _Worker()
                    with self._lock:
                        self._all.append(worker)
                    break
                # else one that start() began is on its way
        return self._call(worker, fn, args, kwargs)

    def _call(
        self, worker: _Worker, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        try:
            result = worker.call(fn, args, kwargs)
        except WorkerDied:
            with self._lock:
                self._all.remove(worker)
            raise
        except BaseException:
            self._idle.put(worker)
            raise
        self._idle.put(worker)
        return result

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()


def _serve() -> None:
    """The worker's loop: say it is ready, then read a call, answer with its result or exception, until
    stdin closes."""
    calls = sys.stdin.buffer
    answers_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a library's print() must not corrupt the answers
    with contextlib.suppress(ImportError):  # what the work needs, loaded before the first call arrives
        import aiodicom.dataset.transcode  # noqa: F401
    try:
        os.write(answers_fd, _LENGTH.pack(0))  # ready
    except BrokenPipeError:  # the pool's process ended while this one started
        return
    answers = os.fdopen(answers_fd, "wb")
    while True:
        try:
            fn, args, kwargs = pickle.loads(_read_message(calls))
        except EOFError:
            return
        try:
            answer: tuple[bool, Any] = (True, fn(*args, **kwargs))
        except Exception as exc:
            answer = (False, exc)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle: say what it was
            data = pickle.dumps((False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}")))
            del exc
        answers.write(_LENGTH.pack(len(data)) + data)
        answers.flush()


if __name__ == "__main__":
    _serve()
