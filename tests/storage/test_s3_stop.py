"""S3 on stop, against a real S3 endpoint (moto in server mode): a multipart upload in progress is completed
when its instance is finished within the drain deadline, aborted otherwise; never left open."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aiodicom.scp.store import StoreScp
from aiodicom.storage.s3 import S3Config, S3Storage
from tests.cli.test_crash import send_slowly
from tests.interop.rawpeer import RawPeer
from tests.scp.test_crash import CONTEXTS, big, until
from tests.storage.test_s3 import no_uploads_left, objects

pytestmark = [pytest.mark.s3]


def s3_scp(endpoint: str, bucket: str, **options: Any) -> StoreScp:
    config = S3Config(bucket, endpoint=endpoint, part_size=5 << 20)
    return StoreScp(0, host="127.0.0.1", storage_backend="s3", s3_config=config, **options)


def uploading(s3: Any, bucket: str) -> bool:
    """Whether an upload is open with a part uploaded."""
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        if s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts"):
            return True
    return False


async def test_an_upload_in_progress_is_completed_when_its_instance_finishes_within_the_drain(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, tmp_path: Path
) -> None:
    inst = big(12)
    scp = s3_scp(moto_endpoint, bucket)  # drain_timeout: 30 s by default
    await scp.start()
    try:
        async with await RawPeer.connect(scp.port) as peer:
            await peer.associate(CONTEXTS)
            sending = asyncio.ensure_future(send_slowly(peer, inst, pause=0.15))
            await until(lambda: uploading(s3, bucket), 30, "a part uploaded")
            stopping = asyncio.ensure_future(scp.stop())
            await asyncio.wait_for(sending, 60)
            assert (await peer.receive_message(30)).command.status == 0
            await asyncio.wait_for(stopping, 60)
    finally:
        await scp.stop()
    (data,) = objects(s3, bucket).values()
    assert data.endswith(inst.data)
    assert no_uploads_left(s3, bucket)


async def test_an_upload_cut_by_the_drain_deadline_is_aborted_before_stop_returns(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None
) -> None:
    inst = big(12)
    scp = s3_scp(moto_endpoint, bucket, drain_timeout=0.5)
    await scp.start()
    try:
        async with await RawPeer.connect(scp.port) as peer:
            await peer.associate(CONTEXTS)
            await send_slowly(peer, inst, upto=11 << 20)  # the data set never completes
            await until(lambda: uploading(s3, bucket), 30, "a part uploaded")
            await asyncio.wait_for(scp.stop(), 30)
            assert no_uploads_left(s3, bucket)  # at once: stop waited for the abort
            assert objects(s3, bucket) == {}
    finally:
        await scp.stop()


async def test_stop_aborts_the_uploads_of_sinks_never_finished(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None
) -> None:
    """A storage stopped while a sink is neither committed nor aborted (its owner is gone): the upload
    is aborted before the client closes, not left open for a lifecycle rule to find."""
    storage = S3Storage(S3Config(bucket, endpoint=moto_endpoint, part_size=5 << 20))
    await storage.start()
    sink = storage.open()
    await sink.place("1.2/1.2.3/1.2.3.4.dcm")
    pending = sink.write(b"\x01" * (6 << 20))
    if pending is not None:
        await pending
    await until(lambda: uploading(s3, bucket), 30, "a part uploaded")
    await storage.stop()
    assert no_uploads_left(s3, bucket)
    assert objects(s3, bucket) == {}
