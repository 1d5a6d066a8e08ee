"""Hooks for tests/scp/test_workers.py, in a module of their own: worker processes import hooks by name, and
this one imports nothing heavy. They write what they saw into ``$AIODICOM_TEST_WORKER_NOTES``."""

from __future__ import annotations

import os
from pathlib import Path

from aiodicom.errors import StoreRejected

NOTES_ENV = "AIODICOM_TEST_WORKER_NOTES"
REFUSED_PATIENT = "Refuse^Me"


def _notes() -> Path:
    return Path(os.environ[NOTES_ENV])


def record_pid(tags: dict[str, str]) -> dict[str, str]:
    """``on_before_store``: note which process received the instance (a file named by its SOP Instance UID
    holding the pid); refuse the instances of patient ``Refuse^Me``."""
    (_notes() / tags["SOPInstanceUID"]).write_text(str(os.getpid()))
    if tags.get("PatientName") == REFUSED_PATIENT:
        raise StoreRejected("refused by the test hook")
    return tags


def note_connection(peer: tuple[str, int]) -> bool:
    """``on_connection``: note which process accepted the connection from ``peer``'s port."""
    (_notes() / f"connection-{peer[1]}").write_text(str(os.getpid()))
    return True
