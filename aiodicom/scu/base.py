"""What every user-facing requestor class shares: the peer's address, AE titles, timeouts, identity."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from aiodicom.net.address import Address, parse_address, validate_ae_title
from aiodicom.net.association import Association
from aiodicom.net.client import ContextSpec, connect, validate_implementation
from aiodicom.net.identity import UserIdentity, resolve_identity
from aiodicom.ul.items import RoleSelection, UserIdentityRQ
from aiodicom.ul.negotiation import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
)

log = logging.getLogger("aiodicom.scu")


def uid_name(uid: str) -> str:
    """The name of a SOP class or transfer syntax UID (the UID itself when pydicom does not know it)."""
    from pydicom.uid import UID

    return str(UID(uid).name) or uid


def log_negotiation(assoc: Association, address: object, logger: logging.Logger = log) -> None:
    """At INFO: the association, then each proposed context, accepted (with its syntax) or rejected."""
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "association with %s established: %d of %d contexts accepted, max PDU %d",
        address,
        len(assoc.accepted),
        len(assoc.request.presentation_contexts),
        assoc.peer_max_pdu_length,
    )
    for proposal in assoc.request.presentation_contexts:
        ctx = assoc.accepted.get(proposal.context_id)
        verdict = f"accepted with {uid_name(ctx.transfer_syntax)}" if ctx else "rejected"
        role = " (SCP role)" if ctx is not None and ctx.scp_role else ""
        logger.info(
            "context %d %s: %s%s", proposal.context_id, uid_name(proposal.abstract_syntax), verdict, role
        )


class Scu:
    """What every requestor class shares: the peer's address, AE titles, PDU size and timeouts.

    ``calling_ae_title`` defaults to the class's own (``ECHO-SCU``, ``FIND-SCU``...); ``called_ae_title`` to
    the AE title in ``addr``, else ``ANY-SCP``. ``max_pdu_length`` is the most we receive;
    ``connect_timeout`` and ``acse_timeout`` bound the connection and the association's negotiation,
    ``dimse_timeout`` the wait for each response (None: no limit). ``verbose`` logs the protocol at INFO.

    ``user_identity`` (a :class:`~aiodicom.net.identity.UserIdentity`) is sent with every association; with
    ``positive_response_requested`` an association the peer does not confirm fails with
    :class:`~aiodicom.net.identity.IdentityNotConfirmed`. ``implementation_class_uid`` and
    ``implementation_version_name`` identify us to the peer (aiodicom's own by default). These three are
    also attributes, which may be set after construction.
    """

    default_calling_ae_title = "AIODICOM"

    def __init__(
        self,
        addr: str | Address,
        *,
        calling_ae_title: str | None = None,
        called_ae_title: str | None = None,
        max_pdu_length: int = 16384,
        connect_timeout: float = 30.0,
        acse_timeout: float = 30.0,
        dimse_timeout: float | None = 60.0,
        verbose: bool = False,
        user_identity: UserIdentity | None = None,
        implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
        implementation_version_name: str = IMPLEMENTATION_VERSION_NAME,
    ) -> None:
        self.address = parse_address(addr)
        self.calling_ae_title = validate_ae_title(
            calling_ae_title or self.default_calling_ae_title, "calling AE title"
        )
        self.called_ae_title = validate_ae_title(
            called_ae_title or self.address.ae_title or "ANY-SCP", "called AE title"
        )
        self.max_pdu_length = max_pdu_length
        self.connect_timeout = connect_timeout
        self.acse_timeout = acse_timeout
        self.dimse_timeout = dimse_timeout
        self.user_identity: UserIdentity | None = resolve_identity(_identity_arg(user_identity))
        self.implementation_class_uid, self.implementation_version_name = validate_implementation(
            implementation_class_uid, implementation_version_name
        )
        if verbose:
            logging.getLogger("aiodicom").setLevel(logging.INFO)

    @contextlib.asynccontextmanager
    async def connect(
        self, contexts: Iterable[ContextSpec], role_selections: Iterable[RoleSelection] = ()
    ) -> AsyncIterator[Association]:
        """An association with the peer proposing ``contexts``, released when the block ends."""
        async with connect(
            self.address,
            calling_ae_title=self.calling_ae_title,
            called_ae_title=self.called_ae_title,
            contexts=contexts,
            max_pdu_length=self.max_pdu_length,
            connect_timeout=self.connect_timeout,
            acse_timeout=self.acse_timeout,
            role_selections=role_selections,
            user_identity=self.user_identity,
            implementation_class_uid=self.implementation_class_uid,
            implementation_version_name=self.implementation_version_name,
        ) as assoc:
            log_negotiation(assoc, self.address)
            yield assoc


def _identity_arg(value: object) -> UserIdentity | UserIdentityRQ | None:
    if value is None or isinstance(value, UserIdentity | UserIdentityRQ):
        return value
    raise TypeError(f"user_identity is a UserIdentity, not {type(value).__name__}")
