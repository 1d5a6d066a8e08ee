"""MoveScu: C-MOVE, optionally with a receiver of our own for the instances it brings.

As for C-GET, a C-FIND survey resolves the query into UIDs first (:mod:`aiodicom.services.survey`): the C-MOVE
identifiers carry only unique keys, and nothing matched means no C-MOVE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiodicom.dimse import Command, CommandField, Priority, Status, is_pending, status_name
from aiodicom.errors import AssociationAborted, AssociationRejected, DimseError, NoAcceptableContext
from aiodicom.net.address import Address, validate_ae_title
from aiodicom.net.association import Association
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES
from aiodicom.net.identity import UserIdentity
from aiodicom.net.options import KEEP, AssociationOptions, Keep
from aiodicom.scp.store import StoreScp
from aiodicom.scu.base import Scu
from aiodicom.services.events import notify
from aiodicom.services.query import UNIQUE_KEYS, QueryBuilder, QueryModel, encode_identifier, resolve_query
from aiodicom.services.retrieve import (
    CANCEL_TIMEOUT,
    Control,
    RetrieveCompleted,
    RetrieveOperation,
    RetrieveResult,
    SubOperation,
    Tally,
    no_match,
    worse_status,
)
from aiodicom.services.store import StoredInstance
from aiodicom.services.survey import Scope, Survey, scope_of, survey

log = logging.getLogger("aiodicom.move")


class _Arrivals:
    """Ties instances arriving at a receiver to one retrieve.

    By Move Originator AE title and Message ID when the sender fills them in (they are optional); else by
    what the retrieve asks for (the UIDs of its identifiers), else everything a receiver of its own gets
    while the move runs.
    """

    def __init__(self, ae_title: str, keyword: str | None, uids: Iterable[str], own_receiver: bool) -> None:
        self.ae_title = ae_title
        self.message_ids: set[int] = set()
        self.own_receiver = own_receiver
        wanted = set(uids)
        self.scope = (keyword, wanted) if keyword is not None and keyword != "PatientID" and wanted else None
        self.files: list[str] = []
        self.unreported: list[StoredInstance] = []

    def __call__(self, instance: StoredInstance) -> None:
        if instance.move_originator_message_id is not None:
            mine = (
                instance.move_originator_message_id in self.message_ids
                and (instance.move_originator_ae_title or "").strip() == self.ae_title
            )
        elif self.scope is not None:
            keyword, uids = self.scope
            value = {
                "SOPInstanceUID": instance.sop_instance_uid,
                "SeriesInstanceUID": instance.series_instance_uid,
                "StudyInstanceUID": instance.study_instance_uid,
            }[keyword]
            mine = value in uids
        else:
            mine = self.own_receiver
        if mine:
            self.files.append(instance.file)
            self.unreported.append(instance)


class MoveScu(Scu):
    """C-MOVE SCU: asks the peer to send what matches to ``move_destination`` (an AE title it knows).

    With ``receive=``, the destination is a receiver in this process: either options for a temporary
    :class:`StoreScp` (``{"port": 11113, "out_dir": "./moved"}``; its AE title defaults to the move
    destination), started before the C-MOVE-RQ and stopped after the last response, or a running
    StoreScp. The peer must know that AE title with this host and port::

        scu = MoveScu("ORTHANC@127.0.0.1:4242")
        result = await scu.move_study({"AccessionNumber": "A123"}, "ME",
                                      receive={"port": 11113, "out_dir": "./moved"})

    ``dimse_timeout`` is the longest silence while waiting for the next response, not a bound on the
    whole move; ``cancel_timeout`` how long a cancelled task waits for the final response after its
    C-CANCEL before it aborts.
    """

    default_calling_ae_title = "MOVE-SCU"
    default_dimse_timeout = 600.0
    kind = "move"

    def __init__(
        self,
        addr: str | Address,
        *,
        options: AssociationOptions | None = None,
        calling_ae_title: str | Keep | None = KEEP,
        called_ae_title: str | Keep | None = KEEP,
        max_pdu_length: int | Keep = KEEP,
        query_model: str | QueryModel = QueryModel.STUDY_ROOT,
        priority: int = Priority.MEDIUM,
        connect_timeout: float | Keep = KEEP,
        acse_timeout: float | Keep = KEEP,
        dimse_timeout: float | Keep | None = KEEP,
        cancel_timeout: float = CANCEL_TIMEOUT,
        verbose: bool = False,
        user_identity: UserIdentity | Keep | None = KEEP,
        implementation_class_uid: str | Keep = KEEP,
        implementation_version_name: str | Keep = KEEP,
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
        )
        self.query_model = QueryModel.parse(query_model)
        self.query_model.move_sop_class  # noqa: B018 (a worklist model has no C-MOVE: fail here)
        if cancel_timeout < 0:
            raise ValueError("cancel_timeout may not be negative")
        self.priority = priority
        self.cancel_timeout = cancel_timeout

    async def move_study(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        move_destination: str,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        receive: StoreScp | Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Move the studies matching ``query`` (level STUDY unless the query sets another)."""
        return await self.move(
            query,
            move_destination,
            query_model,
            "STUDY",
            on_sub_operation,
            on_completed,
            receive,
            limit=limit,
        )

    async def move_series(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        move_destination: str,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        receive: StoreScp | Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Move series (level SERIES)."""
        return await self.move(
            query,
            move_destination,
            query_model,
            "SERIES",
            on_sub_operation,
            on_completed,
            receive,
            limit=limit,
        )

    async def move(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        move_destination: str,
        query_model: str | QueryModel | None = None,
        level: str = "STUDY",
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        receive: StoreScp | Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Move what ``query`` matches at ``level`` (a QueryRetrieveLevel in the query wins).

        Any matching key may be given: a C-FIND survey resolves the query into UIDs first, and nothing
        matched means no C-MOVE (``result.matched`` is False). ``limit`` cancels the move after that many
        sub-operations. Raises :class:`DimseError` when the peer refuses the move (0xA801: it does not
        know the destination); sub-operation failures are counted in the result. A cancelled task sends
        C-CANCEL, waits ``cancel_timeout`` for the final response, aborts, and re-raises.
        """
        return await self.iter_move(
            query,
            move_destination,
            query_model,
            level,
            on_sub_operation=on_sub_operation,
            on_completed=on_completed,
            receive=receive,
            limit=limit,
        )

    def iter_move(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        move_destination: str,
        query_model: str | QueryModel | None = None,
        level: str = "STUDY",
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        receive: StoreScp | Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveOperation:
        """The move as a :class:`RetrieveOperation`: ``async for event in`` it for each pending response
        (leaving the loop cancels the rest; use ``contextlib.aclosing``), or ``await`` it."""
        destination = validate_ae_title(move_destination, "move destination")
        model, identifier = resolve_query(query, query_model, default_model=self.query_model, level=level)
        scope = scope_of(model, identifier)
        if scope.empty:
            raise ValueError(
                "a retrieve needs at least one key to match (StudyInstanceUID, PatientID, PatientName...): "
                "an empty identifier matches everything on some PACS"
            )
        control = Control(limit, self.cancel_timeout, on_sub_operation)
        return RetrieveOperation(lambda c: self._run(scope, destination, receive, c, on_completed), control)

    async def _survey(self, scope: Scope) -> Survey:
        try:
            return await survey(self, scope)
        except (DimseError, NoAcceptableContext, AssociationRejected, AssociationAborted) as exc:
            if not scope.direct:
                raise DimseError(
                    f"the C-FIND that resolves the query into UIDs failed ({exc}): without it only a query "
                    "of unique keys (StudyInstanceUID...) can be moved"
                ) from exc
            log.warning("the C-FIND survey failed (%s): moving by the query's own UIDs", exc)
            return Survey(level=scope.level, resolved=False)

    async def _run(
        self,
        scope: Scope,
        destination: str,
        receive: StoreScp | Mapping[str, Any] | None,
        control: Control,
        on_completed: Callable[[RetrieveCompleted], Any] | None,
    ) -> RetrieveResult:
        found = await self._survey(scope)
        if not found.matched:
            result, completed = no_match()
            log.info("C-MOVE: nothing on %s matches %s: no C-MOVE sent", self.address, scope.sent)
            await notify(on_completed, completed, event="on_completed")
            return result
        if found.resolved:
            identifiers = found.identifiers(scope.model)
            uids = found.uids()
        else:
            identifiers = [scope.identifier()]
            uids = set(str(identifiers[0][UNIQUE_KEYS[scope.level]]).split("\\"))
        own = receive is not None and not isinstance(receive, StoreScp)
        arrivals = _Arrivals(self.calling_ae_title, UNIQUE_KEYS[found.level], uids, own)
        scp: StoreScp | None = None
        if isinstance(receive, StoreScp):
            scp = receive
        elif receive is not None:
            scp = StoreScp(**{"ae_title": destination, **receive})
            await scp.start()
            log.info("receiving the move as %s on port %d", scp.ae_title, scp.port)
        if scp is not None:
            scp.on_file_stored(arrivals)
        tally = Tally(found.count)
        status, comment, cancelled = 0, "", False
        try:
            status, comment = await self._move(
                scope.model, identifiers, destination, arrivals, tally, control
            )
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            if scp is not None:
                scp.remove_handler("file_stored", arrivals)
                if own:
                    await scp.stop()
            tally.result.files = arrivals.files
            if cancelled:  # the task was cancelled: tell on_completed what was done, then re-raise
                await notify(
                    on_completed,
                    tally.finish(control.final_status, cancelled=control.cancelled),
                    event="on_completed",
                )
        result = tally.result
        completed = tally.finish(status, cancelled=control.cancelled)
        log.info("C-MOVE done: %s", completed.message)
        await notify(on_completed, completed, event="on_completed")
        if status == Status.MOVE_DESTINATION_UNKNOWN:
            raise DimseError(
                f"{self.called_ae_title} does not know the move destination {destination!r} "
                f"({status_name(status)}, 0x{status:04X}): register that AE title with its host and port "
                "in the peer's configuration",
                status,
            )
        if result.refused:
            why = f": {comment}" if comment else ""
            raise DimseError(
                f"C-MOVE to {destination!r} answered {status_name(status)} (0x{status:04X}){why}", status
            )
        return result

    async def _move(
        self,
        model: QueryModel,
        identifiers: list[dict[str, Any]],
        destination: str,
        arrivals: _Arrivals,
        tally: Tally,
        control: Control,
    ) -> tuple[int, str]:
        """One association: a C-MOVE per identifier, one after the other."""
        sop_class = model.move_sop_class
        status, comment = 0, ""
        async with self.connect([(sop_class, DEFAULT_TRANSFER_SYNTAXES)]) as assoc:
            ctx = assoc.context_for(sop_class)
            for identifier in identifiers:
                if control.requested:
                    break
                message_id = assoc.next_message_id()
                arrivals.message_ids.add(message_id)
                log.info("C-MOVE %s from %s to %s: %s", model.value, self.address, destination, identifier)
                request = Command.c_move_rq(message_id, sop_class, destination, self.priority)
                await assoc.send(ctx.context_id, request, encode_identifier(identifier, ctx.transfer_syntax))
                tally.begin()
                control.start(assoc, ctx.context_id, message_id)
                try:
                    code, text = await control.run(
                        self._responses(assoc, message_id, arrivals, tally, control), assoc
                    )
                finally:
                    control.end()
                status, comment = worse_status(status, code), text or comment
                if code == Status.MOVE_DESTINATION_UNKNOWN:
                    break
        return status, comment

    async def _responses(
        self, assoc: Association, message_id: int, arrivals: _Arrivals, tally: Tally, control: Control
    ) -> tuple[int, str]:
        """Read C-MOVE responses to the final one (each wait at most dimse_timeout)."""
        while True:
            message = await assoc.receive_response(message_id, CommandField.C_MOVE_RSP, self.dimse_timeout)
            command = message.command
            tally.response(command)
            status = command.status if command.status is not None else 0xC000
            if not is_pending(status):
                control.final(status)
                return status, (command.error_comment or "").strip()
            instance = arrivals.unreported[-1] if arrivals.unreported else None
            arrivals.unreported.clear()
            event = tally.event(
                file=instance.file if instance is not None else None,
                sop_instance_uid=instance.sop_instance_uid if instance is not None else None,
            )
            await control.progress(event, tally.done)
