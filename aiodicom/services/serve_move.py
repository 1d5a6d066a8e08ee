"""C-MOVE, the acceptor's side: the instances a handler yields go to the move destination, over an
association this server opens to it.

The destination AE title is looked up in the server's table of known AEs (``remote_aes``, entries
``"host:port"``, ``"AE@host:port"`` or :class:`RemoteAe`) and then through its resolver hook; an unknown one
is answered 0xA801 without calling the handler. The instances come as a stream, so the association is
planned from a look-ahead of at most :data:`LOOKAHEAD` instances, headers only: it proposes each of their
(SOP class, transfer syntax) pairs with the usual fallbacks (:mod:`aiodicom.services.send`); an instance of
a class or syntax the current association lacks starts the next look-ahead, and the next association proposes
everything seen so far. Instances given as bytes or Datasets are held while they wait in the look-ahead;
files and S3 objects are read only when sent, PDV by PDV. Each C-STORE carries the Move Originator AE Title
and Message ID. A destination that cannot be reached or refuses the association fails every
sub-operation (0xA702 when none succeeded).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

from aiodicom.dimse import Status
from aiodicom.errors import DicomError, NoAcceptableContext, QueryRejected
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.client import open_association
from aiodicom.services.contexts import plan_contexts
from aiodicom.services.query import QueryModel
from aiodicom.services.remote import AeResolver, RemoteAe, resolve_destination
from aiodicom.services.send import QueuedFile
from aiodicom.services.serve_common import HandlerStream, QueryContext, QueryHandler
from aiodicom.services.serve_retrieve import (
    Failed,
    Retrieve,
    RetrieveSettings,
    opened_ahead,
    removing,
    run_retrieve,
)

log = logging.getLogger("aiodicom.services.serve_move")

#: Instances read ahead (headers only for files and objects) to plan a C-MOVE association.
LOOKAHEAD = 16


class _Destination:
    """The association to the move destination, opened (again) for each look-ahead it does not cover."""

    def __init__(self, run: Retrieve, remote: RemoteAe, called: str) -> None:
        self.run = run
        self.remote = remote
        self.called = called
        self.assoc: Association | None = None
        self.proposed: set[tuple[str, str]] = set()
        self.seen: dict[str, QueuedFile] = {}  # one instance per (class, syntax), for planning
        self.refused: str | None = None

    def covers(self, item: QueuedFile) -> bool:
        header = item.header
        assert header is not None
        return self.assoc is not None and (header.sop_class_uid, header.transfer_syntax_uid) in self.proposed

    async def open(self, items: list[QueuedFile]) -> None:
        await self.close()
        for item in items:
            assert item.header is not None
            self.seen.setdefault(f"{item.header.sop_class_uid} {item.header.transfer_syntax_uid}", item)
        plans = plan_contexts(list(self.seen.values()), None, self.run.settings.never_transcode)
        contexts = plans[0][0]
        if len(plans) > 1:  # too much seen for one association: what waits now comes first
            contexts = plan_contexts(items, None, self.run.settings.never_transcode)[0][0]
        options = self.run.settings.options.replace(called_ae_title=self.called, tls=self.remote.tls)
        address = f"{self.remote.host}:{self.remote.port}"
        if ":" in self.remote.host:
            address = f"[{self.remote.host}]:{self.remote.port}"
        try:
            self.assoc = await open_association(address, contexts=contexts, options=options)
        except (DicomError, OSError) as exc:
            self.refused = f"move destination {self.called} at {address}: {exc}"
            self.run.log.warning("%s", self.refused)
            return
        self.proposed = {(c, ts) for c, syntaxes in contexts for ts in syntaxes}

    async def close(self) -> None:
        if self.assoc is not None:
            assoc, self.assoc = self.assoc, None
            if assoc.is_open:
                with contextlib.suppress(DicomError, OSError):
                    await assoc.release(self.run.settings.options.acse_timeout)
            else:
                assoc.close()

    async def send(self, item: QueuedFile) -> None:
        """One sub-operation, counted and answered with a pending response."""
        run = self.run
        header = item.header
        assert header is not None
        uid = header.sop_instance_uid
        if self.refused is not None or self.assoc is None or not self.assoc.is_open:
            await run.record(None, uid, f"{uid}: {self.refused or 'the destination association ended'}")
            return
        try:
            out = await run.outgoing(self.assoc, item)
            with removing(out):
                response = await self.assoc.c_store_response(
                    out.source,
                    header=out.header,
                    move_originator_ae_title=run.assoc.calling_ae_title,
                    move_originator_message_id=run.request.message_id,
                    timeout=run.settings.options.dimse_timeout,
                )
        except (NoAcceptableContext, OSError, ValueError, TimeoutError) as exc:
            await run.record(None, uid, f"{uid}: {exc}")
            return
        except DicomError as exc:
            if not run.assoc.is_open:
                raise
            await run.record(None, uid, f"{uid}: {exc}")
            return
        await run.record(response.status if response.status is not None else 0xC000, uid)


async def serve_move(
    assoc: Association,
    message: DimseMessage,
    handler: QueryHandler,
    *,
    model: QueryModel,
    ae_title: str,
    settings: RetrieveSettings,
    remote_aes: Mapping[str, RemoteAe],
    resolve_ae: AeResolver | None = None,
    logger: logging.Logger = log,
) -> int:
    """Answer one C-MOVE-RQ with the instances ``handler(query, destination, context)`` yields; returns the
    final status. Raises only when the requestor's association ends."""
    run = Retrieve(assoc, message, settings, logger)
    title = (message.command.move_destination or "").strip()
    found: list[RemoteAe] = []

    async def check(context: QueryContext) -> None:
        remote = await resolve_destination(title, remote_aes, resolve_ae) if title else None
        if remote is None:
            raise QueryRejected(Status.MOVE_DESTINATION_UNKNOWN, f"move destination {title!r} is unknown")
        found.append(remote)

    async def body(stream: HandlerStream) -> None:
        remote = found[0]
        dest = _Destination(run, remote, remote.ae_title or title)
        waiting: list[QueuedFile] = []
        try:
            async with contextlib.aclosing(opened_ahead(stream, settings)) as opened:
                async for queued in opened:
                    if isinstance(queued, Failed):
                        await run.record(None, queued.sop_instance_uid, str(queued))
                    else:
                        waiting.append(queued)
                        uncovered = dest.refused is None and not all(dest.covers(w) for w in waiting)
                        if uncovered and len(waiting) < LOOKAHEAD:
                            continue  # read ahead, to propose what comes next on one association
                        await _flush(dest, waiting)
                    if run.check_cancel():
                        return
            await _flush(dest, waiting)
        finally:
            await dest.close()

    async def _flush(dest: _Destination, waiting: list[QueuedFile]) -> None:
        if waiting and dest.refused is None and not all(dest.covers(w) for w in waiting):
            await dest.open(waiting)
        while waiting:
            await dest.send(waiting.pop(0))
            if run.check_cancel():
                waiting.clear()

    return await run_retrieve(
        run,
        model,
        ae_title,
        lambda q, c: HandlerStream(handler, q, title, c),
        body,
        move_destination=title,
        check=check,
    )
