"""MoveScu: C-MOVE, optionally with a receiver of our own for the instances it brings.

The user-facing half (options, query forms, the built-in receiver, results); the retrieve itself is
:class:`aiodicom.services.move.MoveRun`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiodicom.dimse import Priority
from aiodicom.net.address import Address, validate_ae_title
from aiodicom.net.identity import UserIdentity
from aiodicom.net.options import KEEP, AssociationOptions, Keep
from aiodicom.net.tls import TlsContext
from aiodicom.scp.store import StoreScp
from aiodicom.scu.base import Scu
from aiodicom.services.move import MoveRun
from aiodicom.services.query import QueryBuilder, QueryModel, resolve_query
from aiodicom.services.retrieve import (
    CANCEL_TIMEOUT,
    Control,
    RetrieveCompleted,
    RetrieveOperation,
    RetrieveResult,
    SubOperation,
)
from aiodicom.services.survey import scope_of

log = logging.getLogger("aiodicom.move")


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
        tls: TlsContext | Keep | None = KEEP,
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
        receiver: StoreScp | None = None
        own = receive is not None and not isinstance(receive, StoreScp)
        if isinstance(receive, StoreScp):
            receiver = receive
        elif receive is not None:
            receiver = StoreScp(**{"ae_title": destination, **receive})

        def run(c: Control) -> Awaitable[RetrieveResult]:
            return MoveRun(self, scope, destination, receiver, own, c, on_completed).run()

        return RetrieveOperation(run, control)
