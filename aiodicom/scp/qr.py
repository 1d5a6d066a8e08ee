"""QueryRetrieveScp: a query/retrieve server (C-FIND, C-GET, C-MOVE, Modality Worklist) that also stores."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from aiodicom.net.options import KEEP, AssociationOptions, Keep
from aiodicom.scp.store import StoreScp
from aiodicom.services.query import QueryModel
from aiodicom.services.remote import AeResolver, RemoteAe, remote_ae_table
from aiodicom.services.store import StoredInstance

if TYPE_CHECKING:
    from pydicom import Dataset

    from aiodicom.archive import Archive
    from aiodicom.services.serve_common import QueryContext, QueryHandler

log = logging.getLogger("aiodicom.scp.qr")


class QueryRetrieveScp(StoreScp):
    """A C-FIND, C-GET and C-MOVE SCP driven by handlers, which also receives C-STOREs as a
    :class:`~aiodicom.scp.store.StoreScp` (every StoreScp option applies; the AE title defaults to
    ``QR-SCP``)::

        scp = QueryRetrieveScp(port=11112, out_dir="./received", remote_aes={"VIEWER": "10.0.0.7:104"})

        @scp.on_find
        async def find(query: Dataset, context: QueryContext) -> AsyncIterator[Dataset | dict]:
            for study in await my_index.studies(query):
                yield {"PatientID": study.patient_id, "StudyInstanceUID": study.uid}

        @scp.on_get
        def get(query: Dataset, context: QueryContext) -> list[str]:
            return my_index.paths(query)              # a sized collection: Remaining is sent

        scp.on_move(lambda query, destination, context: my_index.paths(query))
        async with scp:
            await asyncio.Event().wait()

    Handlers are plain or coroutine functions; async generators, plain generators, or functions returning
    (or awaiting) an iterable. ``on_find=``, ``on_worklist=``, ``on_get=``, ``on_move=`` and
    ``on_resolve_ae=`` may also be given here. ``remote_aes`` is the table of known AEs (C-MOVE
    destinations: ``"host:port"``, ``"AE@host:port"`` or :class:`~aiodicom.services.serve_move.RemoteAe`
    with a called AE title and TLS); ``never_transcode`` forbids converting an instance whose transfer
    syntax the peer did not take (that sub-operation then fails); ``pending_interval`` is the time between
    two pending C-GET/C-MOVE responses (0.1 s by default: one after the first sub-operation, then at most
    ten a second; 0 sends one after every sub-operation). See docs/serving-queries.md.

    With ``out_dir`` (the filesystem backend) the server is an archive (:class:`~aiodicom.archive.Archive`)
    unless ``archive=False``: what it stores is indexed as it is stored (in ``{out_dir}/.index.sqlite``,
    built from the files when missing and reconciled with them at start), and the handlers it registers
    answer C-FIND, C-GET and C-MOVE from that index, the instances in their stored syntax; ``worklist``
    (a folder of DICOM or JSON items) answers Modality Worklist queries. A handler given here or registered
    later replaces the archive's for that service. :attr:`archive` is the archive (None without one).
    """

    def __init__(
        self,
        port: int,
        *args: Any,
        ae_title: str | Keep = KEEP,
        options: AssociationOptions | None = None,
        remote_aes: Mapping[str, str | RemoteAe | tuple[str, int]] | None = None,
        on_find: QueryHandler | None = None,
        on_worklist: QueryHandler | None = None,
        on_get: QueryHandler | None = None,
        on_move: QueryHandler | None = None,
        on_resolve_ae: AeResolver | None = None,
        never_transcode: bool = False,
        archive: bool = True,
        worklist: str | os.PathLike[str] | None = None,
        pn_ignore_case: bool = False,
        pending_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        table = remote_ae_table(remote_aes)  # checked before anything is made on disk
        if options is None and isinstance(ae_title, Keep):
            options = AssociationOptions(ae_title="QR-SCP")
        if worklist is not None and not os.path.isdir(worklist):
            raise ValueError(f"the worklist folder {worklist} does not exist")
        with_archive = archive and kwargs.get("out_dir") is not None
        if with_archive and kwargs.get("storage_backend", "filesystem") != "filesystem":
            raise ValueError("the built-in archive needs the filesystem backend (or archive=False)")
        if with_archive and kwargs.get("workers", 1) > 1:
            raise ValueError("the built-in archive serves from one process: workers > 1 is not supported")
        super().__init__(port, *args, ae_title=ae_title, options=options, **kwargs)
        self.init_query_services(
            remote_aes=table,
            resolve_ae=on_resolve_ae,
            never_transcode=never_transcode,
            pending_interval=pending_interval,
        )
        #: The archive behind the default handlers (None without ``out_dir`` or with ``archive=False``).
        self.archive: Archive | None = None
        if with_archive:
            from aiodicom.archive import Archive

            assert self.out_dir is not None
            self.archive = Archive(self.out_dir, worklist=worklist, pn_ignore_case=pn_ignore_case)
            self.on_find(self._archive_find)
            self.on_get(self._archive_instances)
            self.on_move(self._archive_move)
            if worklist is not None:
                self.on_worklist(self._archive_worklist)
        elif worklist is not None:
            from aiodicom.archive import WorklistFolder

            folder = WorklistFolder(worklist, pn_ignore_case=pn_ignore_case)
            self.on_worklist(lambda query, context: folder.find(query))
        for register, handler in (
            (self.on_find, on_find),
            (self.on_worklist, on_worklist),
            (self.on_get, on_get),
            (self.on_move, on_move),
        ):
            if handler is not None:
                register(handler)

    # ------------------------------------------------------------------------------------ the archive

    async def start(self) -> None:
        if self.archive is not None and not self.is_serving:
            await self.archive.open()  # indexed (or reconciled) before the first association
        await super().start()

    async def stop(self, timeout: float | None = None) -> None:
        await super().stop(timeout)
        if self.archive is not None:
            await self.archive.close()

    async def _committed(self, instance: StoredInstance) -> None:
        if self.archive is None:
            return
        try:
            await self.archive.add(instance)
        except Exception:  # the file is stored: the next start's reconcile indexes it
            log.exception("cannot index %s", instance.file)

    async def _archive_find(self, query: Dataset, context: QueryContext) -> AsyncIterator[Any]:
        assert self.archive is not None
        from aiodicom.archive import unsupported_keys

        # 0xFF01 tells the requestor that some optional keys were not matched nor returned
        unsupported = unsupported_keys(query, context.model)
        partial = bool(unsupported)
        found = self.archive.index.find(query, context.model, raw=True, unsupported=unsupported)
        async for identifier in found:
            yield (identifier, 0xFF01) if partial else identifier

    async def _archive_worklist(self, query: Dataset, context: QueryContext) -> AsyncIterator[Any]:
        assert self.archive is not None
        async for identifier in self.archive.find(query, QueryModel.MODALITY_WORKLIST):
            yield identifier

    async def _archive_instances(self, query: Dataset, context: QueryContext) -> list[str]:
        # a list (paths only): its length is the Remaining count of the first pending response
        assert self.archive is not None
        return [record.path async for record in self.archive.instances(query, context.model)]

    async def _archive_move(self, query: Dataset, destination: str, context: QueryContext) -> list[str]:
        return await self._archive_instances(query, context)
