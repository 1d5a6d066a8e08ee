"""examples/aiohttp_app.py through aiohttp's test server and client, with its cleanup_ctx running a real
StoreScp on 127.0.0.1: what /send sends over DICOM, the app's own StoreScp receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils
from aiohttp.test_utils import TestClient

from aiodicom import StoreScp
from tests.examples import load_example, stored_uids, write_study

aiohttp_app = load_example("aiohttp_app")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], str]]:
    """An HTTP client on the app (its StoreScp running) and the DICOM address of that StoreScp."""
    app = aiohttp_app.create_app(
        port=0, out_dir=str(tmp_path / "received"), host="127.0.0.1", study_timeout=0.2
    )
    async with TestClient(test_utils.TestServer(app, host="127.0.0.1")) as http:
        scp: StoreScp = app[aiohttp_app.SCP]
        yield http, f"AIOHTTP-SCP@127.0.0.1:{scp.port}"


async def wait_for_completed(http: TestClient[Any, Any], study_uid: str) -> dict[str, Any]:
    for _ in range(100):  # at most 10 s
        studies = await (await http.get("/studies")).json()
        done = [s for s in studies if s["study_instance_uid"] == study_uid and s["status"] == "completed"]
        if done:
            return dict(done[0])
        await asyncio.sleep(0.1)
    raise AssertionError(f"study {study_uid} never completed: {studies}")


async def test_send_folder_is_received_and_listed(
    client: tuple[TestClient[Any, Any], str], tmp_path: Path
) -> None:
    http, address = client
    study_uid, uids = write_study(tmp_path / "study", 12)
    response = await http.post("/send", json={"address": address, "folder": str(tmp_path / "study")})
    assert response.status == 200, await response.text()
    counts = await response.json()
    assert counts["successful"] == 12 and counts["failed"] == 0
    assert stored_uids(tmp_path / "received") == uids
    study = await wait_for_completed(http, study_uid)
    assert study["instances"] == 12 and len(study["series"]) == 4


async def test_upload_sends_the_body(client: tuple[TestClient[Any, Any], str], tmp_path: Path) -> None:
    http, address = client
    _, uids = write_study(tmp_path / "one", 1)
    data = next((tmp_path / "one").iterdir()).read_bytes()
    response = await http.post("/send/upload", params={"address": address}, data=data)
    assert response.status == 200, await response.text()
    assert (await response.json())["successful"] == 1
    assert stored_uids(tmp_path / "received") == uids


async def test_stream_reports_every_file_then_the_result(
    client: tuple[TestClient[Any, Any], str], tmp_path: Path
) -> None:
    http, address = client
    _, uids = write_study(tmp_path / "study", 8)
    body = {"address": address, "folder": str(tmp_path / "study"), "concurrency": 2}
    response = await http.post("/send/stream", json=body)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    async for raw in response.content:  # line by line, as the events arrive
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((kind, json.loads(line.removeprefix("data: "))))
    assert [k for k, _ in events] == ["file_sent"] * 8 + ["result"]
    assert {payload["sop_instance_uid"] for _, payload in events[:-1]} == uids
    assert events[-1][1]["successful"] == 8


async def test_bad_requests_say_why(client: tuple[TestClient[Any, Any], str], tmp_path: Path) -> None:
    http, _ = client
    response = await http.post("/send", json={"address": "no-port", "folder": str(tmp_path)})
    assert response.status == 400 and "host:port" in (await response.json())["detail"]
    response = await http.post("/send", data=b"not json")
    assert response.status == 400


async def test_unreachable_peer_is_a_bad_gateway(
    client: tuple[TestClient[Any, Any], str], tmp_path: Path
) -> None:
    http, _ = client
    write_study(tmp_path / "study", 1)
    closed = StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "unused")
    async with closed:
        port = closed.port  # nothing listens there once it stopped
    response = await http.post(
        "/send", json={"address": f"X@127.0.0.1:{port}", "folder": str(tmp_path / "study")}
    )
    assert response.status == 502
