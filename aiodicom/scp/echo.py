"""EchoScp: a Verification SCP."""

from __future__ import annotations

import logging
from collections.abc import Collection

from aiodicom.net.association import Association
from aiodicom.net.server import DicomServer
from aiodicom.services.dispatch import ECHO_HANDLERS, serve_messages
from aiodicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from aiodicom.ul.negotiation import ContextPolicy


class EchoScp(DicomServer):
    """A Verification SCP: accepts associations and answers C-ECHO.

    ``async with EchoScp(port=11112) as scp: ...`` or ``await scp.serve_forever()``.
    """

    def __init__(
        self,
        port: int,
        host: str | None = "0.0.0.0",
        ae_title: str = "ECHO-SCP",
        *,
        max_pdu_length: int = 16384,
        max_associations: int = 64,
        max_pending_connections: int | None = None,
        require_called_ae_title: bool = False,
        allowed_calling_ae_titles: Collection[str] | None = None,
        idle_timeout: float | None = 300.0,
        artim_timeout: float = 30.0,
        implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
        implementation_version_name: str = IMPLEMENTATION_VERSION_NAME,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            self._serve_association,
            port=port,
            host=host,
            ae_title=ae_title,
            policy=ContextPolicy(abstract_syntaxes=frozenset()),  # Verification is always accepted
            max_pdu_length=max_pdu_length,
            max_associations=max_associations,
            max_pending_connections=max_pending_connections,
            artim_timeout=artim_timeout,
            require_called_ae_title=require_called_ae_title,
            allowed_calling_ae_titles=allowed_calling_ae_titles,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
        )
        self.idle_timeout = idle_timeout
        if verbose:
            logging.getLogger("aiodicom").setLevel(logging.INFO)

    async def _serve_association(self, assoc: Association) -> None:
        await serve_messages(assoc, ECHO_HANDLERS, idle_timeout=self.idle_timeout)
