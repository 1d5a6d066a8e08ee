"""Sending with conversion, and converting on receipt, against DCMTK in the same run.

    python benchmarks/store_transcode.py [--files 160] [--frames 2] [--big-mb 1024] [--rounds 3]
        [--big-targets JPEGLSLossless,RLELossless]

1. ``StoreScu(transfer_syntax="JPEGLSLossless")`` (the engine of ``aiodicom store --transfer-syntax
   JPEGLSLossless``) sending uncompressed 512x512 12-bit files to a DCMTK ``storescp`` (``+B +xa``, writing
   to /dev/shm), against DCMTK's own way to do it: ``dcmcjpls`` on each file, then ``storescu`` of the
   compressed files to the same storescp. aiodicom runs in this process; DCMTK's
   process start-up is taken out by subtracting, per process, the time of the same command on an 8x8
   instance (the least of 10 runs, measured once for all rounds; for storescu that includes one
   association: a generous subtraction). Both with 1 and 2 at once
   (concurrency 2, and two dcmcjpls at a time). aiodicom is timed twice: one ``send()`` as the CLI runs
   it (its worker processes start within it), and a long-lived sender's, whose ``Transcoder`` was started
   before the send (start-up then out of both sides). Ratios > 1 mean aiodicom is faster.
2. A multi-frame instance of ``--big-mb`` MB sent by DCMTK ``storescu`` to ``aiodicom storescp --transcode
   TARGET`` for each of ``--big-targets`` (storing on /dev/shm, or on disk with ``--storage disk``; RLE
   encodes in worker processes): the time
   until the response, and the peak resident memory of the receiving process and its children (sampled
   every 20 ms from /proc).

Every DCMTK process runs with TCP_NODELAY=1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
from _peers import DCMTK_ENV, free_port, tool, wait_for_port
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from aiodicom.scu.store import StoreScu
from aiodicom.services.transcode import Transcoder

SHM = Path("/dev/shm")
#: Where the receivers write (--storage): tmpfs, or a folder on disk beside the benchmarks.
STORAGE = {"shm": SHM, "disk": Path(__file__).resolve().parent / ".receive-disk"}
RECEIVE_DIR = SHM


def make_files(folder: Path, count: int, frames: int, rows: int, tag: str) -> list[Path]:
    """CT-like 12-bit frames (CT_small upscaled, shifted per file, a little noise)."""
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    base = ct.pixel_array.astype(np.int32)
    base -= base.min()
    scale = max(1, rows // base.shape[0])
    tile = np.kron(base, np.ones((scale, scale), dtype=np.int32))[:rows, :rows]
    rng = np.random.default_rng(1)
    paths = []
    for n in range(count):
        stack = np.stack(
            [np.roll(tile, 5 * n + 3 * i, axis=1) + rng.integers(0, 4, tile.shape) for i in range(frames)]
        )
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Rows = ds.Columns = rows
        ds.NumberOfFrames = frames
        ds.PixelRepresentation = 0
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PixelData = np.clip(stack, 0, 4095).astype(np.uint16).tobytes()
        for keyword in ("RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth"):
            if keyword in ds:
                delattr(ds, keyword)
        path = folder / f"{tag}-{n:04}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@contextlib.contextmanager
def storescp_on_shm() -> Iterator[int]:
    """DCMTK's storescp in its fastest mode (+B: the data set straight to disk), taking every syntax it knows
    (+xa), into RECEIVE_DIR (/dev/shm unless --storage disk)."""
    port = free_port()
    with tempfile.TemporaryDirectory(dir=RECEIVE_DIR) as out:
        proc = subprocess.Popen(
            [tool("storescp"), "+B", "+xa", "--output-directory", out, str(port)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=DCMTK_ENV, check=True, capture_output=True)
    return time.perf_counter() - started


def startups(port: int, work: Path, tiny: Path, runs: int = 10) -> tuple[float, float]:
    """The start-up of dcmcjpls and of storescu (one association included): the least of ``runs`` runs on
    an 8x8 instance, measured once for every round so that its noise does not move one round's figure."""
    dcmcjpls, storescu = tool("dcmcjpls"), tool("storescu")
    encode = min(timed([dcmcjpls, str(tiny), str(work / "tiny.jls.dcm")]) for _ in range(runs))
    send = min(
        timed([storescu, "-xt", "-R", "127.0.0.1", str(port), str(work / "tiny.jls.dcm")])
        for _ in range(runs)
    )
    return encode, send


def dcmtk_pipeline(
    port: int, sources: list[Path], work: Path, workers: int, startup: tuple[float, float]
) -> tuple[float, float]:
    """dcmcjpls each file (``workers`` at once), then storescu them all: (raw seconds, start-up taken out)."""
    compressed = work / "jls"
    compressed.mkdir(exist_ok=True)
    dcmcjpls, storescu = tool("dcmcjpls"), tool("storescu")
    encode_startup, send_startup = startup
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda p: timed([dcmcjpls, str(p), str(compressed / p.name)]), sources))
    outputs = sorted(compressed.iterdir())
    # storescu proposes JPEG-LS Lossless (-xt) for the SOP classes of its files only (-R); one process
    # per worker, each with its share of the files
    shares = [outputs[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        list(
            pool.map(
                lambda share: timed([storescu, "-xt", "-R", "127.0.0.1", str(port), *map(str, share)]), shares
            )
        )
    raw = time.perf_counter() - started
    startup = encode_startup * len(sources) / workers + send_startup
    return raw, raw - startup


async def ours(port: int, sources: list[Path], workers: int, transcoder: Transcoder | None = None) -> float:
    scu = StoreScu(
        f"STORESCP@127.0.0.1:{port}",
        transfer_syntax="JPEGLSLossless",
        concurrency=workers,
        max_transcode_workers=None if transcoder else workers,
        transcoder=transcoder,
    )
    for path in sources:
        scu.add_file(path)
    result = await scu.send()
    if result.failed:
        sys.exit(f"aiodicom failed {result.failed} files: {result.files[0].error}")
    return result.duration_seconds


async def ours_warm(port: int, sources: list[Path], workers: int) -> float:
    """A long-lived sender: its Transcoder (and so its worker processes) started before the send is timed."""
    async with Transcoder(workers) as transcoder:
        await transcoder.start("JPEGLSLossless")
        return await ours(port, sources, workers, transcoder)


def part_one(files: int, frames: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(dir=SHM) as tmp:
        work = Path(tmp)
        sources = make_files(work, files, frames, 512, "src")
        (tiny,) = make_files(work, 1, 1, 8, "tiny")
        megabytes = sum(p.stat().st_size for p in sources) / 1e6
        print(
            f"1. {files} files of {frames} 512x512 12-bit frames ({megabytes:.0f} MB), to storescp +B +xa "
            f"writing to {RECEIVE_DIR}"
        )
        with storescp_on_shm() as port:
            startup = startups(port, work, tiny)
        print(
            f"start-up taken out of DCMTK's figures: dcmcjpls {startup[0] * 1000:.1f} ms per file, storescu "
            f"{startup[1] * 1000:.1f} ms per process (least of 10 runs on an 8x8 instance)"
        )
        print(
            f"{'at once':>8} {'DCMTK raw s':>12} {'DCMTK s':>9} {'aiodicom s':>11} {'ratio':>7} "
            f"{'raw ratio':>10} {'median':>7} {'warm s':>7} {'ratio':>7} {'median':>7}"
        )
        for workers in (1, 2):
            theirs_raw, theirs, mine, warm = [], [], [], []
            for _ in range(rounds):
                with storescp_on_shm() as port:
                    raw, net = dcmtk_pipeline(port, sources, work, workers, startup)
                    theirs_raw.append(raw)
                    theirs.append(net)
                    mine.append(asyncio.run(ours(port, sources, workers)))
                    warm.append(asyncio.run(ours_warm(port, sources, workers)))
            best_theirs, best_mine, best_warm = min(theirs), min(mine), min(warm)
            cold_ratios = sorted(t / m for t, m in zip(theirs, mine, strict=True))
            warm_ratios = sorted(t / m for t, m in zip(theirs, warm, strict=True))
            print(
                f"{workers:>8} {min(theirs_raw):>12.2f} {best_theirs:>9.2f} {best_mine:>11.2f} "
                f"{best_theirs / best_mine:>6.2f}x {min(theirs_raw) / best_mine:>9.2f}x "
                f"{cold_ratios[len(cold_ratios) // 2]:>6.2f}x {best_warm:>7.2f} "
                f"{best_theirs / best_warm:>6.2f}x {warm_ratios[len(warm_ratios) // 2]:>6.2f}x"
            )
        print(
            "aiodicom s: one send() as `aiodicom store` runs it, its worker processes started within it; "
            "warm s: a long-lived sender's, whose Transcoder was started before (start-up out of both "
            "sides).\n"
            "ratio: best DCMTK time with start-up taken out / best aiodicom time; raw ratio: DCMTK with its "
            "start-up; median: of the rounds' start-up-taken-out ratios"
        )


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as fp:
                for line in fp:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            # children of every thread: worker processes are started from a pool thread
            for task in Path(f"/proc/{current}/task").iterdir():
                with open(task / "children") as fp:
                    stack.extend(int(c) for c in fp.read().split())
        except OSError:
            continue
    return total


def part_two(megabytes: int, target: str) -> None:
    frames = max(1, megabytes * 2)  # 512x512 16-bit frames: 0.5 MB each
    with tempfile.TemporaryDirectory(dir=SHM) as tmp:
        work = Path(tmp)
        (big,) = make_files(work, 1, frames, 512, "big")
        size = big.stat().st_size
        port = free_port()
        received = tempfile.TemporaryDirectory(dir=RECEIVE_DIR)
        out = Path(received.name)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiodicom",
                "storescp",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--out-dir",
                str(out),
                "--no-fsync",
                "--transcode",
                target,
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            peak = tree_rss(proc.pid)
            program = tool("storescu")  # looked up before the clock starts
            started = time.perf_counter()
            sender = subprocess.Popen(
                [program, "-to", "600", "127.0.0.1", str(port), str(big)],
                env=DCMTK_ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            while sender.poll() is None:
                peak = max(peak, tree_rss(proc.pid))
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            if sender.returncode:
                sys.exit(f"storescu failed: {sender.stderr.read().decode() if sender.stderr else ''}")
        finally:
            proc.terminate()
            lines = proc.communicate(timeout=30)[0].decode().splitlines()
            received_size = sum(f.stat().st_size for f in out.rglob("*.dcm"))
            received.cleanup()
        stored = [json.loads(line) for line in lines if '"file_stored"' in line]
        want = str(getattr(pydicom.uid, target))
        if not stored or stored[0]["transfer_syntax_uid"] != want:
            sys.exit(f"the instance was not stored as {target}: {lines}")
        kept = received_size
        print(
            f"2. one {size / 1e6:.0f} MB instance ({frames} frames) to aiodicom storescp --transcode "
            f"{target} on {RECEIVE_DIR}: answered in {elapsed:.1f} s ({size / 1e6 / elapsed:.0f} MB/s), "
            f"stored {kept / 1e6:.0f} MB, peak RSS of the receiver and its children {peak / 1e6:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=160)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--big-mb", type=int, default=1024, help="0: skip part 2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--big-targets",
        default="JPEGLSLossless,RLELossless",
        help="part 2's --transcode targets, comma-separated (RLE encodes in a process pool)",
    )
    parser.add_argument("--storage", choices=sorted(STORAGE), default="shm", help="where the receivers write")
    args = parser.parse_args()
    global RECEIVE_DIR
    RECEIVE_DIR = STORAGE[args.storage]
    RECEIVE_DIR.mkdir(exist_ok=True)
    if args.storage == "disk":
        subprocess.run(["sync"], check=False)
    os.environ.setdefault("TCP_NODELAY", "1")
    part_one(args.files, args.frames, args.rounds)
    if args.big_mb:
        for target in args.big_targets.split(","):
            part_two(args.big_mb, target.strip())


if __name__ == "__main__":
    main()
