"""The archive's index: patient, study, series and instance rows in SQLite, next to the files they describe.

The index lives at ``{out_dir}/.index.sqlite`` (hidden: the receiver's temporary folders are in
``out_dir/.incoming``, and neither the receiver nor the index's own file scan look at hidden names). It is
derived data: when it is missing, unreadable or of another schema it is rebuilt from the files, and at every
open it is reconciled with them (files not indexed are added, rows whose file is gone are removed), so a crash
between a file's rename and its row's insert loses nothing.

SQLite runs on the standard library's ``sqlite3`` in one dedicated thread that owns the one connection: every
call is a job for that thread, so writes are serialised without locks (SQLite has a single writer anyway),
and the event loop never waits on the disk. An async driver (aiosqlite) does the same with a thread per
connection and would be a new dependency. WAL mode lets other processes sharing ``out_dir`` (a receiver
with ``workers=N``) read while one writes; ``busy_timeout`` covers their brief write locks.

Queries prefilter in SQL on unique keys and exact single values (UIDs, PatientID, AccessionNumber, Modality)
and leave the decision to :mod:`aiodicom.archive.matching`; rows are read a page at a time (keyset
pagination), so memory stays bounded whatever the size of the archive, and no read transaction stays open
while the caller consumes results.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydicom import Dataset

from aiodicom.dataset.identifier import Identifier
from aiodicom.services.query import MODEL_LEVELS, UNIQUE_KEYS, QueryModel

from .entries import Entry, read_entry, walk_files
from .keys import COMPUTED, COMPUTED_KEYWORDS, check_query, unsupported_keys
from .matching import build_response, identifier_builder, keyword_of, match, prepare
from .select import _ORDER, _select

__all__ = ["INDEX_NAME", "ArchiveIndex", "InstanceRecord", "read_entry", "walk_files"]

log = logging.getLogger("aiodicom.archive")

INDEX_NAME = ".index.sqlite"
SCHEMA_VERSION = "1"
_PAGE = 256
_FIRST_PAGE = 4
#: SQLite steps (thousands) a first page may take on the event loop's thread: about a millisecond.
_LOOP_BUDGET = 20
_BATCH = 500
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patient (
    id INTEGER PRIMARY KEY, patient_id TEXT NOT NULL UNIQUE, attrs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS study (
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, patient INTEGER NOT NULL,
    accession_number TEXT NOT NULL, attrs TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS study_patient ON study (patient);
CREATE INDEX IF NOT EXISTS study_accession ON study (accession_number);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, study INTEGER NOT NULL, modality TEXT NOT NULL,
    attrs TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS series_study ON series (study);
CREATE TABLE IF NOT EXISTS instance (
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, series INTEGER NOT NULL, sop_class TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, attrs TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS instance_series ON instance (series);
"""


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """An indexed instance: what a C-GET or C-MOVE sends (its file, in its stored syntax)."""

    path: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    size: int
    study_instance_uid: str
    series_instance_uid: str


def _loads(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


class ArchiveIndex:
    """The SQLite index of the instances under ``out_dir``. Use :meth:`open` first, :meth:`close` last."""

    def __init__(self, out_dir: str | os.PathLike[str], *, pn_ignore_case: bool = False) -> None:
        self.out_dir = Path(out_dir).resolve()
        self.path = self.out_dir / INDEX_NAME
        self.pn_ignore_case = pn_ignore_case
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        #: A read-only connection of the event loop's thread, for a query's first page (see _on_loop).
        self._loop_conn: sqlite3.Connection | None = None

    # ------------------------------------------------------------------------------------- thread

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._executor is None or self._conn is None:
            raise RuntimeError("the archive index is not open: await open() first")
        conn = self._conn
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)

    def _on_loop(self, fn: Callable[[sqlite3.Connection], _T]) -> _T | None:
        """``fn`` run here, on the event loop's thread, if it reads what it needs within a small budget of
        SQLite steps (about a millisecond); None when it could not (too long, the index busy, another
        thread): the caller runs it in the index's thread. A worker thread's wake-up and answer cost
        0.25 ms here, more than a query's first page: a requestor waits for that page."""
        conn = self._loop_conn
        try:
            if conn is None:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
                conn.execute("PRAGMA query_only=ON")
                self._loop_conn = conn
            steps = [_LOOP_BUDGET]

            def tick() -> bool:
                steps[0] -= 1
                return steps[0] < 0  # True interrupts the statement

            conn.set_progress_handler(tick, 1000)
            try:
                return fn(conn)
            finally:
                conn.set_progress_handler(None, 0)
        except sqlite3.Error:  # interrupted, busy, or a connection of another thread
            return None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    def _open_sync(self) -> str:
        """Open (or create) the index file; "rebuild" when it was missing, unreadable or of another schema."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        try:
            conn = self._connect()
            version = None
            if existed:
                row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                version = row[0] if row else None
                conn.execute("PRAGMA quick_check(1)").fetchone()
        except sqlite3.DatabaseError as exc:
            log.warning(
                "the archive index %s is unreadable (%s): rebuilding it from the files", self.path, exc
            )
            with contextlib.suppress(NameError, sqlite3.Error):
                conn.close()
            self._remove_files()
            conn, version, existed = self._connect(), None, False
        if existed and version != SCHEMA_VERSION:
            log.warning(
                "the archive index %s has schema %s, not %s: rebuilding it",
                self.path,
                version,
                SCHEMA_VERSION,
            )
            conn.close()
            self._remove_files()
            conn, existed = self._connect(), False
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        self._conn = conn
        return "reconcile" if existed else "rebuild"

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    async def open(self) -> None:
        """Open the index: create it and index every file when missing or corrupt, else reconcile it."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aiodicom-index")
        loop = asyncio.get_running_loop()
        try:
            how = await loop.run_in_executor(self._executor, self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        if how == "rebuild":
            await self.rebuild()
        else:
            await self.reconcile()

    async def close(self) -> None:
        """Close the connection and stop the index's thread."""
        executor, conn = self._executor, self._conn
        if self._loop_conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._loop_conn.close()
            self._loop_conn = None
        if executor is None:
            return
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        self._executor = self._conn = None
        executor.shutdown(wait=True)

    # ------------------------------------------------------------------------------------- writes

    @staticmethod
    def _upsert(conn: sqlite3.Connection, entry: Entry) -> None:
        patient, study, series, image = (entry.levels[k] for k in ("PATIENT", "STUDY", "SERIES", "IMAGE"))
        dump = json.dumps
        conn.execute(
            "INSERT INTO patient (patient_id, attrs) VALUES (?, ?) "
            "ON CONFLICT (patient_id) DO UPDATE SET attrs=excluded.attrs",
            (patient["PatientID"], dump(patient, ensure_ascii=False)),
        )
        (patient_row,) = conn.execute(
            "SELECT id FROM patient WHERE patient_id=?", (patient["PatientID"],)
        ).fetchone()
        old = conn.execute(
            "SELECT i.series, se.study, s.patient FROM instance i JOIN series se ON se.id=i.series "
            "JOIN study s ON s.id=se.study WHERE i.uid=?",
            (image["SOPInstanceUID"],),
        ).fetchone()
        conn.execute(
            "INSERT INTO study (uid, patient, accession_number, attrs) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (uid) DO UPDATE SET patient=excluded.patient, "
            "accession_number=excluded.accession_number, attrs=excluded.attrs",
            (
                study["StudyInstanceUID"],
                patient_row,
                study.get("AccessionNumber", "").strip(),
                dump(study, ensure_ascii=False),
            ),
        )
        (study_row,) = conn.execute(
            "SELECT id FROM study WHERE uid=?", (study["StudyInstanceUID"],)
        ).fetchone()
        conn.execute(
            "INSERT INTO series (uid, study, modality, attrs) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (uid) DO UPDATE SET study=excluded.study, modality=excluded.modality, "
            "attrs=excluded.attrs",
            (
                series["SeriesInstanceUID"],
                study_row,
                series.get("Modality", "").strip(),
                dump(series, ensure_ascii=False),
            ),
        )
        (series_row,) = conn.execute(
            "SELECT id FROM series WHERE uid=?", (series["SeriesInstanceUID"],)
        ).fetchone()
        # A file at this path that held another instance before (a replaced copy) no longer does.
        conn.execute("DELETE FROM instance WHERE path=? AND uid<>?", (entry.path, image["SOPInstanceUID"]))
        conn.execute(
            "INSERT INTO instance (uid, series, sop_class, transfer_syntax, path, size, mtime_ns, attrs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO UPDATE SET series=excluded.series, "
            "sop_class=excluded.sop_class, transfer_syntax=excluded.transfer_syntax, path=excluded.path, "
            "size=excluded.size, mtime_ns=excluded.mtime_ns, attrs=excluded.attrs",
            (
                image["SOPInstanceUID"],
                series_row,
                image["SOPClassUID"],
                entry.transfer_syntax,
                entry.path,
                entry.size,
                entry.mtime_ns,
                dump(image, ensure_ascii=False),
            ),
        )
        if old is not None and old[0] != series_row:
            ArchiveIndex._prune(conn)

    @staticmethod
    def _prune(conn: sqlite3.Connection) -> None:
        """Remove series without instances, studies without series and patients without studies."""
        conn.execute("DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM instance WHERE series=series.id)")
        conn.execute("DELETE FROM study WHERE NOT EXISTS (SELECT 1 FROM series WHERE study=study.id)")
        conn.execute("DELETE FROM patient WHERE NOT EXISTS (SELECT 1 FROM study WHERE patient=patient.id)")

    def _resolve(self, path: str | os.PathLike[str]) -> str:
        return str(Path(path).resolve())

    async def add(self, instance: Any) -> InstanceRecord:
        """Index one committed instance: a path, or a :class:`~aiodicom.services.store.StoredInstance`
        (its ``file``). Its header is read up to Pixel Data; an instance already indexed (same SOP Instance
        UID) is replaced. ValueError when the file is not a usable DICOM instance."""
        path = self._resolve(getattr(instance, "file", instance))

        def work(conn: sqlite3.Connection) -> InstanceRecord:
            entry = read_entry(path)
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._upsert(conn, entry)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return InstanceRecord(
                path,
                entry.levels["IMAGE"]["SOPClassUID"],
                entry.levels["IMAGE"]["SOPInstanceUID"],
                entry.transfer_syntax,
                entry.size,
                entry.levels["STUDY"]["StudyInstanceUID"],
                entry.levels["SERIES"]["SeriesInstanceUID"],
            )

        return await self._run(work)

    async def remove(
        self, sop_instance_uid: str | None = None, *, path: str | os.PathLike[str] | None = None
    ) -> bool:
        """Remove an instance's row (by SOP Instance UID or by path; the file is left alone). True when a row
        was removed; emptied series, studies and patients go with it."""
        if (sop_instance_uid is None) == (path is None):
            raise ValueError("give a SOP Instance UID or a path")
        column, value = ("uid", sop_instance_uid) if path is None else ("path", self._resolve(path))

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = conn.execute(f"DELETE FROM instance WHERE {column}=?", (value,)).rowcount > 0
                if removed:
                    self._prune(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return removed

        return await self._run(work)

    def _index_files(self, conn: sqlite3.Connection, paths: Iterator[str]) -> int:
        """Read and index ``paths`` in transactions of _BATCH; unreadable files are logged and skipped."""
        count = 0
        done = False
        while not done:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for _ in range(_BATCH):
                    path = next(paths, None)
                    if path is None:
                        done = True
                        break
                    try:
                        self._upsert(conn, read_entry(path))
                        count += 1
                    except (ValueError, OSError) as exc:
                        log.warning("not indexed: %s", exc)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return count

    async def rebuild(self) -> int:
        """Empty the index and index every ``*.dcm`` file under ``out_dir``; returns how many were indexed."""

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            for table in ("instance", "series", "study", "patient"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("COMMIT")
            count = self._index_files(conn, (e.path for e in walk_files(self.out_dir)))
            log.info("archive index of %s rebuilt: %d instances", self.out_dir, count)
            return count

        return await self._run(work)

    async def reconcile(self) -> tuple[int, int]:
        """Bring the index in line with the files: index files it lacks (or whose size or time changed),
        remove rows whose file is gone. Returns (added, removed). Memory stays bounded: the listing goes
        through a temporary table."""

        def work(conn: sqlite3.Connection) -> tuple[int, int]:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS disk (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER)"
            )
            conn.execute("DELETE FROM disk")
            files = walk_files(self.out_dir)
            while True:
                batch = []
                for entry in files:
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue
                    batch.append((entry.path, stat.st_size, stat.st_mtime_ns))
                    if len(batch) == _BATCH:
                        break
                if not batch:
                    break
                conn.executemany("INSERT OR REPLACE INTO disk VALUES (?, ?, ?)", batch)
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = conn.execute(
                    "DELETE FROM instance WHERE path NOT IN (SELECT path FROM disk)"
                ).rowcount
                if removed:
                    self._prune(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            changed = (
                row[0]
                for row in conn.execute(
                    "SELECT d.path FROM disk d LEFT JOIN instance i ON i.path=d.path "
                    "WHERE i.id IS NULL OR i.size<>d.size OR i.mtime_ns<>d.mtime_ns"
                ).fetchall()
            )
            added = self._index_files(conn, changed)
            conn.execute("DELETE FROM disk")
            if added or removed:
                log.info(
                    "archive index of %s reconciled: %d indexed, %d removed", self.out_dir, added, removed
                )
            return added, removed

        return await self._run(work)

    # ------------------------------------------------------------------------------------ queries

    async def stats(self) -> dict[str, int]:
        """How many patients, studies, series and instances are indexed."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            return {
                level: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for level, table in (
                    ("patients", "patient"),
                    ("studies", "study"),
                    ("series", "series"),
                    ("instances", "instance"),
                )
            }

        return await self._run(work)

    async def find(
        self,
        query: Dataset,
        model: QueryModel | str = QueryModel.STUDY_ROOT,
        *,
        raw: bool = False,
        unsupported: list[str] | None = None,
    ) -> AsyncIterator[Dataset | Identifier]:
        """The response identifiers of a C-FIND ``query`` at its level: each requested key with the matching
        entity's value, counts and ModalitiesInStudy/SOPClassesInStudy computed, QueryRetrieveLevel and the
        unique keys of the levels above. QueryError (0xA900) for a query the model cannot answer. Keys the
        index does not keep (:func:`~aiodicom.archive.keys.unsupported_keys`) are neither matched nor
        returned. With ``raw``, an answer is an :class:`~aiodicom.dataset.identifier.Identifier` where it
        can be (no sequence key): what the C-FIND service encodes without building a Dataset.
        ``unsupported`` is :func:`~aiodicom.archive.keys.unsupported_keys` of the query when the caller
        has it already."""
        model, level = check_query(query, model)
        skipped = set(unsupported_keys(query, model) if unsupported is None else unsupported)
        asked = _without(query, skipped) if skipped else query
        computed = [kw for kw in COMPUTED[level] if kw in asked]
        above = MODEL_LEVELS[model][: MODEL_LEVELS[model].index(level)]
        prepared = prepare(asked)  # read once, matched against every row
        uniques = [UNIQUE_KEYS[a] for a in above]
        fast = identifier_builder(prepared, uniques) if raw else None
        needed = {key[3] for key in prepared.keys} | set(uniques)
        sql, params, exact, columns = _select(asked, model, level, level, needed)
        # the UIDs the SQL matched are not matched again; often nothing is left to match
        rest = [c[3] for c in prepared.conditions if c[3] not in exact]
        ignore_case = self.pn_ignore_case
        async for page in self._pages(sql, params, level, computed, records=False, columns=columns):
            for candidate in page:
                if rest and not match(prepared, candidate, pn_ignore_case=ignore_case, skip=exact):
                    continue
                if fast is not None:
                    yield fast(candidate)
                else:
                    extra = {keyword: candidate.get(keyword, "") for keyword in uniques}
                    yield build_response(asked, candidate, extra=extra, pn_ignore_case=ignore_case)

    async def instances(
        self, query: Dataset, model: QueryModel | str = QueryModel.STUDY_ROOT
    ) -> AsyncIterator[InstanceRecord]:
        """The instances a C-GET or C-MOVE ``query`` retrieves: every instance under each entity that matches
        at the query's level (keys below that level are refused with QueryError, computed keys are not
        matched), in the order they were indexed."""
        model, level = check_query(query, model, retrieve=True)
        skip = set(unsupported_keys(query, model)) | COMPUTED_KEYWORDS
        asked = _without(query, skip)
        prepared = prepare(asked)
        sql, params, _, _ = _select(asked, model, "IMAGE", level)
        async for page in self._pages(sql, params, "IMAGE", [], records=True):
            for candidate in page:
                if match(prepared, candidate, pn_ignore_case=self.pn_ignore_case):
                    yield candidate["__record__"]

    async def _pages(
        self,
        sql: str,
        params: list[Any],
        level: str,
        computed: list[str],
        *,
        records: bool,
        columns: tuple[str, ...] = (),
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Rows of ``level`` (joined with their ancestors) that pass the SQL prefilter (``_select``), a page
        at a time (with their InstanceRecord when ``records``); the first on the loop's thread when it is
        quick (:meth:`_on_loop`), each next one in the index's thread while this one is answered (a
        requestor is never left waiting for a page that could have been read)."""

        parents: dict[str, dict[str, Any]] = {}  # used by one page's read at a time

        read_page = functools.partial(
            _page,
            parents=parents,
            columns=columns,
            sql=sql,
            params=params,
            level=level,
            computed=computed,
            records=records,
        )

        def fetch(last: int, size: int) -> asyncio.Future[list[dict[str, Any]]]:
            return asyncio.ensure_future(self._run(functools.partial(read_page, last=last, size=size)))

        # a short first page, read here when it is quick: the first answers go out at once; each page
        # after is 4 times the one before (up to _PAGE), so it is read in the index's thread in less time
        # than the requestor takes to read the one before it
        size = _FIRST_PAGE
        first = self._on_loop(functools.partial(read_page, last=0, size=size))
        ahead: asyncio.Future[list[dict[str, Any]]] | None
        if first is None:
            ahead = fetch(0, size)
        else:
            ahead = asyncio.get_running_loop().create_future()
            ahead.set_result(first)
        try:
            while ahead is not None:
                page = await ahead
                full, size = len(page) == size, min(4 * size, _PAGE)
                ahead = fetch(page[-1]["__id__"], size) if full else None
                yield page
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()  # the consumer stopped early (C-CANCEL, an error): the read is not wanted


def _without(query: Dataset, keywords: set[str]) -> Dataset:
    out = Dataset()
    for elem in query:
        if keyword_of(int(elem.tag)) not in keywords:
            out.add(elem)
    return out


def _page(
    conn: sqlite3.Connection,
    sql: str,
    params: list[Any],
    last: int,
    level: str,
    computed: list[str],
    size: int = _PAGE,
    *,
    records: bool = True,
    parents: dict[str, dict[str, Any]] | None = None,
    columns: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """A page of rows after ``last``; ``parents`` caches the ancestors' attributes by their text (for the
    pages of one query: their rows share a few patients, studies and series)."""
    rows = conn.execute(sql, [last, *params, size]).fetchall()
    depth = _ORDER.index(level) + 1
    page = []
    if parents is None:
        parents = {}
    own_id = -1 - len(columns)  # the row's own id, before the key columns
    for row in rows:
        candidate: dict[str, Any] = {"__id__": row[0]}
        for text in row[1:depth]:
            if text is None:  # not read: no key of that level is needed
                continue
            attributes = parents.get(text)
            if attributes is None:
                attributes = parents[text] = _loads(text)
            candidate.update(attributes)
        if row[depth] is not None:
            candidate.update(_loads(row[depth]))
        if columns:
            candidate.update(zip(columns, row[own_id + 1 :], strict=True))
        if records and level == "IMAGE":
            path, sop_class, uid, syntax, size = row[1 + depth : 6 + depth]
            candidate["__record__"] = InstanceRecord(
                path,
                sop_class,
                uid,
                syntax,
                size,
                candidate.get("StudyInstanceUID", ""),
                candidate.get("SeriesInstanceUID", ""),
            )
        if computed:
            candidate.update(_computed(conn, level, row[own_id], computed))
        page.append(candidate)
    return page


def _computed(conn: sqlite3.Connection, level: str, row_id: int, wanted: list[str]) -> dict[str, Any]:
    def one(sql: str) -> Any:
        return conn.execute(sql, (row_id,)).fetchone()[0]

    def distinct(sql: str) -> list[str]:
        return [r[0] for r in conn.execute(sql, (row_id,)) if r[0]]

    queries: dict[str, Callable[[], Any]] = {
        "NumberOfPatientRelatedStudies": lambda: one("SELECT count(*) FROM study WHERE patient=?"),
        "NumberOfPatientRelatedSeries": lambda: one(
            "SELECT count(*) FROM series se JOIN study s ON s.id=se.study WHERE s.patient=?"
        ),
        "NumberOfPatientRelatedInstances": lambda: one(
            "SELECT count(*) FROM instance i JOIN series se ON se.id=i.series JOIN study s ON s.id=se.study "
            "WHERE s.patient=?"
        ),
        "ModalitiesInStudy": lambda: distinct(
            "SELECT DISTINCT modality FROM series WHERE study=? ORDER BY modality"
        ),
        "SOPClassesInStudy": lambda: distinct(
            "SELECT DISTINCT i.sop_class FROM instance i JOIN series se ON se.id=i.series WHERE se.study=? "
            "ORDER BY i.sop_class"
        ),
        "NumberOfStudyRelatedSeries": lambda: one("SELECT count(*) FROM series WHERE study=?"),
        "NumberOfStudyRelatedInstances": lambda: one(
            "SELECT count(*) FROM instance i JOIN series se ON se.id=i.series WHERE se.study=?"
        ),
        "NumberOfSeriesRelatedInstances": lambda: one("SELECT count(*) FROM instance WHERE series=?"),
    }
    values: dict[str, Any] = {}
    for keyword in wanted:
        value = queries[keyword]()
        values[keyword] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return values
