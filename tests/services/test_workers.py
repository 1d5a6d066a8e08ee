"""The worker processes behind the transcoder's process pool: real child processes, real pipes."""

from __future__ import annotations

import operator
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aiodicom.errors import TranscodeError
from aiodicom.services.workers import ProcessWorkers, WorkerDied


def test_calls_results_and_exceptions_cross_the_pipe() -> None:
    pool = ProcessWorkers(2)
    try:
        assert pool.submit(operator.mul, 6, 7).result(30) == 42
        assert pool.submit(os.getpid).result(30) != os.getpid()
        with pytest.raises(ZeroDivisionError):
            pool.submit(operator.truediv, 1, 0).result(30)
        # a library that prints does not corrupt the answers (stdout is the pipe)
        assert pool.submit(print, "noise from a codec").result(30) is None
        assert pool.submit(operator.add, "still ", "answering").result(30) == "still answering"
    finally:
        pool.shutdown()


def test_a_transcode_error_comes_back_whole() -> None:
    error = TranscodeError("no decoder for JPEG XL", "1.2.840.10008.1.2.4.110")
    pool = ProcessWorkers(1)
    try:
        back = pool.submit(operator.itemgetter(0), [error]).result(30)
    finally:
        pool.shutdown()
    assert isinstance(back, TranscodeError)
    assert str(back) == "no decoder for JPEG XL" and back.transfer_syntax == "1.2.840.10008.1.2.4.110"


def test_a_worker_that_dies_fails_its_call_and_is_replaced() -> None:
    pool = ProcessWorkers(1)
    try:
        first = pool.submit(os.getpid).result(30)
        with pytest.raises(WorkerDied, match="exit code 3"):
            pool.submit(os._exit, 3).result(30)
        second = pool.submit(os.getpid).result(30)
    finally:
        pool.shutdown()
    assert first != second


def test_shutdown_ends_the_workers_and_refuses_more() -> None:
    pool = ProcessWorkers(2)
    pids = {pool.submit(os.getpid).result(30) for _ in range(4)}
    pool.shutdown()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(os.getpid)


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    """Workers do not import the caller's main module: multiprocessing's spawn would run this script's
    top level again in every worker (and the conversion would fail with a broken pool)."""
    script = tmp_path / "unguarded.py"
    marks = tmp_path / "marks"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio
            from pydicom.data import get_testdata_file
            from aiodicom.services.transcode import Transcoder

            with open({str(marks)!r}, "a") as fp:
                fp.write("ran\\n")

            async def main():
                async with Transcoder(2, kind="process") as transcoder:
                    data, done = await transcoder.transcode(get_testdata_file("CT_small.dcm"), "RLELossless")
                    print(done.transfer_syntax, len(data))

            asyncio.run(main())
            """
        )
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == "1.2.840.10008.1.2.5"
    assert marks.read_text() == "ran\n"
