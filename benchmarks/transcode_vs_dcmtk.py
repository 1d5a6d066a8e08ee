"""Transcoding throughput: aiodicom's Transcoder against DCMTK's command-line codecs (gdcmconv for JPEG 2000)
on the same files, per codec, per direction and per number of workers (1 and 2), in threads and in processes.

    python benchmarks/transcode_vs_dcmtk.py [--files 12] [--frames 4] [--rounds 2]

The files are 512x512 frames of 12-bit CT-like data in 16 bits (8-bit for JPEG Baseline). DCMTK runs one
process per file (N at once for N workers); its start-up is taken out by subtracting, per file, the time of
the same command on an 8x8 instance. aiodicom runs in-process through Transcoder.transcode_file (the pool
started before timing). Figures are MB/s of decoded pixel data and instances/s, the best of the rounds;
ratios > 1 mean aiodicom is faster. The thread/process columns are what Transcoder(kind="auto") is set from.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
from _peers import DCMTK_ENV, tool
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from aiodicom.dataset import codecs
from aiodicom.services.transcode import Transcoder

# name, target syntax, (DCMTK encode command, DCMTK decode command) or None, 8-bit input
CODECS: list[tuple[str, str, tuple[list[str], list[str]] | None, bool]] = [
    ("JPEG-LS lossless", codecs.JPEG_LS_LOSSLESS, (["dcmcjpls"], ["dcmdjpls"]), False),
    ("JPEG lossless SV1", codecs.JPEG_LOSSLESS_SV1, (["dcmcjpeg"], ["dcmdjpeg"]), False),
    ("JPEG baseline", codecs.JPEG_BASELINE, (["dcmcjpeg", "+eb"], ["dcmdjpeg"]), True),
    ("RLE", codecs.RLE, (["dcmcrle"], ["dcmdrle"]), False),
    ("JPEG 2000 lossless", codecs.J2K_LOSSLESS, (["gdcmconv", "--j2k"], ["gdcmconv", "--raw"]), False),
    ("HTJ2K lossless", codecs.HTJ2K_LOSSLESS, None, False),
]


def _program(name: str) -> str:
    found = shutil.which(name) if name == "gdcmconv" else tool(name)
    if not found:
        sys.exit(f"{name} is not installed")
    return found


def make_files(folder: Path, count: int, frames: int, rows: int, eight_bit: bool, tag: str) -> list[Path]:
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    base = ct.pixel_array.astype(np.int32)
    base = base - base.min()
    scale = max(1, rows // base.shape[0])
    tile = np.kron(base, np.ones((scale, scale), dtype=np.int32))[:rows, :rows]
    rng = np.random.default_rng(1)
    paths = []
    for n in range(count):
        pixels = [
            np.roll(tile, 5 * n + 3 * i, axis=1) + rng.integers(0, 4, tile.shape) for i in range(frames)
        ]
        stack = np.clip(np.stack(pixels), 0, 4095)
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = generate_uid()
        ds.Rows = ds.Columns = rows
        ds.NumberOfFrames = frames
        ds.PixelRepresentation = 0
        if eight_bit:
            ds.BitsAllocated = ds.BitsStored = 8
            ds.HighBit = 7
            ds.PixelData = (stack >> 4).astype(np.uint8).tobytes()
        else:
            ds.BitsStored, ds.HighBit = 12, 11
            ds.PixelData = stack.astype(np.uint16).tobytes()
        for keyword in ("RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth"):
            if keyword in ds:
                delattr(ds, keyword)
        path = folder / f"{tag}-{n:03}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def run_dcmtk(command: list[str], sources: list[Path], out: Path, workers: int) -> float:
    argv0 = [_program(command[0]), *command[1:]]

    def one(source: Path) -> None:
        subprocess.run(
            [*argv0, str(source), str(out / source.name)], env=DCMTK_ENV, check=True, capture_output=True
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, sources))
    return time.perf_counter() - started


async def run_ours(target: str, sources: list[Path], out: Path, workers: int, kind: str) -> float:
    async with Transcoder(workers, kind=kind) as transcoder:
        # start every worker of the pool before timing
        await asyncio.gather(
            *(
                transcoder.transcode_file(sources[0], target, out / f"warm{i}.dcm", allow_lossy=True)
                for i in range(workers)
            )
        )
        started = time.perf_counter()
        await asyncio.gather(
            *(transcoder.transcode_file(s, target, out / s.name, allow_lossy=True) for s in sources)
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="transcode-bench-"))
    try:
        sets = {
            bits: make_files(work, args.files, args.frames, 512, bits == 8, f"in{bits}") for bits in (8, 16)
        }
        tiny = {bits: make_files(work, 1, 1, 8, bits == 8, f"tiny{bits}")[0] for bits in (8, 16)}
        print(f"{args.files} files of {args.frames} frames 512x512, Python {sys.version.split()[0]}")
        print(f"best of {args.rounds} rounds; MB/s of decoded pixel data; inst/s and ratio: aiodicom's best")
        columns = ("DCMTK MB/s", 10), ("threads", 8), ("procs", 8), ("inst/s", 7)
        header = f"{'codec':20} {'dir':6} {'w':>2} " + " ".join(f"{c:>{w}}" for c, w in columns) + "  ratio"
        print(header)
        print("-" * len(header))
        for name, target, dcmtk, eight in CODECS:
            sources = sets[8 if eight else 16]
            megabytes = (
                sum(
                    int(d.Rows) * int(d.Columns) * int(d.NumberOfFrames) * int(d.BitsAllocated) // 8
                    for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in sources)
                )
                / 1e6
            )
            encoded = work / f"enc-{target}"
            encoded.mkdir()
            asyncio.run(run_ours(target, sources, encoded, 2, "thread"))
            compressed = sorted(encoded.glob("in*.dcm"))
            for direction, inputs, to in (
                ("encode", sources, target),
                ("decode", compressed, codecs.EXPLICIT),
            ):
                for workers in (1, 2):
                    figures = {}
                    for label in ("dcmtk", "thread", "process"):
                        if label == "dcmtk" and dcmtk is None:
                            continue
                        times = []
                        for _ in range(args.rounds):
                            out = Path(tempfile.mkdtemp(dir=work))
                            if label == "dcmtk":
                                command = dcmtk[0] if direction == "encode" else dcmtk[1]
                                empty_in = tiny[8 if eight else 16]
                                if direction == "decode":
                                    empty_out = Path(tempfile.mkdtemp(dir=work))
                                    run_dcmtk(dcmtk[0], [empty_in], empty_out, 1)
                                    empty_in = empty_out / empty_in.name
                                empty = min(run_dcmtk(command, [empty_in], out, 1) for _ in range(3))
                                elapsed = run_dcmtk(command, inputs, out, workers)
                                times.append(max(elapsed - empty * len(inputs) / workers, 1e-6))
                            else:
                                times.append(asyncio.run(run_ours(to, inputs, out, workers, label)))
                            shutil.rmtree(out)
                        figures[label] = min(times)
                    rate = {k: megabytes / v for k, v in figures.items()}
                    best = min(figures["thread"], figures["process"])
                    ratio = f"{figures['dcmtk'] / best:5.2f}x" if "dcmtk" in figures else "  (no DCMTK codec)"
                    dcmtk_rate = f"{rate['dcmtk']:10.1f}" if "dcmtk" in rate else f"{'-':>10}"
                    print(
                        f"{name:20} {direction:6} {workers:>2} {dcmtk_rate} {rate['thread']:8.1f}"
                        f" {rate['process']:8.1f} {len(inputs) / best:7.1f}  {ratio}"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
