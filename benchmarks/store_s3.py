"""Receiving C-STOREs into S3 against the filesystem: aiodicom StoreScp with a moto S3 server as the bucket.

    python benchmarks/store_s3.py [--small 500] [--large 4] [--large-mb 64] [--rounds 1]

Data (generated once into a temporary directory, explicit VR little endian CT images): ``--small``
instances of ~0.5 MB (512 x 512 x 16 bit) and ``--large`` instances of ``--large-mb`` MB (multi-frame).
The sender is one DCMTK ``storescu +sd`` on one association (TCP_NODELAY=1), cheap beside the receiver.
The receiver is ``aiodicom storescp`` in its own process, storing into the filesystem with fsync (the
default), without fsync, and into a bucket of a moto server (``python -m moto.server``) in its own process.
As moto's floor, the same files also go from one aiobotocore client in this process straight to moto, one
at a time (a PUT, or 8 MiB parts one after another), with no DICOM in between.
Reported per backend: wall time of the send, instances/s, MB/s, the S3 time over this backend's time, the
CPU seconds the receiver, moto and storescu spent during the send (psutil / getrusage before and after),
the receiver's peak RSS (VmHWM), and for S3 how many objects arrived by one PUT and how many by a multipart
upload (an ETag ending in ``-N``; objects of at least one 8 MiB part are expected to be multipart). Every
run is checked: the same keys as the source instances, and S3 objects the same sizes as the files.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from _peers import DCMTK_ENV, free_port, tool, wait_for_port
from pydicom import dcmread
from pydicom.uid import generate_uid
from store_receivers import make_instance, peak_rss_mb

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
PART_SIZE = 8 << 20  # S3Config.part_size's default: objects this long or longer go up in parts
FS_SYNC, FS_NO_SYNC, S3 = "filesystem, fsync", "filesystem, no fsync", "S3 (moto)"
BARE = "aiobotocore alone"


@dataclass
class Result:
    seconds: float
    receiver_cpu: float
    moto_cpu: float
    sender_cpu: float
    rss_mb: float
    sizes: dict[str, int]  # relative path or key -> bytes stored
    puts: int = 0
    multipart: int = 0


def make_set(root: Path, name: str, count: int, frames: int) -> Path:
    """``count`` instances of 512 x 512 x ``frames``, each with its own SOP Instance UID (same length)."""
    folder = root / f"{name}-{count}x{frames}"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    first = folder / "000000.dcm"
    make_instance(first, 512, 512, frames, study, series)
    template = first.read_bytes()
    old_uid = str(dcmread(first, stop_before_pixels=True).SOPInstanceUID).encode()
    for i in range(1, count):
        uid = old_uid[:-8] + f"{i:08d}".encode()
        (folder / f"{i:06d}.dcm").write_bytes(template.replace(old_uid, uid))
    return folder


def expected_paths(folder: Path) -> dict[str, int]:
    """Study/Series/SOP.dcm of every source instance -> its size on disk."""
    paths: dict[str, int] = {}
    for path in sorted(folder.iterdir()):
        ds = dcmread(path, stop_before_pixels=True)
        paths[f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"] = path.stat().st_size
    return paths


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def receiver_command(backend: str, port: int, out: Path, endpoint: str, bucket: str) -> list[str]:
    command = [sys.executable, "-m", "aiodicom", "storescp", "--port", str(port), "--host", "127.0.0.1"]
    if backend == S3:
        return [*command, "--s3-bucket", bucket, "--s3-endpoint", endpoint]
    return [*command, "--out-dir", str(out), *(["--no-fsync"] if backend == FS_NO_SYNC else [])]


def run(
    backend: str, folder: Path, out: Path, moto: psutil.Process, endpoint: str, s3: Any, storescu: str
) -> Result:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    if backend == S3:
        s3.create_bucket(Bucket=bucket)
    os.sync()  # no dirty pages left from the previous run to throttle this one
    port = free_port()
    receiver = subprocess.Popen(
        receiver_command(backend, port, out, endpoint, bucket),
        env={**DCMTK_ENV, **CREDENTIALS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        watched = psutil.Process(receiver.pid)
        receiver_before, moto_before = cpu_seconds(watched), cpu_seconds(moto)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # only storescu is reaped meanwhile
        started = time.perf_counter()
        subprocess.run(
            [storescu, "-aec", "STORE-SCP", "127.0.0.1", str(port), "+sd", str(folder)],
            env=DCMTK_ENV,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        receiver_cpu, moto_cpu = cpu_seconds(watched) - receiver_before, cpu_seconds(moto) - moto_before
        rss = peak_rss_mb(receiver.pid)
    finally:
        receiver.terminate()
        receiver.wait(30)
    sender_cpu = children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime
    result = Result(seconds, receiver_cpu, moto_cpu, sender_cpu, rss, {})
    if backend == S3:
        empty_bucket(s3, bucket, result)
    else:
        for path in out.rglob("*"):
            if path.is_file() and ".incoming" not in path.relative_to(out).parts:
                result.sizes[path.relative_to(out).as_posix()] = path.stat().st_size
    return result


def check(backend: str, result: Result, expected: dict[str, int], reference: dict[str, int] | None) -> None:
    """The same keys as the source, sizes within a file meta group's change of the source's, and S3 objects
    byte for byte as long as the files."""
    if set(result.sizes) != set(expected):
        missing, extra = len(set(expected) - set(result.sizes)), len(set(result.sizes) - set(expected))
        raise RuntimeError(f"{backend}: {missing} of {len(expected)} instances missing, {extra} unexpected")
    off = [k for k, size in result.sizes.items() if abs(size - expected[k]) > 1024]
    if off:
        raise RuntimeError(f"{backend}: {len(off)} stored sizes differ from the source's: {off[0]}")
    if reference is not None and result.sizes != reference:
        raise RuntimeError(f"{backend}: stored sizes differ from the filesystem's")
    if backend == S3:
        multipart = sum(1 for size in result.sizes.values() if size >= PART_SIZE)
        if (result.puts, result.multipart) != (len(result.sizes) - multipart, multipart):
            raise RuntimeError(f"{backend}: {result.multipart} multipart uploads, {multipart} by size")


async def bare_uploads(files: list[bytes], endpoint: str, bucket: str, moto: psutil.Process) -> Result:
    """The same bytes straight from one aiobotocore client, one at a time: a PUT below one part, else a
    multipart upload of 8 MiB parts one after another. Timed from an open client (CPU: this process)."""
    from aiobotocore.session import get_session
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    async with get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, config=config, **_keys()
    ) as client:
        await client.head_bucket(Bucket=bucket)
        me = psutil.Process()
        before, moto_before = cpu_seconds(me), cpu_seconds(moto)
        started = time.perf_counter()
        for i, data in enumerate(files):
            key = f"{i:06d}.dcm"
            if len(data) < PART_SIZE:
                await client.put_object(Bucket=bucket, Key=key, Body=data)
                continue
            upload = (await client.create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
            parts = []
            for number, start in enumerate(range(0, len(data), PART_SIZE), 1):
                response = await client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    Body=data[start : start + PART_SIZE],
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
            await client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        seconds = time.perf_counter() - started
        return Result(seconds, cpu_seconds(me) - before, cpu_seconds(moto) - moto_before, 0.0, math.nan, {})


def run_bare(folder: Path, moto: psutil.Process, endpoint: str, s3: Any) -> Result:
    """``bare_uploads`` of the set's files (read beforehand), for moto's share of the time."""
    import asyncio

    files = [path.read_bytes() for path in sorted(folder.iterdir())]
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    result = asyncio.run(bare_uploads(files, endpoint, bucket, moto))
    empty_bucket(s3, bucket, result)
    return result


def empty_bucket(s3: Any, bucket: str, result: Result) -> None:
    """Note every object's size and how it was uploaded, then delete them and the bucket (moto holds them)."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            result.sizes[item["Key"]] = int(item["Size"])
            if "-" in item["ETag"]:
                result.multipart += 1
            else:
                result.puts += 1
    keys = list(result.sizes)
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})
    s3.delete_bucket(Bucket=bucket)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **CREDENTIALS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=60)
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=500, help="instances of ~0.5 MB")
    parser.add_argument("--large", type=int, default=4, help="large instances")
    parser.add_argument("--large-mb", type=int, default=64, help="size of a large instance (MB of pixels)")
    parser.add_argument("--rounds", type=int, default=1, help="best of this many runs per backend")
    parser.add_argument("--data", default=None, help="where to keep the generated data (default: a temp dir)")
    args = parser.parse_args()
    import boto3  # type: ignore[import-untyped]

    root = Path(args.data or tempfile.mkdtemp(prefix="aiodicom-bench-"))
    out = root / "received"
    sets = [("small", make_set(root, "small", args.small, 1))] if args.small else []
    if args.large:
        frames = max(1, args.large_mb * (1 << 20) // (512 * 512 * 2))
        sets.append(("large", make_set(root, "large", args.large, frames)))
    storescu = tool("storescu")  # once: finding it runs every storescu on PATH
    moto_proc, endpoint = start_moto()
    moto = psutil.Process(moto_proc.pid)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys())
    print(
        f"aiodicom storescp in its own process, DCMTK storescu +sd as the sender, moto {_moto_version()}"
        f" at {endpoint} in its own process; {os.cpu_count()} cores; data in {root}"
    )
    header = (
        f"  {'set':<14} {'backend':<21} {'wall s':>7} {'inst/s':>7} {'MB/s':>7} {'S3/this':>8}"
        f" {'recv CPU':>11} {'moto CPU':>11} {'sndr CPU':>9} {'peak RSS':>9} {'PUT/multipart':>14}"
    )
    notes: list[str] = []
    print(header)
    try:
        for set_name, folder in sets:
            expected = expected_paths(folder)
            count, megabytes = len(expected), sum(expected.values()) / 1e6
            label = f"{set_name} {count}x{megabytes / count:.1f}MB"
            results: dict[str, Result] = {}
            for _ in range(args.rounds):  # interleaved rounds, best of each
                for backend in (FS_SYNC, FS_NO_SYNC, S3):
                    result = run(backend, folder, out, moto, endpoint, s3, storescu)
                    check(backend, result, expected, results[FS_SYNC].sizes if backend == S3 else None)
                    best = results.get(backend)
                    if best is None or result.seconds < best.seconds:
                        results[backend] = result
                bare = run_bare(folder, moto, endpoint, s3)
                if sorted(bare.sizes.values()) != sorted(expected.values()):
                    raise RuntimeError(f"{BARE}: not every object arrived whole")
                if BARE not in results or bare.seconds < results[BARE].seconds:
                    results[BARE] = bare
            s3_seconds = results[S3].seconds
            for backend, r in results.items():
                ratio = f"{s3_seconds / r.seconds:7.2f}x" if backend != S3 else f"{'':>8}"
                s3_like = backend in (S3, BARE)
                uploads = f"{r.puts}/{r.multipart}" if s3_like else "-"
                moto_cpu = f"{r.moto_cpu:6.2f}s{100 * r.moto_cpu / r.seconds:3.0f}%" if s3_like else "-"
                sender = f"{r.sender_cpu:8.2f}s" if backend != BARE else f"{'-':>9}"
                rss = f"{r.rss_mb:7.0f}MB" if backend != BARE else f"{'-':>9}"
                print(
                    f"  {label:<14} {backend:<21} {r.seconds:7.2f} {count / r.seconds:7.1f}"
                    f" {megabytes / r.seconds:7.1f} {ratio}"
                    f" {r.receiver_cpu:6.2f}s{100 * r.receiver_cpu / r.seconds:3.0f}% {moto_cpu:>11}"
                    f" {sender} {rss} {uploads:>14}"
                )
            r, plain, bare = results[S3], results[FS_NO_SYNC], results[BARE]
            busy = (r.receiver_cpu + r.moto_cpu + r.sender_cpu) / s3_seconds
            notes.append(
                f"  {set_name}: {s3_seconds:.2f} s wall, {1e3 * s3_seconds / count:.1f} ms an instance;"
                f" CPU s:"
                f" moto {r.moto_cpu:.2f}, receiver {r.receiver_cpu:.2f} (filesystem without fsync:"
                f" {plain.receiver_cpu:.2f}), storescu {r.sender_cpu:.2f}; {busy:.2f} of {os.cpu_count()}"
                f" cores busy\n    the same uploads from aiobotocore alone: {bare.seconds:.2f} s"
                f" ({1e3 * bare.seconds / count:.1f} ms an instance), moto {bare.moto_cpu:.2f} CPU s;"
                f" StoreScp into S3 minus that: {1e3 * (s3_seconds - bare.seconds) / count:.1f} ms"
                f" (receiving alone into the filesystem without fsync: {1e3 * plain.seconds / count:.1f} ms)"
            )
    finally:
        moto_proc.terminate()
        moto_proc.wait(30)
        shutil.rmtree(out, ignore_errors=True)
    print("  (CPU: seconds during the send and % of the wall time; 100% = one core)")
    print("where the S3 time goes:")
    print("\n".join(notes))


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def _moto_version() -> str:
    import moto

    return str(moto.__version__)


if __name__ == "__main__":
    main()
