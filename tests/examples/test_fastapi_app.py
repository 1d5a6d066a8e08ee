"""examples/fastapi_app.py through httpx's ASGITransport, with its lifespan running a real StoreScp on
127.0.0.1: what /send sends over DICOM, the app's own StoreScp receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiodicom import StoreScp
from tests.examples import load_example, stored_uids, write_study

fastapi_app = load_example("fastapi_app")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An HTTP client on the app (lifespan running) and the DICOM address of the app's StoreScp."""
    app = fastapi_app.create_app(
        port=0, out_dir=str(tmp_path / "received"), host="127.0.0.1", study_timeout=0.2
    )
    async with app.router.lifespan_context(app):
        scp: StoreScp = app.state.scp
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=30) as http:
            yield http, f"FASTAPI-SCP@127.0.0.1:{scp.port}"


async def wait_for_completed(http: httpx.AsyncClient, study_uid: str) -> dict[str, Any]:
    for _ in range(100):  # at most 10 s
        studies = (await http.get("/studies")).json()
        done = [s for s in studies if s["study_instance_uid"] == study_uid and s["status"] == "completed"]
        if done:
            return dict(done[0])
        await asyncio.sleep(0.1)
    raise AssertionError(f"study {study_uid} never completed: {studies}")


async def test_send_folder_is_received_and_listed(
    client: tuple[httpx.AsyncClient, str], tmp_path: Path
) -> None:
    http, address = client
    study_uid, uids = write_study(tmp_path / "study", 12)
    response = await http.post("/send", json={"address": address, "folder": str(tmp_path / "study")})
    assert response.status_code == 200, response.text
    assert response.json()["successful"] == 12 and response.json()["failed"] == 0
    assert stored_uids(tmp_path / "received") == uids
    study = await wait_for_completed(http, study_uid)
    assert study["instances"] == 12 and len(study["series"]) == 4


async def test_upload_sends_the_body(client: tuple[httpx.AsyncClient, str], tmp_path: Path) -> None:
    http, address = client
    _, uids = write_study(tmp_path / "one", 1)
    data = next((tmp_path / "one").iterdir()).read_bytes()
    response = await http.post("/send/upload", params={"address": address}, content=data)
    assert response.status_code == 200, response.text
    assert response.json()["successful"] == 1
    assert stored_uids(tmp_path / "received") == uids


async def test_stream_reports_every_file_then_the_result(
    client: tuple[httpx.AsyncClient, str], tmp_path: Path
) -> None:
    http, address = client
    _, uids = write_study(tmp_path / "study", 8)
    body = {"address": address, "folder": str(tmp_path / "study"), "concurrency": 2}
    async with http.stream("POST", "/send/stream", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join([chunk async for chunk in response.aiter_text()])
    events = [
        (
            block.split("\n")[0].removeprefix("event: "),
            json.loads(block.split("\n")[1].removeprefix("data: ")),
        )
        for block in text.strip().split("\n\n")
    ]
    assert [kind for kind, _ in events] == ["file_sent"] * 8 + ["result"]
    assert {payload["sop_instance_uid"] for _, payload in events[:-1]} == uids
    assert events[-1][1]["successful"] == 8


async def test_bad_requests_say_why(client: tuple[httpx.AsyncClient, str], tmp_path: Path) -> None:
    http, _ = client
    response = await http.post("/send", json={"address": "no-port", "folder": str(tmp_path)})
    assert response.status_code == 400 and "host:port" in response.json()["detail"]
    (tmp_path / "empty").mkdir()
    response = await http.post("/send", json={"address": "X@127.0.0.1:1", "folder": str(tmp_path / "empty")})
    assert response.status_code == 400


async def test_unreachable_peer_is_a_bad_gateway(
    client: tuple[httpx.AsyncClient, str], tmp_path: Path
) -> None:
    http, _ = client
    write_study(tmp_path / "study", 1)
    free = StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "unused")
    async with free:
        port = free.port  # a port that was just closed: nothing listens there any more
    response = await http.post(
        "/send", json={"address": f"X@127.0.0.1:{port}", "folder": str(tmp_path / "study")}
    )
    assert response.status_code == 502
