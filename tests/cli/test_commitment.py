"""``aiodicom store --commit`` and ``aiodicom commit`` against ``aiodicom qrscp --storage-commitment`` (the
option comes from storescp's, as does --remote-ae), and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.test_commands import run
from tests.interop.peers import free_port, stop
from tests.scp.part10 import part10, small_ct


def test_refusals(tmp_path: Path) -> None:
    unsynced = run(
        "storescp", "--port", "0", "--out-dir", str(tmp_path / "a"), "--storage-commitment", "--no-fsync"
    )
    assert unsynced.returncode == 2 and "fsync" in unsynced.stderr
    bad_remote = run("storescp", "--port", "0", "--out-dir", str(tmp_path), "--remote-ae", "127.0.0.1:104")
    assert bad_remote.returncode == 2 and "give the AE title" in bad_remote.stderr
    missing = run("commit", "127.0.0.1:9", str(tmp_path / "nope.dcm"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    (tmp_path / "empty").mkdir()
    nothing = run("commit", "127.0.0.1:9", str(tmp_path / "empty"))
    assert nothing.returncode == 2 and "no DICOM file" in nothing.stderr


def test_store_commit_then_commit(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.dcm").write_bytes(part10(small_ct()))
    receive = free_port()
    command = [sys.executable, "-m", "aiodicom", "qrscp", "--port", "0", "--host", "127.0.0.1", "--json"]
    command += ["--out-dir", str(tmp_path / "archive"), "--storage-commitment"]
    command += ["--remote-ae", f"COMMIT-SCU@127.0.0.1:{receive}"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        address = f"QR-SCP@127.0.0.1:{json.loads(server.stdout.readline())['port']}"
        stored = run("store", address, str(folder), "--commit", "--json")
        assert stored.returncode == 0, stored.stderr
        report = json.loads(stored.stdout)
        assert report["successful"] == 3 and len(report["commit"]["committed"]) == 3
        assert report["commit"]["failed"] == [] and report["commit"]["same_association"] is True

        stranger = tmp_path / "stranger.dcm"
        stranger.write_bytes(part10(small_ct()))  # never stored there
        partly = run("commit", address, str(folder), str(stranger), "--receive-port", str(receive))
        assert partly.returncode == 1
        assert (
            "3 committed, 1 failed" in partly.stdout and "no such object instance (0x0112)" in partly.stderr
        )
        every = run("commit", address, str(folder), "--json")
        assert every.returncode == 0 and len(json.loads(every.stdout)["committed"]) == 3
        # the state folder (out_dir/.commitments) is not a study of the archive
        found = run("find", address, "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=", "--json")
        assert found.returncode == 0 and len(json.loads(found.stdout)) == 3
    finally:
        stop(server)  # type: ignore[arg-type]
    assert not list((tmp_path / "archive" / ".commitments").glob("*.json"))
