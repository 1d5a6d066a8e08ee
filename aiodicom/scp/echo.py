"""EchoScp: a Verification SCP."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from aiodicom.net.access import (
    DEFAULT_MAX_ASSOCIATIONS_PER_PEER,
    AllowedHost,
    AssociationHook,
    ConnectionHook,
    IdentityHook,
)
from aiodicom.net.association import Association
from aiodicom.net.options import KEEP, AssociationOptions, Keep, deprecated_positional
from aiodicom.net.server import DicomServer
from aiodicom.net.tls import TlsContext
from aiodicom.services.dispatch import serve_messages
from aiodicom.services.echo import ECHO_HANDLERS
from aiodicom.services.events import instance_logger
from aiodicom.ul.negotiation import ContextPolicy


class EchoScp(DicomServer):
    """A Verification SCP: accepts associations and answers C-ECHO.

    ``async with EchoScp(port=11112) as scp: ...`` or ``await scp.serve_forever()``.

    Who may connect, the limits and ``tls`` (an ``ssl.SSLContext``: every connection is TLS) are those of
    :class:`~aiodicom.net.server.DicomServer` (docs/access-control.md, docs/tls.md).
    """

    def __init__(
        self,
        port: int,
        *args: Any,
        host: str | None = "0.0.0.0",
        ae_title: str | Keep = KEEP,
        options: AssociationOptions | None = None,
        max_pdu_length: int | Keep = KEEP,
        max_associations: int = 64,
        max_pending_connections: int | None = None,
        max_pending_per_peer: int | None = None,
        drain_timeout: float = 30.0,
        require_called_ae_title: bool = False,
        allowed_calling_ae_titles: Collection[str] | None = None,
        allowed_hosts: Iterable[AllowedHost] | None = None,
        on_connection: ConnectionHook | None = None,
        on_user_identity: IdentityHook | None = None,
        require_user_identity: bool = False,
        on_association_request: AssociationHook | None = None,
        max_associations_per_peer: int | None = DEFAULT_MAX_ASSOCIATIONS_PER_PEER,
        idle_timeout: float | Keep | None = KEEP,
        artim_timeout: float | Keep = KEEP,
        implementation_class_uid: str | Keep = KEEP,
        implementation_version_name: str | Keep = KEEP,
        tls: TlsContext | Keep | None = KEEP,
        tls_handshake_timeout: float | Keep = KEEP,
        max_tls_handshakes: int = 32,
        verbose: bool = False,
    ) -> None:
        if args:
            given = deprecated_positional("EchoScp", ("host", "ae_title"), args)
            host = given.get("host", host)
            ae_title = given.get("ae_title", ae_title)
        super().__init__(
            self._serve_association,
            port=port,
            host=host,
            options=options or AssociationOptions(ae_title="ECHO-SCP"),
            ae_title=ae_title,
            policy=ContextPolicy(abstract_syntaxes=frozenset()),  # Verification is always accepted
            max_pdu_length=max_pdu_length,
            max_associations=max_associations,
            max_pending_connections=max_pending_connections,
            max_pending_per_peer=max_pending_per_peer,
            drain_timeout=drain_timeout,
            idle_timeout=idle_timeout,
            artim_timeout=artim_timeout,
            require_called_ae_title=require_called_ae_title,
            allowed_calling_ae_titles=allowed_calling_ae_titles,
            allowed_hosts=allowed_hosts,
            on_connection=on_connection,
            on_user_identity=on_user_identity,
            require_user_identity=require_user_identity,
            on_association_request=on_association_request,
            max_associations_per_peer=max_associations_per_peer,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
            tls=tls,
            tls_handshake_timeout=tls_handshake_timeout,
            max_tls_handshakes=max_tls_handshakes,
            logger=instance_logger("aiodicom.scp.echo", verbose),
        )

    async def _serve_association(self, assoc: Association) -> None:
        await serve_messages(assoc, ECHO_HANDLERS, idle_timeout=self.idle_timeout, host=self)
