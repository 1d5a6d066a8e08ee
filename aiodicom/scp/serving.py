"""Query/retrieve handlers on a server: ``on_find``, ``on_worklist``, ``on_get``, ``on_move``.

:class:`QueryServices` is a base of :class:`~aiodicom.scp.store.StoreScp` (and so of
:class:`~aiodicom.scp.qr.QueryRetrieveScp`). Registering a handler makes the server accept that service's
SOP classes (Patient Root and Study Root FIND/GET/MOVE, Modality Worklist FIND) in every transfer syntax
mode (the uncompressed ones always, as for Verification); ``on_get`` also grants the SCP role the
requestor proposes, per SOP class, for the storage classes the server accepts, so that the instances can
come back on the requestor's association. SOP class extended negotiation (relational queries) is never
answered: it is declined. A handler may be registered or replaced at any time, also while serving: the next
association sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiodicom.dimse import CommandField, Status
from aiodicom.net.association import Association, DimseMessage
from aiodicom.scp.nserving import NServices
from aiodicom.services.dispatch import ServiceHandler, failure_response
from aiodicom.services.remote import (
    QR_SERVICE_CLASSES,
    AeResolver,
    RemoteAe,
    remote_ae_table,
    service_classes,
)
from aiodicom.uids import UNCOMPRESSED_TRANSFER_SYNTAXES
from aiodicom.ul.items import PresentationContextAC, PresentationContextRQ
from aiodicom.ul.negotiation import ContextPolicy

if TYPE_CHECKING:  # the services load pydicom: imported when a request comes, not by an idle server
    from aiodicom.services.serve_common import QueryHandler
    from aiodicom.services.serve_retrieve import RetrieveSettings
    from aiodicom.services.transcode import Transcoder
    from aiodicom.storage.s3 import S3Bucket

_SERVICES = ("find", "worklist", "get", "move")
#: The default of :attr:`QueryServices.pending_interval`: services.serve_retrieve's DEFAULT_PENDING_INTERVAL,
#: not imported here (that module loads pydicom, which an idle receiver does not).
PENDING_INTERVAL = 0.1
_COMMANDS = {
    "find": CommandField.C_FIND_RQ,
    "worklist": CommandField.C_FIND_RQ,
    "get": CommandField.C_GET_RQ,
    "move": CommandField.C_MOVE_RQ,
}


@dataclass(frozen=True, slots=True)
class ServicePolicy(ContextPolicy):
    """A :class:`ContextPolicy` that also takes the query/retrieve SOP classes in ``query_classes`` in the
    uncompressed transfer syntaxes, whatever the transfer syntax mode (identifiers are small)."""

    query_classes: frozenset[str] = frozenset()

    def choose(self, proposed: PresentationContextRQ) -> PresentationContextAC:
        if proposed.abstract_syntax in self.query_classes:
            ours = self.transfer_syntaxes
            if ours is not None:
                ours = ours + tuple(ts for ts in UNCOMPRESSED_TRANSFER_SYNTAXES if ts not in ours)
            plain = ContextPolicy(
                abstract_syntaxes=None,
                transfer_syntaxes=ours,
                extra_transfer_syntaxes=self.extra_transfer_syntaxes,
            )
            return plain.choose(proposed)
        return ContextPolicy.choose(self, proposed)


def with_services(
    base: ContextPolicy,
    services: frozenset[str],
    n_classes: frozenset[str] = frozenset(),
    n_scp_roles: frozenset[str] = frozenset(),
) -> ContextPolicy:
    """``base`` accepting the SOP classes of ``services`` too, and with ``get`` the requestor's SCP role
    for the storage classes ``base`` accepts (any class when it accepts any); also the SOP classes of
    N-service handlers ``n_classes``, with the SCP role granted for ``n_scp_roles`` (N-EVENT-REPORT)."""
    if not services and not n_classes:
        return base
    classes = frozenset().union(*(service_classes(s) for s in services)) | n_classes
    abstract = None if base.abstract_syntaxes is None else base.abstract_syntaxes | classes
    scp_roles = base.scp_role_classes
    if "get" in services:
        scp_roles = (
            None if base.abstract_syntaxes is None else base.abstract_syntaxes - frozenset(QR_SERVICE_CLASSES)
        )
    if scp_roles is not None:
        scp_roles = scp_roles | n_scp_roles
    return ServicePolicy(
        abstract_syntaxes=abstract,
        transfer_syntaxes=base.transfer_syntaxes,
        scp_role_classes=scp_roles,
        scu_role_classes=base.scu_role_classes,
        extra_transfer_syntaxes=base.extra_transfer_syntaxes,
        query_classes=classes,
    )


class QueryServices(NServices):
    """The query/retrieve handlers of a server (a base of StoreScp), and its N-service handlers
    (:class:`~aiodicom.scp.nserving.NServices`); see the module's docstring."""

    _handlers: dict[int, ServiceHandler]
    workers: int
    storage: Any

    def init_query_services(
        self,
        *,
        remote_aes: Mapping[str, str | RemoteAe | tuple[str, int]] | None = None,
        resolve_ae: AeResolver | None = None,
        never_transcode: bool = False,
        pending_interval: float | None = None,
    ) -> None:
        """Set up (from the server's constructor, once its policy is made)."""

        self._base_policy = self.policy
        self._query_handlers: dict[str, QueryHandler] = {}
        self.init_n_services()
        self._remote_aes: dict[str, RemoteAe] = remote_ae_table(remote_aes)
        self._resolve_ae: AeResolver | None = resolve_ae
        #: Whether an instance whose transfer syntax the peer did not take may be converted (lossless).
        self.never_transcode = never_transcode
        #: Seconds between two pending C-GET/C-MOVE responses (one after the first sub-operation, then at
        #: most one per interval; 0: one after every sub-operation). Pending responses are optional
        #: (PS3.4 C.4.2.3, C.4.3.3), and each costs both sides a message per instance.
        self.pending_interval = PENDING_INTERVAL if pending_interval is None else pending_interval
        if self.pending_interval < 0:
            raise ValueError(f"pending_interval is 0 or more seconds, not {self.pending_interval}")
        self._transcoder: Transcoder | None = None

    @property
    def remote_aes(self) -> dict[str, RemoteAe]:
        """The known AEs: C-MOVE destinations by AE title. Assign a mapping of ``"host:port"``,
        ``"AE@host:port"``, ``(host, port)`` or :class:`~aiodicom.services.serve_move.RemoteAe` entries."""
        return self._remote_aes

    @remote_aes.setter
    def remote_aes(self, table: Mapping[str, str | RemoteAe | tuple[str, int]] | None) -> None:
        self._remote_aes = remote_ae_table(table)

    # ---------------------------------------------------------------------------------- registration

    def on_find(self, handler: QueryHandler) -> QueryHandler:
        """Register the C-FIND handler (also a decorator) of the Patient Root and Study Root models:
        ``handler(query: Dataset, context: QueryContext)`` giving (yielding, returning, or awaiting) the
        matches, each a Dataset or a dict, or ``(match, 0xFF01)`` when optional keys were not supported.
        It may raise :class:`~aiodicom.errors.QueryRejected` to answer a failure status."""
        return self._register("find", handler)

    def on_worklist(self, handler: QueryHandler) -> QueryHandler:
        """Register the Modality Worklist C-FIND handler (also a decorator), called as :meth:`on_find`'s."""
        return self._register("worklist", handler)

    def on_get(self, handler: QueryHandler) -> QueryHandler:
        """Register the C-GET handler (also a decorator): ``handler(query, context)`` giving the instances
        to send back, each a path, the bytes of a Part 10 file, a Dataset or a
        :class:`~aiodicom.services.serve_common.StoredKey` (an object on this server's S3 backend)."""
        return self._register("get", handler)

    def on_move(self, handler: QueryHandler) -> QueryHandler:
        """Register the C-MOVE handler (also a decorator): ``handler(query, destination, context)`` giving
        the instances to send to ``destination`` (an AE title of :attr:`remote_aes` or the resolver's), as
        :meth:`on_get`'s."""
        return self._register("move", handler)

    def on_resolve_ae(self, resolver: AeResolver) -> AeResolver:
        """Register the resolver of C-MOVE destinations not in :attr:`remote_aes` (also a decorator):
        ``resolver(ae_title)`` (plain or async) gives ``"host:port"``, a RemoteAe, or None (unknown)."""
        if not callable(resolver):
            raise TypeError("on_resolve_ae takes a function")
        self._resolve_ae = resolver
        return resolver

    def _register(self, service: str, handler: QueryHandler) -> QueryHandler:
        if not callable(handler):
            raise TypeError(f"on_{service} takes a function")
        if self.workers > 1:
            raise ValueError(
                f"on_{service}: query/retrieve handlers run in this process; with workers > 1 the workers "
                "receive C-STOREs only"
            )
        self._query_handlers[service] = handler
        self._update_policy()
        served: dict[int, ServiceHandler] = {
            CommandField.C_FIND_RQ: self._serve_find,
            CommandField.C_GET_RQ: self._serve_get,
            CommandField.C_MOVE_RQ: self._serve_move,
        }
        command = _COMMANDS[service]
        self._handlers[command] = served[command]
        return handler

    def _update_policy(self) -> None:
        self.policy = with_services(
            self._base_policy,
            frozenset(self._query_handlers),
            self.n_sop_classes,
            self.n_event_report_classes,
        )

    def query_handler(self, service: str) -> QueryHandler | None:
        """The handler registered for ``find``, ``worklist``, ``get`` or ``move`` (None: none)."""
        if service not in _SERVICES:
            raise ValueError(f"service is one of {', '.join(_SERVICES)}, not {service!r}")
        return self._query_handlers.get(service)

    # -------------------------------------------------------------------------------------- serving

    def _retrieve_settings(self) -> RetrieveSettings:
        from aiodicom.services.serve_retrieve import RetrieveSettings

        if self._transcoder is None and not self.never_transcode:
            from aiodicom.services.transcode import Transcoder

            self._transcoder = Transcoder()
        return RetrieveSettings(
            options=self.options,
            never_transcode=self.never_transcode,
            transcoder=self._transcoder,
            bucket=self._bucket(),
            pending_interval=self.pending_interval,
        )

    def _bucket(self) -> S3Bucket | None:
        storage = getattr(self, "storage", None)
        storage = getattr(storage, "inner", storage)
        bucket = getattr(storage, "bucket", None)
        return bucket

    def _which(self, message: DimseMessage, services: tuple[str, ...]) -> tuple[Any, QueryHandler] | None:
        from aiodicom.services.serve_common import SERVICE_CLASSES

        found = SERVICE_CLASSES.get(message.command.affected_sop_class_uid or "")
        if found is None or found[1] not in services:
            return None
        handler = self._query_handlers.get(found[1])
        return None if handler is None else (found[0], handler)

    async def _unsupported(self, assoc: Association, message: DimseMessage) -> None:
        if message.dataset is not None:
            await message.dataset.abort()
        self.log.info(
            "%s for %s is not served here", message.command.name, message.command.affected_sop_class_uid
        )
        await assoc.send(
            message.context_id, failure_response(message.command, Status.SOP_CLASS_NOT_SUPPORTED)
        )

    async def _serve_find(self, assoc: Association, message: DimseMessage) -> None:
        which = self._which(message, ("find", "worklist"))
        if which is None:
            return await self._unsupported(assoc, message)
        from aiodicom.services.serve_find import serve_find

        model, handler = which
        await serve_find(assoc, message, handler, model=model, ae_title=self.ae_title, logger=self.log)

    async def _serve_get(self, assoc: Association, message: DimseMessage) -> None:
        which = self._which(message, ("get",))
        if which is None:
            return await self._unsupported(assoc, message)
        from aiodicom.services.serve_get import serve_get

        model, handler = which
        await serve_get(
            assoc,
            message,
            handler,
            model=model,
            ae_title=self.ae_title,
            settings=self._retrieve_settings(),
            logger=self.log,
        )

    async def _serve_move(self, assoc: Association, message: DimseMessage) -> None:
        which = self._which(message, ("move",))
        if which is None:
            return await self._unsupported(assoc, message)
        from aiodicom.services.serve_move import serve_move

        model, handler = which
        await serve_move(
            assoc,
            message,
            handler,
            model=model,
            ae_title=self.ae_title,
            settings=self._retrieve_settings(),
            remote_aes=self._remote_aes,
            resolve_ae=self._resolve_ae,
            logger=self.log,
        )

    async def stop(self, timeout: float | None = None) -> None:
        await super().stop(timeout)
        if self._transcoder is not None:
            transcoder, self._transcoder = self._transcoder, None
            await transcoder.close()
