"""Index build of the built-in archive: seconds to index N files from scratch, then to reconcile them.

    PYTHONPATH=$PWD python benchmarks/archive_index.py [--count 10000] [--studies 100]

Writes ``--count`` small CT instances (pydicom's CT_small.dcm, ~39 kB, explicit VR little endian) in
StoreScp's layout (``{Study}/{Series}/{SOP}.dcm``, ``--studies`` studies of 4 series, two patients per ten
studies) under /dev/shm (tmpfs) when it exists, so the figure is the index's work (header reads and SQLite
inserts), not the disk's. Then times: opening an Archive over the folder with no index (a full rebuild),
opening it again (reconcile: a listing and a comparison, no file read), and a study-level C-FIND over all
studies with the computed keys. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from aiodicom.archive import Archive


def generate(root: Path, count: int, studies: int) -> None:
    source = get_testdata_file("CT_small.dcm")
    assert source is not None
    ds = dcmread(source)
    study_uids = [generate_uid() for _ in range(studies)]
    series_uids = [[generate_uid() for _ in range(4)] for _ in range(studies)]
    for n in range(count):
        k = n % studies
        s = (n // studies) % 4
        ds.PatientID = f"BENCH-{k % (studies // 5 or 1)}"
        ds.PatientName = f"BENCH^{k % (studies // 5 or 1)}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uids[k], series_uids[k][s]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n
        ds.SeriesNumber = s + 1
        path = root / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)


async def measure(root: Path) -> None:
    started = time.perf_counter()
    async with Archive(root) as archive:
        built = time.perf_counter() - started
        stats = await archive.stats()
    started = time.perf_counter()
    async with Archive(root) as archive:
        reconciled = time.perf_counter() - started
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        query.PatientName = "BENCH^*"
        query.ModalitiesInStudy = ""
        query.NumberOfStudyRelatedInstances = ""
        started = time.perf_counter()
        found = [r async for r in archive.find(query)]
        searched = time.perf_counter() - started
    print(f"indexed {stats['instances']} instances ({stats['studies']} studies): {built:.2f} s")
    print(f"reopened (reconcile, nothing changed): {reconciled:.2f} s")
    print(f"study-level C-FIND with computed keys, {len(found)} matches: {searched:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--studies", type=int, default=100)
    args = parser.parse_args()
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = Path(tempfile.mkdtemp(prefix="aiodicom-archive-bench-", dir=base))
    try:
        print(f"load average before: {os.getloadavg()}")
        started = time.perf_counter()
        generate(root, args.count, max(1, min(args.studies, args.count)))
        print(f"wrote {args.count} files in {root} in {time.perf_counter() - started:.1f} s")
        asyncio.run(measure(root))
        print(f"load average after: {os.getloadavg()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
