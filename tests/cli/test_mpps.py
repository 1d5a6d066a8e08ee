"""``aiodicom mpps create|set`` against ``aiodicom qrscp --mpps-dir`` (the option comes from storescp's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.test_commands import run
from tests.interop.peers import stop


def test_bad_usage_exits_2_with_the_reason() -> None:
    assert (bad := run("mpps", "delete", "127.0.0.1:9")).returncode == 2 and "create or set" in bad.stderr
    assert (no_uid := run("mpps", "set", "127.0.0.1:9")).returncode == 2 and "UID" in no_uid.stderr
    missing = run("mpps", "create", "127.0.0.1:9", "--patient-id", "P1")
    assert missing.returncode == 2 and "Modality is required" in missing.stderr  # nothing was sent
    assert (
        key := run("mpps", "create", "127.0.0.1:9", "-k", "Nope=1")
    ).returncode == 2 and "Nope" in key.stderr


def test_create_then_complete_then_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mpps"
    command = [sys.executable, "-m", "aiodicom", "qrscp", "--port", "0", "--host", "127.0.0.1"]
    command += ["--out-dir", str(tmp_path / "archive"), "--no-fsync", "--mpps-dir", str(folder), "--json"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        started = json.loads(server.stdout.readline())
        address = f"QR-SCP@127.0.0.1:{started['port']}"
        created = run("mpps", "create", address, "--patient-id", "P1", "-k", "Modality=CT", "-k", "StudyID=4")
        assert created.returncode == 0, created.stderr
        uid = created.stdout.strip()
        event = json.loads(server.stdout.readline())
        assert event == {
            "event": "mpps",
            "sop_instance_uid": uid,
            "status": "IN PROGRESS",
            "previous_status": None,
            "calling_ae_title": "MPPS-SCU",
        }
        stored = json.loads((folder / f"{uid}.json").read_text())
        assert stored["00100020"]["Value"] == ["P1"] and stored["00200010"]["Value"] == ["4"]
        done = run("mpps", "set", address, uid, "--status", "COMPLETED", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["performed_procedure_step_status"] == "COMPLETED"
        assert json.loads(server.stdout.readline())["status"] == "COMPLETED"
        late = run("mpps", "set", address, uid, "-k", "PerformedProcedureStepDescription=late")
        assert late.returncode == 1 and "0x0110" in late.stderr and "no longer be updated" in late.stderr
    finally:
        stop(server)  # type: ignore[arg-type]
