"""C-FIND, the acceptor's side: each match a handler yields goes out as a pending response.

The handler gets the identifier as a pydicom Dataset and a
:class:`~aiodicom.services.serve_common.QueryContext`; each identifier it yields (a Dataset, or a dict as
:mod:`aiodicom.services.query` takes them) goes out as a pending response (0xFF00), or 0xFF01 when it
yields ``(identifier, 0xFF01)`` (optional keys not supported). A C-CANCEL that arrives between two
responses closes the handler's generator and is answered 0xFE00. A query the model cannot answer is
answered 0xA900, a malformed identifier 0xC000, a handler that raises :class:`~aiodicom.errors.QueryRejected`
with its status, any other exception 0xC000; each with an Error Comment. The association goes on serving.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from pydicom import Dataset

from aiodicom.dataset.identifier import Identifier
from aiodicom.dimse import Command, Status, encode_command
from aiodicom.errors import QueryRejected
from aiodicom.net.association import Association, DimseMessage
from aiodicom.services.query import QueryModel
from aiodicom.services.serve_common import (
    HandlerStream,
    QueryHandler,
    check_query,
    encode_response,
    error_comment,
    query_context,
    read_identifier,
)

log = logging.getLogger("aiodicom.services.serve_find")

_PENDING = (Status.PENDING, Status.PENDING_WARNING)
_SPECIFIC_CHARACTER_SET = 0x00080005
_QUERY_RETRIEVE_LEVEL = 0x00080052
_RETRIEVE_AE_TITLE = 0x00080054


def _prepare(
    item: Any, query: Dataset, model: QueryModel, ae_title: str, asked: tuple[str, str] | None = None
) -> tuple[Dataset | dict[str, Any] | Identifier, int]:
    """A yielded match and its pending status, with the attributes every response carries filled in."""
    status = int(Status.PENDING)
    if isinstance(item, tuple):
        if len(item) != 2 or item[1] not in _PENDING:
            raise ValueError(f"a C-FIND handler yields an identifier or (identifier, 0xFF01), not {item!r}")
        item, status = item[0], int(item[1])
    if isinstance(item, Dataset):
        ds = Dataset(item)  # a shallow copy: what we fill in is not written into the handler's data
        charset = ds.get("SpecificCharacterSet")
        if charset is None:
            if _non_ascii(ds):
                ds.SpecificCharacterSet = "ISO_IR 192"
            elif "SpecificCharacterSet" in query and query.SpecificCharacterSet:
                ds.SpecificCharacterSet = query.SpecificCharacterSet
        if model is not QueryModel.MODALITY_WORKLIST:
            ds.QueryRetrieveLevel = query.QueryRetrieveLevel
            if "RetrieveAETitle" not in ds:
                ds.RetrieveAETitle = ae_title
        return ds, status
    if isinstance(item, Identifier):
        charset, level = asked or asked_of(query)
        # what is filled in here is not written into the handler's, unless it was handed over
        fast = item if item.handed_over else item.copy()
        if _SPECIFIC_CHARACTER_SET not in fast:
            if not fast.is_ascii():
                fast.set(_SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 192")
            elif charset:
                fast.set(_SPECIFIC_CHARACTER_SET, "CS", charset)
        if model is not QueryModel.MODALITY_WORKLIST:
            fast.set(_QUERY_RETRIEVE_LEVEL, "CS", level)
            fast.setdefault(_RETRIEVE_AE_TITLE, "AE", ae_title)
        return fast, status
    if isinstance(item, dict):
        match = dict(item)
        wanted, _ = asked or asked_of(query)
        ascii_only = not any(isinstance(v, str) and not v.isascii() for v in match.values())
        if "SpecificCharacterSet" not in match and wanted and ascii_only:
            match = {"SpecificCharacterSet": wanted, **match}  # non-ASCII text goes as UTF-8 (ISO_IR 192)
        if model is not QueryModel.MODALITY_WORKLIST:
            match["QueryRetrieveLevel"] = str(query.QueryRetrieveLevel)
            match.setdefault("RetrieveAETitle", ae_title)
        return match, status
    raise ValueError(f"a C-FIND handler yields Datasets, dicts or Identifiers, not {type(item).__name__}")


def asked_of(query: Dataset) -> tuple[str, str]:
    """The query's Specific Character Set and level as text: read once per query, not per answer."""
    charset = query.get("SpecificCharacterSet") or ""
    level = str(query.get("QueryRetrieveLevel", "") or "")
    return (charset if isinstance(charset, str) else "\\".join(charset)), level


def _non_ascii(ds: Dataset) -> bool:
    for elem in ds:
        if elem.VR == "SQ":
            if any(_non_ascii(item) for item in elem.value):
                return True
        elif (elem.VR == "PN" or isinstance(elem.value, str)) and not str(elem.value).isascii():
            return True
    return False


async def serve_find(
    assoc: Association,
    message: DimseMessage,
    handler: QueryHandler,
    *,
    model: QueryModel,
    ae_title: str,
    logger: logging.Logger = log,
) -> int:
    """Answer one C-FIND-RQ with ``handler(query, context)``; returns the final status sent.

    Raises only when the association ends (the handler's generator is closed first).
    """
    request = message.command
    context_id = message.context_id
    syntax = assoc.accepted[context_id].transfer_syntax
    stream: HandlerStream | None = None
    count = 0
    status: int = Status.SUCCESS
    comment: str | None = None
    try:
        try:
            query = read_identifier(message, syntax)
            level = check_query(model, query)
            context = query_context(assoc, request, model, level, ae_title)
            stream = HandlerStream(handler, query, context)
            await stream.start()
            asked = asked_of(query)
            commands: dict[int, bytes] = {}  # every pending response of a query has the same command
            async for item in stream:
                identifier, pending = _prepare(item, query, model, ae_title, asked)
                data = encode_response(identifier, syntax)
                command = commands.get(pending)
                if command is None:
                    command = commands[pending] = encode_command(
                        Command.c_find_rsp(request, pending, has_dataset=True)
                    )
                if count:
                    # matches yielded together go out together (a page of the archive's: one system call)
                    await assoc.send_soon(context_id, command, data)
                else:  # the first at once: the requestor works on it while the rest are made
                    await assoc.send(context_id, command, data)
                count += 1
                if assoc.take_cancel(request.message_id or 0):
                    status = Status.CANCEL
                    logger.info(
                        "C-FIND %s cancelled by %s after %d matches",
                        request.message_id,
                        assoc.calling_ae_title,
                        count,
                    )
                    break
        except QueryRejected as exc:
            status, comment = exc.status, exc.comment or str(exc)
            logger.info("C-FIND from %s answered 0x%04X: %s", assoc.calling_ae_title, status, comment)
        except Exception as exc:
            if not assoc.is_open:  # the requestor went away: nothing to answer
                raise
            status, comment = Status.CANNOT_UNDERSTAND, f"{type(exc).__name__}: {exc}"
            logger.exception("C-FIND from %s: the handler failed", assoc.calling_ae_title)
    finally:
        if stream is not None:
            await stream.aclose()
    response = Command.c_find_rsp(request, status)
    if comment:
        response = _with_comment(response, comment)
    await assoc.send(context_id, response)
    if status == Status.SUCCESS:
        logger.info("C-FIND from %s: %d matches", assoc.calling_ae_title, count)
    return status


def _with_comment(command: Command, comment: str) -> Command:
    return replace(command, error_comment=error_comment(comment) or None)
