"""``aiodicom demo`` through its real entry point (a subprocess in a temporary working directory): a real
StoreScp and StoreScu over loopback, and the verification of every instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def demo(
    cwd: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiodicom", "demo", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def stored(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("*/*/*.dcm"))


def test_demo_sends_verifies_and_leaves_the_files(tmp_path: Path) -> None:
    proc = demo(tmp_path, "--count", "24")
    assert proc.returncode == 0, proc.stderr
    files = stored(tmp_path / "aiodicom-demo")
    assert len(files) == 24
    assert len({f.parent for f in files}) == 4  # CT, two MR and a secondary capture series
    out = proc.stdout
    assert "listening on 127.0.0.1:" in out
    assert "Study aiodicom demo study" in out and "DEMO^PATIENT" in out
    for row in ("Series  1 CT", "Series  2 MR", "Series  3 MR", "Series  4 OT"):
        assert row in out
    assert "├──" in out and "└──" in out  # the study tree
    assert "Verified  24/24" in out
    assert "instances/s" in out and "MB/s" in out
    assert "aiodicom storescp" in out  # what to try next


def test_json_summary_parses(tmp_path: Path) -> None:
    proc = demo(tmp_path, "--count", "9", "--concurrency", "2", "--json", "--out-dir", "received")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] is True and summary["instances"] == summary["verified"] == 9
    assert summary["concurrency"] == 2 and summary["studies_completed"] == 1
    assert [s["instances"] for s in summary["series"]] == [3, 2, 2, 2]
    assert summary["instances_per_second"] > 0 and summary["mb_per_second"] > 0
    files = stored(tmp_path / "received")
    assert len(files) == 9 and {f.parent.parent.name for f in files} == {summary["study_instance_uid"]}


def test_clean_removes_the_received_files(tmp_path: Path) -> None:
    proc = demo(tmp_path, "--count", "6", "--clean")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "aiodicom-demo").exists()
    assert "Removed this run's instances" in proc.stdout


def test_clean_keeps_what_it_did_not_receive(tmp_path: Path) -> None:
    assert demo(tmp_path, "--count", "4").returncode == 0
    proc = demo(tmp_path, "--count", "4", "--clean")
    assert proc.returncode == 0, proc.stderr
    assert len(stored(tmp_path / "aiodicom-demo")) == 4  # the first run's study is still there


def test_out_dir_that_is_a_file_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    proc = demo(tmp_path, "--count", "3", "--out-dir", "taken")
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("aiodicom: ")
    assert "taken" in proc.stderr and "not a folder" in proc.stderr


@pytest.mark.parametrize("args", [["--count", "0"], ["--concurrency", "0"]])
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    assert demo(tmp_path, *args).returncode == 2


@pytest.mark.s3
def test_s3_backend_verifies_by_listing_the_bucket(tmp_path: Path, moto_endpoint: str, s3: Any) -> None:
    bucket = f"demo-{uuid.uuid4().hex[:12]}"  # the demo creates it
    args = ("--count", "12", "--s3-endpoint", moto_endpoint, "--s3-bucket", bucket, "--json")
    proc = demo(tmp_path, *args, env=S3_ENV)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["verified"] == 12 and summary["storage"] == f"s3://{bucket}/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 12 and all(k.startswith(summary["study_instance_uid"] + "/") for k in keys)
    assert not (tmp_path / "aiodicom-demo").exists()

    proc = demo(tmp_path, *args, "--clean", env=S3_ENV)
    assert proc.returncode == 0, proc.stderr
    assert len(s3.list_objects_v2(Bucket=bucket).get("Contents", [])) == 12  # only the first run's
