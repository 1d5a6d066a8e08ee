"""A FastAPI service that receives DICOM and sends it, on the event loop that serves HTTP.

The app's lifespan runs a StoreScp (received instances go to ``DICOM_OUT_DIR``); the endpoints send with
StoreScu and report what was received::

    POST /send          {"address": "PACS@10.0.0.5:104", "folder": "./study"}   -> the result counts
    POST /send/upload   ?address=...  body: one DICOM file (Content-Type: application/dicom)
    POST /send/stream   as /send, answered with Server-Sent Events: one event per file, then the result
    GET  /studies       the studies received: in progress, then completed (with their series)

Run it with ``pip install 'aiodicom[examples]'`` then ``python examples/fastapi_app.py`` (or
``uvicorn examples.fastapi_app:app``); ``DICOM_PORT`` (11112) and ``DICOM_OUT_DIR`` (./received) configure it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from aiodicom import DicomError, SendResult, StoredInstance, StoreScp, StoreScu, StudyCompleted


class SendRequest(BaseModel):
    """What to send where: a folder (searched recursively) and/or files, to ``AE@host:port``."""

    address: str
    folder: str | None = None
    files: list[str] = Field(default_factory=list)
    concurrency: int = Field(default=4, ge=1, le=64)
    calling_ae_title: str = "FASTAPI-SCU"


class SendSummary(BaseModel):
    total_files: int
    successful: int
    failed: int
    warnings: int
    duration_seconds: float

    @classmethod
    def of(cls, result: SendResult) -> SendSummary:
        return cls(
            total_files=result.total_files,
            successful=result.successful,
            failed=result.failed,
            warnings=len(result.warnings),
            duration_seconds=round(result.duration_seconds, 3),
        )


class StudyRegistry:
    """The studies seen by the StoreScp, fed by its events (plain functions: they run on the loop)."""

    def __init__(self) -> None:
        self.studies: dict[str, dict[str, Any]] = {}

    def file_stored(self, event: StoredInstance) -> None:
        study = self.studies.setdefault(
            event.study_instance_uid,
            {"study_instance_uid": event.study_instance_uid, "status": "receiving", "instances": 0},
        )
        study["status"], study["instances"] = "receiving", study["instances"] + 1

    def study_completed(self, event: StudyCompleted) -> None:
        self.studies[event.study_instance_uid] = {
            "study_instance_uid": event.study_instance_uid,
            "status": "completed",
            "instances": event.instance_count,
            "tags": event.tags,
            "series": [
                {"series_instance_uid": s.series_instance_uid, "tags": s.tags, "instances": len(s.instances)}
                for s in event.series
            ],
        }


def _scu(request: SendRequest) -> StoreScu:
    """A StoreScu with the request's files queued; a bad address or path is the client's error (400)."""
    try:
        scu = StoreScu(
            request.address, calling_ae_title=request.calling_ae_title, concurrency=request.concurrency
        )
        if request.folder:
            scu.add_folder(request.folder)
        for file in request.files:
            scu.add_file(file)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if not scu.queued:
        raise HTTPException(400, "nothing to send: give a folder with DICOM files, or files")
    return scu


async def _send(scu: StoreScu, **callbacks: Callable[[Any], Any]) -> SendSummary:
    """Send; a peer that cannot be reached or refuses every association is a bad gateway (502)."""
    try:
        return SendSummary.of(await scu.send(**callbacks))
    except DicomError as exc:  # PeerUnreachable, AssociationRejected...
        raise HTTPException(502, str(exc)) from None


def create_app(
    port: int = 11112, out_dir: str = "./received", host: str = "0.0.0.0", study_timeout: float = 30.0
) -> FastAPI:
    """The app; its StoreScp listens on ``host:port`` (0: a free port, see ``app.state.scp.port``)."""
    registry = StudyRegistry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scp = StoreScp(port, host=host, ae_title="FASTAPI-SCP", out_dir=out_dir, study_timeout=study_timeout)
        scp.on_file_stored(registry.file_stored)
        scp.on_study_completed(registry.study_completed)
        async with scp:  # stops gracefully on shutdown: instances in flight finish, pending studies complete
            app.state.scp = scp
            yield

    app = FastAPI(title="aiodicom example", lifespan=lifespan)

    @app.post("/send")
    async def send(request: SendRequest) -> SendSummary:
        return await _send(_scu(request))

    @app.post("/send/upload")
    async def send_upload(
        request: Request, address: str, calling_ae_title: str = "FASTAPI-SCU"
    ) -> SendSummary:
        """One instance as the request body (multipart uploads would need python-multipart)."""
        data = await request.body()
        if not data:
            raise HTTPException(400, "send the DICOM file as the request body")
        try:
            scu = StoreScu(address, calling_ae_title=calling_ae_title)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        scu.add_file_from_memory(data, "upload.dcm")
        return await _send(scu)

    @app.post("/send/stream")
    async def send_stream(request: SendRequest) -> StreamingResponse:
        scu = _scu(request)
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()

        def push(kind: str) -> Callable[[Any], None]:
            return lambda event: queue.put_nowait(
                (kind, {**dataclasses.asdict(event), "message": event.message})
            )

        async def run() -> None:
            try:
                result = await scu.send(on_file_sent=push("file_sent"), on_file_error=push("file_error"))
                queue.put_nowait(("result", SendSummary.of(result).model_dump()))
            except DicomError as exc:
                queue.put_nowait(("error", {"message": str(exc)}))
            finally:
                queue.put_nowait(None)

        async def events() -> AsyncIterator[str]:
            task = asyncio.create_task(run())
            try:
                while (item := await queue.get()) is not None:
                    yield f"event: {item[0]}\ndata: {json.dumps(item[1])}\n\n"
            finally:
                task.cancel()  # the client went away: stop sending

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/studies")
    async def studies() -> list[dict[str, Any]]:
        return sorted(registry.studies.values(), key=lambda s: s["status"] != "receiving")

    return app


app = create_app(int(os.environ.get("DICOM_PORT", "11112")), os.environ.get("DICOM_OUT_DIR", "./received"))

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
