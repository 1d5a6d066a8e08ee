"""MoveScu: C-MOVE, optionally with a receiver of our own for the instances it brings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiodicom.dimse import Command, CommandField, Priority, Status, is_pending, status_name
from aiodicom.errors import DimseError
from aiodicom.events import call
from aiodicom.net.address import Address, validate_ae_title
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES
from aiodicom.query import QueryBuilder, QueryModel, encode_identifier, resolve_query
from aiodicom.retrieve import RetrieveCompleted, RetrieveResult, SubOperation, Tally
from aiodicom.scp import StoreScp
from aiodicom.scu import Scu
from aiodicom.services.store import StoredInstance

log = logging.getLogger("aiodicom.move")

_SCOPE = (("SOPInstanceUID", 0), ("SeriesInstanceUID", 2), ("StudyInstanceUID", 3))


class _Arrivals:
    """Ties instances arriving at a receiver to one C-MOVE.

    By Move Originator AE title and Message ID when the sender fills them in (they are optional); else by
    what the move is expected to bring (the UIDs of its identifier), else everything a receiver of its own
    gets while the move runs.
    """

    def __init__(self, ae_title: str, identifier: Mapping[str, Any], own_receiver: bool) -> None:
        self.ae_title = ae_title
        self.message_id: int | None = None
        self.own_receiver = own_receiver
        self.scope: tuple[str, set[str]] | None = None
        for keyword, _ in _SCOPE:
            value = str(identifier.get(keyword) or "")
            if value and "*" not in value and "?" not in value:
                self.scope = (keyword, set(value.split("\\")))
                break
        self.files: list[str] = []
        self.unreported: list[StoredInstance] = []

    def __call__(self, instance: StoredInstance) -> None:
        if instance.move_originator_message_id is not None:
            mine = (
                instance.move_originator_message_id == self.message_id
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
        result = await scu.move_study({"StudyInstanceUID": "1.2.3"}, "ME",
                                      receive={"port": 11113, "out_dir": "./moved"})
    """

    default_calling_ae_title = "MOVE-SCU"

    def __init__(
        self,
        addr: str | Address,
        *,
        calling_ae_title: str = "MOVE-SCU",
        called_ae_title: str | None = None,
        max_pdu_length: int = 16384,
        query_model: str | QueryModel = QueryModel.STUDY_ROOT,
        priority: int = Priority.MEDIUM,
        connect_timeout: float = 30.0,
        acse_timeout: float = 30.0,
        dimse_timeout: float | None = 600.0,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            addr,
            calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title,
            max_pdu_length=max_pdu_length,
            connect_timeout=connect_timeout,
            acse_timeout=acse_timeout,
            dimse_timeout=dimse_timeout,
            verbose=verbose,
        )
        self.query_model = QueryModel.parse(query_model)
        self.query_model.move_sop_class  # noqa: B018 (a worklist model has no C-MOVE: fail here)
        self.priority = priority

    async def move_study(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        move_destination: str,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        receive: StoreScp | Mapping[str, Any] | None = None,
    ) -> RetrieveResult:
        """Move the studies matching ``query`` (level STUDY unless the query sets another)."""
        return await self.move(
            query, move_destination, query_model, "STUDY", on_sub_operation, on_completed, receive
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
    ) -> RetrieveResult:
        """Move series (level SERIES)."""
        return await self.move(
            query, move_destination, query_model, "SERIES", on_sub_operation, on_completed, receive
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
    ) -> RetrieveResult:
        """Move what ``query`` matches at ``level`` (a QueryRetrieveLevel in the query wins).

        Raises :class:`DimseError` when the peer refuses the move (0xA801: it does not know the
        destination); sub-operation failures are counted in the result.
        """
        destination = validate_ae_title(move_destination, "move destination")
        model, identifier = resolve_query(query, query_model, default_model=self.query_model, level=level)
        own = receive is not None and not isinstance(receive, StoreScp)
        arrivals = _Arrivals(self.calling_ae_title, identifier, own)
        scp: StoreScp | None = None
        if isinstance(receive, StoreScp):
            scp = receive
        elif receive is not None:
            scp = StoreScp(**{"ae_title": destination, **receive})
            await scp.start()
            log.info("receiving the move as %s on port %d", scp.ae_title, scp.port)
        if scp is not None:
            scp.on_file_stored(arrivals)
        tally = Tally()
        try:
            status, comment = await self._move(
                model, identifier, destination, arrivals, tally, on_sub_operation
            )
        finally:
            if scp is not None:
                scp.remove_handler("file_stored", arrivals)
                if own:
                    await scp.stop()
        result = tally.result
        result.files = arrivals.files
        completed = tally.finish(status)
        log.info("C-MOVE done: %s", completed.message)
        await call(on_completed, completed)
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
        identifier: dict[str, Any],
        destination: str,
        arrivals: _Arrivals,
        tally: Tally,
        on_sub_operation: Callable[[SubOperation], Any] | None,
    ) -> tuple[int, str]:
        sop_class = model.move_sop_class
        async with self.connect([(sop_class, DEFAULT_TRANSFER_SYNTAXES)]) as assoc:
            ctx = assoc.context_for(sop_class)
            message_id = assoc.next_message_id()
            arrivals.message_id = message_id
            log.info("C-MOVE %s from %s to %s: %s", model.value, self.address, destination, identifier)
            request = Command.c_move_rq(message_id, sop_class, destination, self.priority)
            await assoc.send(ctx.context_id, request, encode_identifier(identifier, ctx.transfer_syntax))
            while True:
                message = await assoc.receive_response(
                    message_id, CommandField.C_MOVE_RSP, self.dimse_timeout
                )
                command = message.command
                tally.response(command)
                status = command.status if command.status is not None else 0xC000
                if not is_pending(status):
                    return status, (command.error_comment or "").strip()
                instance = arrivals.unreported[-1] if arrivals.unreported else None
                arrivals.unreported.clear()
                await call(
                    on_sub_operation,
                    tally.event(
                        file=instance.file if instance is not None else None,
                        sop_instance_uid=instance.sop_instance_uid if instance is not None else None,
                    ),
                )
