"""Serving queries and retrieves: `aiodicom qrscp` against DCMTK dcmqrscp holding the same 1,000 instances.

    python benchmarks/qr_vs_dcmqrscp.py [--rounds 10] [--instances 1000] [--index-files 10000]

Both archives are loaded with DCMTK storescu (one association) on tmpfs (/dev/shm), then asked, by DCMTK
clients, taking turns, `--rounds` times: C-FIND at STUDY level for every study
(`findscu`, 51 responses) and at IMAGE level for every instance of the big study (500 responses), each
query sent 50 times on the association of one findscu run, C-GET of
the 500-instance study (`getscu`, written to tmpfs) and C-MOVE of it to a DCMTK storescp (writing to
tmpfs). Every DCMTK process runs with TCP_NODELAY=1. Each client is a new process: for C-FIND, the figure
is the time 50 more queries on the association take (a findscu run of 100 queries less one of 50: start-up,
association and release drop out, and nothing but answering queries is counted); for C-GET and C-MOVE,
the time of the same client asking for something that matches nothing is taken out as its start-up. Each
client's output (findscu prints every response) goes to a file. Who goes first changes every round.
Median of `--rounds`. Printed:
responses (or instances) per second and the ratio to dcmqrscp. Then the index of an archive folder of
`--index-files` instances is built from the files alone (seconds, `aiodicom qrscp` with no index file).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _peers import DCMTK_ENV, free_port, tool, wait_for_port

BIG_STUDY = "1.2.826.0.1.3680043.8.498.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def make_instances(root: Path, count: int) -> Path:
    """``count`` small CT instances: one study of half of them (5 series) and studies of 10 for the rest,
    over 10 patients; written once per size."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    folder = root / f"qr-{count}"
    if folder.exists() and len(list(folder.iterdir())) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).tobytes()
    big = count // 2
    for n in range(count):
        if n < big:
            study, series, patient = BIG_STUDY, f"{BIG_STUDY}.{n % 5 + 1}", 0
        else:
            k = (n - big) // 10
            study, series, patient = (
                f"1.2.826.0.1.3680043.8.498.{k + 2}",
                f"1.2.826.0.1.3680043.8.498.{k + 2}.1",
                k % 10,
            )
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE
        ds.file_meta.MediaStorageSOPInstanceUID = f"{series}.{n + 1}"
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CT_IMAGE
        ds.SOPInstanceUID = f"{series}.{n + 1}"
        ds.PatientName = f"BENCH^PATIENT{patient}"
        ds.PatientID = f"BENCH-{patient}"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study
        ds.StudyDate = f"2024{(n % 12) + 1:02d}15"
        ds.StudyTime = "120000"
        ds.StudyID = "1"
        ds.AccessionNumber = f"ACC{study.rsplit('.', 1)[1]}"
        ds.ReferringPhysicianName = ""
        ds.SeriesInstanceUID = series
        ds.SeriesNumber = int(series.rsplit(".", 1)[1])
        ds.Modality = "CT"
        ds.InstanceNumber = n + 1
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = pixels
        ds.save_as(folder / f"{n:06d}.dcm", enforce_file_format=True)
    return folder


def timed(command: list[str]) -> float:
    """Seconds ``command`` takes; its output goes to a file (findscu prints every response it gets, 6.5 MB
    for the image-level runs: read through a pipe, this process would take CPU from the two measured)."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        result = subprocess.run(command, env=DCMTK_ENV, stdout=output, stderr=output, check=False)
        seconds = time.perf_counter() - started
        if result.returncode:
            output.seek(0)
            text = output.read().decode(errors="replace")
            raise RuntimeError(f"{' '.join(command)} failed: {text[-800:]}")
    return seconds


@contextlib.contextmanager
def dcmqrscp(workdir: Path, dest_port: int) -> Iterator[int]:
    port = free_port()
    db = workdir / "db"
    db.mkdir(parents=True)
    config = workdir / "dcmqrscp.cfg"
    config.write_text(
        "\n".join(
            [
                f"NetworkTCPPort = {port}",
                "MaxPDUSize = 65536",
                "MaxAssociations = 16",
                "HostTable BEGIN",
                f"storescp = (STORESCP, 127.0.0.1, {dest_port})",
                "HostTable END",
                "VendorTable BEGIN",
                "VendorTable END",
                "AETable BEGIN",
                f"DCMQRSCP {db} RW (2000, 4096mb) ANY",
                "AETable END",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [tool("dcmqrscp"), "-c", str(config), str(port)],
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


@contextlib.contextmanager
def aiodicom_qrscp(workdir: Path, dest_port: int, archive: Path | None = None) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiodicom",
            "qrscp",
            "--port",
            str(port),
            "--ae-title",
            "DCMQRSCP",
            "--out-dir",
            str(archive or workdir / "archive"),
            "--no-fsync",
            "--remote-ae",
            f"STORESCP@127.0.0.1:{dest_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def load(port: int, folder: Path) -> None:
    timed([tool("storescu"), "-aec", "DCMQRSCP", "127.0.0.1", str(port), "+sd", str(folder)])


def query_file(folder: Path, name: str, keys: dict[str, str]) -> Path:
    """A C-FIND identifier as a file findscu reads (it sends each file given as one query)."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    path = folder / f"{name}.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)
    return path


#: Each findscu run sends its query this many times over one association: a study-level query answers only
#: ~50 matches, fewer than the noise of a process start.
FIND_REPEATS = 50


def scenarios(port: int, out: Path) -> dict[str, tuple[list[str], list[str], int]]:
    """name -> (command, its baseline, units): C-FIND, 2 x FIND_REPEATS queries on one association and
    FIND_REPEATS of them (units: FIND_REPEATS); C-GET and C-MOVE, the retrieve and the same asking for
    nothing that exists (its start-up; units: 1)."""
    base = ["-aec", "DCMQRSCP", "127.0.0.1", str(port), "-S"]
    none = "1.2.3.4.5.6.7.8.9"
    out.mkdir(parents=True, exist_ok=True)
    study = {"QueryRetrieveLevel": "STUDY", "PatientName": "", "StudyDate": "", "AccessionNumber": ""}
    image = {
        "QueryRetrieveLevel": "IMAGE",
        "SeriesInstanceUID": "",
        "SOPInstanceUID": "",
        "InstanceNumber": "",
    }
    files = {
        "study": query_file(out.parent, "study", {**study, "StudyInstanceUID": ""}),
        "study-none": query_file(out.parent, "study-none", {**study, "StudyInstanceUID": none}),
        "image": query_file(out.parent, "image", {**image, "StudyInstanceUID": BIG_STUDY}),
        "image-none": query_file(out.parent, "image-none", {**image, "StudyInstanceUID": none}),
    }
    find = [tool("findscu"), *base]
    get = [tool("getscu"), *base, "-od", str(out), "-k", "QueryRetrieveLevel=STUDY"]
    move = [tool("movescu"), *base, "-aem", "STORESCP", "-k", "QueryRetrieveLevel=STUDY"]
    return {
        # the time of FIND_REPEATS more queries on the association: start-up and release drop out, and
        # so does nothing that either server does per query
        "C-FIND study level (responses/s)": (
            [*find, *[str(files["study"])] * (2 * FIND_REPEATS)],
            [*find, *[str(files["study"])] * FIND_REPEATS],
            FIND_REPEATS,
        ),
        "C-FIND image level (responses/s)": (
            [*find, *[str(files["image"])] * (2 * FIND_REPEATS)],
            [*find, *[str(files["image"])] * FIND_REPEATS],
            FIND_REPEATS,
        ),
        "C-GET 500-instance study (instances/s)": (
            [*get, "-k", f"StudyInstanceUID={BIG_STUDY}"],
            [*get, "-k", f"StudyInstanceUID={none}"],
            1,
        ),
        "C-MOVE 500-instance study (instances/s)": (
            [*move, "-k", f"StudyInstanceUID={BIG_STUDY}"],
            [*move, "-k", f"StudyInstanceUID={none}"],
            1,
        ),
    }


def measure(ports: dict[str, int], root: Path, rounds: int, counts: list[int]) -> dict[str, list[float]]:
    """Per server and scenario: ``count * units`` over the median, across rounds, of the scenario's time less
    its baseline's, both taken back to back in the round (this machine's pace drifts by tens of percent over
    minutes: a difference of two best times is at the mercy of one lucky run). The servers take turns, and
    who goes first (and whether the scenario or its baseline runs first) changes every round: the first run
    of a pair was measured up to 20 % slower than the same run second."""
    out = root / "got"
    spent: dict[tuple[str, int], list[float]] = {}
    servers = list(ports.items())
    for r in range(rounds):
        for k in range(len(counts)):
            for name, port in servers[r % len(servers) :] + servers[: r % len(servers)]:
                command, baseline, _ = list(scenarios(port, out).values())[k]
                times = {}
                for run in (command, baseline) if r % 2 == 0 else (baseline, command):
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    times[id(run)] = timed(run)
                spent.setdefault((name, k), []).append(times[id(command)] - times[id(baseline)])
    units = [entry[2] for entry in scenarios(0, out).values()]
    return {
        name: [
            counts[k] * units[k] / max(statistics.median(spent[name, k]), 1e-6) for k in range(len(counts))
        ]
        for name in ports
    }


def index_build(root: Path, files: int) -> float:
    """Seconds for `aiodicom qrscp` to index an archive folder of ``files`` instances from the files."""
    source = make_instances(root, files)
    archive = root / "index-archive"
    shutil.rmtree(archive, ignore_errors=True)
    study = archive / "1.2.3" / "1.2.3.1"
    study.mkdir(parents=True)
    for path in source.iterdir():
        os.link(path, study / path.name)
    started = time.perf_counter()
    with aiodicom_qrscp(root / "index-run", free_port(), archive):
        pass  # listening: the index was built before the port opened
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)  # runs of 5 or 6 moved by ±10-15 %
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--index-files", type=int, default=10000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aiodicom-qr-", dir="/dev/shm"))
    try:
        folder = make_instances(root, args.instances)
        studies = 1 + (args.instances - args.instances // 2 + 9) // 10
        big = args.instances // 2
        counts = [studies, big, big, big]
        dest_port = free_port()
        with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(dir="/dev/shm") as dest:
            receiver = subprocess.Popen(
                [tool("storescp"), "--aetitle", "STORESCP", "-od", dest, str(dest_port)],
                env=DCMTK_ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(receiver.wait, 10)
            stack.callback(receiver.terminate)
            wait_for_port(dest_port)
            ports: dict[str, int] = {}
            for name, server in (("dcmqrscp", dcmqrscp), ("aiodicom qrscp", aiodicom_qrscp)):
                workdir = root / name.replace(" ", "-")
                workdir.mkdir()
                ports[name] = stack.enter_context(server(workdir, dest_port))
                load(ports[name], folder)
            figures = measure(ports, root, args.rounds, counts)
        print(
            f"{args.instances} instances on tmpfs, DCMTK clients, median of {args.rounds}"
            " (the servers taking turns), start-up taken out"
        )
        print(f"  {'scenario':<42} {'dcmqrscp':>10} {'aiodicom':>10} {'ratio':>7}")
        for k, name in enumerate(scenarios(0, root)):
            ours, theirs = figures["aiodicom qrscp"][k], figures["dcmqrscp"][k]
            print(f"  {name:<42} {theirs:10.0f} {ours:10.0f} {ours / theirs:6.2f}x")
        if args.index_files:
            seconds = index_build(root, args.index_files)
            print(f"  index built from {args.index_files} files (tmpfs): {seconds:.1f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
