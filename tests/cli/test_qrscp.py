"""``aiodicom qrscp``: a PACS in one command (the query/retrieve tests run it as one of their PACS)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pydicom.data import get_testdata_file

from tests.cli.test_commands import run
from tests.interop.peers import stop


def test_bad_options_exit_2_with_the_reason(tmp_path: Path) -> None:
    missing = run("qrscp", "--port", "0")
    assert missing.returncode == 2 and "--out-dir" in missing.stderr
    bad = run("qrscp", "--port", "0", "--out-dir", str(tmp_path), "--remote-ae", "VIEWER@nowhere")
    assert bad.returncode == 2 and "--remote-ae VIEWER@nowhere" in bad.stderr
    no_title = run("qrscp", "--port", "0", "--out-dir", str(tmp_path), "--remote-ae", "127.0.0.1:104")
    assert no_title.returncode == 2 and "AE title" in no_title.stderr
    no_folder = run("qrscp", "--port", "0", "--out-dir", str(tmp_path), "--worklist", str(tmp_path / "nope"))
    assert no_folder.returncode == 2 and "worklist" in no_folder.stderr
    s3 = run("qrscp", "--port", "0", "--out-dir", str(tmp_path), "--s3-bucket", "b")
    assert s3.returncode == 2  # not an option of qrscp: the archive is a folder


def test_it_stores_indexes_and_answers_then_keeps_its_index(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    command = [sys.executable, "-m", "aiodicom", "qrscp", "--port", "0", "--host", "127.0.0.1"]
    command += ["--out-dir", str(archive), "--no-fsync", "--json"]
    for attempt in range(2):  # the second start opens the index the first one made
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            started = json.loads(server.stdout.readline())
            assert started["event"] == "server_started" and started["ae_title"] == "QR-SCP"
            address = f"QR-SCP@127.0.0.1:{started['port']}"
            if attempt == 0:
                sent = run("store", address, get_testdata_file("CT_small.dcm"))
                assert sent.returncode == 0, sent.stderr
                assert json.loads(server.stdout.readline())["event"] == "file_stored"
            found = run(
                "find", address, "--level", "STUDY", "-k", "PatientName=CompressedSamples^CT1", "--json"
            )
            assert found.returncode == 0, found.stderr
            matches = json.loads(found.stdout)
            assert [m["PatientName"] for m in matches] == ["CompressedSamples^CT1"]
        finally:
            stop(server)  # type: ignore[arg-type]
    assert (archive / ".index.sqlite").is_file()
