"""The user-facing requestor classes (SCUs)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiodicom.dimse import is_success, status_name
from aiodicom.errors import DimseError
from aiodicom.net.address import Address, parse_address, validate_ae_title
from aiodicom.net.client import connect

log = logging.getLogger("aiodicom.scu")


@dataclass(frozen=True, slots=True)
class EchoResult:
    """The outcome of :meth:`EchoScu.echo`: every C-ECHO succeeded (a failure raises)."""

    count: int
    duration_seconds: float
    status: int = 0

    @property
    def echoes_per_second(self) -> float:
        return self.count / self.duration_seconds if self.duration_seconds > 0 else float("inf")


class EchoScu:
    """Verification SCU: ``await EchoScu("PACS@host:104").echo()``.

    ``called_ae_title`` defaults to the AE title in ``addr``, else ``ANY-SCP``.
    """

    def __init__(
        self,
        addr: str | Address,
        *,
        calling_ae_title: str = "ECHO-SCU",
        called_ae_title: str | None = None,
        max_pdu_length: int = 16384,
        connect_timeout: float = 30.0,
        acse_timeout: float = 30.0,
        dimse_timeout: float | None = 30.0,
        verbose: bool = False,
    ) -> None:
        self.address = parse_address(addr)
        self.calling_ae_title = validate_ae_title(calling_ae_title, "calling AE title")
        self.called_ae_title = validate_ae_title(
            called_ae_title or self.address.ae_title or "ANY-SCP", "called AE title"
        )
        self.max_pdu_length = max_pdu_length
        self.connect_timeout = connect_timeout
        self.acse_timeout = acse_timeout
        self.dimse_timeout = dimse_timeout
        if verbose:
            logging.getLogger("aiodicom").setLevel(logging.INFO)

    async def echo(self, count: int = 1) -> EchoResult:
        """Send ``count`` C-ECHO requests on one association.

        Raises :class:`PeerUnreachable`, :class:`AssociationRejected`, :class:`AssociationAborted`,
        :class:`NoAcceptableContext`, or :class:`DimseError` for a non-success status.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        started = time.perf_counter()
        async with connect(
            self.address,
            calling_ae_title=self.calling_ae_title,
            called_ae_title=self.called_ae_title,
            max_pdu_length=self.max_pdu_length,
            connect_timeout=self.connect_timeout,
            acse_timeout=self.acse_timeout,
        ) as assoc:
            log.info("association with %s established", self.address)
            for _ in range(count):
                status = await assoc.c_echo(timeout=self.dimse_timeout)
                if not is_success(status):
                    raise DimseError(f"C-ECHO answered {status_name(status)} (0x{status:04X})", status)
        return EchoResult(count, time.perf_counter() - started)
