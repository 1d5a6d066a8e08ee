"""Receiving C-STOREs: DCMTK storescu sends to aiodicom StoreScp, DCMTK storescp and pynetdicom's storescp.

    python benchmarks/store_receivers.py [--sets small,typical,large] [--huge]

Data sets (generated once into a temporary directory, explicit VR little endian CT images):
small 1,000 x ~130 KB, typical 200 x ~0.5 MB, large 4 x ~100 MB. Every receiver runs as its own process
without fsync (DCMTK does not sync; `aiodicom storescp --no-fsync`), after a `sync`, best of 3; the
sender is one `storescu +sd` on one association, all DCMTK processes with TCP_NODELAY=1. Peak RSS is
each receiver's VmHWM. ``--huge`` also sends one 1 GB instance to aiodicom and reports its peak RSS
(target: under 100 MB). Then aiodicom with fsync=True beside Orthanc, which syncs by default, is
left to `benchmarks/store_fsync.py`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _peers import DCMTK_ENV, free_port, stored_files, tool, wait_for_port
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

SETS = {"small": (1000, 256, 256, 1), "typical": (200, 512, 512, 1), "large": (4, 512, 512, 200)}


def make_instance(path: Path, rows: int, cols: int, frames: int, study: str, series: str) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.Modality = "BENCH^MARK", "BENCH", "CT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.random.default_rng(1).integers(0, 4096, rows * cols * frames, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def make_set(root: Path, name: str) -> Path:
    count, rows, cols, frames = SETS[name]
    folder = root / name
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    first = folder / "000000.dcm"
    make_instance(first, rows, cols, frames, study, series)
    template = first.read_bytes()
    old_uid = template[template.index(b"1.2.826.0.1.3680043") :].split(b"\x00")[0].split(b"\x02")[0]
    for i in range(1, count):  # same size, new SOP Instance UID of the same length
        uid = old_uid[:-8] + f"{i:08d}".encode()
        (folder / f"{i:06d}.dcm").write_bytes(template.replace(old_uid, uid))
    return folder


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def receivers(out: Path, port: int) -> dict[str, list[str]]:
    return {
        "aiodicom StoreScp": [
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
            "--max-pdu",
            "16384",
        ],
        "DCMTK storescp": [
            tool("storescp"),
            "--aetitle",
            "STORE-SCP",
            "--output-directory",
            str(out),
            str(port),
        ],
        "pynetdicom storescp": [
            sys.executable,
            "-m",
            "pynetdicom",
            "storescp",
            "-aet",
            "STORE-SCP",
            "-od",
            str(out),
            str(port),
        ],
    }


def run(name: str, command: list[str], folder: Path, out: Path, port: int) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.sync()  # start every run with no dirty pages from the previous one: they would throttle its writes
    receiver = subprocess.Popen(command, env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        program = tool("storescu")  # looked up before the clock starts
        started = time.perf_counter()
        source = ["+sd", str(folder)] if folder.is_dir() else [str(folder)]
        subprocess.run(
            [program, "-aec", "STORE-SCP", "127.0.0.1", str(port), *source],
            env=DCMTK_ENV,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        rss = peak_rss_mb(receiver.pid)
    finally:
        receiver.terminate()
        receiver.wait(30)
    stored = stored_files(out)
    expected = sum(1 for _ in folder.iterdir()) if folder.is_dir() else 1
    if stored != expected:
        raise RuntimeError(f"{name} stored {stored} of {expected} files")
    return seconds, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="small,typical,large")
    parser.add_argument("--huge", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs per receiver")
    parser.add_argument("--data", default=None, help="where to keep the generated data (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.data or tempfile.mkdtemp(prefix="aiodicom-bench-"))
    out = root / "received"
    print(f"receiving with DCMTK storescu +sd as the sender, no fsync; data in {root}")
    print(
        f"  {'set':<9} {'receiver':<22} {'files/s':>9} {'MB/s':>8} {'peak RSS':>9}"
        f" {'vs DCMTK':>9} {'vs pynetdicom':>14}"
    )
    for set_name in args.sets.split(","):
        folder = make_set(root, set_name)
        files = sorted(folder.iterdir())
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        results: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):  # interleaved rounds, best of each
            for name, command in receivers(out, port := free_port()).items():
                seconds, rss = run(name, command, folder, out, port)
                best = results.get(name)
                results[name] = (min(seconds, best[0]), max(rss, best[1])) if best else (seconds, rss)
        reference, slow = results["DCMTK storescp"][0], results["pynetdicom storescp"][0]
        for name, (seconds, rss) in results.items():
            print(
                f"  {set_name:<9} {name:<22} {len(files) / seconds:9.1f} {megabytes / seconds:8.1f} "
                f"{rss:7.0f}MB {reference / seconds:8.2f}x {slow / seconds:13.1f}x"
            )
    if args.huge:
        folder = root / "huge"
        if not folder.exists():
            folder.mkdir()
            make_instance(folder / "huge.dcm", 512, 512, 2048, generate_uid(), generate_uid())
        port = free_port()
        huge = folder / "huge.dcm"
        seconds, rss = run("aiodicom StoreScp", receivers(out, port)["aiodicom StoreScp"], huge, out, port)
        size = (folder / "huge.dcm").stat().st_size / 1e6
        print(
            f"  one {size:.0f} MB instance into aiodicom StoreScp: {size / seconds:.0f} MB/s,"
            f" peak RSS {rss:.0f} MB"
        )
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
