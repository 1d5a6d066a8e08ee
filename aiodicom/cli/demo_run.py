"""``aiodicom demo``: a complete C-STORE round trip over loopback, verified instance by instance.

It starts a :class:`~aiodicom.scp.StoreScp` on a free loopback port, builds a synthetic study (CT, MR and
secondary capture series made from pydicom's bundled example files, with fresh UIDs), sends it with
:class:`~aiodicom.scu.store.StoreScu` over several associations, then checks that every instance was stored
with the SOP Instance UID and the data set bytes that were sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.tree import Tree

from aiodicom.dataset.files import read_header
from aiodicom.errors import StorageError
from aiodicom.scp.store import ServerStarted, StoreScp
from aiodicom.scu.store import FileError, FileSent, SendResult, StoreScu
from aiodicom.services.store import StoredInstance
from aiodicom.services.studies import StudyCompleted
from aiodicom.storage.s3 import S3Bucket, S3Config

AE_TITLE = "DEMO-SCP"
# fmt: off
#: What the StoreScp extracts for the study tree (study and series levels).
EXTRACT_TAGS = ["PatientName", "PatientID", "StudyDate", "StudyDescription", "Modality", "SeriesNumber",
                "SeriesDescription"]
#: The patient and study attributes every instance shares.
STUDY_ATTRIBUTES: dict[str, object] = {
    "PatientName": "DEMO^PATIENT", "PatientID": "AIODICOM-DEMO", "PatientBirthDate": "19700101",
    "PatientSex": "O", "StudyDescription": "aiodicom demo study", "StudyID": "1",
    "AccessionNumber": "DEMO0001", "ReferringPhysicianName": "",
}
# fmt: on
#: The series of the study: the pydicom example file each is made from, modality, description, share.
SERIES: tuple[tuple[str, str, str, float], ...] = (
    ("CT_small.dcm", "CT", "Chest CT 5 mm", 0.45),
    ("MR_small.dcm", "MR", "Brain MR T1 axial", 0.25),
    ("MR_small.dcm", "MR", "Brain MR T2 axial", 0.2),
    ("SC_rgb_small_odd.dcm", "OT", "Key images (secondary capture)", 0.1),
)


class DemoFailed(Exception):
    """The demo did not complete: ``str(exc)`` is the one-line reason, ``exit_code`` the exit status."""

    def __init__(self, reason: str, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``aiodicom demo`` was asked to do (its command-line options)."""

    count: int = 300
    concurrency: int = 4
    out_dir: str = "./aiodicom-demo"
    clean: bool = False
    s3_endpoint: str | None = None
    s3_bucket: str = "aiodicom-demo"
    as_json: bool = False
    verbose: bool = False


@dataclass(frozen=True, slots=True)
class DemoInstance:
    """One synthetic instance: the bytes of its Part 10 file and where its data set starts in them."""

    name: str
    sop_instance_uid: str
    series_instance_uid: str
    data: bytes
    dataset_offset: int

    @property
    def dataset(self) -> memoryview:
        return memoryview(self.data)[self.dataset_offset :]


@dataclass
class DemoStudy:
    """The synthetic study: its UID and its instances, in sending order."""

    study_instance_uid: str
    instances: list[DemoInstance] = field(default_factory=list)

    @property
    def dataset_bytes(self) -> int:
        return sum(len(i.data) - i.dataset_offset for i in self.instances)


def split_count(count: int, shares: list[float]) -> list[int]:
    """``count`` split by ``shares`` (largest remainder), every series getting one when there are enough."""
    if count < len(shares):
        return [1] * count + [0] * (len(shares) - count)
    total = sum(shares)
    exact = [1 + (count - len(shares)) * s / total for s in shares]
    sizes = [int(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: exact[i] - sizes[i], reverse=True)
    for i in by_remainder[: count - sum(sizes)]:
        sizes[i] += 1
    return sizes


def build_study(count: int) -> DemoStudy:
    """A study of ``count`` instances with consistent patient and study attributes and fresh UIDs."""
    study = DemoStudy(generate_uid())
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    sizes = split_count(count, [share for *_, share in SERIES])
    for number, ((template, modality, description, _), size) in enumerate(zip(SERIES, sizes, strict=True), 1):
        if not size:
            continue
        path = get_testdata_file(template, download=False)
        if path is None:
            raise DemoFailed(f"pydicom's example file {template} is missing: reinstall pydicom")
        ds = pydicom.dcmread(path)
        series_uid = generate_uid()
        attributes = {**STUDY_ATTRIBUTES, "StudyInstanceUID": study.study_instance_uid, "StudyDate": date}
        attributes.update(StudyTime=time, SeriesDate=date, SeriesTime=time, SeriesInstanceUID=series_uid)
        attributes.update(SeriesNumber=number, Modality=modality, SeriesDescription=description)
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        for index in range(size):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.InstanceNumber = index + 1
            if "ImagePositionPatient" in ds:
                ds.ImagePositionPatient = [-120.0, -120.0, round(index * 5.0, 2)]
            if "SliceLocation" in ds:
                ds.SliceLocation = round(index * 5.0, 2)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            data = buffer.getvalue()
            offset = read_header(io.BytesIO(data)).data_offset
            name = f"{modality}-{number}-{index + 1:04d}.dcm"
            study.instances.append(DemoInstance(name, str(ds.SOPInstanceUID), series_uid, data, offset))
    return study


@dataclass
class _Received:
    """What the StoreScp reported while the demo ran."""

    started: ServerStarted | None = None
    stored: dict[str, StoredInstance] = field(default_factory=dict)
    studies: list[StudyCompleted] = field(default_factory=list)
    study_done: asyncio.Event = field(default_factory=asyncio.Event)

    def on_study(self, study: StudyCompleted) -> None:
        self.studies.append(study)
        self.study_done.set()


async def _ensure_bucket(config: S3Config) -> None:
    """Create the demo bucket when the endpoint does not have it yet (MinIO, moto, a fresh store)."""
    bucket = S3Bucket(config)
    try:
        await bucket.open(create=True)
    except ImportError:
        raise DemoFailed("--s3-endpoint needs aiobotocore: pip install 'aiodicom[s3]'", 2) from None
    except StorageError as exc:
        raise DemoFailed(str(exc)) from None
    await bucket.close()


async def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the demo; returns its summary (also printed) or raises :class:`DemoFailed` saying why."""
    console = console or Console()
    s3 = S3Config(options.s3_bucket, endpoint=options.s3_endpoint) if options.s3_endpoint else None
    out_dir = Path(options.out_dir)
    if s3 is None and out_dir.exists() and not out_dir.is_dir():
        raise DemoFailed(f"--out-dir {options.out_dir} is a file, not a folder", 2)
    if s3 is not None:
        await _ensure_bucket(s3)
    study = await asyncio.to_thread(build_study, options.count)
    received = _Received()
    try:
        scp = StoreScp(
            0,
            host="127.0.0.1",
            ae_title=AE_TITLE,
            out_dir=None if s3 else out_dir,
            storage_backend="s3" if s3 else "filesystem",
            s3_config=s3,
            extract_tags=list(EXTRACT_TAGS),
            study_timeout=0.5,
            verbose=options.verbose,
        )
    except OSError as exc:
        raise DemoFailed(f"cannot use --out-dir {options.out_dir}: {exc.strerror or exc}", 2) from None
    scp.on_server_started(lambda e: setattr(received, "started", e))
    scp.on_file_stored(lambda e: received.stored.__setitem__(e.sop_instance_uid, e))
    scp.on_study_completed(received.on_study)
    quiet = options.as_json
    async with scp:
        where = s3.uri(s3.prefix) if s3 else str(scp.out_dir)
        if not quiet and received.started is not None:
            console.print(
                f"[bold]StoreScp[/bold]  {received.started.message}\n          into {escape(where)}"
            )
            console.print(
                f"[bold]Sending[/bold]   {len(study.instances)} instances in "
                f"{len({i.series_instance_uid for i in study.instances})} series, "
                f"{study.dataset_bytes / 1e6:.1f} MB, made from pydicom's example files"
            )
        result, errors = await _send(study, scp.port, options, quiet)
        with contextlib.suppress(TimeoutError):  # else stop() completes the studies still pending
            await asyncio.wait_for(received.study_done.wait(), 5.0)
    if result.failed:
        first = errors[0] if errors else "unknown error"
        raise DemoFailed(f"{result.failed} of {result.total_files} instances failed to send: {first}")
    if (completed := sum(s.instance_count for s in received.studies)) != len(study.instances):
        raise DemoFailed(f"study completion counted {completed} instances, not {len(study.instances)}")
    if s3 is not None:
        await _verify_s3(study, s3, options.clean)
    else:
        await asyncio.to_thread(_verify_files, study, received)
    summary = _summary(study, received, result.duration_seconds, options, where)
    if options.clean and s3 is None:
        await asyncio.to_thread(_clean_files, Path(scp.out_dir or out_dir), study.study_instance_uid)
    if quiet:
        print(json.dumps(summary))
    else:
        _print_report(console, received.studies, summary, options)
    return summary


async def _send(
    study: DemoStudy, port: int, options: DemoOptions, quiet: bool
) -> tuple[SendResult, list[str]]:
    """Send the study with a live progress bar; returns the :class:`SendResult` and the errors seen."""
    scu = StoreScu(
        f"{AE_TITLE}@127.0.0.1:{port}",
        calling_ae_title="DEMO-SCU",
        concurrency=options.concurrency,
        verbose=options.verbose,
    )
    for instance in study.instances:
        scu.add_file_from_memory(instance.data, instance.name)
    errors: list[str] = []
    stderr = Console(stderr=True)
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), "instances", TimeElapsedColumn())
    progress = Progress(*columns, console=stderr, disable=quiet or options.verbose or not stderr.is_terminal)
    with progress:
        task = progress.add_task(f"C-STORE x{options.concurrency}", total=len(study.instances))

        def sent(event: FileSent) -> None:
            progress.advance(task)

        def failed(event: FileError) -> None:
            errors.append(event.error)
            progress.advance(task)

        result = await scu.send(on_file_sent=sent, on_file_error=failed)
    return result, errors


def _verify_files(study: DemoStudy, received: _Received) -> None:
    """Every instance sent is on disk, with its SOP Instance UID and the very data set bytes sent."""
    for instance in study.instances:
        stored = received.stored.get(instance.sop_instance_uid)
        if stored is None or not (path := Path(stored.file)).is_file():
            raise DemoFailed(f"instance {instance.sop_instance_uid} was answered Success but is not stored")
        data = path.read_bytes()
        header = read_header(io.BytesIO(data))
        if header.sop_instance_uid != instance.sop_instance_uid:
            raise DemoFailed(
                f"{path} holds instance {header.sop_instance_uid}, not {instance.sop_instance_uid}"
            )
        if memoryview(data)[header.data_offset :] != instance.dataset:
            raise DemoFailed(f"{path}: the stored data set differs from the one sent")


async def _verify_s3(study: DemoStudy, config: S3Config, clean: bool) -> None:
    """List the study's objects in the bucket; each must be there and end with the data set sent."""
    bucket = S3Bucket(config)
    await bucket.open()
    try:
        prefix = config.key(f"{study.study_instance_uid}/")
        objects = {
            key.rsplit("/", 1)[-1].removesuffix(".dcm"): (key, size)
            async for key, size in bucket.list_keys(prefix)
        }
        for instance in study.instances:
            if instance.sop_instance_uid not in objects:
                raise DemoFailed(
                    f"instance {instance.sop_instance_uid} is missing from s3://{config.bucket}/{prefix}"
                )
            key, size = objects[instance.sop_instance_uid]
            tail = await bucket.read_range(key, size - len(instance.dataset), size)
            if tail != instance.dataset:
                raise DemoFailed(f"{config.uri(key)}: the stored data set differs from the one sent")
        if clean:
            keys = [{"Key": key} for key, _ in objects.values()]
            for start in range(0, len(keys), 1000):
                await bucket.client.delete_objects(
                    Bucket=config.bucket, Delete={"Objects": keys[start : start + 1000]}
                )
    finally:
        await bucket.close()


def _clean_files(out_dir: Path, study_uid: str) -> None:
    """Remove this run's study folder, and the output folder too when nothing else is left in it."""
    shutil.rmtree(out_dir / study_uid, ignore_errors=True)
    for folder in (out_dir / ".incoming", out_dir):
        with contextlib.suppress(OSError):  # not empty: left alone
            folder.rmdir()


def _series_rows(study: StudyCompleted) -> list[dict[str, Any]]:
    """The series of a completed study, in series number order, as the report and the JSON show them."""
    rows = [
        {
            "series_instance_uid": series.series_instance_uid,
            "series_number": series.tags.get("SeriesNumber", ""),
            "modality": series.tags.get("Modality", ""),
            "description": series.tags.get("SeriesDescription", ""),
            "instances": len(series.instances),
        }
        for series in study.series
    ]
    return sorted(rows, key=lambda row: int(row["series_number"] or 0))


def _summary(
    study: DemoStudy, received: _Received, seconds: float, options: DemoOptions, where: str
) -> dict[str, Any]:
    count, size = len(study.instances), study.dataset_bytes
    return {
        "ok": True,
        "instances": count,
        "verified": count,
        "bytes": size,
        "duration_seconds": round(seconds, 3),
        "instances_per_second": round(count / seconds, 1) if seconds else None,
        "mb_per_second": round(size / 1e6 / seconds, 2) if seconds else None,
        "concurrency": options.concurrency,
        "port": received.started.port if received.started else None,
        "storage": where,
        "cleaned": options.clean,
        "study_instance_uid": study.study_instance_uid,
        "studies_completed": len(received.studies),
        "study_tags": {k: v for s in received.studies for k, v in s.tags.items()},
        "series": [row for s in received.studies for row in _series_rows(s)],
    }


def _print_report(
    console: Console, studies: list[StudyCompleted], summary: dict[str, Any], options: DemoOptions
) -> None:
    console.print()
    for study in studies:
        t = study.tags
        label = (
            f"[bold]Study[/bold] {t.get('StudyDescription', '')} · {t.get('PatientName', '')} · "
            f"{t.get('StudyDate', '')} · {study.instance_count} instances\n"
            f"[dim]{study.study_instance_uid}[/dim]"
        )
        tree = Tree(label, guide_style="dim")
        for row in _series_rows(study):
            tree.add(
                f"Series {row['series_number']:>2} [cyan]{row['modality']:<2}[/cyan] "
                f"{row['description']:<32} {row['instances']:>5} instances"
            )
        console.print(tree)
    count, where = summary["instances"], escape(summary["storage"])
    console.print(f"\n[green]✔ Verified[/green]  {count}/{count} stored: UIDs match, byte-identical")
    console.print(
        f"[bold]Throughput[/bold] {summary['instances_per_second']:,.0f} instances/s, "
        f"{summary['mb_per_second']:.1f} MB/s ({count} in {summary['duration_seconds']:.2f} s, "
        f"{options.concurrency} associations)"
    )
    kept = "Removed this run's instances from {}" if options.clean else "Left in {} (--clean removes them)"
    console.print(kept.format(where))
    out = options.out_dir if not options.s3_endpoint else "./my-study"
    console.print("\n[bold]Try next[/bold] [dim](the first in its own terminal)[/dim]")
    console.print("  aiodicom storescp --port 11112 --out-dir ./received")
    console.print(f"  aiodicom store STORE-SCP@127.0.0.1:11112 {escape(out)} --concurrency 4")
    console.print("  aiodicom echo STORE-SCP@127.0.0.1:11112 --count 10")
    console.print("  aiodicom demo --count 2000 --concurrency 8 --clean")
