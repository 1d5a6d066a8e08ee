"""C-GET of one study from Orthanc: aiodicom GetScu against DCMTK getscu and pynetdicom.

    python benchmarks/get_orthanc.py [--count 500] [--repeats 3] [--uvloop] [--profile]

The study (``tests.interop.studies.build_large_study``: ``--count`` CT instances of ~39 kB, explicit VR little
endian, 5 series) is uploaded to a private Orthanc over REST, then each tool retrieves it with C-GET at
STUDY level into an empty directory, on one association, max PDU 16 kB; all DCMTK processes run with
TCP_NODELAY=1, Orthanc too (DCMTK inside: without it every sub-operation waits ~40 ms on Nagle). Runs are
interleaved, a `sync` before each, after one warm-up retrieve (Orthanc's cache); best and median of
``--repeats``; every run must have stored all ``--count`` files.

* DCMTK getscu: wall time of the process (start included, a few ms). Does not fsync.
* aiodicom GetScu: in-process, ``get_study()`` wall time, which includes its C-FIND survey (one more
  association). ``fsync=False`` is the like-for-like figure; ``fsync=True`` (the default) is reported too.
* pynetdicom: in-process (no interpreter start), an AE with the storage contexts and SCP role selection,
  each received instance written as file meta + the received bytes (its fastest way to store).

Also printed: the time of the C-FIND survey alone (``aiodicom.services.survey.survey``), and with
``--profile`` a
cProfile of one aiodicom retrieve (top 15 by cumulative and by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package: Orthanc and the study

from aiodicom import GetScu
from aiodicom.services.query import QueryModel
from aiodicom.services.survey import survey
from tests.interop.pacs import Pacs, start_orthanc
from tests.interop.peers import DCMTK_ENV, find_dcmtk
from tests.interop.studies import QrData, build_large_study

DCMTK = "DCMTK getscu"
PYNETDICOM = "pynetdicom (in-process)"


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def stored_files(out: Path) -> int:
    return sum(1 for p in out.rglob("*") if p.is_file() and p.stat().st_size and not p.name.startswith("."))


def fresh(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.sync()  # no dirty pages from the previous run to throttle this one's writes
    return out


def run_on(loop_name: str, coro: Any) -> Any:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def aiodicom_get(pacs: Pacs, study_uid: str, out: Path, *, fsync: bool, loop_name: str) -> float:
    scu = GetScu(pacs.address, out_dir=out, calling_ae_title="GET-SCU", fsync=fsync)
    started = time.perf_counter()
    result = run_on(loop_name, scu.get_study({"StudyInstanceUID": study_uid}))
    seconds = time.perf_counter() - started
    if result.failed:
        raise RuntimeError(f"aiodicom: {result.failed} sub-operations failed ({result.status_name})")
    return seconds


def dcmtk_get(pacs: Pacs, study_uid: str, out: Path) -> float:
    exe = find_dcmtk("getscu")
    if exe is None:
        sys.exit("DCMTK's getscu is not installed (apt-get install dcmtk)")
    command = [exe, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"]
    command += ["-od", str(out), "-aet", "GET-SCU", "-aec", pacs.ae_title, pacs.host, str(pacs.dicom_port)]
    started = time.perf_counter()
    subprocess.run(command, env=DCMTK_ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def pynetdicom_get(pacs: Pacs, study_uid: str, out: Path) -> float:
    from pydicom.dataset import Dataset
    from pynetdicom import AE, StoragePresentationContexts, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet  # type: ignore[attr-defined]

    def on_store(event: Any) -> int:
        path = out / f"{event.request.AffectedSOPInstanceUID}.dcm"
        with path.open("wb") as f:
            f.write(event.encoded_dataset())
        return 0x0000

    ae = AE(ae_title="GET-SCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    classes = [str(c.abstract_syntax) for c in StoragePresentationContexts[: 128 - 1]]
    for sop_class in classes:
        ae.add_requested_context(sop_class)
    roles: list[Any] = [build_role(sop_class, scp_role=True) for sop_class in classes]
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    started = time.perf_counter()
    assoc = ae.associate(
        pacs.host,
        pacs.dicom_port,
        ae_title=pacs.ae_title,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    if not assoc.is_established:
        raise RuntimeError("pynetdicom: association refused")
    try:
        for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
            if status is None:
                raise RuntimeError("pynetdicom: no C-GET response")
    finally:
        assoc.release()
    return time.perf_counter() - started


async def survey_time(pacs: Pacs, study_uid: str, out: Path) -> float:
    scu = GetScu(pacs.address, out_dir=out, calling_ae_title="GET-SCU")
    identifier = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid}
    started = time.perf_counter()
    found = await survey(scu, QueryModel.STUDY_ROOT, identifier)
    seconds = time.perf_counter() - started
    if not found.classes:
        raise RuntimeError("the survey found no SOP classes")
    return seconds


def profile(pacs: Pacs, study_uid: str, out: Path) -> None:
    profiler = cProfile.Profile()
    scu = GetScu(pacs.address, out_dir=fresh(out), calling_ae_title="GET-SCU", fsync=False)
    profiler.enable()
    asyncio.run(scu.get_study({"StudyInstanceUID": study_uid}))
    profiler.disable()
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(15)
        body = text.getvalue()
        print(f"\ncProfile of one aiodicom GetScu retrieve (fsync=False, asyncio), top 15 by {order}:")
        print(body[body.index("   ncalls") :].rstrip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500, help="instances in the study")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool: best and median reported")
    parser.add_argument("--uvloop", action="store_true", help="run aiodicom on uvloop as well")
    parser.add_argument("--profile", action="store_true", help="cProfile one aiodicom retrieve")
    args = parser.parse_args()
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    os.environ["TCP_NODELAY"] = "1"  # Orthanc is DCMTK inside: without it each C-STORE waits ~40 ms on Nagle
    root = Path(tempfile.mkdtemp(prefix="aiodicom-bench-get-"))
    try:
        run_all(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_all(root: Path, args: argparse.Namespace) -> None:
    study = build_large_study(root / "data", args.count, series=5)
    uid = study.study_instance_uid
    megabytes = sum(p.stat().st_size for p in study.paths) / 1e6
    out = root / "out"
    loop_names = ["asyncio", "uvloop"] if args.uvloop else ["asyncio"]
    tools: dict[str, Callable[[Pacs, str, Path], float]] = {DCMTK: dcmtk_get}
    for loop_name in loop_names:
        for sync in (False, True):
            name = f"aiodicom ({loop_name}, fsync={sync})"
            tools[name] = partial(aiodicom_get, fsync=sync, loop_name=loop_name)
    tools[PYNETDICOM] = pynetdicom_get
    with start_orthanc(root / "orthanc", QrData(root / "data", (study,))) as pacs:
        print(
            f"C-GET of one study of {args.count} instances ({megabytes:.1f} MB) from Orthanc, "
            f"study root, one association; {args.repeats} runs per tool"
        )
        dcmtk_get(pacs, uid, fresh(out))  # warm-up: Orthanc's caches
        samples: dict[str, list[float]] = {name: [] for name in tools}
        cpu: dict[str, list[float]] = {name: [] for name in tools}
        for _ in range(args.repeats):
            for name, get in tools.items():
                fresh(out)
                before = cpu_seconds()
                samples[name].append(get(pacs, uid, out))
                cpu[name].append(cpu_seconds() - before)
                if (stored := stored_files(out)) != args.count:
                    raise RuntimeError(f"{name} stored {stored} of {args.count} instances")
        surveys = [asyncio.run(survey_time(pacs, uid, out)) for _ in range(args.repeats)]
        report(samples, cpu, args.count, megabytes)
        like = samples[f"aiodicom ({loop_names[0]}, fsync=False)"]
        print(
            f"\naiodicom's C-FIND survey alone (one association, STUDY level):"
            f" best {min(surveys) * 1e3:.1f} ms, median {statistics.median(surveys) * 1e3:.1f} ms"
            f" = {min(surveys) / min(like):.1%} of aiodicom's best retrieve"
        )
        rest = (min(like) - min(surveys)) * 1e3
        print(
            f"aiodicom ({loop_names[0]}, fsync=False) minus its survey: best {rest:.0f} ms"
            f" vs DCMTK {min(samples[DCMTK]) * 1e3:.0f} ms"
        )
        if args.profile:
            profile(pacs, uid, out)


Runs = dict[str, list[float]]


def report(samples: Runs, cpu: Runs, count: int, megabytes: float) -> None:
    dcmtk, slow = min(samples[DCMTK]), min(samples[PYNETDICOM])
    dcmtk_median = statistics.median(samples[DCMTK])
    print(
        f"  {'tool':<34} {'best s':>7} {'median s':>9} {'inst/s':>7} {'med inst/s':>11} {'MB/s':>6}"
        f" {'CPU ms/inst':>12} {'vs DCMTK':>9} {'med vs DCMTK':>13} {'vs pynetdicom':>14}"
    )
    for name, runs in samples.items():
        best, median = min(runs), statistics.median(runs)
        print(
            f"  {name:<34} {best:7.3f} {median:9.3f} {count / best:7.0f} {count / median:11.0f}"
            f" {megabytes / best:6.1f} {min(cpu[name]) / count * 1e3:12.3f} {dcmtk / best:8.2f}x"
            f" {dcmtk_median / median:12.2f}x {slow / best:13.2f}x"
        )
    print(
        "  inst/s and MB/s from the best run; 'vs X' = speed relative to X (higher is faster), best against"
        " best and median against median;\n  CPU = the retrieving side's least CPU time over the runs"
        " (all its threads; DCMTK: the getscu process), Orthanc's excluded"
    )


if __name__ == "__main__":
    main()
