"""C-MOVE, the requestor's side: the peer sends what matched to a destination AE, perhaps a receiver of ours.

As for C-GET, a C-FIND survey resolves the query into UIDs first (:mod:`aiodicom.services.survey`): the
C-MOVE identifiers carry only unique keys, and nothing matched means no C-MOVE. Instances that arrive at a
receiver of this process are tied to the move that brought them (:class:`_Arrivals`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiodicom.dimse import Command, CommandField, Status, is_pending, status_name
from aiodicom.errors import AssociationAborted, AssociationRejected, DimseError, NoAcceptableContext
from aiodicom.net.association import Association
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES, Requestor
from aiodicom.services.events import notify
from aiodicom.services.query import UNIQUE_KEYS, QueryModel, encode_identifier
from aiodicom.services.retrieve import (
    Control,
    RetrieveCompleted,
    RetrieveResult,
    SubOperation,
    Tally,
    no_match,
    worse_status,
)
from aiodicom.services.store import StoredInstance
from aiodicom.services.survey import Scope, Survey, survey

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
                "SOPInstanceUID": instance.original_sop_instance_uid or instance.sop_instance_uid,
                "SeriesInstanceUID": instance.series_instance_uid,
                "StudyInstanceUID": instance.study_instance_uid,
            }[keyword]
            mine = value in uids
        else:
            mine = self.own_receiver
        if mine:
            self.files.append(instance.file)
            self.unreported.append(instance)


class MoveReceiver(Protocol):
    """A receiver of this process for what a C-MOVE brings: a :class:`~aiodicom.scp.store.StoreScp`."""

    @property
    def ae_title(self) -> str: ...

    @property
    def port(self) -> int: ...

    def on_file_stored(self, handler: Callable[[Any], Any]) -> Callable[[Any], Any]: ...

    def remove_handler(self, event: str, handler: Callable[[Any], Any]) -> None: ...

    async def start(self) -> None: ...

    async def stop(self, timeout: float = 30.0) -> None: ...


class MoveSettings(Requestor, Protocol):
    """What a C-MOVE needs of its requestor."""

    calling_ae_title: str
    called_ae_title: str
    priority: int


class MoveRun:
    """One C-MOVE retrieve: its survey, the C-MOVEs on one association, the arrivals at our receiver (a
    receiver of our own, ``own_receiver``, is started for the move and stopped after it)."""

    def __init__(
        self,
        scu: MoveSettings,
        scope: Scope,
        destination: str,
        receiver: MoveReceiver | None,
        own_receiver: bool,
        control: Control,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
    ) -> None:
        self.scu = scu
        self.scope = scope
        self.destination = destination
        self.receiver = receiver
        self.own_receiver = own_receiver
        self.control = control
        self.on_completed = on_completed

    async def _survey(self, scope: Scope) -> Survey:
        try:
            return await survey(self.scu, scope)
        except (DimseError, NoAcceptableContext, AssociationRejected, AssociationAborted) as exc:
            if not scope.direct:
                raise DimseError(
                    f"the C-FIND that resolves the query into UIDs failed ({exc}): without it only a query "
                    "of unique keys (StudyInstanceUID...) can be moved"
                ) from exc
            log.warning("the C-FIND survey failed (%s): moving by the query's own UIDs", exc)
            return Survey(level=scope.level, resolved=False)

    async def run(self) -> RetrieveResult:
        """Survey, C-MOVE what matched, count what arrived at our receiver, and tell ``on_completed``."""
        scope, destination, control, on_completed = (
            self.scope,
            self.destination,
            self.control,
            self.on_completed,
        )
        scp, own = self.receiver, self.own_receiver
        found = await self._survey(scope)
        if not found.matched:
            result, completed = no_match()
            log.info("C-MOVE: nothing on %s matches %s: no C-MOVE sent", self.scu.address, scope.sent)
            await notify(on_completed, completed, event="on_completed")
            return result
        if found.resolved:
            identifiers = found.identifiers(scope.model)
            uids = found.uids()
        else:
            identifiers = [scope.identifier()]
            uids = set(str(identifiers[0][UNIQUE_KEYS[scope.level]]).split("\\"))
        arrivals = _Arrivals(self.scu.calling_ae_title, UNIQUE_KEYS[found.level], uids, own)
        if scp is not None and own:
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
                f"{self.scu.called_ae_title} does not know the move destination {destination!r} "
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
        async with self.scu.connect([(sop_class, DEFAULT_TRANSFER_SYNTAXES)]) as assoc:
            ctx = assoc.context_for(sop_class)
            for identifier in identifiers:
                if control.requested:
                    break
                message_id = assoc.next_message_id()
                arrivals.message_ids.add(message_id)
                log.info(
                    "C-MOVE %s from %s to %s: %s", model.value, self.scu.address, destination, identifier
                )
                request = Command.c_move_rq(message_id, sop_class, destination, self.scu.priority)
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
            message = await assoc.receive_response(
                message_id, CommandField.C_MOVE_RSP, self.scu.dimse_timeout
            )
            command = message.command
            tally.response(command)
            status = command.status if command.status is not None else 0xC000
            if not is_pending(status):
                # The last instances arrive before the final response, with no pending one of their own;
                # one turn of the loop lets a receiver's store handler that answered them record them.
                await asyncio.sleep(0)
                for event in _arrived(arrivals, tally):
                    await control.report(event)
                control.final(status)
                return status, (command.error_comment or "").strip()
            for event in _arrived(arrivals, tally) or [tally.event()]:
                await control.report(event)
            await control.progress(None, tally.done)


def _arrived(arrivals: _Arrivals, tally: Tally) -> list[SubOperation]:
    """One event for each instance that arrived since the last response (the counts as they stand)."""
    events = []
    for instance in arrivals.unreported:
        received = instance.original_sop_instance_uid or instance.sop_instance_uid
        events.append(
            tally.event(
                file=instance.file,
                sop_instance_uid=received,
                transfer_syntax=instance.transfer_syntax_uid,
                converted_from=instance.received_transfer_syntax if instance.converted else None,
                stored_sop_instance_uid=instance.sop_instance_uid
                if instance.sop_instance_uid != received
                else None,
            )
        )
    arrivals.unreported.clear()
    return events
