"""The built-in archive: what a receiver stored under ``out_dir``, indexed for C-FIND, C-GET and C-MOVE.

::

    async with Archive("./received") as archive:
        await archive.add(stored)                       # a StoredInstance or a path, as it is committed
        async for identifier in archive.find(query, "study_root"):
            ...
        async for record in archive.instances(query, "study_root"):
            record.path, record.sop_class_uid, record.transfer_syntax_uid

The index is SQLite at ``{out_dir}/.index.sqlite`` (:mod:`aiodicom.archive.index`); matching is PS3.4
C.2.2.2 (:mod:`aiodicom.archive.matching`); a worklist folder is :class:`WorklistFolder`. Nothing here uses
the network: the query/retrieve handlers call these methods.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydicom import Dataset

from aiodicom.dataset.identifier import Identifier
from aiodicom.services.query import QueryModel

from .index import INDEX_NAME, ArchiveIndex, InstanceRecord
from .keys import check_query, unsupported_keys
from .matching import QueryError, build_response, match
from .worklist import WorklistFolder

__all__ = [
    "INDEX_NAME",
    "Archive",
    "ArchiveIndex",
    "InstanceRecord",
    "QueryError",
    "WorklistFolder",
    "build_response",
    "check_query",
    "match",
    "unsupported_keys",
]


class Archive:
    """The instances under ``out_dir`` (StoreScp's layout) and their index, and optionally a worklist folder.

    ``pn_ignore_case=True`` matches person names without regard to case (PS3.4 allows it; dcmqrscp and
    wlmscpfs match them case-sensitively, the default)."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        worklist: str | os.PathLike[str] | None = None,
        pn_ignore_case: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir).resolve()
        self.index = ArchiveIndex(self.out_dir, pn_ignore_case=pn_ignore_case)
        self.worklist = (
            WorklistFolder(worklist, pn_ignore_case=pn_ignore_case) if worklist is not None else None
        )

    async def open(self) -> None:
        """Open the index: created and filled from the files when missing or corrupt, else reconciled."""
        await self.index.open()

    async def close(self) -> None:
        await self.index.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def add(self, instance: Any) -> InstanceRecord:
        """Index a committed instance: a StoredInstance (what ``on_file_stored`` reports) or a path."""
        return await self.index.add(instance)

    async def remove(self, sop_instance_uid: str) -> bool:
        """Forget an instance (its file is left alone)."""
        return await self.index.remove(sop_instance_uid)

    def find(
        self, query: Dataset, model: QueryModel | str = QueryModel.STUDY_ROOT, *, raw: bool = False
    ) -> AsyncIterator[Dataset | Identifier]:
        """C-FIND: response identifiers for ``query`` in ``model`` (patient root, study root, or modality
        worklist when the archive has a worklist folder). QueryError carries the status for a bad query.
        Datasets, or with ``raw`` :class:`~aiodicom.dataset.identifier.Identifier` objects where they can
        be (what the C-FIND service sends without building a Dataset)."""
        if QueryModel.parse(model) is QueryModel.MODALITY_WORKLIST:
            if self.worklist is None:
                raise QueryError("this archive has no worklist", 0xA900)
            return self.worklist.find(query)
        return self.index.find(query, model, raw=raw)

    def instances(
        self, query: Dataset, model: QueryModel | str = QueryModel.STUDY_ROOT
    ) -> AsyncIterator[InstanceRecord]:
        """C-GET / C-MOVE: the instances ``query`` retrieves."""
        return self.index.instances(query, model)

    async def stats(self) -> dict[str, int]:
        """Counts: ``{"patients": .., "studies": .., "series": .., "instances": ..}``."""
        return await self.index.stats()

    async def rebuild(self) -> int:
        return await self.index.rebuild()

    async def reconcile(self) -> tuple[int, int]:
        return await self.index.reconcile()
