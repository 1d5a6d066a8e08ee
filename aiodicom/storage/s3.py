"""S3 storage through aiobotocore: received instances stream into multipart uploads; S3 objects stream out.

An instance is held in memory only until its key is known (its leading elements have arrived and the hook has
run); from then on its bytes go out in parts as they arrive, one part uploading while the next fills. The
upload completes only after the last PDV; anything else aborts it once its in-flight parts have settled, so
no partial object and no orphaned parts remain (a bucket lifecycle rule for incomplete multipart uploads is a
second net). A data set whose leading elements are longer than a part spills to a local temporary file
until its key is known.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, fields
from typing import IO, Any

from aiodicom.dataset.rewrite import spliced
from aiodicom.errors import StorageError
from aiodicom.storage.base import InstanceSink

log = logging.getLogger("aiodicom.storage.s3")

MIN_PART_SIZE = 5 << 20  # S3's minimum for every part but the last
_MAX_PARTS = 10_000
_PARTS_PER_STEP = 1_000  # the part size grows by one base size every 1,000 parts: 440 GB at 8 MiB
_ABORT_ATTEMPTS = 4
_CAMEL = {"accessKey": "access_key", "secretKey": "secret_key", "sessionToken": "session_token"}


@dataclass(frozen=True, slots=True)
class S3Config:
    """Where and how to reach a bucket.

    Without keys, aiobotocore's standard credential chain applies (environment, profile, instance role);
    ``region`` falls back to ``AWS_REGION``/``AWS_DEFAULT_REGION``, then ``us-east-1``. ``endpoint`` serves
    S3-compatible stores (MinIO, Ceph, R2...): they get path-style addressing and checksums only where
    required. Keys are ``{prefix}{Study}/{Series}/{SOP}.dcm``.
    """

    bucket: str
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    endpoint: str | None = None
    prefix: str = ""
    session_token: str | None = None
    #: Size of the upload parts (at least 5 MiB); also what one upload holds in memory.
    part_size: int = 8 << 20
    #: Part uploads in flight at once across all associations of a server.
    max_concurrent_uploads: int = 16

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("S3Config needs a bucket")
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if self.max_concurrent_uploads < 1:
            raise ValueError("max_concurrent_uploads must be at least 1")

    def resolved_region(self) -> str:
        """``region``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else ``us-east-1``."""
        env = os.environ
        return self.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"

    @classmethod
    def from_value(cls, value: S3Config | Mapping[str, Any]) -> S3Config:
        """An S3Config as it is, or made from a dict (snake_case or the documents' camelCase keys)."""
        if isinstance(value, S3Config):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"s3_config must be an S3Config or a dict, not {type(value).__name__}")
        names = {f.name for f in fields(cls)}
        options: dict[str, Any] = {}
        for key, item in value.items():
            name = _CAMEL.get(key, key)
            name = "".join("_" + c.lower() if c.isupper() else c for c in name)
            if name not in names:
                raise ValueError(f"unknown S3 option {key!r} (known: {', '.join(sorted(names))})")
            options[name] = item
        return cls(**options)

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def _aiobotocore() -> Any:
    try:
        from aiobotocore.session import get_session
    except ImportError as exc:  # the optional extra
        raise ImportError("S3 support needs aiobotocore: pip install 'aiodicom[s3]'") from exc
    return get_session


class S3Bucket:
    """One aiobotocore client for a bucket, opened once and shared by every association."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        _aiobotocore()  # fail at construction, not at the first instance

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StorageError("the S3 client is not open: start the server or sender first")
        return self._client

    async def open(self, *, create: bool = False) -> None:
        """Open the client and check that the bucket answers (raises :class:`StorageError` saying why);
        with ``create``, a bucket that does not exist is created (in the endpoint's default region)."""
        if self._client is not None:
            return
        from botocore.config import Config

        c = self.config
        region = c.resolved_region()
        options: dict[str, Any] = {
            "connect_timeout": 10,
            "read_timeout": 60,
            "retries": {"max_attempts": 3, "mode": "standard"},
            "max_pool_connections": max(10, c.max_concurrent_uploads + 4),
        }
        if c.endpoint:  # not AWS: path-style, and no default checksums (several stores reject them)
            options.update(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                _aiobotocore()().create_client(
                    "s3",
                    region_name=region,
                    endpoint_url=c.endpoint,
                    aws_access_key_id=c.access_key,
                    aws_secret_access_key=c.secret_key,
                    aws_session_token=c.session_token,
                    config=Config(**options),
                )
            )
            try:
                await self._client.head_bucket(Bucket=c.bucket)
            except Exception:
                if not create:
                    raise
                await self._client.create_bucket(Bucket=c.bucket)
        except BaseException as exc:
            self._client = None
            await stack.aclose()
            if isinstance(exc, Exception):
                raise StorageError(f"S3 bucket {c.bucket!r} {self.where}: {describe(exc)}") from exc
            raise
        self._stack = stack

    @property
    def where(self) -> str:
        return f"at {self.config.endpoint}" if self.config.endpoint else "on AWS"

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def list_keys(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        """``(key, size)`` of every object under ``prefix``, page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.config.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    if not item["Key"].endswith("/"):
                        yield item["Key"], int(item["Size"])
        except Exception as exc:
            raise StorageError(f"cannot list s3://{self.config.bucket}/{prefix}: {describe(exc)}") from exc

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end - 1`` of an object (fewer at its end)."""
        try:
            response = await self.client.get_object(
                Bucket=self.config.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
            )
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data
        except Exception as exc:
            raise StorageError(f"cannot read {self.config.uri(key)}: {describe(exc)}") from exc

    async def stream(self, key: str, start: int = 0, chunk: int = 1 << 20) -> AsyncIterator[bytes]:
        """An object from ``start`` to its end, in chunks as they arrive (never whole in memory)."""
        try:
            response = await self.client.get_object(
                Bucket=self.config.bucket, Key=key, Range=f"bytes={start}-"
            )
            async with response["Body"] as body:
                async for data in body.iter_chunks(chunk):
                    yield data
        except Exception as exc:
            raise StorageError(f"cannot read {self.config.uri(key)}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """A short reason for an S3 failure: the service's error code and message when there is one."""
    error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    if error:
        code, message = error.get("Code", ""), error.get("Message", "")
        if code in ("404", "NoSuchBucket"):
            return "the bucket does not exist"
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"access denied ({code}): check the credentials"
        return f"{code}: {message}".strip(": ")
    return str(exc) or type(exc).__name__


class S3Storage:
    """The S3 backend of StoreScp and GetScu: one client, part uploads capped across associations."""

    streams = True

    def __init__(self, config: S3Config | Mapping[str, Any]) -> None:
        self.config = S3Config.from_value(config)
        self.bucket = S3Bucket(self.config)
        self.uploads = asyncio.Semaphore(self.config.max_concurrent_uploads)
        #: Sinks neither committed nor aborted yet: :meth:`stop` aborts their uploads.
        self.open_sinks: set[S3Sink] = set()

    async def start(self) -> None:
        await self.bucket.open()

    async def stop(self) -> None:
        """Abort the uploads of instances that were never finished (a stop's deadline cut them), then
        close the client: no multipart upload is left open."""
        if self.open_sinks:
            log.info("aborting %d unfinished uploads", len(self.open_sinks))
            await asyncio.gather(*(sink.abort() for sink in list(self.open_sinks)), return_exceptions=True)
        await self.bucket.close()

    def open(self) -> S3Sink:
        sink = S3Sink(self)
        self.open_sinks.add(sink)
        return sink

    def location(self, relative_path: str) -> str:
        return self.config.uri(self.config.key(relative_path))

    def part_size(self, part_number: int) -> int:
        """Parts grow as an upload goes on, so that no object needs more than 10,000 parts."""
        return self.config.part_size * (1 + (part_number - 1) // _PARTS_PER_STEP)


class S3Sink(InstanceSink):
    """One instance on its way to S3: in memory until placed, then a single PUT or a multipart upload."""

    def __init__(self, storage: S3Storage) -> None:
        super().__init__()
        self.storage = storage
        self.key: str | None = None
        self._buffer = bytearray()
        self._spill: IO[bytes] | None = None
        self._leading: tuple[bytes, int, bool] | None = None  # to apply while copying a spilled data set out
        self._upload_id: asyncio.Task[str] | None = None
        self._parts: list[asyncio.Task[dict[str, Any]]] = []
        self._error: BaseException | None = None
        self._aborted = False
        self._aborting: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------------------------ receiving

    def write(self, data: bytes | bytearray | memoryview) -> Awaitable[None] | None:
        if self._aborted:
            return None
        if self._error is not None:
            raise StorageError(f"S3 upload failed: {describe(self._error)}")
        if self._spill is not None:
            self._spill.write(data)
            return None
        self._buffer += data
        if self.key is None:
            if len(self._buffer) > self.storage.config.part_size:  # leading elements longer than a part
                self._spill = tempfile.TemporaryFile()  # noqa: SIM115
                self._spill.write(self._buffer)
                self._buffer = bytearray()
            return None
        return self._cut_parts()

    async def place(
        self,
        relative_path: str,
        leading: bytes | None = None,
        leading_end: int = 0,
        *,
        deflated: bool = False,
    ) -> None:
        self.key = self.storage.config.key(relative_path)
        if leading is not None and deflated:
            # the whole data set is deflated again: it is kept (spilled) until complete, then sent out
            if self._spill is None:
                self._spill = tempfile.TemporaryFile()  # noqa: SIM115
                self._spill.write(self._buffer)
                self._buffer = bytearray()
            self._leading = (leading, leading_end, True)
        elif leading is not None:
            if self._spill is not None:
                self._leading = (leading, leading_end, False)
            else:  # nothing has left yet: change the bytes in place
                self._buffer[self.meta_length : leading_end] = leading
        if self._spill is None:
            await self._drain_parts()

    async def _drain_parts(self) -> None:
        """Upload every full part in the buffer, one after another."""
        while (flow := self._cut_parts()) is not None or len(self._buffer) >= self.storage.part_size(
            len(self._parts) + 1
        ):
            if flow is not None:
                await flow

    # ------------------------------------------------------------------------------------ uploading

    def _cut_parts(self) -> Awaitable[None] | None:
        """Start uploading the next full part when no other is uploading; otherwise an awaitable for the
        caller to wait on (reading pauses): one part uploads while the next fills, about two parts of memory
        per instance."""
        failed = next((t for t in self._parts if t.done() and t.exception() is not None), None)
        if failed is not None:
            self._error = failed.exception()
            raise StorageError(f"S3 upload failed: {describe(self._error)}")  # type: ignore[arg-type]
        size = self.storage.part_size(len(self._parts) + 1)
        if len(self._buffer) < size:
            return None
        running = [t for t in self._parts if not t.done()]
        if running:
            return asyncio.ensure_future(_first_done(running))
        body, self._buffer = self._buffer, bytearray()
        if len(body) > size:  # hand the buffer itself over: only the few bytes beyond the part are copied
            self._buffer += memoryview(body)[size:]
            del body[size:]
        self._start_part(body)
        return None

    def _start_part(self, body: bytes | bytearray) -> None:
        if self._upload_id is None:
            self._upload_id = asyncio.ensure_future(self._create())
        number = len(self._parts) + 1
        if number > _MAX_PARTS:
            raise StorageError("the instance needs more than 10,000 S3 parts")
        self._parts.append(asyncio.ensure_future(self._upload_part(number, body)))

    async def _create(self) -> str:
        s = self.storage
        response = await s.bucket.client.create_multipart_upload(Bucket=s.config.bucket, Key=self.key)
        upload_id: str = response["UploadId"]
        return upload_id

    async def _upload_part(self, number: int, body: bytes | bytearray) -> dict[str, Any]:
        assert self._upload_id is not None
        upload_id = await asyncio.shield(self._upload_id)
        s = self.storage
        async with s.uploads:
            response = await s.bucket.client.upload_part(
                Bucket=s.config.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=body
            )
        return {"PartNumber": number, "ETag": response["ETag"]}

    async def commit(self) -> str:
        """Upload what is left and complete the upload (or PUT a small instance whole)."""
        if self.key is None:
            raise StorageError("commit() before place()")
        s = self.storage
        try:
            if self._spill is not None:
                await self._copy_spill()
            if self._upload_id is None:
                async with s.uploads:
                    await s.bucket.client.put_object(
                        Bucket=s.config.bucket, Key=self.key, Body=bytes(self._buffer)
                    )
            else:
                await self._drain_parts()
                if self._buffer:
                    await asyncio.gather(*self._parts)
                    self._start_part(self._buffer)
                    self._buffer = bytearray()
                parts = await asyncio.gather(*self._parts)
                await s.bucket.client.complete_multipart_upload(
                    Bucket=s.config.bucket,
                    Key=self.key,
                    UploadId=await self._upload_id,
                    MultipartUpload={"Parts": list(parts)},
                )
        except BaseException as exc:
            await self.abort()
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise StorageError(f"cannot store {s.config.uri(self.key)}: {describe(exc)}") from exc
            raise
        self._buffer = bytearray()
        s.open_sinks.discard(self)
        return s.config.uri(self.key)

    async def _copy_spill(self) -> None:
        """Send a spilled data set out, with its new leading elements when a hook changed them."""
        spill, self._spill = self._spill, None
        assert spill is not None
        try:
            chunks: Iterable[bytes]
            if self._leading is not None:
                leading, end, deflated = self._leading
                chunks = spliced(spill, self.meta_length, leading, end, deflated=deflated)
            else:
                spill.seek(0)
                chunks = iter(lambda: spill.read(1 << 20), b"")
            for chunk in chunks:
                self._buffer += chunk
                await self._drain_parts()
        finally:
            spill.close()

    async def abort(self) -> None:
        """Drop the instance: wait for in-flight parts, then abort the multipart upload (retrying).

        Calls while an abort runs wait for it (the association and the storage's stop may both ask)."""
        self._aborted = True  # later writes are ignored from now on
        if self._aborting is None:
            self._aborting = asyncio.ensure_future(self._abort())
        aborting = self._aborting
        try:
            await asyncio.shield(aborting)
        finally:
            if aborting.done():
                self.storage.open_sinks.discard(self)

    async def _abort(self) -> None:
        self._aborted = True
        self._buffer = bytearray()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if self._upload_id is None:
            return
        await asyncio.gather(*self._parts, return_exceptions=True)
        try:
            upload_id = await self._upload_id
        except Exception:  # never created: nothing to abort
            return
        s = self.storage
        for attempt in range(_ABORT_ATTEMPTS):
            try:
                await s.bucket.client.abort_multipart_upload(
                    Bucket=s.config.bucket, Key=self.key, UploadId=upload_id
                )
                break
            except Exception as exc:
                if attempt == _ABORT_ATTEMPTS - 1:
                    log.error(
                        "cannot abort the upload of %s: %s", s.config.uri(self.key or ""), describe(exc)
                    )
                else:
                    await asyncio.sleep(0.2 * 2**attempt)
        self._upload_id = None


async def _both(first: Awaitable[None], second: Awaitable[None]) -> None:
    await first
    await second


async def _first_done(tasks: list[asyncio.Task[Any]]) -> None:
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
