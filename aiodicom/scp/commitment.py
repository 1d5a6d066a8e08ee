"""Storage commitment on a server: ``storage_commitment=True`` (PS3.4 Annex J, Push Model, the SCP).

:class:`CommitmentServices` is a base of :class:`~aiodicom.scp.store.StoreScp` (and QueryRetrieveScp).
With storage commitment on, the server serves N-ACTION of the Storage Commitment Push Model SOP class,
records each instance it stores (synced) and reports what it keeps
(:mod:`aiodicom.services.commitment_scp`): on the N-ACTION's association while it is open, else on one
it opens to the requestor, found by its calling AE title in ``remote_aes``. Its state (the record, the
transactions) is in ``commitment_dir``, by default ``{out_dir}/.commitments`` (hidden: never a study).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiodicom.scp.nserving import NServices
from aiodicom.services.remote import RemoteAe, resolve_destination

if TYPE_CHECKING:
    from aiodicom.services.commitment_scp import CommitmentService
    from aiodicom.services.store import StoredInstance

STORAGE_COMMITMENT_SOP_CLASS = "1.2.840.10008.1.20.1"


class CommitmentServices(NServices):
    """The storage commitment SCP of a server; see the module's docstring."""

    service: Any
    out_dir: Path | None
    _remote_aes: dict[str, RemoteAe]
    _resolve_ae: Any
    _base_policy: Any

    def init_storage_commitment(
        self,
        enabled: bool,
        *,
        fsync: bool,
        commitment_dir: str | os.PathLike[str] | None = None,
        retry_delay: float = 2.0,
        max_retry_delay: float = 300.0,
    ) -> None:
        """Set up (from the server's constructor, once its store service is made)."""
        self._commitment: CommitmentService | None = None
        if not enabled:
            return
        if not fsync:
            raise ValueError(
                "storage_commitment=True needs fsync=True: nothing is committed that was not synced "
                "(drop --no-fsync)"
            )
        if self.workers > 1:
            raise ValueError("storage commitment is served in one process: give workers=1")
        folder = commitment_dir
        if folder is None:
            if self.out_dir is None:
                raise ValueError("storage commitment with S3 needs commitment_dir= (a folder for its state)")
            folder = self.out_dir / ".commitments"
        from aiodicom.services.commitment_scp import CommitmentService

        async def resolve(title: str) -> RemoteAe | None:
            return await resolve_destination(title, self._remote_aes, self._resolve_ae)

        service = CommitmentService(
            folder,
            resolve=resolve,
            options=lambda: self.options,
            lookup=self._archive_lookup,
            head=self._s3_head,
            storage_classes=lambda: self._base_policy.abstract_syntaxes,
            retry_delay=retry_delay,
            max_retry_delay=max_retry_delay,
            logger=self.log,
        )
        self._commitment = service
        earlier = self.service.committed

        async def committed(instance: StoredInstance) -> None:
            if earlier is not None:
                await earlier(instance)  # the archive indexes it first
            await service.record(instance.sop_instance_uid, instance.sop_class_uid, instance.file)

        self.service.committed = committed
        self.on_n_action(STORAGE_COMMITMENT_SOP_CLASS, service.handle_action)

    @property
    def commitment(self) -> CommitmentService | None:
        """The storage commitment SCP (its ``pending`` transactions, ``wait_reported()``), None when off."""
        return self._commitment

    async def start(self) -> None:
        if self._commitment is not None:
            await self._commitment.start()  # before the first association: the record is open
        await super().start()

    async def stop(self, timeout: float | None = None) -> None:
        await super().stop(timeout)
        if self._commitment is not None:
            await self._commitment.stop()

    async def _archive_lookup(self, uids: list[str]) -> dict[str, tuple[str, str]]:
        archive = getattr(self, "archive", None)
        if archive is None:
            return {}
        from pydicom import Dataset

        found: dict[str, tuple[str, str]] = {}
        for at in range(0, len(uids), 200):
            query = Dataset()
            query.QueryRetrieveLevel = "IMAGE"
            query.SOPInstanceUID = list(uids[at : at + 200])
            async for record in archive.instances(query):
                found[record.sop_instance_uid] = (record.sop_class_uid, record.path)
        return found

    async def _s3_head(self, location: str) -> bool:
        bucket = self._bucket()  # type: ignore[attr-defined]
        if bucket is None:
            raise RuntimeError("no S3 bucket to check it in")
        prefix = f"s3://{bucket.config.bucket}/"
        if not location.startswith(prefix):
            return False
        try:
            await bucket.client.head_object(Bucket=bucket.config.bucket, Key=location[len(prefix) :])
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
