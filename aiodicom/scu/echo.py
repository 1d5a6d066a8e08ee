"""EchoScu: verification (C-ECHO) of a peer."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiodicom.dimse import is_success, status_name
from aiodicom.errors import DimseError
from aiodicom.scu.base import Scu
from aiodicom.uids import VERIFICATION_SOP_CLASS


@dataclass(frozen=True, slots=True)
class EchoResult:
    """The outcome of :meth:`EchoScu.echo`: every C-ECHO succeeded (a failure raises)."""

    count: int
    duration_seconds: float
    status: int = 0

    @property
    def echoes_per_second(self) -> float:
        return self.count / self.duration_seconds if self.duration_seconds > 0 else float("inf")


class EchoScu(Scu):
    """Verification SCU: ``await EchoScu("PACS@host:104").echo()``.

    ``called_ae_title`` defaults to the AE title in ``addr``, else ``ANY-SCP``.
    """

    default_calling_ae_title = "ECHO-SCU"

    async def echo(self, count: int = 1) -> EchoResult:
        """Send ``count`` C-ECHO requests on one association.

        Raises :class:`PeerUnreachable`, :class:`AssociationRejected`, :class:`AssociationAborted`,
        :class:`NoAcceptableContext`, or :class:`DimseError` for a non-success status.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        started = time.perf_counter()
        async with self.connect([VERIFICATION_SOP_CLASS]) as assoc:
            for _ in range(count):
                try:
                    status = await assoc.c_echo(timeout=self.dimse_timeout)
                except TimeoutError:
                    raise DimseError(
                        f"no C-ECHO response from {self.address} within {self.dimse_timeout:g} s "
                        "(dimse_timeout)"
                    ) from None
                if not is_success(status):
                    raise DimseError(f"C-ECHO answered {status_name(status)} (0x{status:04X})", status)
        return EchoResult(count, time.perf_counter() - started)
