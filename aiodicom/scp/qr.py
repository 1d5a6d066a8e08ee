"""QueryRetrieveScp: a query/retrieve server (C-FIND, C-GET, C-MOVE, Modality Worklist) that also stores."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiodicom.net.options import KEEP, AssociationOptions, Keep
from aiodicom.scp.store import StoreScp
from aiodicom.services.remote import AeResolver, RemoteAe, remote_ae_table

if TYPE_CHECKING:
    from aiodicom.services.serve_common import QueryHandler


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
    syntax the peer did not take (that sub-operation then fails). See docs/serving-queries.md.
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
        **kwargs: Any,
    ) -> None:
        table = remote_ae_table(remote_aes)  # checked before anything is made on disk
        if options is None and isinstance(ae_title, Keep):
            options = AssociationOptions(ae_title="QR-SCP")
        super().__init__(port, *args, ae_title=ae_title, options=options, **kwargs)
        self.init_query_services(remote_aes=table, resolve_ae=on_resolve_ae, never_transcode=never_transcode)
        for register, handler in (
            (self.on_find, on_find),
            (self.on_worklist, on_worklist),
            (self.on_get, on_get),
            (self.on_move, on_move),
        ):
            if handler is not None:
                register(handler)
