"""N-service handlers on a server, per SOP class: ``on_n_event_report``, ``on_n_get``, ``on_n_set``,
``on_n_action``, ``on_n_create``, ``on_n_delete``.

:class:`NServices` is a base of :class:`~aiodicom.scp.serving.QueryServices` (so of StoreScp and
QueryRetrieveScp). Registering a handler for a SOP class makes the server accept that SOP class (in the
uncompressed transfer syntaxes whatever the transfer syntax mode, as for the query classes); an
``on_n_event_report`` handler also grants the SCP role a requestor proposes for the class (a storage
commitment SCP that opens an association to send its report proposes SCU 0, SCP 1). A request for a SOP
class without a handler for that service is answered 0x0122 (SOP class not supported). Handlers may be
registered or replaced at any time; the next association sees them.

A handler is ``handler(request: NRequest)``, plain or async (see :mod:`aiodicom.services.nservices`)::

    @scp.on_n_action("1.2.840.10008.1.20.1")
    async def commit(request: NRequest) -> NResponse: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from aiodicom.dimse import CommandField, Status
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.server import DicomServer
from aiodicom.services.dispatch import ServiceHandler, failure_response

if TYPE_CHECKING:
    from aiodicom.services.nservices import NHandler

#: The service names of :meth:`NServices.n_handler` and their request Command Fields.
N_SERVICES: dict[str, CommandField] = {
    "n_event_report": CommandField.N_EVENT_REPORT_RQ,
    "n_get": CommandField.N_GET_RQ,
    "n_set": CommandField.N_SET_RQ,
    "n_action": CommandField.N_ACTION_RQ,
    "n_create": CommandField.N_CREATE_RQ,
    "n_delete": CommandField.N_DELETE_RQ,
}

Decorator = Callable[["NHandler"], "NHandler"]


class NServices(DicomServer):
    """The N-service handlers of a server; see the module's docstring."""

    _handlers: dict[int, ServiceHandler]
    workers: int

    def init_n_services(self) -> None:
        """Set up (from the server's constructor; again is a no-op: QueryRetrieveScp sets up its query
        services a second time, after StoreScp registered MPPS)."""
        if not hasattr(self, "_n_handlers"):
            self._n_handlers: dict[tuple[int, str], NHandler] = {}

    # ---------------------------------------------------------------------------------- registration

    @overload
    def on_n_event_report(self, sop_class_uid: str) -> Decorator: ...
    @overload
    def on_n_event_report(self, sop_class_uid: str, handler: NHandler) -> NHandler: ...
    def on_n_event_report(self, sop_class_uid: str, handler: NHandler | None = None) -> Any:
        """Register the N-EVENT-REPORT handler of ``sop_class_uid`` (``scp.on_n_event_report(uid,
        handler)``, or ``@scp.on_n_event_report(uid)``): the Event Information is ``request.dataset``,
        the Event Type ID ``request.event_type_id``; a returned Dataset is the Event Reply."""
        return self._n_register("n_event_report", sop_class_uid, handler)

    @overload
    def on_n_get(self, sop_class_uid: str) -> Decorator: ...
    @overload
    def on_n_get(self, sop_class_uid: str, handler: NHandler) -> NHandler: ...
    def on_n_get(self, sop_class_uid: str, handler: NHandler | None = None) -> Any:
        """Register the N-GET handler of ``sop_class_uid`` (also a decorator): it returns the values of
        ``request.attribute_identifier_list`` (None or empty: all) as a Dataset."""
        return self._n_register("n_get", sop_class_uid, handler)

    @overload
    def on_n_set(self, sop_class_uid: str) -> Decorator: ...
    @overload
    def on_n_set(self, sop_class_uid: str, handler: NHandler) -> NHandler: ...
    def on_n_set(self, sop_class_uid: str, handler: NHandler | None = None) -> Any:
        """Register the N-SET handler of ``sop_class_uid`` (also a decorator): ``request.dataset`` is the
        Modification List of ``request.sop_instance_uid``."""
        return self._n_register("n_set", sop_class_uid, handler)

    @overload
    def on_n_action(self, sop_class_uid: str) -> Decorator: ...
    @overload
    def on_n_action(self, sop_class_uid: str, handler: NHandler) -> NHandler: ...
    def on_n_action(self, sop_class_uid: str, handler: NHandler | None = None) -> Any:
        """Register the N-ACTION handler of ``sop_class_uid`` (also a decorator): the Action Information
        is ``request.dataset``, the Action Type ID ``request.action_type_id``; a returned Dataset is the
        Action Reply, and an :class:`~aiodicom.services.nservices.NResponse`'s ``after`` runs once the
        response is sent."""
        return self._n_register("n_action", sop_class_uid, handler)

    @overload
    def on_n_create(self, sop_class_uid: str) -> Decorator: ...
    @overload
    def on_n_create(self, sop_class_uid: str, handler: NHandler) -> NHandler: ...
    def on_n_create(self, sop_class_uid: str, handler: NHandler | None = None) -> Any:
        """Register the N-CREATE handler of ``sop_class_uid`` (also a decorator): ``request.dataset`` is
        the Attribute List; when the request named no instance, ``request.sop_instance_uid`` is the UID
        the server assigned (``request.uid_assigned``), which the response carries."""
        return self._n_register("n_create", sop_class_uid, handler)

    @overload
    def on_n_delete(self, sop_class_uid: str) -> Decorator: ...
    @overload
    def on_n_delete(self, sop_class_uid: str, handler: NHandler) -> NHandler: ...
    def on_n_delete(self, sop_class_uid: str, handler: NHandler | None = None) -> Any:
        """Register the N-DELETE handler of ``sop_class_uid`` (also a decorator)."""
        return self._n_register("n_delete", sop_class_uid, handler)

    def n_handler(self, service: str, sop_class_uid: str) -> NHandler | None:
        """The handler registered for ``service`` (``"n_action"``, ``"n_create"``...) and the SOP class."""
        return self._n_handlers.get((_command(service), sop_class_uid))

    def remove_n_handler(self, service: str, sop_class_uid: str) -> None:
        """Unregister a handler (the SOP class stays accepted while another service of it has one)."""
        self._n_handlers.pop((_command(service), sop_class_uid), None)
        self._update_policy()

    @property
    def n_sop_classes(self) -> frozenset[str]:
        """The SOP classes some N-service handler is registered for."""
        return frozenset(uid for _, uid in self._n_handlers)

    @property
    def n_event_report_classes(self) -> frozenset[str]:
        """The SOP classes with an N-EVENT-REPORT handler (their SCP role is granted)."""
        report = CommandField.N_EVENT_REPORT_RQ
        return frozenset(uid for command, uid in self._n_handlers if command == report)

    def _n_register(self, service: str, sop_class_uid: str, handler: NHandler | None) -> Any:
        if not isinstance(sop_class_uid, str) or not sop_class_uid:
            raise TypeError(f"on_{service} takes a SOP class UID first, not {sop_class_uid!r}")
        if handler is None:

            def decorator(function: NHandler) -> NHandler:
                return self._n_register(service, sop_class_uid, function)  # type: ignore[no-any-return]

            return decorator
        if not callable(handler):
            raise TypeError(f"on_{service} takes a function")
        if self.workers > 1:
            raise ValueError(
                f"on_{service}: N-service handlers run in this process; with workers > 1 the workers "
                "receive C-STOREs only"
            )
        command = N_SERVICES[service]
        self._n_handlers[(command, sop_class_uid)] = handler
        self._handlers[command] = self._serve_n
        self._update_policy()
        return handler

    if TYPE_CHECKING:  # provided by QueryServices, the class that knows every service's SOP classes

        def _update_policy(self) -> None: ...

    # -------------------------------------------------------------------------------------- serving

    async def _serve_n(self, assoc: Association, message: DimseMessage) -> None:
        command = message.command
        handler = self._n_handlers.get((command.command_field, command.sop_class_uid or ""))
        if handler is None:
            if message.dataset is not None:
                await message.dataset.abort()
            self.log.info("%s for %s is not served here", command.name, command.sop_class_uid)
            await assoc.send(message.context_id, failure_response(command, Status.SOP_CLASS_NOT_SUPPORTED))
            return
        from aiodicom.services.nservices import serve_n_request

        await serve_n_request(assoc, message, handler, ae_title=self.ae_title, logger=self.log)


def _command(service: str) -> CommandField:
    key = service.lower().replace("-", "_")
    if not key.startswith("n_"):
        key = f"n_{key}"
    if key not in N_SERVICES:
        raise ValueError(f"service is one of {', '.join(N_SERVICES)}, not {service!r}")
    return N_SERVICES[key]
