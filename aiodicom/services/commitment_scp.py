"""Storage Commitment Push Model, the SCP (PS3.4 J.3): answer the N-ACTION, check each reference against
what was durably stored, and report.

What was stored: a server with storage commitment records each instance as it is committed (synced, before
its C-STORE response) in a small SQLite table, ``stored.sqlite`` in the state folder (SOP Instance UID ->
SOP Class UID and location): persisted and unbounded on disk, nothing of it in memory. A reference is
committed when it is recorded with the same SOP class and its file (its S3 object: a HEAD) still exists;
an archive's index is asked for instances not recorded (stored before storage commitment was on).

Transactions: each N-ACTION is written, synced, to ``{transaction UID}.json`` in the state folder before
it is answered; its verdicts are added once checked; the file is removed when the report was answered.
At start, every transaction left there is checked (if it was not yet) and reported on a new association.
The report goes on the N-ACTION's association while it is open, else on an association to the requestor,
found by its calling AE title in ``remote_aes`` (proposing the SCP role: SCU 0, SCP 1); an undeliverable
report is tried again after ``retry_delay`` seconds, doubling up to ``max_retry_delay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiodicom.dimse import Command, CommandField, Status
from aiodicom.errors import NServiceError
from aiodicom.net.association import Association
from aiodicom.net.client import connect
from aiodicom.net.options import AssociationOptions
from aiodicom.services.commitment import (
    CLASS_INSTANCE_CONFLICT,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    REQUEST_COMMITMENT,
    SOP_CLASS_NOT_SUPPORTED,
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_SOP_CLASS,
    SYNTAXES,
    CommitFailure,
    CommitReference,
    event_information,
    parse_action,
)
from aiodicom.services.nservices import NRequest, NResponse, encode_dataset, n_event_report
from aiodicom.services.remote import RemoteAe
from aiodicom.ul.items import RoleSelection

log = logging.getLogger("aiodicom.scp.commitment")

_T = TypeVar("_T")
RECORD_NAME = "stored.sqlite"
#: A Lookup: SOP Instance UIDs -> (SOP Class UID, location) of those found (an archive's index).
Lookup = Callable[[list[str]], Awaitable[dict[str, tuple[str, str]]]]
#: Finds the requestor's address by its AE title (None: unknown).
Resolve = Callable[[str], Awaitable[RemoteAe | None]]


@dataclass(slots=True)
class Transaction:
    """One storage commitment request: who asked, what, and (once checked) the verdicts."""

    transaction_uid: str
    calling_ae_title: str
    references: list[CommitReference]
    committed: list[CommitReference] | None = None
    failed: list[CommitFailure] = field(default_factory=list)
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "transaction_uid": self.transaction_uid,
            "calling_ae_title": self.calling_ae_title,
            "references": [[r.sop_class_uid, r.sop_instance_uid] for r in self.references],
            "committed": None
            if self.committed is None
            else [[r.sop_class_uid, r.sop_instance_uid] for r in self.committed],
            "failed": [[f.sop_class_uid, f.sop_instance_uid, f.reason] for f in self.failed],
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transaction:
        committed = data.get("committed")
        return cls(
            str(data["transaction_uid"]),
            str(data["calling_ae_title"]),
            [CommitReference(c, i) for c, i in data["references"]],
            None if committed is None else [CommitReference(c, i) for c, i in committed],
            [CommitFailure(c, i, int(r)) for c, i, r in data.get("failed", ())],
            int(data.get("attempts", 0)),
        )


class CommitmentService:
    """The storage commitment SCP of one server; see the module's docstring.

    ``state_dir`` holds the record and the transactions; ``resolve`` finds a requestor by AE title;
    ``options`` are the server's (its AE title, timeouts, TLS defaults) for the associations it opens;
    ``lookup`` is an archive index's (or None); ``head`` checks that an S3 object exists (or None);
    ``storage_classes`` are the SOP classes the server stores (others fail 0x0122 when not found).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        resolve: Resolve,
        options: Callable[[], AssociationOptions],
        lookup: Lookup | None = None,
        head: Callable[[str], Awaitable[bool]] | None = None,
        storage_classes: Callable[[], frozenset[str] | None] = lambda: None,
        retry_delay: float = 2.0,
        max_retry_delay: float = 300.0,
        report_timeout: float = 30.0,
        logger: logging.Logger = log,
    ) -> None:
        if retry_delay <= 0 or max_retry_delay < retry_delay:
            raise ValueError("retry_delay must be positive and at most max_retry_delay")
        self.state_dir = Path(state_dir)
        self.resolve = resolve
        self.options = options
        self.lookup = lookup
        self.head = head
        self.storage_classes = storage_classes
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.report_timeout = report_timeout
        self.log = logger
        #: Transactions not yet reported (answered), by Transaction UID.
        self.pending: dict[str, Transaction] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._reported = asyncio.Event()  # set while nothing is pending
        self._reported.set()

    # ------------------------------------------------------------------------------------ lifecycle

    async def _run(self, fn: Callable[[], _T]) -> _T:
        # one thread: the SQLite connection and the JSON files are used from it alone, in order
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="aiodicom-commitment")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def start(self) -> None:
        """Open the record and take up the transactions a previous run left (reported on new
        associations)."""
        if self._db is not None:
            return
        self._db = await self._run(self._open)
        left = await self._run(self._load)
        for transaction in left:
            self.pending[transaction.transaction_uid] = transaction
            self._reported.clear()
            self.log.info(
                "storage commitment transaction %s of %s taken up again: reporting on a new association",
                transaction.transaction_uid,
                transaction.calling_ae_title,
            )
            self._deliver_later(transaction, 0.0)

    def _open(self) -> sqlite3.Connection:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.state_dir / RECORD_NAME, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a lost last line fails a reference: never a false commit
        db.execute(
            "CREATE TABLE IF NOT EXISTS stored (uid TEXT PRIMARY KEY, sop_class TEXT NOT NULL, "
            "location TEXT NOT NULL)"
        )
        return db

    def _load(self) -> list[Transaction]:
        left = []
        for path in sorted(self.state_dir.glob("*.json")):
            try:
                left.append(Transaction.from_json(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.log.error("cannot read the storage commitment transaction %s: %s", path, exc)
        return left

    async def stop(self) -> None:
        """Stop reporting (what is pending stays on disk for the next start) and close the record."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        self.pending.clear()
        self._reported.set()
        db, self._db = self._db, None
        if db is not None:
            await self._run(db.close)
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)  # its last task is done: quick

    # --------------------------------------------------------------------------------- the record

    async def record(self, sop_instance_uid: str, sop_class_uid: str, location: str) -> None:
        """Record an instance stored (synced): awaited before its C-STORE response."""
        db = self._db
        if db is None:
            return

        def write() -> None:
            db.execute(
                "INSERT OR REPLACE INTO stored (uid, sop_class, location) VALUES (?, ?, ?)",
                (sop_instance_uid, sop_class_uid, location),
            )

        await self._run(write)

    async def _recorded(self, uids: list[str]) -> dict[str, tuple[str, str]]:
        db = self._db
        if db is None:
            return {}

        def read() -> dict[str, tuple[str, str]]:
            found: dict[str, tuple[str, str]] = {}
            for at in range(0, len(uids), 500):
                chunk = uids[at : at + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT uid, sop_class, location FROM stored WHERE uid IN ({marks})", chunk
                )
                for uid, sop_class, location in rows:
                    found[uid] = (sop_class, location)
            return found

        return await self._run(read)

    async def check(
        self, references: list[CommitReference]
    ) -> tuple[list[CommitReference], list[CommitFailure]]:
        """The verdicts: the references committed, and those failed with their Failure Reason."""
        uids = [r.sop_instance_uid for r in references]
        found = await self._recorded(uids)
        missing = [uid for uid in uids if uid not in found]
        if missing and self.lookup is not None:
            try:
                found.update(await self.lookup(missing))
            except Exception:
                self.log.exception("the archive's index could not be asked")
        where = {uid: location for uid, (_, location) in found.items()}
        exists = await self._exist(list(where.values()))
        classes = self.storage_classes()
        committed: list[CommitReference] = []
        failed: list[CommitFailure] = []
        for ref in references:
            entry = found.get(ref.sop_instance_uid)
            if entry is None:
                unknown_class = classes is not None and ref.sop_class_uid not in classes
                reason = SOP_CLASS_NOT_SUPPORTED if unknown_class else NO_SUCH_OBJECT_INSTANCE
                failed.append(CommitFailure(ref.sop_class_uid, ref.sop_instance_uid, reason))
            elif entry[0] != ref.sop_class_uid:
                failed.append(CommitFailure(ref.sop_class_uid, ref.sop_instance_uid, CLASS_INSTANCE_CONFLICT))
            else:
                verdict = exists.get(entry[1])
                if verdict is None:
                    failed.append(CommitFailure(ref.sop_class_uid, ref.sop_instance_uid, PROCESSING_FAILURE))
                elif not verdict:
                    failed.append(
                        CommitFailure(ref.sop_class_uid, ref.sop_instance_uid, NO_SUCH_OBJECT_INSTANCE)
                    )
                else:
                    committed.append(ref)
        return committed, failed

    async def _exist(self, locations: list[str]) -> dict[str, bool | None]:
        """Whether each stored location still exists (None: could not be told)."""
        result: dict[str, bool | None] = {}
        files = [loc for loc in locations if not loc.startswith("s3://")]
        objects = [loc for loc in locations if loc.startswith("s3://")]
        if files:
            result.update(await self._run(lambda: {loc: os.path.isfile(loc) for loc in files}))
        if objects:
            limit = asyncio.Semaphore(16)

            async def one(loc: str) -> None:
                if self.head is None:
                    result[loc] = None
                    return
                async with limit:
                    try:
                        result[loc] = await self.head(loc)
                    except Exception as exc:
                        self.log.warning("cannot check %s: %s", loc, exc)
                        result[loc] = None

            await asyncio.gather(*(one(loc) for loc in objects))
        return result

    # ---------------------------------------------------------------------------------- the N-ACTION

    async def handle_action(self, request: NRequest) -> NResponse:
        """The N-ACTION handler: the request is written (synced) before it is answered; it is checked and
        reported once the response is sent."""
        if request.action_type_id != REQUEST_COMMITMENT:
            raise NServiceError(Status.NO_SUCH_ACTION, f"Action Type ID {request.action_type_id} is not 1")
        if request.sop_instance_uid != STORAGE_COMMITMENT_INSTANCE:
            raise NServiceError(
                Status.NO_SUCH_SOP_INSTANCE, f"storage commitment is asked of {STORAGE_COMMITMENT_INSTANCE}"
            )
        if self._db is None:
            raise NServiceError(Status.PROCESSING_FAILURE, "storage commitment is not started")
        uid, references = parse_action(request.dataset)
        if uid in self.pending:
            raise NServiceError(Status.DUPLICATE_INVOCATION, f"transaction {uid} is already in progress")
        transaction = Transaction(uid, request.calling_ae_title.strip(), references)
        try:
            await self._run(lambda: self._save(transaction))
        except OSError as exc:
            raise NServiceError(Status.PROCESSING_FAILURE, f"cannot keep the transaction: {exc}") from exc
        self.pending[uid] = transaction
        self._reported.clear()
        self.log.info(
            "storage commitment of %d instances asked by %s (transaction %s)",
            len(references),
            transaction.calling_ae_title,
            uid,
        )

        async def after() -> None:
            await self._report_here(request.association, transaction)

        return NResponse(after=after)

    def _path(self, uid: str) -> Path:
        return self.state_dir / f"{uid}.json"

    def _save(self, transaction: Transaction) -> None:
        """Write the transaction atomically and durably (file and folder synced)."""
        data = json.dumps(transaction.to_json()).encode()
        fd, temp = tempfile.mkstemp(dir=self.state_dir, prefix=".txn-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self._path(transaction.transaction_uid))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        folder = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def _remove(self, uid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(uid))

    async def _checked(self, transaction: Transaction) -> None:
        if transaction.committed is not None:
            return
        try:
            committed, failed = await self.check(transaction.references)
        except Exception:
            self.log.exception(
                "storage commitment transaction %s could not be checked", transaction.transaction_uid
            )
            committed = []
            failed = [
                CommitFailure(r.sop_class_uid, r.sop_instance_uid, PROCESSING_FAILURE)
                for r in transaction.references
            ]
        transaction.committed, transaction.failed = committed, failed
        await self._run(lambda: self._save(transaction))

    def _event(self, transaction: Transaction) -> tuple[int, Any]:
        return event_information(
            transaction.transaction_uid,
            transaction.committed or [],
            transaction.failed,
            self.options().ae_title,
        )

    async def _done(self, transaction: Transaction, status: int, how: str) -> None:
        uid = transaction.transaction_uid
        self.pending.pop(uid, None)
        await self._run(lambda: self._remove(uid))
        if not self.pending:
            self._reported.set()
        level = logging.INFO if status == 0 else logging.WARNING
        self.log.log(
            level,
            "storage commitment %s reported to %s %s: %d committed, %d failed; answered 0x%04X",
            uid,
            transaction.calling_ae_title,
            how,
            len(transaction.committed or []),
            len(transaction.failed),
            status,
        )

    # ---------------------------------------------------------------------------------- the report

    async def _report_here(self, assoc: Association, transaction: Transaction) -> None:
        """Check, then report on the N-ACTION's association while it is open; else later, on a new one."""
        await self._checked(transaction)
        if assoc.is_open:
            try:
                status = await self._send_here(assoc, transaction)
            except Exception as exc:
                self.log.info(
                    "storage commitment %s not reported on the association (%s): on a new one",
                    transaction.transaction_uid,
                    exc,
                )
            else:
                if status is not None:
                    await self._done(transaction, status, "on the same association")
                    return
        self._deliver_later(transaction, 0.0)

    async def _send_here(self, assoc: Association, transaction: Transaction) -> int | None:
        """The report on an association the requestor opened; its response status, or None when the
        requestor asked to release first (the release is answered)."""
        ctx = assoc.context_for(STORAGE_COMMITMENT_SOP_CLASS)
        event_type, info = self._event(transaction)
        command = Command.n_event_report_rq(
            assoc.next_message_id(), STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_INSTANCE, event_type
        )
        await assoc.send(ctx.context_id, command, encode_dataset(info, ctx.transfer_syntax))
        while True:
            message = await assoc.receive(self.report_timeout)
            if message is None:
                assoc.answer_release()
                return None
            rsp = message.command
            if (
                rsp.command_field == CommandField.N_EVENT_REPORT_RSP
                and rsp.message_id_being_responded_to == command.message_id
            ):
                if message.dataset is not None:
                    await message.dataset.abort()
                return rsp.status if rsp.status is not None else 0xC000
            from aiodicom.services.nservices import answer_n_request

            if rsp.is_request:  # not ours to serve while the report is answered
                await answer_n_request(assoc, message, None)
                continue
            assoc.abort()
            raise ConnectionError(f"{rsp.name} received while the N-EVENT-REPORT-RSP was awaited")

    def _deliver_later(self, transaction: Transaction, delay: float) -> None:
        uid = transaction.transaction_uid
        running = self._tasks.get(uid)
        if running is not None and not running.done():
            return
        task = asyncio.ensure_future(self._deliver(transaction, delay))
        self._tasks[uid] = task
        task.add_done_callback(lambda t: self._tasks.pop(uid, None) if self._tasks.get(uid) is t else None)

    async def _deliver(self, transaction: Transaction, delay: float) -> None:
        """Report on new associations until one is answered, waiting longer after each failure."""
        await self._checked(transaction)
        wait = delay
        while True:
            if wait:
                await asyncio.sleep(wait)
            try:
                status = await self._send_new(transaction)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                transaction.attempts += 1
                wait = min(self.max_retry_delay, self.retry_delay * 2 ** min(transaction.attempts - 1, 20))
                self.log.warning(
                    "storage commitment %s: the report to %s failed (%s); trying again in %.0f s",
                    transaction.transaction_uid,
                    transaction.calling_ae_title,
                    exc,
                    wait,
                )
                with contextlib.suppress(OSError):
                    await self._run(lambda: self._save(transaction))
                continue
            await self._done(transaction, status, "on a new association")
            return

    async def _send_new(self, transaction: Transaction) -> int:
        title = transaction.calling_ae_title
        remote = await self.resolve(title)
        if remote is None:
            raise LookupError(f"{title!r} is not in remote_aes: its host and port are not known")
        options = self.options().replace(called_ae_title=remote.ae_title or title, tls=remote.tls)
        role = RoleSelection(STORAGE_COMMITMENT_SOP_CLASS, scu_role=False, scp_role=True)
        event_type, info = self._event(transaction)
        async with connect(
            (remote.host, remote.port),
            contexts=[(STORAGE_COMMITMENT_SOP_CLASS, list(SYNTAXES))],
            options=options,
            role_selections=[role],
        ) as assoc:
            result = await n_event_report(
                assoc,
                STORAGE_COMMITMENT_SOP_CLASS,
                STORAGE_COMMITMENT_INSTANCE,
                event_type,
                info,
                timeout=self.report_timeout,
            )
        return result.status

    async def wait_reported(self, timeout: float | None = None) -> None:
        """Wait until no report is pending (TimeoutError after ``timeout`` seconds)."""
        if self.pending:
            await asyncio.wait_for(self._reported.wait(), timeout)
