"""The transcoding executor: conversions off the event loop, in threads or processes; files written whole or
not at all."""

from __future__ import annotations

import asyncio
import io
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from aiodicom.dataset import codecs
from aiodicom.errors import TranscodeError
from aiodicom.services.transcode import Transcoder

MR = Path(get_testdata_file("MR_small.dcm"))


def _pixels(data: bytes | Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(pydicom.dcmread(io.BytesIO(data) if isinstance(data, bytes) else data).pixel_array)


def _big(tmp_path: Path, frames: int = 24) -> Path:
    """A 24-frame 512x512 16-bit instance: long enough to encode that a blocked loop would show."""
    ds = pydicom.dcmread(MR)
    tile = np.kron(ds.pixel_array.astype(np.uint16), np.ones((8, 8), dtype=np.uint16))
    ds.Rows = ds.Columns = 512
    ds.NumberOfFrames, ds.PixelRepresentation = frames, 0
    ds.PixelData = b"".join(np.roll(tile, 3 * i, axis=1).tobytes() for i in range(frames))
    path = tmp_path / "big.dcm"
    ds.save_as(path)
    return path


async def test_threads_convert_without_blocking_the_loop(tmp_path: Path) -> None:
    """While two conversions run, a ticker on the loop keeps ticking: the CPU work is elsewhere."""
    source = _big(tmp_path)
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with Transcoder(2, kind="thread") as transcoder:
        ticker = asyncio.create_task(tick())
        started = time.perf_counter()
        results = await asyncio.gather(
            transcoder.transcode(source, codecs.J2K_LOSSLESS),
            transcoder.transcode(source.read_bytes(), codecs.JPEG_LS_LOSSLESS),
        )
        elapsed = time.perf_counter() - started
        done.set()
        await ticker
    for data, result in results:
        assert result.converted and not result.lossy
        assert np.array_equal(_pixels(data), _pixels(source))
    assert elapsed > 0.2  # the work took long enough for the check below to mean something
    assert max(gaps) < elapsed / 3, f"the loop stalled {max(gaps):.3f} s of {elapsed:.3f} s"


async def test_a_process_pool_writes_files(tmp_path: Path) -> None:
    destination = tmp_path / "out" / "mr-rle.dcm"
    destination.parent.mkdir()
    async with Transcoder(1, kind="process") as transcoder:
        result = await transcoder.transcode_file(MR, "RLELossless", destination)
        data, lossy = await transcoder.transcode(MR, codecs.J2K, allow_lossy=True)
    assert (
        result.transfer_syntax == codecs.RLE and result.sop_instance_uid == pydicom.dcmread(MR).SOPInstanceUID
    )
    assert np.array_equal(_pixels(destination), _pixels(MR))
    assert lossy.lossy and lossy.sop_instance_uid != lossy.original_sop_instance_uid
    assert pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID == lossy.sop_instance_uid
    assert list(destination.parent.iterdir()) == [destination]


@pytest.mark.parametrize("kind", ["thread", "auto"])
async def test_a_failed_conversion_leaves_no_file(tmp_path: Path, kind: str) -> None:
    ds = pydicom.dcmread(MR)
    ds.NumberOfFrames = 2  # one frame of pixel data
    source = tmp_path / "wrong.dcm"
    ds.save_as(source)
    destination = tmp_path / "out.dcm"
    async with Transcoder(kind=kind) as transcoder:
        with pytest.raises(TranscodeError, match="frame count"):
            await transcoder.transcode_file(source, codecs.JPEG_LS_LOSSLESS, destination)
        with pytest.raises(TranscodeError, match="allow_lossy"):
            await transcoder.transcode(MR, codecs.JPEG_BASELINE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong.dcm"]


async def test_options_and_closing() -> None:
    with pytest.raises(ValueError, match="kind"):
        Transcoder(kind="fibers")
    with pytest.raises(ValueError, match="max_workers"):
        Transcoder(0)
    transcoder = Transcoder()
    assert transcoder.max_workers >= 1 and transcoder.kind == "auto"
    await transcoder.close()
    with pytest.raises(RuntimeError, match="closed"):
        await transcoder.transcode(MR, codecs.EXPLICIT)


@pytest.mark.parametrize(("workers", "pool"), [(1, "thread"), (2, "process")])
async def test_jpeg_ls_goes_to_processes_only_when_two_can_run(workers: int, pool: str) -> None:
    """pyjpegls holds the GIL: with two workers, JPEG-LS encodes in processes; with one, in a thread."""
    async with Transcoder(workers) as transcoder:
        data, result = await transcoder.transcode(MR, codecs.JPEG_LS_LOSSLESS)
        used = "process" if transcoder._processes is not None else "thread"
    assert result.converted and np.array_equal(_pixels(data), _pixels(MR))
    assert used == pool
