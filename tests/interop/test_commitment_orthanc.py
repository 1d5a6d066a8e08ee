"""Storage commitment against Orthanc 1.10, both ways, through the CLI.

Orthanc as the SCP: ``aiodicom commit`` asks it to commit what was stored there and an instance it never
had (which must fail); Orthanc reports on a new association, to ``--receive-port``.
Orthanc as the SCU: its REST API (``POST /modalities/{id}/storage-commitment``, 1.10's body is
``{"DicomInstances": [{"SOPClassUID": .., "SOPInstanceUID": ..}]}``) asks ``aiodicom storescp
--storage-commitment``, which reports to Orthanc's own port, found by ``--remote-ae``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiodicom.dataset.files import read_header
from tests.cli.test_commands import run
from tests.interop.pacs import Pacs, start_orthanc
from tests.interop.peers import free_port, stop
from tests.scp.part10 import CT_IMAGE_STORAGE, new_uid, part10, small_ct

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"receive": free_port(), "storescp": free_port(), "orthanc": free_port()}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]) -> Iterator[Pacs]:
    modalities = {
        "me": ("COMMIT-SCU", "127.0.0.1", ports["receive"]),
        "ours": ("STORE-SCP", "127.0.0.1", ports["storescp"]),
    }
    workdir = tmp_path_factory.mktemp("orthanc-commitment")
    with start_orthanc(workdir, None, extra_modalities=modalities, dicom_port=ports["orthanc"]) as pacs:
        yield pacs


def files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        path = folder / f"{i}.dcm"
        path.write_bytes(part10(small_ct()))
        out.append(path)
    return out


def rest(pacs: Pacs, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{pacs.http_port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_orthanc_commits_what_it_stored(orthanc: Pacs, ports: dict[str, int], tmp_path: Path) -> None:
    paths = files(tmp_path / "in", 2)
    sent = run("store", orthanc.address, *map(str, paths))
    assert sent.returncode == 0, sent.stderr
    done = run("commit", orthanc.address, *map(str, paths), "--receive-port", str(ports["receive"]), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(report["committed"]) == sorted(read_header(p).sop_instance_uid for p in paths)
    assert report["failed"] == [] and report["same_association"] is False  # Orthanc opens a new one

    (tmp_path / "unknown").mkdir()
    stranger = tmp_path / "unknown" / "x.dcm"
    stranger.write_bytes(part10(small_ct()))  # never sent to Orthanc
    partly = run(
        "commit", orthanc.address, str(paths[0]), str(stranger), "--receive-port", str(ports["receive"])
    )
    assert partly.returncode == 1
    uid = read_header(stranger).sop_instance_uid
    assert f"not committed: {uid}: no such object instance (0x0112)" in partly.stderr
    assert "1 committed, 1 failed" in partly.stdout


def test_orthanc_asks_our_storescp(orthanc: Pacs, ports: dict[str, int], tmp_path: Path) -> None:
    paths = files(tmp_path / "in", 2)
    command = [sys.executable, "-m", "aiodicom", "storescp", "--port", str(ports["storescp"])]
    command += ["--host", "127.0.0.1", "--out-dir", str(tmp_path / "out"), "--storage-commitment", "--json"]
    command += ["--remote-ae", f"ORTHANC@127.0.0.1:{ports['orthanc']}"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert json.loads(server.stdout.readline())["event"] == "server_started"
        sent = run("store", f"127.0.0.1:{ports['storescp']}", *map(str, paths))
        assert sent.returncode == 0, sent.stderr
        instances = [
            {"SOPClassUID": h.sop_class_uid, "SOPInstanceUID": h.sop_instance_uid}
            for h in map(read_header, paths)
        ]
        missing = {"SOPClassUID": CT_IMAGE_STORAGE, "SOPInstanceUID": new_uid()}
        job = rest(
            orthanc, "POST", "/modalities/ours/storage-commitment", {"DicomInstances": [*instances, missing]}
        )
        deadline = time.monotonic() + 20
        while True:
            report = rest(orthanc, "GET", f"/storage-commitment/{job['ID']}")
            if report["Status"] != "Pending" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert report["Status"] == "Failure"  # Orthanc's word for "some failed"
        assert sorted(s["SOPInstanceUID"] for s in report["Success"]) == sorted(
            i["SOPInstanceUID"] for i in instances
        )
        assert [(f["SOPInstanceUID"], f["FailureReason"]) for f in report["Failures"]] == [
            (missing["SOPInstanceUID"], 0x0112)
        ]
    finally:
        stop(server)  # type: ignore[arg-type]
