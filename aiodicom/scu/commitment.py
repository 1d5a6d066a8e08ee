"""StorageCommitmentScu: ask a peer to commit instances it stored (PS3.4 Annex J, Push Model) and wait for
its report, on the same association or on one it opens to a receiver of ours."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydicom import Dataset

from aiodicom.dimse import CommandField
from aiodicom.errors import DimseError, NServiceError
from aiodicom.net.address import Address
from aiodicom.net.association import Association
from aiodicom.net.identity import UserIdentity
from aiodicom.net.options import KEEP, AssociationOptions, Keep
from aiodicom.net.server import DicomServer
from aiodicom.net.tls import TlsContext
from aiodicom.scu.base import Scu
from aiodicom.services.commitment import (
    REQUEST_COMMITMENT,
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_SOP_CLASS,
    SYNTAXES,
    CommitReference,
    CommitResult,
    action_information,
    parse_event,
    reference_of,
)
from aiodicom.services.dispatch import ServiceHandler, serve_messages
from aiodicom.services.echo import handle_echo
from aiodicom.services.events import instance_logger
from aiodicom.services.nservices import NRequest, NResult, n_action, new_uid, receive_event_report
from aiodicom.uids import UNCOMPRESSED_TRANSFER_SYNTAXES
from aiodicom.ul.negotiation import ContextPolicy

log = logging.getLogger("aiodicom.scu.commitment")

__all__ = ["CommitmentReceiver", "CommitmentRefused", "ReportWaiters", "StorageCommitmentScu"]

Instance = str | os.PathLike[str] | Dataset | tuple[str, str] | CommitReference


class CommitmentRefused(DimseError):
    """The SCP answered the N-ACTION with a failure status (nothing will be reported): ``status``,
    ``error_comment`` and the whole ``response``."""

    def __init__(self, response: NResult) -> None:
        super().__init__(response.message, response.status)
        self.response = response
        self.error_comment = response.error_comment


class ReportWaiters:
    """The transactions waiting for their N-EVENT-REPORT, by Transaction UID, on one receiver (or one
    association). A report for a transaction nobody waits for is answered with success and logged (the
    SCP would otherwise send it again and again), never dropped silently."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[CommitResult]] = {}

    def expect(self, transaction_uid: str) -> asyncio.Future[CommitResult]:
        future: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self._waiting[transaction_uid] = future
        return future

    def forget(self, transaction_uid: str) -> None:
        self._waiting.pop(transaction_uid, None)

    def handle(self, request: NRequest, *, same_association: bool = False) -> None:
        """The N-EVENT-REPORT handler: hand the report to its transaction."""
        try:
            result = parse_event(request.dataset, request.event_type_id)
        except ValueError as exc:
            raise NServiceError(0x0120, str(exc)) from None
        if request.event_type_id not in (1, 2):
            raise NServiceError(
                0x0113, f"Event Type ID {request.event_type_id} is not a storage commitment's"
            )
        result.same_association = same_association
        future = self._waiting.pop(result.transaction_uid, None)
        if future is None or future.done():
            log.warning(
                "storage commitment report from %s for transaction %s, which is not ours (or no longer "
                "awaited): answered success, ignored (%d committed, %d failed)",
                request.calling_ae_title,
                result.transaction_uid,
                len(result.committed),
                len(result.failed),
            )
            return
        future.set_result(result)


def _waiters_of(server: Any) -> ReportWaiters:
    """The report waiters of a receiver: a :class:`CommitmentReceiver`'s own, or those installed on a
    server with N-service handlers (a StoreScp that receives the reports too)."""
    waiters = getattr(server, "commitment_waiters", None)
    if isinstance(waiters, ReportWaiters):
        return waiters
    if not hasattr(server, "on_n_event_report"):
        raise TypeError(f"receive= is a CommitmentReceiver, a StoreScp or options, not {server!r}")
    waiters = ReportWaiters()
    server.commitment_waiters = waiters
    server.on_n_event_report(STORAGE_COMMITMENT_SOP_CLASS, waiters.handle)
    return waiters


class CommitmentReceiver(DicomServer):
    """A server for storage commitment reports sent on a new association: it accepts the Storage
    Commitment Push Model SOP class with the SCP role the commitment SCP proposes (SCU 0, SCP 1: the SCP
    sends the N-EVENT-REPORT as the association's requestor, PS3.4 J.3.3.1.3), answers C-ECHO, and hands
    each report to the transaction that awaits it (:class:`ReportWaiters`). The keyword arguments are
    :class:`~aiodicom.net.server.DicomServer`'s (``allowed_hosts``, ``tls``...)."""

    def __init__(
        self,
        port: int,
        *,
        host: str | None = "0.0.0.0",
        ae_title: str | Keep = KEEP,
        options: AssociationOptions | None = None,
        verbose: bool = False,
        **server: Any,
    ) -> None:
        classes = frozenset({STORAGE_COMMITMENT_SOP_CLASS})
        super().__init__(
            self._serve_association,
            port=port,
            host=host,
            ae_title=ae_title,
            options=options or AssociationOptions(ae_title="COMMIT-SCU"),
            policy=ContextPolicy(
                abstract_syntaxes=classes,
                transfer_syntaxes=UNCOMPRESSED_TRANSFER_SYNTAXES,
                scp_role_classes=classes,
            ),
            logger=instance_logger("aiodicom.scu.commitment.receiver", verbose),
            **server,
        )
        #: The transactions awaiting their report here.
        self.commitment_waiters = ReportWaiters()
        self._handlers: dict[int, ServiceHandler] = {
            CommandField.C_ECHO_RQ: handle_echo,
            CommandField.N_EVENT_REPORT_RQ: self._report,
        }

    async def _report(self, assoc: Association, message: Any) -> None:
        from aiodicom.services.nservices import serve_n_request

        await serve_n_request(assoc, message, self.commitment_waiters.handle, ae_title=self.ae_title)

    async def _serve_association(self, assoc: Association) -> None:
        await serve_messages(assoc, self._handlers, idle_timeout=self.idle_timeout, host=self)


class StorageCommitmentScu(Scu):
    """Storage Commitment Push Model SCU::

        scu = StorageCommitmentScu("PACS@10.0.0.5:104", calling_ae_title="CT1",
                                   receive={"port": 11115})
        result = await scu.commit(["a.dcm", "b.dcm"])
        for failure in result.failed:
            print(failure.message)

    :meth:`commit` sends the N-ACTION and waits at most ``timeout`` seconds for the report, wherever it
    comes: before or after the N-ACTION response on the same association (kept open meanwhile unless
    ``keep_association=False``), or on an association the SCP opens to ``receive``: options for a
    temporary :class:`CommitmentReceiver` (``{"port": 11115}``; its AE title defaults to our calling AE
    title, which the SCP must know with our host and that port), started before the N-ACTION and stopped
    after the report, or a running receiver (a CommitmentReceiver, or a StoreScp, which then serves the
    reports too). A failure status to the N-ACTION raises :class:`CommitmentRefused`; no report in time
    raises TimeoutError (the SCP may still report later: to a receiver that runs on, it is answered and
    logged).
    """

    default_calling_ae_title = "COMMIT-SCU"
    kind = "commitment"

    def __init__(
        self,
        addr: str | Address,
        *,
        receive: CommitmentReceiver | DicomServer | Mapping[str, Any] | None = None,
        timeout: float = 60.0,
        keep_association: bool = True,
        options: AssociationOptions | None = None,
        calling_ae_title: str | Keep | None = KEEP,
        called_ae_title: str | Keep | None = KEEP,
        max_pdu_length: int | Keep = KEEP,
        connect_timeout: float | Keep = KEEP,
        acse_timeout: float | Keep = KEEP,
        dimse_timeout: float | Keep | None = KEEP,
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
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if not keep_association and receive is None:
            raise ValueError(
                "keep_association=False needs receive=: the report can only come on a new association"
            )
        if receive is not None and not isinstance(receive, DicomServer | Mapping):
            raise TypeError(f"receive= is a CommitmentReceiver, a StoreScp or options, not {receive!r}")
        self.receive = receive
        self.timeout = timeout
        self.keep_association = keep_association

    async def commit(
        self,
        instances: Iterable[Instance],
        *,
        transaction_uid: str | None = None,
        timeout: float | None = None,
    ) -> CommitResult:
        """Ask the peer to commit ``instances`` (file paths, Datasets, ``(SOP class UID, SOP instance
        UID)`` pairs) and return its report. ValueError when there is nothing to commit or an instance
        has no UIDs."""
        references = list(dict.fromkeys(reference_of(item) for item in instances))
        if not references:
            raise ValueError("nothing to commit")
        transaction = transaction_uid or new_uid()
        wait = self.timeout if timeout is None else timeout
        receiver: DicomServer | None = None
        own = isinstance(self.receive, Mapping)
        if isinstance(self.receive, Mapping):
            receiver = CommitmentReceiver(**{"ae_title": self.calling_ae_title, **self.receive})
        elif self.receive is not None:
            receiver = self.receive
        waiters = _waiters_of(receiver) if receiver is not None else ReportWaiters()
        if receiver is not None and own:
            await receiver.start()
            self.log.info(
                "receiving storage commitment reports as %s on port %d", receiver.ae_title, receiver.port
            )
        future = waiters.expect(transaction)
        try:
            return await self._commit(transaction, references, waiters, future, wait)
        finally:
            waiters.forget(transaction)
            if receiver is not None and own:
                await receiver.stop()

    async def _commit(
        self,
        transaction: str,
        references: list[CommitReference],
        waiters: ReportWaiters,
        future: asyncio.Future[CommitResult],
        wait: float,
    ) -> CommitResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait

        def here(request: NRequest) -> None:
            waiters.handle(request, same_association=True)

        async with self.connect([(STORAGE_COMMITMENT_SOP_CLASS, list(SYNTAXES))]) as assoc:
            self.log.info(
                "asking %s to commit %d instances (transaction %s)",
                self.address,
                len(references),
                transaction,
            )
            response = await n_action(
                assoc,
                STORAGE_COMMITMENT_SOP_CLASS,
                STORAGE_COMMITMENT_INSTANCE,
                REQUEST_COMMITMENT,
                action_information(transaction, references),
                timeout=self.dimse_timeout,
                on_event_report=here,  # a report that comes before the response
            )
            if not response.ok:
                raise CommitmentRefused(response)
            if not future.done() and self.keep_association:
                await self._wait_here(assoc, here, future, deadline)
        if not future.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - loop.time()))
        if not future.done():
            raise TimeoutError(
                f"no storage commitment report from {self.address} for transaction {transaction} within "
                f"{wait:g} s"
            )
        result = future.result()
        self.log.info("%s", result.message)
        return result

    async def _wait_here(
        self, assoc: Association, here: Any, future: asyncio.Future[CommitResult], deadline: float
    ) -> None:
        """Wait for the report on the association, and at once on the receiver: whichever comes first."""
        loop = asyncio.get_running_loop()

        async def on_association() -> None:
            while not future.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                await receive_event_report(assoc, here, remaining, ae_title=self.calling_ae_title)

        task = asyncio.ensure_future(on_association())
        either: set[asyncio.Future[Any]] = {task, future}
        try:
            await asyncio.wait(
                either, timeout=max(0.0, deadline - loop.time()), return_when="FIRST_COMPLETED"
            )
        finally:
            if not task.done():
                task.cancel()
            await asyncio.wait({task})  # its end, without its exception (a cancel of ours propagates)
            if task.done() and not task.cancelled() and task.exception() is not None:
                # the association failed: a report may still come on a new association
                self.log.info("waiting for the report on the association ended: %s", task.exception())
