"""An aiohttp service that receives DICOM and sends it, on the event loop that serves HTTP.

A ``cleanup_ctx`` runs a StoreScp for the life of the app (received instances go to ``DICOM_OUT_DIR``); the
handlers send with StoreScu and report what was received::

    POST /send          {"address": "PACS@10.0.0.5:104", "folder": "./study"}   -> the result counts
    POST /send/upload   ?address=...  body: one DICOM file (Content-Type: application/dicom)
    POST /send/stream   as /send, answered with Server-Sent Events: one event per file, then the result
    GET  /studies       the studies received: in progress, then completed (with their series)

Run it with ``pip install 'aiodicom[examples]'`` then ``python examples/aiohttp_app.py``; ``DICOM_PORT``
(11112) and ``DICOM_OUT_DIR`` (./received) configure it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from aiodicom import (
    DicomError,
    FileError,
    FileSent,
    SendResult,
    StoredInstance,
    StoreScp,
    StoreScu,
    StudyCompleted,
)

SCP = web.AppKey("scp", StoreScp)
STUDIES = web.AppKey("studies", dict)


def _counts(result: SendResult) -> dict[str, Any]:
    return {
        "total_files": result.total_files,
        "successful": result.successful,
        "failed": result.failed,
        "warnings": len(result.warnings),
        "duration_seconds": round(result.duration_seconds, 3),
    }


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"detail": message}), content_type="application/json")


async def _scu(request: web.Request) -> StoreScu:
    """A StoreScu with the JSON body's folder and files queued; anything wrong is the client's error (400)."""
    try:
        body = await request.json()
        scu = StoreScu(
            body["address"],
            calling_ae_title=body.get("calling_ae_title", "AIOHTTP-SCU"),
            concurrency=body.get("concurrency", 4),
        )
        if body.get("folder"):
            scu.add_folder(body["folder"])
        for file in body.get("files", []):
            scu.add_file(file)
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON, no address, bad address or path
        raise _bad_request(f"bad request: {exc}") from None
    if not scu.queued:
        raise _bad_request("nothing to send: give a folder with DICOM files, or files")
    return scu


async def _send(scu: StoreScu) -> web.Response:
    try:
        result = await scu.send()
    except DicomError as exc:  # PeerUnreachable, AssociationRejected...: a bad gateway
        return web.json_response({"detail": str(exc)}, status=502)
    return web.json_response(_counts(result))


async def send(request: web.Request) -> web.Response:
    return await _send(await _scu(request))


async def send_upload(request: web.Request) -> web.Response:
    """One instance as the request body."""
    data = await request.read()
    if not data:
        raise _bad_request("send the DICOM file as the request body")
    try:
        scu = StoreScu(
            request.query.get("address", ""),
            calling_ae_title=request.query.get("calling_ae_title", "AIOHTTP-SCU"),
        )
    except ValueError as exc:
        raise _bad_request(str(exc)) from None
    scu.add_file_from_memory(data, "upload.dcm")
    return await _send(scu)


async def send_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events while sending: written straight from the callbacks, so the HTTP client's pace
    is the sender's (``await response.write`` applies backpressure)."""
    scu = await _scu(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)

    async def emit(kind: str, payload: dict[str, Any]) -> None:
        await response.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())

    async def sent(event: FileSent) -> None:
        await emit("file_sent", {**dataclasses.asdict(event), "message": event.message})

    async def failed(event: FileError) -> None:
        await emit("file_error", {**dataclasses.asdict(event), "message": event.message})

    try:
        result = await scu.send(on_file_sent=sent, on_file_error=failed)
        await emit("result", _counts(result))
    except DicomError as exc:
        await emit("error", {"message": str(exc)})
    await response.write_eof()
    return response


async def studies(request: web.Request) -> web.Response:
    listed = sorted(request.app[STUDIES].values(), key=lambda s: s["status"] != "receiving")
    return web.json_response(listed)


def create_app(
    port: int = 11112, out_dir: str = "./received", host: str = "0.0.0.0", study_timeout: float = 30.0
) -> web.Application:
    """The app; its StoreScp listens on ``host:port`` (0: a free port, see ``app[SCP].port``)."""
    app = web.Application()
    app[STUDIES] = {}

    def file_stored(event: StoredInstance) -> None:
        study = app[STUDIES].setdefault(
            event.study_instance_uid,
            {"study_instance_uid": event.study_instance_uid, "status": "receiving", "instances": 0},
        )
        study["status"], study["instances"] = "receiving", study["instances"] + 1

    def study_completed(event: StudyCompleted) -> None:
        app[STUDIES][event.study_instance_uid] = {
            "study_instance_uid": event.study_instance_uid,
            "status": "completed",
            "instances": event.instance_count,
            "tags": event.tags,
            "series": [
                {"series_instance_uid": s.series_instance_uid, "tags": s.tags, "instances": len(s.instances)}
                for s in event.series
            ],
        }

    async def dicom_server(app: web.Application) -> AsyncIterator[None]:
        scp = StoreScp(port, host=host, ae_title="AIOHTTP-SCP", out_dir=out_dir, study_timeout=study_timeout)
        scp.on_file_stored(file_stored)
        scp.on_study_completed(study_completed)
        async with scp:  # stops gracefully on cleanup: instances in flight finish, pending studies complete
            app[SCP] = scp
            yield

    app.cleanup_ctx.append(dicom_server)
    app.router.add_post("/send", send)
    app.router.add_post("/send/upload", send_upload)
    app.router.add_post("/send/stream", send_stream)
    app.router.add_get("/studies", studies)
    return app


if __name__ == "__main__":
    web.run_app(
        create_app(int(os.environ.get("DICOM_PORT", "11112")), os.environ.get("DICOM_OUT_DIR", "./received")),
        host="127.0.0.1",
        port=8080,
    )
