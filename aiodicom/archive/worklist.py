"""A folder of Modality Worklist items answered for C-FIND, as DCMTK ``wlmscpfs`` answers its folder.

Items are DICOM files (``*.wl`` or ``*.dcm``, with or without a Part 10 header, as wlmscpfs reads them) or
DICOM JSON (``*.json``, PS3.18 F: one item, or a list of items). The folder is looked at on every query and an
item is read again when its size or modification time changed, so items can be added, edited and removed
while the server runs. An item that cannot be read is skipped with a warning (once per version of the file);
it never fails the query. Matching is :mod:`aiodicom.archive.matching` (sequence matching for the
ScheduledProcedureStepSequence).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.datadict import keyword_for_tag

from .matching import QueryError, build_response, match

__all__ = ["WorklistFolder"]

log = logging.getLogger("aiodicom.archive")

_SUFFIXES = (".wl", ".dcm", ".json")


def read_item(path: Path) -> list[Dataset]:
    """The worklist items in one file (a JSON file may hold a list); ValueError when it cannot be read."""
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            objects = data if isinstance(data, list) else [data]
            items = [Dataset.from_json(obj) for obj in objects]
        else:
            items = [dcmread(path, force=True)]
        for item in items:
            for elem in item:  # decode every value now: a bad one is this item's fault, not a query's
                _ = elem.value
            # a forced read of garbage gives group 0000 elements (zeros) or tags of no dictionary
            if not any(int(tag) >> 16 >= 0x0008 and keyword_for_tag(tag) for tag in item.keys()):  # noqa: SIM118
                raise ValueError("no attributes")
        return items
    except Exception as exc:  # whatever the parser raises, the item is unusable
        raise ValueError(f"{path}: not a worklist item ({type(exc).__name__}: {exc})") from exc


class WorklistFolder:
    """The worklist items in ``directory``; :meth:`find` answers a Modality Worklist C-FIND query."""

    def __init__(self, directory: str | os.PathLike[str], *, pn_ignore_case: bool = False) -> None:
        self.directory = Path(directory)
        self.pn_ignore_case = pn_ignore_case
        #: path -> ((size, mtime_ns), items); an unreadable file has no items
        self._cache: dict[str, tuple[tuple[int, int], list[Dataset]]] = {}

    def refresh(self) -> list[Dataset]:
        """Every readable item, read again where the file changed (blocking: run it in a thread)."""
        seen: dict[str, tuple[tuple[int, int], list[Dataset]]] = {}
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot read the worklist folder %s: %s", self.directory, exc)
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.lower().endswith(_SUFFIXES):
                continue
            try:
                stat = entry.stat()
                if not entry.is_file():
                    continue
            except OSError:
                continue
            version = (stat.st_size, stat.st_mtime_ns)
            cached = self._cache.get(entry.path)
            if cached is not None and cached[0] == version:
                seen[entry.path] = cached
                continue
            try:
                items = read_item(Path(entry.path))
            except ValueError as exc:
                log.warning("worklist item skipped: %s", exc)
                items = []
            seen[entry.path] = (version, items)
        self._cache = seen
        return [item for _, items in seen.values() for item in items]

    def answer(self, query: Dataset) -> list[Dataset]:
        """The responses to ``query`` (blocking)."""
        responses = []
        for item in self.refresh():
            try:
                if match(query, item, pn_ignore_case=self.pn_ignore_case):
                    responses.append(build_response(query, item, pn_ignore_case=self.pn_ignore_case))
            except QueryError:
                raise  # the query's fault: answered as such
            except (ValueError, TypeError, LookupError) as exc:
                log.warning("worklist item skipped: %s", exc)
        return responses

    async def find(self, query: Dataset) -> AsyncIterator[Dataset]:
        """The response identifiers of a Modality Worklist C-FIND ``query``, one per matching item."""
        for response in await asyncio.to_thread(self.answer, query):
            yield response
