"""StoreScp receiving from real senders: DCMTK storescu and pynetdicom's storescu, over loopback."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from aiodicom.scp.store import StoreScp
from aiodicom.services.store import StoredInstance
from tests.interop.peers import DCMTK_ENV, free_port, require_tool, stop, wait_for_port
from tests.interop.test_echo_dcmtk import run_tool

pytestmark = pytest.mark.interop

FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtdose_expb_1frame.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_rle_2frame.dcm",
    "JPEG2000.dcm",
    "liver_1frame.dcm",
]


def same_elements(received: Path, original: str) -> None:
    """Element by element (DCMTK recomputes group lengths and drops trailing padding on the wire)."""
    got, want = pydicom.dcmread(received), pydicom.dcmread(original)
    for ds in (got, want):
        for elem in list(ds):
            if elem.tag.element == 0 or elem.tag == 0xFFFCFFFC:
                del ds[elem.tag]
    assert [e.tag for e in got] == [e.tag for e in want]
    for elem in want:
        assert got[elem.tag].value == elem.value, elem.tag
    if want.file_meta.TransferSyntaxUID.is_compressed:  # uncompressed ones may be converted by the sender
        assert got.file_meta.TransferSyntaxUID == want.file_meta.TransferSyntaxUID
    assert got.file_meta.MediaStorageSOPInstanceUID == want.SOPInstanceUID


def target_of(out: Path, original: str) -> Path:
    ds = pydicom.dcmread(original, stop_before_pixels=True)
    return out / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"


async def test_dcmtk_storescu_into_store_scp(tmp_path: Path) -> None:
    paths = [get_testdata_file(name) for name in FILES]
    stored: list[StoredInstance] = []
    async with StoreScp(
        0, host="127.0.0.1", ae_title="STORE-SCP", out_dir=tmp_path / "out", fsync=False
    ) as scp:
        scp.on_file_stored(stored.append)
        # storescu proposes a compressed syntax only when told which: one run per kind of file
        groups = {"-x=": paths[:4] + paths[7:], "-xy": [paths[4]], "-xr": [paths[5]], "-xw": [paths[6]]}
        for option, files in groups.items():
            code, out = await run_tool(
                "storescu",
                "-R",
                option,
                "-aet",
                "DCMTK",
                "-aec",
                "STORE-SCP",
                "127.0.0.1",
                str(scp.port),
                *files,
            )
            assert code == 0, out
    assert len(stored) == len(paths)
    for path in paths:
        same_elements(target_of(scp.out_dir, path), path)
        meta = pydicom.dcmread(target_of(scp.out_dir, path), stop_before_pixels=True).file_meta
        assert meta.SourceApplicationEntityTitle == "DCMTK"


async def test_dcmtk_storescu_many_files_from_a_directory(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for i in range(40):
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.2.1125.{i + 1}"
        ds.save_as(source / f"ct{i:03d}", enforce_file_format=True)  # no extension, as scanners write them
    async with StoreScp(
        0, host="127.0.0.1", ae_title="STORE-SCP", out_dir=tmp_path / "out", fsync=True
    ) as scp:
        code, out = await run_tool(
            "storescu", "+sd", "-aec", "STORE-SCP", "127.0.0.1", str(scp.port), str(source)
        )
        assert code == 0, out
    received = sorted(scp.out_dir.rglob("*.dcm"))
    assert len(received) == 40
    assert not list((scp.out_dir / ".incoming").iterdir())  # nothing left behind once stopped


async def test_pynetdicom_storescu_into_store_scp(tmp_path: Path) -> None:
    paths = [get_testdata_file(name) for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")]
    async with StoreScp(
        0, host="127.0.0.1", ae_title="STORE-SCP", out_dir=tmp_path / "out", fsync=False
    ) as scp:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pynetdicom",
            "storescu",
            "-aec",
            "STORE-SCP",
            "127.0.0.1",
            str(scp.port),
            *paths,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, out.decode()
    for path in paths:
        same_elements(target_of(scp.out_dir, path), path)


def test_cli_storescp_with_dcmtk_storescu(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "cli-out"
    server = subprocess.Popen(
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
            "--extract-tags",
            "PatientName,Modality",
            "--study-timeout",
            "0.5",
            "--no-fsync",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, server)  # type: ignore[arg-type]
        ct = get_testdata_file("CT_small.dcm")
        sent = subprocess.run(
            [require_tool("storescu"), "127.0.0.1", str(port), ct],
            env=DCMTK_ENV,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        assert target_of(out, ct).exists()
        import time

        time.sleep(1.0)
    finally:
        stop(server)  # type: ignore[arg-type]
    stdout = server.stdout.read() if server.stdout else ""
    assert "stored " in stdout and "study " in stdout and "completed" in stdout
    shutil.rmtree(out)
