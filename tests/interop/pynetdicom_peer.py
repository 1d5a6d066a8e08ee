"""A pynetdicom SCP that checks user identity (a test peer, run as
``python -m tests.interop.pynetdicom_peer PORT LOG``). It answers C-ECHO and C-STORE of CT images (after 3 s
for the calling AE title SLOW-SCU; with 0xA700 and an Error Comment for REFUSE-SCU), C-FIND (no matches),
C-GET and C-MOVE (no sub-operations), verifies the credentials below in EVT_USER_ID, answers Kerberos, SAML
and JWT identities with a server response when one is requested, and appends one JSON line per association
to LOG: what the requestor sent."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

USERNAME, PASSWORD = "alice", "s3cret"
USERNAME_ONLY = "bob"
JWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
KERBEROS = b"\x60\x82\x01\x00kerberos-ticket"
SAML = "<saml:Assertion ID='a1'>alice</saml:Assertion>"
RESPONSES = {3: b"kerberos-ok", 4: b"saml-ok", 5: b"jwt-ok"}


def verify(kind: int, primary: bytes, secondary: bytes) -> bool:
    if kind == 1:
        return primary == USERNAME_ONLY.encode()
    if kind == 2:
        return (primary, secondary) == (USERNAME.encode(), PASSWORD.encode())
    if kind == 3:
        return primary == KERBEROS
    if kind == 4:
        return primary == SAML.encode()
    return kind == 5 and primary == JWT.encode()


def main(port: int, log_path: str) -> None:
    def write(record: dict[str, Any]) -> None:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    def on_user_id(event: Any) -> tuple[bool, bytes | None]:
        kind = event.user_id_type
        ok = verify(kind, event.primary_field, event.secondary_field or b"")
        return ok, RESPONSES.get(kind) if ok else None

    def describe(event: Any, outcome: str) -> None:
        rq = event.assoc.requestor
        identity = rq.user_identity
        write(
            {
                "outcome": outcome,
                "identity_type": identity.user_identity_type if identity else None,
                "primary": identity.primary_field.decode("latin-1") if identity else None,
                "secondary": (identity.secondary_field or b"").decode("latin-1") if identity else None,
                "positive_response_requested": bool(identity.positive_response_requested)
                if identity
                else None,
                "implementation_class_uid": str(rq.implementation_class_uid),
                "implementation_version_name": rq.implementation_version_name,
                "contexts": sorted({str(cx.abstract_syntax) for cx in rq.requested_contexts}),
            }
        )

    def on_echo(event: Any) -> int:
        if event.assoc.requestor.ae_title == "SLOW-SCU":  # a peer that goes silent: for --dimse-timeout
            time.sleep(3)
        return 0x0000

    def on_store(event: Any) -> int | Dataset:
        if event.assoc.requestor.ae_title == "SLOW-SCU":
            time.sleep(3)
        if event.assoc.requestor.ae_title == "REFUSE-SCU":  # a failure status with an Error Comment
            status = Dataset()
            status.Status = 0xA700
            status.ErrorComment = "disk full on the peer"
            return status
        return 0x0000

    def on_find(event: Any) -> Iterator[Any]:
        yield from ()

    def on_get(event: Any) -> Iterator[Any]:
        yield 0

    def on_move(event: Any) -> Iterator[Any]:
        yield "127.0.0.1", 9
        yield 0

    ae = AE(ae_title="IDPEER")
    for context in (
        Verification,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
        StudyRootQueryRetrieveInformationModelMove,
        PatientRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelGet,
        PatientRootQueryRetrieveInformationModelMove,
    ):
        ae.add_supported_context(context)
    ae.add_supported_context("1.2.840.10008.5.1.4.1.1.2", scu_role=True, scp_role=True)  # CT, for C-GET
    handlers = [
        (evt.EVT_USER_ID, on_user_id),
        (evt.EVT_ACCEPTED, lambda event: describe(event, "accepted")),
        (evt.EVT_REJECTED, lambda event: describe(event, "rejected")),
        (evt.EVT_C_ECHO, on_echo),
        (evt.EVT_C_STORE, on_store),
        (evt.EVT_C_FIND, on_find),
        (evt.EVT_C_GET, on_get),
        (evt.EVT_C_MOVE, on_move),
    ]
    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=handlers)


@dataclass
class IdentityPeer:
    """The running peer: its port, and what each association's requestor sent (from its log)."""

    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"IDPEER@127.0.0.1:{self.port}"

    def mark(self) -> int:
        return len(self.records())

    def records(self, since: int = 0) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines[since:]]

    def wait_records(self, since: int, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The records written since ``since``, once there are ``count`` (pynetdicom logs in its thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.records(since)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"the peer logged {self.records(since)} (expected {count} records)")


@contextlib.contextmanager
def start_identity_peer(directory: Path) -> Iterator[IdentityPeer]:
    """The pynetdicom peer in a subprocess on a free loopback port, logging into ``directory``."""
    from tests.interop.peers import free_port, stop, wait_for_port

    port = free_port()
    log = directory / "associations.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.interop.pynetdicom_peer", str(port), str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, timeout=30)  # type: ignore[arg-type]
        yield IdentityPeer(port, log)
    finally:
        stop(proc)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
