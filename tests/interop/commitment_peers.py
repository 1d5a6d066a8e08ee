"""pynetdicom as a Storage Commitment Push Model peer, in threads of this process (pynetdicom blocks).

``PynetdicomCommitmentScp``: answers N-ACTION (committing the instances it is told it holds) and reports
``before`` the N-ACTION response (from the handler, on the same association), ``after`` it on the same
association, or on a ``new`` association it opens to the requestor (proposing the SCP role).
``pynetdicom_commit``: pynetdicom as the SCU, receiving the report on its association or on a server of its
own (accepting the SCP role our SCP proposes).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.sequence import Sequence

SC_CLASS = "1.2.840.10008.1.20.1"
SC_INSTANCE = "1.2.840.10008.1.20.1.1"


def action_dataset(transaction: str, refs: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction
    items = []
    for sop_class, sop_instance in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        items.append(item)
    ds.ReferencedSOPSequence = Sequence(items)
    return ds


def report_dataset(action: Dataset, held: set[str]) -> tuple[int, Dataset]:
    ds = Dataset()
    ds.TransactionUID = action.TransactionUID
    ok, failed = [], []
    for item in action.ReferencedSOPSequence:
        out = Dataset()
        out.ReferencedSOPClassUID = item.ReferencedSOPClassUID
        out.ReferencedSOPInstanceUID = item.ReferencedSOPInstanceUID
        if item.ReferencedSOPInstanceUID in held:
            ok.append(out)
        else:
            out.FailureReason = 0x0112
            failed.append(out)
    if ok:
        ds.ReferencedSOPSequence = Sequence(ok)
    if failed:
        ds.FailedSOPSequence = Sequence(failed)
    return (2 if failed else 1), ds


@dataclass
class PynetdicomCommitmentScp:
    """A pynetdicom storage commitment SCP on ``port``; ``mode`` is ``before``, ``after`` or ``new``
    (``report_to`` is then the requestor's (host, port))."""

    held: set[str] = field(default_factory=set)
    mode: str = "after"
    report_to: tuple[str, int] | None = None
    statuses: list[int] = field(default_factory=list)
    port: int = 0
    server: Any = None

    def start(self) -> None:
        from pynetdicom import AE, evt

        ae = AE(ae_title="PYNET-SC")
        ae.add_supported_context(SC_CLASS)
        self.server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_N_ACTION, self._on_action)]
        )
        self.port = self.server.server_address[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()

    def _send(self, assoc: Any, action: Dataset) -> None:
        event_type, ds = report_dataset(action, self.held)
        status, _ = assoc.send_n_event_report(ds, event_type, SC_CLASS, SC_INSTANCE)
        self.statuses.append(int(status.Status) if status else -1)

    def _on_action(self, event: Any) -> tuple[int, None]:
        action = event.action_information
        if self.mode == "before":
            self._send(event.assoc, action)
        elif self.mode == "after":
            threading.Thread(target=self._later_here, args=(event.assoc, action), daemon=True).start()
        else:
            threading.Thread(target=self._on_new, args=(action,), daemon=True).start()
        return 0, None

    def _later_here(self, assoc: Any, action: Dataset) -> None:
        time.sleep(0.3)  # the N-ACTION response goes first
        if assoc.is_established:
            self._send(assoc, action)

    def _on_new(self, action: Dataset) -> None:
        from pynetdicom import AE, build_role

        time.sleep(0.3)
        assert self.report_to is not None
        ae = AE(ae_title="PYNET-SC")
        ae.add_requested_context(SC_CLASS)
        assoc = ae.associate(
            *self.report_to,
            ae_title="COMMIT-SCU",
            ext_neg=[build_role(SC_CLASS, scu_role=False, scp_role=True)],
        )
        if assoc.is_established:
            try:
                self._send(assoc, action)
            finally:
                assoc.release()
        else:
            self.statuses.append(-2)


@dataclass
class PynetdicomCommitResult:
    action_status: int
    report: Dataset | None
    event_type: int | None
    same_association: bool


def pynetdicom_commit(
    port: int,
    refs: list[tuple[str, str]],
    transaction: str,
    *,
    receive_port: int | None = None,
    wait: float = 20,
) -> PynetdicomCommitResult:
    """pynetdicom as the SCU: N-ACTION, then the report on the same association (kept open), or, with
    ``receive_port``, released at once and the report awaited on a server of its own there."""
    from pynetdicom import AE, evt

    got = threading.Event()
    box: dict[str, Any] = {}

    def on_report(event: Any) -> tuple[int, None]:
        box["ds"] = event.event_information
        box["type"] = event.event_type
        box["same"] = event.assoc.is_requestor
        got.set()
        return 0, None

    server = None
    if receive_port is not None:
        receiver = AE(ae_title="PYNET-SCU")
        receiver.add_supported_context(SC_CLASS, scu_role=False, scp_role=True)
        server = receiver.start_server(
            ("127.0.0.1", receive_port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
        )
    try:
        ae = AE(ae_title="PYNET-SCU")
        ae.add_requested_context(SC_CLASS)
        assoc = ae.associate(
            "127.0.0.1", port, ae_title="STORE-SCP", evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]
        )
        assert assoc.is_established
        try:
            status, _ = assoc.send_n_action(action_dataset(transaction, refs), 1, SC_CLASS, SC_INSTANCE)
            if receive_port is None:
                got.wait(wait)
        finally:
            assoc.release()
        if receive_port is not None:
            got.wait(wait)
    finally:
        if server is not None:
            server.shutdown()
    return PynetdicomCommitResult(int(status.Status), box.get("ds"), box.get("type"), bool(box.get("same")))
