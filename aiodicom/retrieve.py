"""What C-GET and C-MOVE share: progress events, results, and the sub-operation counts of the responses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiodicom.dimse import Command, is_failure, is_warning, status_name
from aiodicom.storage.forward import ForwardOutcome

__all__ = ["RetrieveCompleted", "RetrieveResult", "SubOperation"]


@dataclass(frozen=True, slots=True)
class SubOperation:
    """Progress of a retrieve: counts so far, and the instance this event is about (if any).

    ``file`` is where it was stored (a path, or ``s3://bucket/key``); with the forward backend it is None
    and ``forwarded_to``, ``forward_status`` and ``forward_error`` say how relaying it went.
    """

    remaining: int
    completed: int
    failed: int
    warning: int
    file: str | None = None
    sop_instance_uid: str | None = None
    forwarded_to: str | None = None
    forward_status: int | None = None
    forward_error: str | None = None

    @property
    def total(self) -> int:
        return self.remaining + self.completed + self.failed + self.warning

    @property
    def message(self) -> str:
        done = self.completed + self.failed + self.warning
        what = f": {self.file or self.sop_instance_uid}" if self.file or self.sop_instance_uid else ""
        if self.forward_error:
            what += f" (forward to {self.forwarded_to} failed: {self.forward_error})"
        return f"{done}/{self.total} sub-operations{what}"


@dataclass(frozen=True, slots=True)
class RetrieveCompleted:
    """The end of a retrieve: the sub-operation counts and how long it took."""

    total: int
    completed: int
    failed: int
    warning: int
    duration_seconds: float

    @property
    def message(self) -> str:
        return (
            f"{self.completed} completed, {self.warning} with warnings, {self.failed} failed "
            f"of {self.total} in {self.duration_seconds:.2f} s"
        )


@dataclass(slots=True)
class RetrieveResult:
    """What ``get_study()`` / ``move_study()`` return.

    ``completed`` counts sub-operations that succeeded, ``warning`` those with a warning status (also
    stored), ``failed`` the rest; ``status`` is the final response's (0xB000: completed with failures).
    ``files`` are the instances stored here (GetScu, or MoveScu's built-in receiver);
    ``forward_failed`` lists every instance that could not be relayed (forward backend).
    """

    total: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    duration_seconds: float = 0.0
    status: int = 0
    files: list[str] = field(default_factory=list)
    failed_sop_instance_uids: list[str] = field(default_factory=list)
    forward_failed: list[ForwardOutcome] = field(default_factory=list)

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    @property
    def refused(self) -> bool:
        """The peer refused the retrieve itself: a failure status and nothing retrieved (0xA702, unable to
        perform sub-operations, is about the sub-operations, which the counts report)."""
        return is_failure(self.status) and self.completed + self.warning == 0 and self.status != 0xA702


class Tally:
    """Counts a retrieve's sub-operations: from our own answers as instances arrive, corrected by the
    peer's responses (which are authoritative when they carry counts)."""

    def __init__(self, expected: int = 0) -> None:
        self.started = time.perf_counter()
        self.expected = expected
        self.result = RetrieveResult()
        self._base = (0, 0, 0)  # counts of earlier C-GETs/C-MOVEs of the same retrieve
        self._local = [0, 0, 0]  # completed, failed, warning answered in the current one
        self._remaining: int | None = None
        self._since = 0  # sub-operations answered since the peer last said how many remain

    def begin(self) -> None:
        """A new C-GET/C-MOVE of the same retrieve starts."""
        r = self.result
        self._base = (r.completed, r.failed, r.warning)
        self._local = [0, 0, 0]
        self._remaining = None
        self._since = 0

    def stored(self, status: int) -> None:
        index = 1 if is_failure(status) else 2 if is_warning(status) else 0
        self._local[index] += 1
        self._since += 1
        self._apply(*self._local)

    def response(self, command: Command) -> None:
        """A C-GET-RSP or C-MOVE-RSP: take its counts where it has them."""
        if command.remaining is not None:
            self._remaining = command.remaining
            self._since = 0
        counts = (command.completed, command.failed, command.warning)
        if all(c is not None for c in counts):
            self._local = [c or 0 for c in counts]
            self._apply(*self._local)

    def _apply(self, completed: int, failed: int, warning: int) -> None:
        base = self._base
        r = self.result
        r.completed, r.failed, r.warning = base[0] + completed, base[1] + failed, base[2] + warning

    def recovered(self, count: int) -> None:
        """``count`` instances that failed earlier arrived on a later attempt."""
        r = self.result
        r.failed = max(0, r.failed - count)

    @property
    def done(self) -> int:
        r = self.result
        return r.completed + r.failed + r.warning

    @property
    def remaining(self) -> int:
        if self._remaining is not None:
            return max(self._remaining - self._since, 0)
        return max(self.expected - self.done, 0)

    def event(self, **fields: Any) -> SubOperation:
        r = self.result
        return SubOperation(self.remaining, r.completed, r.failed, r.warning, **fields)

    def finish(self, status: int) -> RetrieveCompleted:
        r = self.result
        r.status = status
        r.duration_seconds = time.perf_counter() - self.started
        r.total = r.completed + r.failed + r.warning
        return RetrieveCompleted(r.total, r.completed, r.failed, r.warning, r.duration_seconds)
