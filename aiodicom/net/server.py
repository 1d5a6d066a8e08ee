"""The listener: one task per association, a limit on concurrent associations, graceful stop."""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Protocol, Self, cast

from aiodicom.errors import DicomError, ListenError, describe_rejection
from aiodicom.net.access import (
    DEFAULT_MAX_ASSOCIATIONS_PER_PEER,
    LIMIT_REACHED,
    AccessControl,
    AllowedHost,
    AssociationHook,
    ConnectionHook,
    IdentityHook,
    peer_key,
)
from aiodicom.net.association import Association
from aiodicom.net.options import KEEP, AssociationOptions, Keep, Option
from aiodicom.net.tls import TlsAcceptor, TlsFailure
from aiodicom.ul.items import PresentationContextResult
from aiodicom.ul.negotiation import (
    REASON_LOCAL_LIMIT_EXCEEDED,
    REJECTED_TRANSIENT,
    SOURCE_PRESENTATION,
    ContextPolicy,
    accept,
    check_request,
)
from aiodicom.ul.pdu import AAssociateRJ

log = logging.getLogger("aiodicom.server")

AssociationHandler = Callable[[Association], Awaitable[None]]


class Admission(Protocol):
    """Another count of associations that a server must also stay within: the parent of a server's worker
    processes (:mod:`aiodicom.scp.workers`) counts those of every worker, for the limits of the whole."""

    async def admit(self, host: str) -> bool:
        """Whether one more association from ``host`` fits (it is then counted until :meth:`release`)."""
        ...

    def release(self, host: str) -> None:
        """An association that :meth:`admit` let in has ended."""
        ...


def listen_error(exc: OSError, where: str) -> ListenError:
    """The :class:`ListenError` that says why binding ``where`` failed."""
    if exc.errno == errno.EADDRINUSE:
        return ListenError(exc.errno, f"cannot listen on {where}: the port is already in use")
    if exc.errno == errno.EACCES:
        return ListenError(
            exc.errno, f"cannot listen on {where}: ports below 1024 need privileges (try a port above 1024)"
        )
    return ListenError(exc.errno, f"cannot listen on {where}: {exc.strerror or exc}")


class DicomServer:
    """Accepts associations and runs ``handler(assoc)`` for each, in its own task.

    ``host`` None listens on every interface (IPv4 and IPv6); ``port`` 0 picks a free port (see :attr:`port`).
    Associations beyond ``max_associations`` are rejected transiently (local limit exceeded). Connections
    that have not associated yet are limited to ``max_pending_connections`` (default: 4 x
    ``max_associations``), of which one peer address may hold ``max_pending_per_peer`` (default: a
    quarter, at least 4); more are closed at once (those over the share are counted in
    ``access.refused_pending``). Each is closed ``artim_timeout`` seconds after it connected if no whole
    A-ASSOCIATE-RQ came by then (bytes do not extend that deadline), or at once by :meth:`stop`.

    Who may connect (see :mod:`aiodicom.net.access` and docs/access-control.md): ``allowed_hosts``
    (addresses and networks) and ``on_connection(peer)`` at accept time, before anything is read;
    ``allowed_calling_ae_titles`` and ``require_called_ae_title``, then ``require_user_identity`` and
    ``on_user_identity(identity)``, then ``on_association_request(request)`` once the A-ASSOCIATE-RQ came.
    One peer address holds at most ``max_associations_per_peer`` associations (None: no limit); beyond,
    it is rejected transiently like a full server. What was refused is counted in :attr:`access`.

    :meth:`stop` is graceful: each association finishes the message it is receiving or handling, for at most
    ``drain_timeout`` seconds (default 30), and is answered before it ends.

    With ``tls`` (an ``ssl.SSLContext``, see :func:`aiodicom.net.tls.server_context`) every connection is
    TLS: accepted as TCP, then its handshake runs, at most ``max_tls_handshakes`` at a time (inside the
    pending-connection limit; more wait for a turn, up to ``artim_timeout``) and each has
    ``tls_handshake_timeout`` seconds. A handshake that fails is logged once with its cause and counted in
    :attr:`tls_failures`; its connection closes at once. The ARTIM timer starts when the handshake is done.
    """

    ae_title: Option[str] = Option("ae_title")
    max_pdu_length: Option[int] = Option("max_pdu_length")
    max_send_pdu_length: Option[int | None] = Option("max_send_pdu_length")
    strict: Option[bool] = Option("strict")
    idle_timeout: Option[float | None] = Option("idle_timeout")
    artim_timeout: Option[float] = Option("artim_timeout")
    implementation_class_uid: Option[str] = Option("implementation_class_uid")
    implementation_version_name: Option[str] = Option("implementation_version_name")
    tls: Option[ssl.SSLContext | None] = Option("tls")

    def __init__(
        self,
        handler: AssociationHandler,
        *,
        port: int,
        host: str | None = "0.0.0.0",
        options: AssociationOptions | None = None,
        policy: ContextPolicy | None = None,
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
        logger: logging.Logger = log,
        ae_title: str | Keep = KEEP,
        max_pdu_length: int | Keep = KEEP,
        max_send_pdu_length: int | Keep | None = KEEP,
        strict: bool | Keep = KEEP,
        idle_timeout: float | Keep | None = KEEP,
        artim_timeout: float | Keep = KEEP,
        implementation_class_uid: str | Keep = KEEP,
        implementation_version_name: str | Keep = KEEP,
        tls: ssl.SSLContext | Keep | None = KEEP,
        tls_handshake_timeout: float | Keep = KEEP,
        max_tls_handshakes: int = 32,
    ) -> None:
        if max_associations < 1:
            raise ValueError(f"max_associations must be at least 1, not {max_associations}")
        if max_pending_connections is not None and max_pending_connections < 1:
            raise ValueError(f"max_pending_connections must be at least 1, not {max_pending_connections}")
        if max_pending_per_peer is not None and max_pending_per_peer < 1:
            raise ValueError(f"max_pending_per_peer must be at least 1, not {max_pending_per_peer}")
        if drain_timeout < 0:
            raise ValueError(f"drain_timeout cannot be negative, not {drain_timeout}")
        self.handler = handler
        self.host = host
        self.requested_port = port
        #: How this server associates (its AE title, PDU sizes, idle and ARTIM timeouts, implementation).
        self.options: AssociationOptions = (options or AssociationOptions()).replace(
            ae_title=ae_title,
            max_pdu_length=max_pdu_length,
            max_send_pdu_length=max_send_pdu_length,
            strict=strict,
            idle_timeout=idle_timeout,
            artim_timeout=artim_timeout,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
            tls=tls,
            tls_handshake_timeout=tls_handshake_timeout,
        )
        if max_tls_handshakes < 1:
            raise ValueError(f"max_tls_handshakes must be at least 1, not {max_tls_handshakes}")
        self.max_tls_handshakes = max_tls_handshakes
        self._tls: TlsAcceptor | None = None
        self.policy = policy or ContextPolicy(abstract_syntaxes=frozenset())
        self.max_associations = max_associations
        self.max_pending_connections = max_pending_connections or 4 * max_associations
        #: Connections one peer address may hold before it associates (see :func:`default_pending_per_peer`).
        self.max_pending_per_peer = max_pending_per_peer or default_pending_per_peer(
            self.max_pending_connections
        )
        #: How long :meth:`stop` lets associations finish the instance they are receiving (seconds).
        self.drain_timeout = drain_timeout
        self.require_called_ae_title = require_called_ae_title
        self.allowed_calling_ae_titles = (
            None if allowed_calling_ae_titles is None else frozenset(allowed_calling_ae_titles)
        )
        self.log = logger
        #: The access settings (hosts, hooks, the per-peer limit) and the counts of what they refused.
        self.access = AccessControl(
            allowed_hosts=allowed_hosts,
            on_connection=on_connection,
            on_user_identity=on_user_identity,
            require_user_identity=require_user_identity,
            on_association_request=on_association_request,
            max_associations_per_peer=max_associations_per_peer,
            hook_timeout=self.options.artim_timeout,
            max_screening=self.max_pending_connections,
            logger=logger,
        )
        self.associations: set[Association] = set()
        self._server: asyncio.Server | None = None
        self._bound_port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._busy: set[Association] = set()  # handling a message: a graceful stop waits for it
        # connections that have not associated (nor been rejected) yet, and how many each address holds
        self._held: set[_Pending] = set()
        self._held_by_peer: dict[str, int] = {}
        self._refused_pending = 0
        #: A socket already bound and listening to serve on instead of ``host`` and ``port`` (a worker
        #: process's, inherited from its parent); it is closed at :meth:`stop`.
        self.listen_socket: socket.socket | None = None
        #: Who else counts the associations, when not this server alone (see :class:`Admission`).
        self.admission: Admission | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0); it stays known after :meth:`stop`."""
        return self._bound_port or self.requested_port

    @property
    def is_serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self) -> None:
        """Start listening. Raises :class:`ListenError` for a port in use or one that needs privileges."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._stopping = False
        if self.listen_socket is not None:
            self._server = await loop.create_server(self._new_connection, sock=self.listen_socket)
        else:
            try:
                self._server = await loop.create_server(
                    self._new_connection, self.host, self.requested_port, reuse_address=True
                )
            except OSError as exc:
                raise listen_error(exc, f"{self.host or '*'}:{self.requested_port}") from exc
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        """Serve until cancelled, then stop gracefully (:meth:`stop`)."""
        await self.start()
        assert self._server is not None
        try:
            # not asyncio.Server.serve_forever: from Python 3.12 on, cancelled, it waits for every
            # connection to close before returning, and ours close only in stop(), which would run after
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            await self.stop()
            raise

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting and close the connections that have not associated yet; let each association
        finish the message it is receiving or handling and answer it, then end it (A-ABORT); an association
        with nothing on its way in ends at once.

        An association counts as busy from the first PDV of a request's command (a C-STORE of 100 MB that
        is halfway in is finished, not cut). Those still running after ``timeout`` seconds (default
        :attr:`drain_timeout`) are aborted: what they were receiving is discarded, nothing of it stored.
        """
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for held in list(self._held):  # nothing of theirs is on its way in: they are not waited for
            held.abort()
        for assoc in list(self.associations):
            # one receiving or handling a message finishes it first (see busy())
            if assoc not in self._busy and not assoc.receiving:
                assoc.abort()
        if self._tasks:
            deadline = self.drain_timeout if timeout is None else timeout
            _, pending = await asyncio.wait(self._tasks, timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                self.log.warning("%d associations still busy after %g s: aborted", len(pending), deadline)
                await asyncio.wait(pending, timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` began: an association ends after the message it is handling."""
        return self._stopping

    def busy(self, assoc: Association) -> None:
        """``assoc`` is handling a message: a graceful stop lets it finish (then :meth:`idle`).

        An association is also busy, without this call, while a message is on its way in
        (:attr:`Association.receiving <aiodicom.net.association.Association.receiving>`)."""
        self._busy.add(assoc)

    def idle(self, assoc: Association) -> None:
        """``assoc`` finished handling its message."""
        self._busy.discard(assoc)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -------------------------------------------------------------------------------- per connection

    @property
    def tls_failures(self) -> collections.Counter[str]:
        """TLS handshakes that failed, by kind (``unknown_ca``, ``expired``, ``protocol_version``,
        ``no_certificate``, ``not_tls``, ``timeout``, ``busy``...: see
        :func:`aiodicom.net.tls.tls_failure_kind`)."""
        return self._tls.failures if self._tls is not None else collections.Counter()

    @property
    def tls_handshakes(self) -> int:
        """TLS handshakes completed."""
        return self._tls.completed if self._tls is not None else 0

    @property
    def pending_connections(self) -> int:
        """Connections that have not associated (nor been rejected) yet, TLS handshakes included."""
        return len(self._held)

    @property
    def pending_by_peer(self) -> dict[str, int]:
        """How many of :attr:`pending_connections` each peer address holds (a copy)."""
        return dict(self._held_by_peer)

    _pending = pending_connections  # the count's earlier name

    def _new_connection(self) -> asyncio.BaseProtocol:
        if (screen := self.access.screen(self._new_connection)) is not None:  # allowed_hosts, on_connection
            return screen
        return _Pending(self)  # counted when the connection is made: only then is its peer known

    def _hold(self, pending: _Pending, host: str) -> asyncio.BaseProtocol | None:
        """Count a new connection from ``host`` as pending and give the protocol that serves it; None (the
        connection is to be closed) when its address already holds its share or the server is full."""
        key = peer_key(host)
        held = self._held_by_peer.get(key, 0)
        if held >= self.max_pending_per_peer:
            self.access.refuse_pending(key, held)
            return None
        if len(self._held) >= self.max_pending_connections:
            self._refused_pending += 1
            if self._refused_pending in (1, 10, 100) or self._refused_pending % 1000 == 0:
                self.log.warning(
                    "%d connections not yet associated (the limit): closing new ones (%d so far)",
                    len(self._held),
                    self._refused_pending,
                )
            return None
        self._held.add(pending)
        self._held_by_peer[key] = held + 1
        pending.key = key
        try:
            context = self.options.tls
            if context is None:
                return self._associate(pending)
            if self._tls is None or self._tls.context is not context:
                self._tls = TlsAcceptor(
                    context,
                    handshake_timeout=self.options.tls_handshake_timeout,
                    max_handshakes=self.max_tls_handshakes,
                    wait_timeout=self.options.artim_timeout,
                    logger=self.log,
                    on_failure=self._tls_failed,
                )
            return self._tls.protocol(pending.handshaken, pending.release, pending.handshaking)
        except BaseException:
            pending.release()
            raise

    def _release(self, pending: _Pending, key: str) -> None:
        self._held.discard(pending)
        left = self._held_by_peer[key] - 1
        if left:
            self._held_by_peer[key] = left
        else:
            del self._held_by_peer[key]

    def _tls_failed(self, failure: TlsFailure) -> None:
        """A TLS handshake failed (already logged and counted in :attr:`tls_failures`): for subclasses
        that report it as an event."""

    def _associate(self, pending: _Pending) -> asyncio.BaseProtocol:
        """The protocol of a new connection (after its TLS handshake, with TLS) and the task serving it."""
        assoc = Association("acceptor", self.options)
        protocol = assoc.protocol_factory()
        task = asyncio.get_running_loop().create_task(self._serve(assoc, pending))
        self._tasks.add(task)
        task.add_done_callback(pending.served)
        return protocol

    async def _serve(self, assoc: Association, pending: _Pending) -> None:
        try:
            rq = await assoc.wait_request()
        except DicomError as exc:
            # whatever went out (an A-ABORT, an A-ASSOCIATE-RJ) is flushed, then the connection is closed at
            # once: a peer that sent something other than an association request is not waited for
            self.log.debug("connection from %s:%s ended before an association: %s", *assoc.peer, exc)
            assoc.close()
            await assoc.wait_closed(self.artim_timeout)
            return
        finally:
            pending.release()  # associated, rejected, ARTIM, closed by the peer, stopped: the slot is free
        host, port = assoc.peer
        self.log.info(
            "association request from %s:%s: calling AE %r, called AE %r, %d contexts",
            host,
            port,
            rq.calling_ae_title,
            rq.called_ae_title,
            len(rq.presentation_contexts),
        )
        rj = check_request(
            rq,
            ae_title=self.ae_title,
            require_called_ae_title=self.require_called_ae_title,
            allowed_calling_ae_titles=self.allowed_calling_ae_titles,
        )
        identity_response: bytes | None = None
        if rj is None:  # the user identity and the on_association_request hook
            rj, identity_response = await self.access.check_request(rq, assoc.peer)
        admitted = False  # counted by self.admission, to be released
        if rj is None and self.admission is not None:
            admitted = await self.admission.admit(host)
            if not admitted:
                rj = LIMIT_REACHED
        if rj is None and (self._stopping or len(self.associations) >= self.max_associations):
            rj = AAssociateRJ(REJECTED_TRANSIENT, SOURCE_PRESENTATION, REASON_LOCAL_LIMIT_EXCEEDED)
        if rj is None:  # checked with the admission, after every await: nothing slips in between
            rj = self.access.peer_limit(host, (a.peer[0] for a in self.associations))
        if rj is not None:
            if admitted:
                assert self.admission is not None
                self.admission.release(host)
            self.access.rejected[(rj.result, rj.source, rj.reason)] += 1
            self.log.info("rejected the association from %s:%s (%s)", host, port, _rj_text(rj))
            assoc.reject(rj)
            await assoc.wait_closed(self.artim_timeout)
            return
        ac, accepted = accept(
            rq,
            self.policy,
            max_pdu_length=self.max_pdu_length,
            implementation_class_uid=self.implementation_class_uid,
            implementation_version_name=self.implementation_version_name,
            user_identity_response=identity_response,
            max_ops_performed=self.options.max_ops_performed,
        )
        for proposed, answer in zip(rq.presentation_contexts, ac.presentation_contexts, strict=True):
            self.log.debug(
                "context %d %s: %s",
                proposed.context_id,
                proposed.abstract_syntax,
                answer.transfer_syntax
                if answer.accepted
                else PresentationContextResult.NAMES.get(answer.result),
            )
        self.associations.add(assoc)
        try:
            assoc.accept(ac, accepted)
            await self.handler(assoc)
        except DicomError as exc:
            self.log.info("association with %s:%s ended: %s", host, port, exc)
        except Exception:
            self.log.exception("error while serving %s:%s; aborting the association", host, port)
            assoc.abort()
        finally:
            self.associations.discard(assoc)
            if admitted:
                assert self.admission is not None
                self.admission.release(host)
            if assoc.is_open:
                assoc.abort()
            await assoc.wait_closed(self.artim_timeout)


class _Pending(asyncio.Protocol):
    """A new connection until it is counted as pending (in all, and for its peer address): then its
    transport goes to the protocol that serves it (the association's, or the TLS handshake's); over a limit
    it is closed at once. :meth:`release` gives the count back, once, however the connection ends before
    it associated (a whole A-ASSOCIATE-RQ, ARTIM, closed by the peer, a failed handshake, :meth:`stop`)."""

    __slots__ = ("handshake", "key", "server", "transport", "upgraded")

    def __init__(self, server: DicomServer) -> None:
        self.server = server
        self.key: str | None = None  # the address it is counted for; None once released (or never held)
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Task[None] | None = None
        self.upgraded = False  # the handshake is done: the association's task holds the count now

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)
        peer = transport.get_extra_info("peername")
        protocol = self.server._hold(self, str(peer[0]) if peer else "")
        if protocol is None:
            transport.close()
            return
        self.transport = transport
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    def release(self) -> None:
        """The connection is no longer pending (called again, it does nothing)."""
        key, self.key = self.key, None
        if key is not None:
            self.transport = None
            self.server._release(self, key)

    def abort(self) -> None:
        """Close the connection now (the server stops): the paths above release it."""
        if self.handshake is not None and not self.upgraded:
            self.handshake.cancel()  # the handshake closes the connection and releases on its way out
        elif self.transport is not None:
            self.transport.abort()

    def served(self, task: asyncio.Task[None]) -> None:
        self.server._tasks.discard(task)
        self.release()  # a task cancelled before its first step never reached its own release

    def handshaking(self, task: asyncio.Task[None]) -> None:
        self.handshake = task
        self.server._tasks.add(task)
        task.add_done_callback(self._handshake_done)

    def handshaken(self) -> asyncio.BaseProtocol:
        protocol = self.server._associate(self)
        self.upgraded = True
        return protocol

    def _handshake_done(self, task: asyncio.Task[None]) -> None:
        self.server._tasks.discard(task)
        if not self.upgraded:  # failed (already closed) or cancelled, perhaps before its first step
            transport = self.transport
            self.release()
            if transport is not None and not transport.is_closing():
                transport.abort()


def default_pending_per_peer(max_pending_connections: int) -> int:
    """The default ``max_pending_per_peer``: a quarter of ``max_pending_connections``, at least 4.

    Silent connections from one address then fill at most a quarter of the pending slots: it takes four
    addresses to lock others out until ARTIM closes them. With the defaults (256 pending) that is 64, as many
    as the associations a server holds and 4 x ``max_associations_per_peer``, so a client that opens all the
    associations it may hold at once, and retries, is never near it; 4 leaves a small server room for one
    client's few connections at once."""
    return max(4, max_pending_connections // 4)


def _rj_text(rj: AAssociateRJ) -> str:
    return describe_rejection(rj.result, rj.source, rj.reason)
