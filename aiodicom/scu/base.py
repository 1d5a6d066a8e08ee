"""What every user-facing requestor class shares: the peer's address, AE titles, timeouts, identity."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from aiodicom.dataset.tags import uid_name
from aiodicom.net.address import Address, parse_address
from aiodicom.net.association import Association
from aiodicom.net.client import ContextSpec, connect
from aiodicom.net.identity import UserIdentity, resolve_identity
from aiodicom.net.options import KEEP, AssociationOptions, Keep, Option
from aiodicom.net.tls import TlsContext
from aiodicom.services.events import instance_logger
from aiodicom.ul.items import RoleSelection, UserIdentityRQ

log = logging.getLogger("aiodicom.scu")


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
    """What every requestor class shares: the peer's address and the :class:`AssociationOptions`.

    ``options`` says how to associate (AE titles, PDU size, timeouts, user identity, implementation); the
    keyword arguments named as in the reference documents override it: ``calling_ae_title`` (our AE title;
    default the class's own, ``ECHO-SCU``, ``FIND-SCU``...), ``called_ae_title`` (default the AE title in
    ``addr``, else ``ANY-SCP``), ``max_pdu_length`` (the most we receive), ``connect_timeout`` and
    ``acse_timeout`` (the connection and the negotiation), ``dimse_timeout`` (the longest silence while a
    response is awaited; None: no limit), ``user_identity`` (a
    :class:`~aiodicom.net.identity.UserIdentity` sent with every association; with
    ``positive_response_requested`` an association the peer does not confirm fails with
    :class:`~aiodicom.errors.IdentityNotConfirmed`), ``implementation_class_uid`` and
    ``implementation_version_name``, ``tls`` (an ``ssl.SSLContext``: the connections are TLS; see
    :func:`aiodicom.net.tls.client_context`). They are attributes too, read from and written to
    :attr:`options`.

    ``verbose=True`` logs the protocol at INFO on this instance's own logger (``aiodicom.scu.<kind>.<n>``),
    never on a logger other instances share.
    """

    default_calling_ae_title = "AIODICOM"
    default_dimse_timeout: float | None = 60.0
    #: The last part of the loggers' names: ``aiodicom.scu.<kind>``.
    kind = "scu"

    calling_ae_title: Option[str] = Option("ae_title")
    called_ae_title: Option[str] = Option("called_ae_title")
    max_pdu_length: Option[int] = Option("max_pdu_length")
    connect_timeout: Option[float] = Option("connect_timeout")
    acse_timeout: Option[float] = Option("acse_timeout")
    dimse_timeout: Option[float | None] = Option("dimse_timeout")
    user_identity: Option[UserIdentity | None] = Option("user_identity")
    implementation_class_uid: Option[str] = Option("implementation_class_uid")
    implementation_version_name: Option[str] = Option("implementation_version_name")
    tls: Option[TlsContext | None] = Option("tls")

    def __init__(
        self,
        addr: str | Address,
        *,
        options: AssociationOptions | None = None,
        calling_ae_title: str | Keep | None = KEEP,
        called_ae_title: str | Keep | None = KEEP,
        max_pdu_length: int | Keep = KEEP,
        connect_timeout: float | Keep = KEEP,
        acse_timeout: float | Keep = KEEP,
        dimse_timeout: float | Keep | None = KEEP,
        verbose: bool = False,
        user_identity: UserIdentity | UserIdentityRQ | Keep | None = KEEP,
        implementation_class_uid: str | Keep = KEEP,
        implementation_version_name: str | Keep = KEEP,
        tls: TlsContext | Keep | None = KEEP,
    ) -> None:
        self.address = parse_address(addr)
        if options is None:
            options = AssociationOptions(
                ae_title=self.default_calling_ae_title, dimse_timeout=self.default_dimse_timeout
            )
        if isinstance(user_identity, UserIdentityRQ) or not isinstance(user_identity, Keep | UserIdentity):
            user_identity = resolve_identity(_identity_arg(user_identity))
        opts = options.replace(
            ae_title=calling_ae_title if calling_ae_title is not None else KEEP,
            called_ae_title=called_ae_title,
            max_pdu_length=max_pdu_length,
            connect_timeout=connect_timeout,
            acse_timeout=acse_timeout,
            dimse_timeout=dimse_timeout,
            user_identity=user_identity,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
            tls=tls,
        )
        if opts.called_ae_title is None:
            opts = opts.replace(called_ae_title=self.address.ae_title or "ANY-SCP")
        self.options: AssociationOptions = opts
        self.log = instance_logger(f"aiodicom.scu.{self.kind}", verbose)

    @contextlib.asynccontextmanager
    async def connect(
        self, contexts: Iterable[ContextSpec], role_selections: Iterable[RoleSelection] = ()
    ) -> AsyncIterator[Association]:
        """An association with the peer proposing ``contexts``, released when the block ends."""
        async with connect(
            self.address, contexts=contexts, options=self.options, role_selections=role_selections
        ) as assoc:
            log_negotiation(assoc, self.address, self.log)
            yield assoc


def _identity_arg(value: object) -> UserIdentity | UserIdentityRQ | None:
    if value is None or isinstance(value, UserIdentity | UserIdentityRQ):
        return value
    raise TypeError(f"user_identity is a UserIdentity, not {type(value).__name__}")
