"""The DIMSE-N services (PS3.7 10), both roles: N-EVENT-REPORT, N-GET, N-SET, N-ACTION, N-CREATE, N-DELETE.

Requestor: ``await n_action(assoc, sop_class, sop_instance, action_type_id, information)`` and its five
siblings send the request (its data set, a pydicom Dataset, encoded in the context's transfer syntax) and
return an :class:`NResult` (status, the response's data set, the affected SOP instance...). While the
response is awaited, an N-EVENT-REPORT-RQ may arrive on the same association (a storage commitment SCP
reports that way): ``on_event_report=`` answers it, and :func:`receive_event_report` waits for one.

Acceptor: :func:`serve_n_request` answers one request with a handler, ``handler(request: NRequest)``
(plain or async) returning None (success), a status, a Dataset (success with it), ``(status, Dataset)``
or an :class:`NResponse`, or raising :class:`~aiodicom.errors.NServiceError` for a failure status; any
other exception answers 0x0110 (processing failure). The server side registers handlers per SOP class
(:mod:`aiodicom.scp.nserving`).
"""

from __future__ import annotations

import inspect
import logging
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.tag import Tag

from aiodicom.dataset import syntax_encoding
from aiodicom.dimse import Command, CommandField, Status, status_name
from aiodicom.errors import AssociationAborted, DimseError, NServiceError
from aiodicom.net.access import IdentityRequest
from aiodicom.net.association import Association, DimseMessage
from aiodicom.services.dispatch import failure_response
from aiodicom.services.query import decode_identifier
from aiodicom.services.serve_common import encode_response, error_comment

log = logging.getLogger("aiodicom.services.nservices")

__all__ = [
    "NHandler",
    "NRequest",
    "NResponse",
    "NResult",
    "answer_n_request",
    "decode_dataset",
    "encode_dataset",
    "n_action",
    "n_create",
    "n_delete",
    "n_event_report",
    "n_get",
    "n_set",
    "new_uid",
    "receive_event_report",
    "serve_n_request",
]

_RESPONSES = {
    CommandField.N_EVENT_REPORT_RQ: CommandField.N_EVENT_REPORT_RSP,
    CommandField.N_GET_RQ: CommandField.N_GET_RSP,
    CommandField.N_SET_RQ: CommandField.N_SET_RSP,
    CommandField.N_ACTION_RQ: CommandField.N_ACTION_RSP,
    CommandField.N_CREATE_RQ: CommandField.N_CREATE_RSP,
    CommandField.N_DELETE_RQ: CommandField.N_DELETE_RSP,
}


def new_uid() -> str:
    """A new UID under the UUID-derived ``2.25.`` root (PS3.5 B.2): what an SCP assigns to an instance an
    N-CREATE did not name."""
    return f"2.25.{uuid.uuid4().int}"


# ------------------------------------------------------------------------------------- data sets


def encode_dataset(ds: Dataset, transfer_syntax: str) -> bytes:
    """A data set in ``transfer_syntax`` (deflated when the syntax is)."""
    return encode_response(ds, transfer_syntax)


def decode_dataset(data: bytes, transfer_syntax: str) -> Dataset:
    """A received data set, every value decoded now (a broken one raises here, not in a handler)."""
    if syntax_encoding(transfer_syntax)[2]:
        data = zlib.decompress(data, -zlib.MAX_WBITS)
    ds = decode_identifier(data, transfer_syntax)
    _touch(ds)
    return ds


def _touch(ds: Dataset) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _touch(item)
        else:
            _ = elem.value


def _tags(attributes: Iterable[int | str] | None) -> tuple[int, ...] | None:
    if attributes is None:
        return None
    tags: list[int] = []
    for attribute in attributes:
        if isinstance(attribute, str):
            tag = tag_for_keyword(attribute)
            if tag is None:
                try:
                    tag = int(Tag(attribute))
                except (ValueError, OverflowError) as exc:
                    raise ValueError(f"{attribute!r} is neither a keyword nor a tag") from exc
            tags.append(int(tag))
        else:
            tags.append(int(attribute))
    return tuple(tags)


# ------------------------------------------------------------------------------------ requestor


@dataclass(frozen=True, slots=True)
class NResult:
    """The response to an N-service request.

    ``status`` is the response's (0xC000 if it had none); ``dataset`` its data set (the Attribute List of
    N-GET/N-SET/N-CREATE, the Event Reply or Action Reply), None without one; ``affected_sop_instance_uid``
    the instance it is about (for N-CREATE, the one the SCP created, whoever chose its UID);
    ``error_comment`` and ``error_id`` the peer's (0000,0902) and (0000,0903); ``command`` the whole
    response command set.
    """

    status: int
    dataset: Dataset | None
    affected_sop_class_uid: str | None
    affected_sop_instance_uid: str | None
    error_comment: str | None
    error_id: int | None
    command: Command

    @property
    def ok(self) -> bool:
        """Success or a warning (0x0001, 0x0107, 0x0116, 0xBxxx)."""
        from aiodicom.dimse import is_failure

        return not is_failure(self.status)

    @property
    def message(self) -> str:
        comment = f": {self.error_comment}" if self.error_comment else ""
        service = self.command.name.removesuffix("-RSP")
        return f"{service} answered {status_name(self.status, service)} (0x{self.status:04X}){comment}"


async def n_event_report(
    assoc: Association,
    sop_class_uid: str,
    sop_instance_uid: str,
    event_type_id: int,
    information: Dataset | None = None,
    *,
    timeout: float | None = None,
    context_id: int | None = None,
    on_event_report: NHandler | None = None,
) -> NResult:
    """Send an N-EVENT-REPORT-RQ (Event Information: ``information``); the Event Reply is the result's
    data set. See :func:`n_action` for ``timeout``, ``context_id`` and ``on_event_report``."""
    command = Command.n_event_report_rq(
        assoc.next_message_id(), sop_class_uid, sop_instance_uid, event_type_id, information is not None
    )
    return await _request(assoc, command, information, timeout, context_id, on_event_report)


async def n_get(
    assoc: Association,
    sop_class_uid: str,
    sop_instance_uid: str,
    attributes: Iterable[int | str] | None = None,
    *,
    timeout: float | None = None,
    context_id: int | None = None,
    on_event_report: NHandler | None = None,
) -> NResult:
    """Send an N-GET-RQ for ``attributes`` (tags or keywords; None: every attribute); the values are the
    result's data set."""
    command = Command.n_get_rq(assoc.next_message_id(), sop_class_uid, sop_instance_uid, _tags(attributes))
    return await _request(assoc, command, None, timeout, context_id, on_event_report)


async def n_set(
    assoc: Association,
    sop_class_uid: str,
    sop_instance_uid: str,
    modifications: Dataset,
    *,
    timeout: float | None = None,
    context_id: int | None = None,
    on_event_report: NHandler | None = None,
) -> NResult:
    """Send an N-SET-RQ with the Modification List ``modifications``."""
    command = Command.n_set_rq(assoc.next_message_id(), sop_class_uid, sop_instance_uid)
    return await _request(assoc, command, modifications, timeout, context_id, on_event_report)


async def n_action(
    assoc: Association,
    sop_class_uid: str,
    sop_instance_uid: str,
    action_type_id: int,
    information: Dataset | None = None,
    *,
    timeout: float | None = None,
    context_id: int | None = None,
    on_event_report: NHandler | None = None,
) -> NResult:
    """Send an N-ACTION-RQ (Action Information: ``information``); the Action Reply is the result's data set.

    The request goes on ``context_id``, else on the first context accepted for ``sop_class_uid``
    (:class:`~aiodicom.errors.NoAcceptableContext` without one). ``timeout`` is the longest silence while
    the response is awaited: after it the association is aborted (a late response would answer the wrong
    request) and TimeoutError raised. An N-EVENT-REPORT-RQ arriving meanwhile is answered by
    ``on_event_report`` (an :data:`NHandler`), or 0x0211 (unrecognized operation) without one; any other
    request arriving meanwhile is answered 0x0211; any other response aborts the association.
    """
    command = Command.n_action_rq(
        assoc.next_message_id(), sop_class_uid, sop_instance_uid, action_type_id, information is not None
    )
    return await _request(assoc, command, information, timeout, context_id, on_event_report)


async def n_create(
    assoc: Association,
    sop_class_uid: str,
    attributes: Dataset | None = None,
    *,
    sop_instance_uid: str | None = None,
    timeout: float | None = None,
    context_id: int | None = None,
    on_event_report: NHandler | None = None,
) -> NResult:
    """Send an N-CREATE-RQ with the Attribute List ``attributes``; without ``sop_instance_uid`` the SCP
    assigns the UID, which the result's ``affected_sop_instance_uid`` gives."""
    command = Command.n_create_rq(
        assoc.next_message_id(), sop_class_uid, sop_instance_uid, attributes is not None
    )
    return await _request(assoc, command, attributes, timeout, context_id, on_event_report)


async def n_delete(
    assoc: Association,
    sop_class_uid: str,
    sop_instance_uid: str,
    *,
    timeout: float | None = None,
    context_id: int | None = None,
    on_event_report: NHandler | None = None,
) -> NResult:
    """Send an N-DELETE-RQ."""
    command = Command.n_delete_rq(assoc.next_message_id(), sop_class_uid, sop_instance_uid)
    return await _request(assoc, command, None, timeout, context_id, on_event_report)


async def _request(
    assoc: Association,
    command: Command,
    dataset: Dataset | None,
    timeout: float | None,
    context_id: int | None,
    on_event_report: NHandler | None,
) -> NResult:
    if context_id is None:
        context_id = assoc.context_for(command.sop_class_uid or "").context_id
    syntax = assoc.accepted[context_id].transfer_syntax
    data = None if dataset is None else encode_dataset(dataset, syntax)
    await assoc.send(context_id, command, data)
    message = await _await_response(assoc, command, timeout, on_event_report)
    rsp = message.command
    reply = None
    if message.dataset is not None:
        if message.error is not None:
            raise DimseError(f"the {rsp.name}'s data set was not received: {message.error}", rsp.status)
        try:
            reply = decode_dataset(message.data, assoc.accepted[message.context_id].transfer_syntax)
        except Exception as exc:
            raise DimseError(f"the {rsp.name}'s data set does not decode: {exc}", rsp.status) from exc
    return NResult(
        status=rsp.status if rsp.status is not None else 0xC000,
        dataset=reply,
        affected_sop_class_uid=rsp.affected_sop_class_uid,
        affected_sop_instance_uid=rsp.affected_sop_instance_uid,
        error_comment=rsp.error_comment,
        error_id=rsp.error_id,
        command=rsp,
    )


async def _await_response(
    assoc: Association, request: Command, timeout: float | None, on_event_report: NHandler | None
) -> DimseMessage:
    wanted = _RESPONSES[CommandField(request.command_field)]
    while True:
        try:
            message = await assoc.receive(timeout)
        except TimeoutError:
            assoc.abort(f"no {wanted.name} within {timeout:g} s")
            raise
        if message is None:
            assoc.abort()
            raise DimseError(f"the peer asked to release the association while {wanted.name} was awaited")
        command = message.command
        if command.command_field == wanted and command.message_id_being_responded_to == request.message_id:
            return message
        if command.is_request:  # the peer may ask while we wait: answer, wait on
            handler = on_event_report if command.command_field == CommandField.N_EVENT_REPORT_RQ else None
            await answer_n_request(assoc, message, handler)
            continue
        assoc.abort()
        raise DimseError(
            f"expected {wanted.name} to message {request.message_id}, received {command.name} "
            f"to message {command.message_id_being_responded_to}"
        )


async def receive_event_report(
    assoc: Association, handler: NHandler, timeout: float | None = None, *, ae_title: str = ""
) -> NRequest:
    """Wait for the next N-EVENT-REPORT-RQ on ``assoc`` (a requestor's association: the SCP reports on it),
    answer it with ``handler`` and return it. Another request arriving first is answered 0x0211
    (unrecognized operation) and the wait goes on; a response arriving aborts the association
    (:class:`~aiodicom.errors.DimseError`); ``timeout`` is the longest silence (TimeoutError, the
    association left open); the peer releasing raises :class:`~aiodicom.errors.AssociationAborted` once
    the release is answered."""
    while True:
        message = await assoc.receive(timeout)
        if message is None:
            assoc.answer_release()
            raise AssociationAborted("the peer released the association before its N-EVENT-REPORT")
        command = message.command
        if command.command_field == CommandField.N_EVENT_REPORT_RQ:
            request = await serve_n_request(assoc, message, handler, ae_title=ae_title)
            if request is not None:
                return request
            continue
        if command.is_request:
            await answer_n_request(assoc, message, None)
            continue
        assoc.abort()
        raise DimseError(f"unexpected {command.name} while an N-EVENT-REPORT was awaited")


# ------------------------------------------------------------------------------------- acceptor


@dataclass(frozen=True, slots=True)
class NRequest:
    """An N-service request as a handler sees it.

    ``service`` is the request's Command Field (``CommandField.N_ACTION_RQ``...), ``command`` the whole
    command set; ``sop_class_uid`` and ``sop_instance_uid`` the instance it is about (requested or
    affected; for an N-CREATE that named none, the UID the server assigned, with ``uid_assigned``);
    ``dataset`` its data set decoded (Event or Action Information, Modification or Attribute List), None
    without one; ``event_type_id``, ``action_type_id``, ``attribute_identifier_list`` (N-GET; None or
    empty: every attribute) as sent. ``association`` is the association it came on (to send on it from
    an :attr:`NResponse.after` callback), ``ae_title`` this side's AE title.
    """

    service: CommandField
    command: Command
    sop_class_uid: str
    sop_instance_uid: str | None
    dataset: Dataset | None
    calling_ae_title: str
    called_ae_title: str
    peer_host: str
    peer_port: int
    ae_title: str
    association: Association
    event_type_id: int | None = None
    action_type_id: int | None = None
    attribute_identifier_list: tuple[int, ...] | None = None
    message_id: int = 0
    uid_assigned: bool = False
    user_identity: IdentityRequest | None = None


@dataclass(frozen=True, slots=True)
class NResponse:
    """What a handler may return: ``status``, the response's data set, the affected SOP instance UID (an
    N-CREATE's SCP may choose it), the Error Comment, and ``after``, a callable (plain or async) run once
    the response is sent, before the association's next message is read: an N-ACTION's SCP may send its
    N-EVENT-REPORT there, on ``request.association``."""

    status: int = Status.SUCCESS
    dataset: Dataset | None = None
    sop_instance_uid: str | None = None
    error_comment: str | None = None
    after: Callable[[], Any] | None = None


#: A handler: ``handler(request: NRequest)``, plain or async, giving None, a status, a Dataset,
#: ``(status, Dataset | None)`` or an :class:`NResponse`.
NHandler = Callable[[NRequest], Any]


def _request_of(assoc: Association, message: DimseMessage, ae_title: str) -> NRequest:
    command = message.command
    host, port = assoc.peer
    rq = assoc.request
    identity = IdentityRequest.of(rq, (host, port))
    instance = command.sop_instance_uid
    assigned = command.command_field == CommandField.N_CREATE_RQ and not instance
    if assigned:
        instance = new_uid()
    dataset = None
    if message.dataset is not None:
        if message.error is not None:
            raise NServiceError(Status.PROCESSING_FAILURE, f"data set not received: {message.error}")
        try:
            dataset = decode_dataset(message.data, assoc.accepted[message.context_id].transfer_syntax)
        except Exception as exc:
            raise NServiceError(
                Status.PROCESSING_FAILURE, f"malformed data set: {type(exc).__name__}: {exc}"
            ) from exc
    return NRequest(
        service=CommandField(command.command_field),
        command=command,
        sop_class_uid=command.sop_class_uid or "",
        sop_instance_uid=instance,
        dataset=dataset,
        calling_ae_title=rq.calling_ae_title,
        called_ae_title=rq.called_ae_title,
        peer_host=host,
        peer_port=port,
        ae_title=ae_title,
        association=assoc,
        event_type_id=command.event_type_id,
        action_type_id=command.action_type_id,
        attribute_identifier_list=command.attribute_identifier_list,
        message_id=command.message_id or 0,
        uid_assigned=assigned,
        user_identity=identity,
    )


def _response_of(result: object) -> NResponse:
    if result is None:
        return NResponse()
    if isinstance(result, NResponse):
        return result
    if isinstance(result, Dataset):
        return NResponse(dataset=result)
    if isinstance(result, bool):
        raise TypeError("a handler returns a status, not a bool")
    if isinstance(result, int):
        return NResponse(status=result)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):
        status, dataset = result
        if dataset is not None and not isinstance(dataset, Dataset):
            raise TypeError(f"a handler's data set is a pydicom Dataset, not {type(dataset).__name__}")
        return NResponse(status=status, dataset=dataset)
    raise TypeError(
        f"a handler returns None, a status, a Dataset, (status, Dataset) or NResponse, not {result!r}"
    )


async def serve_n_request(
    assoc: Association,
    message: DimseMessage,
    handler: NHandler,
    *,
    ae_title: str = "",
    logger: logging.Logger = log,
) -> NRequest | None:
    """Answer one N-service request with ``handler`` (see the module's docstring); the request as the
    handler saw it, or None when it was answered before the handler was called (a data set that did not
    arrive or decode: 0x0110)."""
    command = message.command
    try:
        request = _request_of(assoc, message, ae_title)
    except NServiceError as exc:
        logger.warning("%s from %s: %s", command.name, assoc.calling_ae_title, exc)
        await _send_failure(assoc, message, exc)
        return None
    try:
        result = handler(request)
        if inspect.isawaitable(result):
            result = await result
        response = _response_of(result)
    except NServiceError as exc:
        logger.info("%s for %s refused: %s", command.name, request.sop_instance_uid, exc)
        await _send_failure(assoc, message, exc, request.sop_instance_uid)
        return request
    except Exception as exc:
        logger.exception("the %s handler failed", command.name)
        failure = NServiceError(Status.PROCESSING_FAILURE, f"{type(exc).__name__}: {exc}")
        await _send_failure(assoc, message, failure, request.sop_instance_uid)
        return request
    uid = response.sop_instance_uid or request.sop_instance_uid
    data = None
    if response.dataset is not None:
        data = encode_dataset(response.dataset, assoc.accepted[message.context_id].transfer_syntax)
    rsp = Command.n_rsp(
        command,
        response.status,
        has_dataset=data is not None,
        affected_sop_instance_uid=uid,
        error_comment=error_comment(response.error_comment) if response.error_comment else None,
    )
    await assoc.send(message.context_id, rsp, data)
    if response.after is not None:
        done = response.after()
        if inspect.isawaitable(done):
            await done
    return request


async def _send_failure(
    assoc: Association, message: DimseMessage, exc: NServiceError, instance: str | None = None
) -> None:
    rsp = Command.n_rsp(
        message.command,
        exc.status,
        affected_sop_instance_uid=instance,
        error_comment=error_comment(exc.comment or str(exc)) or None,
        error_id=exc.error_id,
        offending_elements=exc.offending_elements,
        attribute_identifier_list=exc.attribute_identifier_list,
    )
    await assoc.send(message.context_id, rsp)


async def answer_n_request(assoc: Association, message: DimseMessage, handler: NHandler | None) -> None:
    """Answer a request with ``handler``, or, without one, 0x0211 (unrecognized operation: nothing here
    serves it), its data set dropped."""
    if handler is not None:
        await serve_n_request(assoc, message, handler)
        return
    if message.command.command_field == CommandField.C_CANCEL_RQ:
        return  # nothing of ours to cancel, and a C-CANCEL is never answered
    if message.dataset is not None:
        await message.dataset.abort()
    log.info("%s from %s:%s is not served here", message.command.name, *assoc.peer)
    await assoc.send(message.context_id, failure_response(message.command, Status.UNRECOGNIZED_OPERATION))
