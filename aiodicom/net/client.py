"""``aiodicom.connect``: open an association as the requestor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol, Unpack

from aiodicom.errors import AssociationAborted, NoAcceptableContext, PeerUnreachable, TlsError
from aiodicom.net.address import Address, parse_address, validate_ae_title, validate_implementation
from aiodicom.net.association import Association
from aiodicom.net.identity import IdentityNotConfirmed, resolve_identity
from aiodicom.net.options import AssociationOptions, OptionKeywords
from aiodicom.net.tls import describe_tls_error, tls_failure_kind
from aiodicom.ul.items import (
    AsyncOperationsWindow,
    PresentationContextResult,
    PresentationContextRQ,
    RoleSelection,
    UserIdentityRQ,
)
from aiodicom.ul.negotiation import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    VERIFICATION_SOP_CLASS,
    propose_contexts,
    user_information,
)
from aiodicom.ul.pdu import AAssociateRQ

log = logging.getLogger("aiodicom.association")

DEFAULT_TRANSFER_SYNTAXES = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)

#: A context to propose: an abstract syntax alone (with the uncompressed defaults), a pair
#: ``(abstract syntax, transfer syntaxes)``, or a ready :class:`PresentationContextRQ`.
ContextSpec = str | tuple[str, Sequence[str]] | PresentationContextRQ


class Requestor(Protocol):
    """What opens associations for a service (a :class:`~aiodicom.scu.base.Scu`): the peer's address,
    ``connect``, and the longest silence to wait for a response."""

    address: Address
    dimse_timeout: float | None

    def connect(
        self, contexts: Iterable[ContextSpec], role_selections: Iterable[RoleSelection] = ()
    ) -> contextlib.AbstractAsyncContextManager[Association]: ...


def build_contexts(contexts: Iterable[ContextSpec] | None) -> tuple[PresentationContextRQ, ...]:
    """Turn context specifications into numbered proposals (Verification when none are given)."""
    if contexts is None:
        contexts = [VERIFICATION_SOP_CLASS]
    pairs: list[tuple[str, Sequence[str]]] = []
    ready: list[PresentationContextRQ] = []
    for spec in contexts:
        if isinstance(spec, PresentationContextRQ):
            ready.append(spec)
        elif isinstance(spec, str):
            pairs.append((spec, DEFAULT_TRANSFER_SYNTAXES))
        else:
            pairs.append((spec[0], tuple(spec[1])))
    if ready and pairs:
        raise ValueError("give either PresentationContextRQ objects or syntaxes, not both")
    return tuple(ready) if ready else propose_contexts(pairs)


def options_of(
    options: AssociationOptions | None,
    **settings: Unpack[OptionKeywords],
) -> AssociationOptions:
    """``options`` (or the defaults) with the reference documents' keyword names applied over them.

    A deprecated ``UserIdentityRQ`` as ``user_identity`` is turned into a ``UserIdentity`` (with a warning).
    """
    changes: dict[str, Any] = {("ae_title" if k == "calling_ae_title" else k): v for k, v in settings.items()}
    if isinstance(changes.get("user_identity"), UserIdentityRQ):
        changes["user_identity"] = resolve_identity(changes["user_identity"])
    return (options or AssociationOptions()).replace(**changes)


async def open_association(
    addr: str | Address | tuple[str, int],
    *,
    contexts: Iterable[ContextSpec] | None = None,
    options: AssociationOptions | None = None,
    role_selections: Iterable[RoleSelection] = (),
    require_accepted_context: bool = True,
    **settings: Unpack[OptionKeywords],
) -> Association:
    """Connect and negotiate an association; the caller must release or abort it.

    ``options`` (:class:`~aiodicom.net.options.AssociationOptions`) says how; the keyword arguments of
    :class:`~aiodicom.net.options.OptionKeywords` (``calling_ae_title``, ``called_ae_title``,
    ``max_pdu_length``, ``max_send_pdu_length``, ``strict``, ``connect_timeout``, ``acse_timeout``,
    ``user_identity``, ``implementation_class_uid``, ``implementation_version_name``, ``tls``,
    ``tls_handshake_timeout``, ``max_ops_invoked``) override it. With ``max_ops_invoked`` an asynchronous
    operations window is proposed; :attr:`Association.max_ops_invoked` is then the one negotiated.
    With ``tls`` (an ``ssl.SSLContext``) the connection is TLS,
    the peer's address given as the server name (checked only if the context checks hostnames). The
    user identity is sent in the request; when it asks for a positive response and the peer's
    A-ASSOCIATE-AC has none, the association is released and :class:`IdentityNotConfirmed` raised. With
    ``require_accepted_context=False`` an association on which the peer accepted no context is returned
    (to read why from its A-ASSOCIATE-AC) instead of raising :class:`NoAcceptableContext`.

    Raises :class:`PeerUnreachable` when no connection can be made (:class:`~aiodicom.errors.TlsError`
    when the TLS handshake fails, naming why), :class:`AssociationRejected` when the
    peer rejects the association, :class:`AssociationAborted` when it aborts or does not answer in
    ``acse_timeout``.
    """
    opts = options_of(options, **settings)
    address = parse_address(addr)
    called = validate_ae_title(opts.called_ae_title or address.ae_title or "ANY-SCP", "called AE title")
    identity = opts.user_identity
    rq = AAssociateRQ(
        called,
        opts.ae_title,
        build_contexts(contexts),
        user_information(
            opts.max_pdu_length,
            role_selections=role_selections,
            async_ops_window=None
            if opts.max_ops_invoked is None
            else AsyncOperationsWindow(opts.max_ops_invoked, 1),
            user_identity=identity.to_item() if identity is not None else None,
            implementation_class_uid=opts.implementation_class_uid,
            implementation_version_name=opts.implementation_version_name,
        ),
    )
    loop = asyncio.get_running_loop()
    assoc = Association("requestor", opts, request=rq)

    log.debug("connecting to %s as %s%s", address, opts.ae_title, " over TLS" if opts.tls else "")
    tls: dict[str, Any] = {}
    if opts.tls is not None:
        tls = {
            "ssl": opts.tls,
            "server_hostname": address.host,
            "ssl_handshake_timeout": opts.tls_handshake_timeout,
        }
    try:
        async with asyncio.timeout(opts.connect_timeout):
            await loop.create_connection(assoc.protocol_factory, address.host, address.port, **tls)
    except TimeoutError as exc:
        raise PeerUnreachable(f"{address}: no connection within {opts.connect_timeout:g} s") from exc
    except (ssl.SSLError, ssl.CertificateError) as exc:
        raise _tls_error(address, exc) from exc
    except ConnectionAbortedError as exc:
        if opts.tls is not None:  # asyncio's handshake timeout
            raise _tls_error(address, exc) from exc
        raise PeerUnreachable(f"cannot connect to {address}: {exc}") from exc
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        raise PeerUnreachable(f"cannot connect to {address}: {reason.lower()}") from exc
    try:
        ac = await assoc.wait_established()
    except AssociationAborted as exc:
        assoc.abort()
        # in TLS 1.3 the server checks our certificate after our side of the handshake is done: its
        # refusal arrives as an alert instead of the A-ASSOCIATE-AC
        lost = assoc.protocol.lost_error if assoc.protocol is not None else None
        if isinstance(lost, ssl.SSLError):
            raise _tls_error(address, lost) from exc
        raise
    except BaseException:
        assoc.abort()
        raise
    if (
        identity is not None
        and identity.positive_response_requested
        and ac.user_information.user_identity_ac is None
    ):
        await assoc.release(opts.acse_timeout)
        raise IdentityNotConfirmed(
            f"{address} did not confirm the user identity ({identity.kind.name.lower()}): a positive "
            "response was requested and its A-ASSOCIATE-AC has none; the association was released"
        )
    if not assoc.accepted and require_accepted_context:
        await assoc.release(opts.acse_timeout)
        reasons = sorted(
            {
                PresentationContextResult.NAMES.get(pc.result, str(pc.result))
                for pc in ac.presentation_contexts
            }
        )
        raise NoAcceptableContext(
            f"{address} accepted none of the proposed presentation contexts ({', '.join(reasons)})"
        )
    log.debug("association with %s established: %d contexts accepted", address, len(assoc.accepted))
    return assoc


def _tls_error(address: Address, exc: BaseException) -> TlsError:
    kind, _ = tls_failure_kind(exc)
    return TlsError(f"TLS handshake with {address} failed: {describe_tls_error(exc)}", kind)


@contextlib.asynccontextmanager
async def connect(
    addr: str | Address | tuple[str, int],
    *,
    contexts: Iterable[ContextSpec] | None = None,
    options: AssociationOptions | None = None,
    role_selections: Iterable[RoleSelection] = (),
    **settings: Unpack[OptionKeywords],
) -> AsyncIterator[Association]:
    """Open an association; release it on exit, abort it on an error or a cancellation.

    ``addr`` is ``host:port``, ``AE@host:port``, ``[v6]:port`` or ``AE@[v6]:port``; an AE title in it is the
    called AE title unless one is given. ``contexts`` defaults to Verification::

        async with aiodicom.connect("PACS@127.0.0.1:11112") as assoc:
            status = await assoc.c_echo()

    ``options`` and the keyword arguments are as for :func:`open_association`.
    """
    opts = options_of(options, **settings)
    assoc = await open_association(addr, contexts=contexts, options=opts, role_selections=role_selections)
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        await assoc.wait_closed(5.0)
        raise
    if assoc.is_open:
        await assoc.release(opts.acse_timeout)
    else:
        assoc.close()
        await assoc.wait_closed(5.0)


__all__ = [
    "AssociationOptions",
    "ContextSpec",
    "Requestor",
    "build_contexts",
    "connect",
    "open_association",
    "options_of",
    "validate_implementation",
]
