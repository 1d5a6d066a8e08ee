"""Shared fixtures: real DCMTK peers on free loopback ports, and a real S3 endpoint (moto in server mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import DCMTK_ENV, Peer, free_port, require_tool, stop, wait_for_port


@pytest.fixture
def dcmtk_storescp(tmp_path: Path) -> Iterator[Peer]:
    """DCMTK storescp on a free loopback port, AE title STORESCP, storing into a temporary directory."""
    exe = require_tool("storescp")
    port = free_port()
    out = tmp_path / "dcmtk-received"
    out.mkdir()
    proc = subprocess.Popen(
        [exe, "--aetitle", "STORESCP", "--output-directory", str(out), str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield Peer(port, out, proc)
    finally:
        stop(proc)


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """An empty Orthanc with its own storage, DICOM and HTTP ports on 127.0.0.1; yields
    (dicom_port, http_port). The query/retrieve fixtures start it (``tests.qr.conftest.start_orthanc``)."""
    from tests.qr.conftest import start_orthanc

    with start_orthanc(tmp_path / "orthanc", None) as pacs:
        assert pacs.http_port is not None
        yield pacs.dicom_port, pacs.http_port


# ------------------------------------------------------------------------------------------------ S3

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server that the session shares (each test uses its own bucket)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **CREDENTIALS},
    )
    try:
        wait_for_port(port, proc, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for moto through the standard chain (the environment), as in production."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def s3(moto_endpoint: str, s3_env: None) -> Any:
    """A boto3 client on the moto server, to create buckets and look at what was written."""
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
