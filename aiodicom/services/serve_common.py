"""What the acceptor sides of C-FIND, C-GET and C-MOVE share: the context a handler is told, the adapter
that turns whatever a handler returns into one async stream, identifiers to and from bytes, and the check
of a query against its information model.

A handler is a plain function or a coroutine function; it may be an async generator, a plain generator,
or return (directly or awaited) any iterable or async iterable. Whatever it is, the service reads it
through :class:`HandlerStream`, which closes it (``aclose``/``close``) when the operation stops early.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from aiodicom.dataset import syntax_encoding
from aiodicom.dataset.identifier import Identifier, encode_identifier_elements
from aiodicom.dataset.prefix import LeadingElements
from aiodicom.dimse import Command
from aiodicom.errors import QueryRejected
from aiodicom.net.access import IdentityRequest
from aiodicom.net.association import Association, DimseMessage
from aiodicom.services.query import (
    _PATIENT_KEYS,
    _SERIES_KEYS,
    _STUDY_KEYS,
    MODEL_LEVELS,
    QueryLevel,
    QueryModel,
    decode_identifier,
    encode_identifier,
)
from aiodicom.services.remote import QR_SERVICE_CLASSES

log = logging.getLogger("aiodicom.services.serve")

#: The query/retrieve SOP classes served: SOP class UID -> (model, service).
SERVICE_CLASSES: dict[str, tuple[QueryModel, str]] = {
    uid: (QueryModel(model), service) for uid, (model, service) in QR_SERVICE_CLASSES.items()
}


@dataclass(frozen=True, slots=True)
class QueryContext:
    """What a C-FIND, C-GET or C-MOVE handler is told about the request besides its identifier.

    ``model`` and ``sop_class_uid`` are the information model asked; ``level`` the Query/Retrieve Level
    (None for a worklist query); ``message_id`` and ``priority`` the request's; ``user_identity`` the
    requestor's user identity from the association request (None without one); ``move_destination`` the
    C-MOVE destination AE title (None for C-FIND and C-GET); ``ae_title`` this server's AE title.
    """

    calling_ae_title: str
    called_ae_title: str
    peer_host: str
    peer_port: int
    sop_class_uid: str
    model: QueryModel
    level: QueryLevel | None
    message_id: int
    priority: int
    ae_title: str
    user_identity: IdentityRequest | None = None
    move_destination: str | None = None


def query_context(
    assoc: Association,
    command: Command,
    model: QueryModel,
    level: QueryLevel | None,
    ae_title: str,
    move_destination: str | None = None,
) -> QueryContext:
    host, port = assoc.peer
    rq = assoc.request
    identity = IdentityRequest.of(rq, (host, port))
    return QueryContext(
        calling_ae_title=rq.calling_ae_title,
        called_ae_title=rq.called_ae_title,
        peer_host=host,
        peer_port=port,
        sop_class_uid=command.affected_sop_class_uid or "",
        model=model,
        level=level,
        message_id=command.message_id or 0,
        priority=command.priority or 0,
        ae_title=ae_title,
        user_identity=identity,
        move_destination=move_destination,
    )


@dataclass(frozen=True, slots=True)
class StoredKey:
    """An instance a C-GET or C-MOVE handler names by its object key on the server's S3 backend; it is
    streamed from there, PDV by PDV."""

    key: str


#: What a C-GET or C-MOVE handler yields: a file path, the bytes of a Part 10 file, a pydicom Dataset, or
#: an object key on the server's S3 backend.
Instance = str | os.PathLike[str] | bytes | Dataset | StoredKey

#: A handler: ``(query, context)`` (``(query, destination, context)`` for C-MOVE) to matches or instances.
QueryHandler = Callable[..., Any]


# ------------------------------------------------------------------------------------- the stream


class HandlerStream:
    """The items of a handler's result, one at a time, whatever it returned. ``total`` is the number of
    items when the handler returned a sized collection (a list, a tuple...), else None."""

    def __init__(self, handler: QueryHandler, *args: Any) -> None:
        self._handler = handler
        self._args = args
        self._async: AsyncIterator[Any] | None = None
        self._sync: Iterator[Any] | None = None
        self._source: object = None
        self.total: int | None = None
        self.closed = False

    async def start(self) -> None:
        """Call the handler (its exceptions propagate)."""
        result = self._handler(*self._args)
        if inspect.isawaitable(result):
            result = await result
        self._source = result
        if isinstance(result, AsyncIterable):
            self._async = aiter(result)
        elif isinstance(result, Iterable) and not isinstance(result, str | bytes | Dataset | dict):
            if isinstance(result, Sized) and not isinstance(result, Iterator):
                self.total = len(result)
            self._sync = iter(result)
        elif result is None:
            self._sync = iter(())
        else:
            self._sync = iter((result,))  # a single match or instance

    def __aiter__(self) -> HandlerStream:
        return self

    async def __anext__(self) -> Any:
        if self.closed:
            raise StopAsyncIteration
        if self._async is not None:
            return await anext(self._async)
        assert self._sync is not None, "start() first"
        try:
            return next(self._sync)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Close the handler's generator (it runs its ``finally`` blocks); idempotent."""
        if self.closed:
            return
        self.closed = True
        for source in (self._async, self._sync, self._source):
            if source is None:
                continue
            closer = getattr(source, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:
                    log.exception("closing the handler's generator failed")
                return
            closer = getattr(source, "close", None)
            if callable(closer) and inspect.isgenerator(source):
                try:
                    closer()
                except Exception:
                    log.exception("closing the handler's generator failed")
                return


# ---------------------------------------------------------------------------------- identifiers


def read_identifier(message: DimseMessage, transfer_syntax: str) -> Dataset:
    """The request's identifier as a Dataset, every element decoded now: :class:`QueryRejected` (0xC000,
    saying why) when it is missing or does not decode."""
    if message.error is not None:
        raise QueryRejected(0xC000, f"identifier not received: {message.error}")
    if message.dataset is None:
        raise QueryRejected(0xC000, "the request has no identifier")
    try:
        data = message.data
        scanner = LeadingElements(transfer_syntax, whole=True)  # truncated or malformed: raises
        scanner.feed(data)
        scanner.finish()
        if syntax_encoding(transfer_syntax)[2]:
            data = zlib.decompress(data, -zlib.MAX_WBITS)
        ds = decode_identifier(data, transfer_syntax)
        _touch(ds)
    except QueryRejected:
        raise
    except Exception as exc:
        raise QueryRejected(0xC000, f"malformed identifier: {type(exc).__name__}: {exc}") from exc
    return ds


def _touch(ds: Dataset) -> None:
    """Decode every value (pydicom decodes lazily; a broken value would fail later, in a handler)."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _touch(item)
        else:
            _ = elem.value


def encode_response(identifier: Dataset | dict[str, Any] | Identifier, transfer_syntax: str) -> bytes:
    """A response identifier (a Dataset, a dict in the form :mod:`~aiodicom.services.query` takes, or an
    :class:`~aiodicom.dataset.identifier.Identifier`) in ``transfer_syntax`` (deflated when the syntax
    is)."""
    if isinstance(identifier, Identifier):
        implicit, little, deflated = syntax_encoding(transfer_syntax)
        data = encode_identifier_elements(identifier, implicit=implicit, little=little)
    elif isinstance(identifier, Dataset):
        implicit, little, deflated = syntax_encoding(transfer_syntax)
        fp = DicomBytesIO()
        fp.is_implicit_VR = implicit
        fp.is_little_endian = little
        write_dataset(fp, identifier)
        data = bytes(fp.getvalue())
    else:
        data = encode_identifier(identifier, transfer_syntax)
        deflated = syntax_encoding(transfer_syntax)[2]
    if deflated:
        packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = packer.compress(data) + packer.flush()
    return data


def error_comment(text: str) -> str:
    """An Error Comment (LO): at most 64 ASCII characters, no backslash or control characters."""
    clean = "".join(c if c.isascii() and c.isprintable() and c != "\\" else "?" for c in text)
    return clean.strip()[:64]


# ------------------------------------------------------------------------------------ validation

#: Instance attributes a query names at IMAGE level only (a key not listed anywhere is not checked).
_INSTANCE_KEYS = frozenset(
    (
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "ContentDate",
        "ContentTime",
        "AcquisitionNumber",
        "NumberOfFrames",
        "ImageType",
        "Rows",
        "Columns",
    )
)


def _depth(keyword: str, model: QueryModel) -> int | None:
    """The index in the model's levels of the level a known key belongs to (None: not checked)."""
    levels = MODEL_LEVELS[model]
    if keyword in _PATIENT_KEYS:
        return levels.index("PATIENT" if model is QueryModel.PATIENT_ROOT else "STUDY")
    if keyword in _STUDY_KEYS:
        return levels.index("STUDY")
    if keyword in _SERIES_KEYS:
        return levels.index("SERIES")
    if keyword in _INSTANCE_KEYS:
        return levels.index("IMAGE")
    return None


def check_query(model: QueryModel, query: Dataset, *, retrieve: bool = False) -> QueryLevel | None:
    """The query's level, once checked against ``model``: :class:`QueryRejected` with 0xA900 (identifier
    does not match SOP class) when the model cannot answer it (no or an unknown Query/Retrieve Level, a
    level the model lacks such as PATIENT in study root). A worklist query has no level: None.

    Keys of a level beneath the query's (Modality in a STUDY query) are removed from a C-FIND's
    identifier, as dcmqrscp and Orthanc ignore them (the handler never sees them); in a C-GET or C-MOVE
    (``retrieve``) they are refused with 0xA900: the retrieve would send more than the key asks for.
    Keys of levels above the query's are allowed (PS3.4 C.4.1.2.1 asks only for the unique ones; peers
    send the others, and matching them is the handler's choice); keys this check does not know (private
    tags, RetrieveAETitle...) pass.
    """
    if model is QueryModel.MODALITY_WORKLIST:
        return None
    value = query.get("QueryRetrieveLevel")
    text = str(value if value is not None else "").strip()
    if not text:
        raise QueryRejected(0xA900, "no QueryRetrieveLevel in the identifier")
    levels = MODEL_LEVELS[model]
    if text.upper() not in levels:
        raise QueryRejected(0xA900, f"level {text!r} is not one of {model.value}'s: {', '.join(levels)}")
    level = QueryLevel(text.upper())
    here = levels.index(level.value)
    beneath = []
    for elem in query:
        keyword = elem.keyword
        depth = _depth(keyword, model) if keyword else None
        if depth is not None and depth > here:
            if retrieve:
                raise QueryRejected(
                    0xA900, f"{keyword} is a {levels[depth]} key, not allowed at the {level.value} level"
                )
            beneath.append(elem.tag)
    for tag in beneath:
        del query[tag]
    return level


def dataset_bytes(ds: Dataset) -> bytes:
    """A Dataset as the bytes of a Part 10 file (file meta made when it has none: explicit VR little
    endian unless the data set says otherwise)."""
    from pydicom import dcmwrite
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds = ds.copy()
        ds.file_meta = meta
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()
