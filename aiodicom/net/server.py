"""The listener: one task per association, a limit on concurrent associations, graceful stop."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Self

from aiodicom.errors import DicomError, ListenError
from aiodicom.net.address import validate_ae_title
from aiodicom.net.association import Association
from aiodicom.net.transport import DicomProtocol
from aiodicom.ul.connection import DEFAULT_ARTIM_TIMEOUT, Connection
from aiodicom.ul.items import PresentationContextResult, describe_rejection
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


class DicomServer:
    """Accepts associations and runs ``handler(assoc)`` for each, in its own task.

    ``host`` None listens on every interface (IPv4 and IPv6); ``port`` 0 picks a free port (see :attr:`port`).
    Associations beyond ``max_associations`` are rejected transiently (local limit exceeded). A peer that
    connects and sends no A-ASSOCIATE-RQ is closed after ``artim_timeout``.
    """

    def __init__(
        self,
        handler: AssociationHandler,
        *,
        port: int,
        host: str | None = "0.0.0.0",
        ae_title: str = "AIODICOM",
        policy: ContextPolicy | None = None,
        max_pdu_length: int = 16384,
        max_send_pdu_length: int | None = None,
        strict: bool = False,
        max_associations: int = 64,
        artim_timeout: float = DEFAULT_ARTIM_TIMEOUT,
        require_called_ae_title: bool = False,
        allowed_calling_ae_titles: Collection[str] | None = None,
        logger: logging.Logger = log,
    ) -> None:
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.ae_title = validate_ae_title(ae_title)
        self.policy = policy or ContextPolicy(abstract_syntaxes=frozenset())
        self.max_pdu_length = max_pdu_length
        self.max_send_pdu_length = max_send_pdu_length
        self.strict = strict
        self.max_associations = max_associations
        self.artim_timeout = artim_timeout
        self.require_called_ae_title = require_called_ae_title
        self.allowed_calling_ae_titles = (
            None if allowed_calling_ae_titles is None else frozenset(allowed_calling_ae_titles)
        )
        self.log = logger
        self.associations: set[Association] = set()
        self._server: asyncio.Server | None = None
        self._bound_port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

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
        try:
            self._server = await loop.create_server(
                self._new_connection, self.host, self.requested_port, reuse_address=True
            )
        except OSError as exc:
            where = f"{self.host or '*'}:{self.requested_port}"
            if exc.errno == errno.EADDRINUSE:
                raise ListenError(exc.errno, f"cannot listen on {where}: the port is already in use") from exc
            if exc.errno == errno.EACCES:
                raise ListenError(
                    exc.errno,
                    f"cannot listen on {where}: ports below 1024 need privileges (try a port above 1024)",
                ) from exc
            raise ListenError(exc.errno, f"cannot listen on {where}: {exc.strerror or exc}") from exc
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            await self.stop()
            raise

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, let each association finish the message it is handling, then abort it.

        Associations still running after ``timeout`` seconds are aborted at once.
        """
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for assoc in list(self.associations):
            assoc.stop_when_idle()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -------------------------------------------------------------------------------- per connection

    def _new_connection(self) -> DicomProtocol:
        conn = Connection(
            "acceptor",
            max_pdu_length=self.max_pdu_length,
            strict=self.strict,
            artim_timeout=self.artim_timeout,
        )
        assoc = Association(conn, max_send_pdu_length=self.max_send_pdu_length)
        protocol = DicomProtocol(conn)
        assoc.attach(protocol)
        task = asyncio.get_running_loop().create_task(self._serve(assoc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return protocol

    async def _serve(self, assoc: Association) -> None:
        try:
            rq = await assoc.wait_request()
        except DicomError as exc:
            self.log.debug("connection from %s:%s ended before an association: %s", *assoc.peer, exc)
            await assoc.wait_closed(self.artim_timeout)
            return
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
        if rj is None and (self._stopping or len(self.associations) >= self.max_associations):
            rj = AAssociateRJ(REJECTED_TRANSIENT, SOURCE_PRESENTATION, REASON_LOCAL_LIMIT_EXCEEDED)
        if rj is not None:
            self.log.info("rejected the association from %s:%s (%s)", host, port, _rj_text(rj))
            assoc.reject(rj)
            await assoc.wait_closed(self.artim_timeout)
            return
        ac, accepted = accept(rq, self.policy, max_pdu_length=self.max_pdu_length)
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
            if assoc.is_open:
                assoc.abort()
            await assoc.wait_closed(self.artim_timeout)


def _rj_text(rj: AAssociateRJ) -> str:
    return describe_rejection(rj.result, rj.source, rj.reason)
