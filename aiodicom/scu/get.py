"""GetScu: C-GET with the instances received on the same association, to a file system, S3, or relayed.

The user-facing half (options, query forms, results); the retrieve itself is
:class:`aiodicom.services.get.GetRun`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiodicom.dataset.tags import normalize_option
from aiodicom.dimse import Priority
from aiodicom.net.address import Address
from aiodicom.net.identity import UserIdentity
from aiodicom.net.options import KEEP, AssociationOptions, Keep
from aiodicom.net.tls import TlsContext
from aiodicom.scu.base import Scu
from aiodicom.services.get import RETRIEVE_TRANSFER_SYNTAXES, GetRun, checked_scope
from aiodicom.services.query import (
    QueryBuilder,
    QueryModel,
    resolve_query,
)
from aiodicom.services.receipt import TranscodeOnReceipt
from aiodicom.services.relay import ForwardTarget
from aiodicom.services.retrieve import (
    CANCEL_TIMEOUT,
    Control,
    RetrieveCompleted,
    RetrieveOperation,
    RetrieveResult,
    SubOperation,
)
from aiodicom.storage import check_backend

log = logging.getLogger("aiodicom.scu.get")


class GetScu(Scu):
    """C-GET SCU: the peer sends the matching instances back on the same association.

    ``storage_backend`` is ``filesystem`` (``out_dir/{Study}/{Series}/{SOP}.dcm``, atomic writes),
    ``s3`` (``s3_config``), or ``forward`` (``forward_target``: each instance relayed PDV by PDV)::

        scu = GetScu("ORTHANC@127.0.0.1:4242", out_dir="./retrieved")
        result = await scu.get_study({"PatientName": "DOE^JOHN", "StudyDate": "20240101-20240131"})
        print(result.completed, result.failed, result.files[:3])

    ``dimse_timeout`` is the longest silence while waiting for the next sub-operation or response, not a
    bound on the whole retrieve; ``cancel_timeout`` how long a cancelled task waits for the final response
    after its C-CANCEL before it aborts.

    ``transcode_on_receipt`` (filesystem and S3) stores every instance converted to one syntax, as
    :class:`~aiodicom.scp.store.StoreScp` does (with ``allow_lossy``, ``keep_original_on_transcode_failure``,
    ``max_transcode_workers``). The ``forward`` relay proposes each instance's syntax plus uncompressed ones
    to the destination and converts an instance only when the destination accepts none of its own, unless
    ``never_transcode=True`` makes that a failed sub-operation.
    """

    default_calling_ae_title = "GET-SCU"
    default_dimse_timeout = 60.0
    kind = "get"

    def __init__(
        self,
        addr: str | Address,
        *,
        options: AssociationOptions | None = None,
        calling_ae_title: str | Keep | None = KEEP,
        called_ae_title: str | Keep | None = KEEP,
        max_pdu_length: int | Keep = KEEP,
        out_dir: str | os.PathLike[str] | None = None,
        storage_backend: str = "filesystem",
        s3_config: object = None,
        forward_target: ForwardTarget | Mapping[str, Any] | None = None,
        strict_forward: bool = False,
        store_with_file_meta: bool = True,
        query_model: str | QueryModel = QueryModel.STUDY_ROOT,
        sop_classes: Sequence[str] | None = None,
        transfer_syntaxes: Sequence[str] = RETRIEVE_TRANSFER_SYNTAXES,
        max_contexts: int = 128,
        fsync: bool = True,
        priority: int = Priority.MEDIUM,
        connect_timeout: float | Keep = KEEP,
        acse_timeout: float | Keep = KEEP,
        dimse_timeout: float | Keep | None = KEEP,
        cancel_timeout: float = CANCEL_TIMEOUT,
        verbose: bool = False,
        user_identity: UserIdentity | Keep | None = KEEP,
        implementation_class_uid: str | Keep = KEEP,
        implementation_version_name: str | Keep = KEEP,
        tls: TlsContext | Keep | None = KEEP,
        transcode_on_receipt: str | None = None,
        allow_lossy: bool = False,
        keep_original_on_transcode_failure: bool = False,
        max_transcode_workers: int | None = None,
        never_transcode: bool = False,
    ) -> None:
        super().__init__(
            addr,
            options=options,
            calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title,
            max_pdu_length=max_pdu_length,
            connect_timeout=connect_timeout,
            acse_timeout=acse_timeout,
            dimse_timeout=dimse_timeout,
            verbose=verbose,
            user_identity=user_identity,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
            tls=tls,
        )
        self.storage_backend = normalize_option(
            storage_backend, ("filesystem", "s3", "forward"), "storage_backend"
        )
        check_backend(self.storage_backend, out_dir, s3_config)
        if self.storage_backend == "forward" and forward_target is None:
            raise ValueError("storage_backend='forward' needs forward_target (a ForwardTarget or a dict)")
        self.out_dir = out_dir
        self.s3_config = s3_config
        self.forward_target = ForwardTarget.from_value(forward_target) if forward_target is not None else None
        self.strict_forward = strict_forward
        self.store_with_file_meta = store_with_file_meta
        self.query_model = QueryModel.parse(query_model)
        self.query_model.get_sop_class  # noqa: B018 (a worklist model has no C-GET: fail here)
        self.sop_classes = list(sop_classes) if sop_classes is not None else None
        if not transfer_syntaxes:
            raise ValueError("transfer_syntaxes may not be empty")
        self.transfer_syntaxes = tuple(transfer_syntaxes)
        if not 2 <= max_contexts <= 128:
            raise ValueError("max_contexts must be from 2 to 128 (presentation contexts per association)")
        if cancel_timeout < 0:
            raise ValueError("cancel_timeout may not be negative")
        self.max_contexts = max_contexts
        self.fsync = fsync
        self.priority = priority
        self.cancel_timeout = cancel_timeout
        if transcode_on_receipt and self.storage_backend == "forward":
            raise ValueError(
                "transcode_on_receipt is for the filesystem and S3 backends: the relay converts only what "
                "the destination cannot take (never_transcode=True stops that)"
            )
        #: What the filesystem and S3 backends convert instances to (None: stored as received).
        self.transcode_on_receipt = TranscodeOnReceipt.of(
            transcode_on_receipt,
            allow_lossy=allow_lossy,
            keep_original_on_failure=keep_original_on_transcode_failure,
            max_workers=max_transcode_workers,
        )
        self.max_transcode_workers = max_transcode_workers
        self.never_transcode = never_transcode

    # ------------------------------------------------------------------------------------ public API

    async def get_study(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Retrieve the studies matching ``query`` (level STUDY unless the query sets another)."""
        return await self.get(query, query_model, "STUDY", on_sub_operation, on_completed, limit=limit)

    async def get_series(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Retrieve series (``StudyInstanceUID`` and ``SeriesInstanceUID``, level SERIES)."""
        return await self.get(query, query_model, "SERIES", on_sub_operation, on_completed, limit=limit)

    async def get_instances(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Retrieve instances (study, series and SOP Instance UIDs, level IMAGE)."""
        return await self.get(query, query_model, "IMAGE", on_sub_operation, on_completed, limit=limit)

    async def get(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        level: str = "STUDY",
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        *,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Retrieve what ``query`` matches at ``level`` (a QueryRetrieveLevel in the query wins).

        Any matching key may be given (``PatientName``, ``AccessionNumber``, a ``StudyDate`` range,
        ``Modality``...): a C-FIND survey resolves them into UIDs first, and nothing matched means no C-GET
        (``result.matched`` is False). ``limit`` cancels the retrieve after that many sub-operations.
        Raises :class:`DimseError` when the peer refuses the C-GET outright (a failure status with
        nothing retrieved); sub-operation failures are counted in the result, not raised. A cancelled
        task sends C-CANCEL, waits ``cancel_timeout`` for the final response, aborts, and re-raises.
        """
        return await self.iter_get(
            query,
            query_model,
            level,
            on_sub_operation=on_sub_operation,
            on_completed=on_completed,
            limit=limit,
        )

    def iter_get(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        level: str = "STUDY",
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveOperation:
        """The retrieve as a :class:`RetrieveOperation`: ``async for event in`` it for each instance as it
        arrives (leaving the loop cancels the rest; use ``contextlib.aclosing``), or ``await`` it::

            async with contextlib.aclosing(scu.iter_get({"PatientID": "123"})) as retrieve:
                async for event in retrieve:
                    if event.completed >= 10:
                        break
            print(retrieve.result)
        """
        model, identifier = resolve_query(query, query_model, default_model=self.query_model, level=level)
        scope = checked_scope(model, identifier)
        control = Control(limit, self.cancel_timeout, on_sub_operation)
        return RetrieveOperation(lambda c: GetRun(self, scope, c, on_completed).run(), control)
