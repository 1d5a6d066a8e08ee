"""C-GET, the requestor's side: a retrieve that brings the instances back on its own association.

A C-FIND survey comes first (see :mod:`aiodicom.services.survey`): it resolves the query into UIDs, so
the C-GET identifiers carry only unique keys and bring only what the query matches, and it tells which
SOP classes to propose (SOPClassesInStudy where the peer answers it, else the instances). Nothing
matched: no C-GET. Then one presentation context per (SOP class, transfer syntax) with the SCP role, so
each instance can come in the syntax the peer holds it in. A study that needs more contexts than an
association holds is retrieved in parts. Peers that send on the first context accepted for a SOP class
(DCMTK's dcmqrscp) may fail instances held in another syntax: those the survey found and that did not
arrive are asked for again, series by series on one association per turn, with each other syntax first.
The sub-operations are stored by the store service (a file system or S3) or relayed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiodicom.dataset.tags import get_common_sop_classes
from aiodicom.dimse import Command, CommandField, is_failure, is_pending, status_name
from aiodicom.errors import AssociationAborted, AssociationRejected, DimseError, NoAcceptableContext
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES, ContextSpec, Requestor
from aiodicom.services.events import notify
from aiodicom.services.query import QueryModel, decode_identifier, encode_identifier
from aiodicom.services.receipt import TranscodeOnReceipt, converting
from aiodicom.services.relay import ForwardOutcome, ForwardTarget, Relay
from aiodicom.services.retrieve import (
    Control,
    RetrieveCompleted,
    RetrieveResult,
    Tally,
    no_match,
    worse_status,
)
from aiodicom.services.store import StoredInstance, StoreService
from aiodicom.services.survey import UIDS_PER_IDENTIFIER, Scope, Survey, scope_of, survey
from aiodicom.storage import Storage, make_storage
from aiodicom.ul.items import RoleSelection

log = logging.getLogger("aiodicom.get")

#: Proposed for every SOP class, one context each, in this order (peers that take the first context of a
#: class get the uncompressed ones first: they can convert between those).
RETRIEVE_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
)
_FAILED_UIDS = 0x00080058  # Failed SOP Instance UID List


def default_sop_classes() -> list[str]:
    """What is proposed when the peer cannot say what a study holds: the common imaging classes."""
    groups = get_common_sop_classes()
    first = [
        groups[name][0] for name in ("ct", "mr", "secondary_capture", "ultrasound", "mammography", "pet")
    ]
    xray = groups["xray"][:3]  # computed radiography, digital X-ray for presentation and for processing
    return [*first, *xray]


@dataclass
class _Batch:
    """One association of a retrieve: the SOP classes it may bring, and its C-GETs' identifiers."""

    identifiers: list[dict[str, Any]]
    classes: list[str]
    syntaxes: Sequence[str] = RETRIEVE_TRANSFER_SYNTAXES


class _Receiver:
    """Stores (or relays) the sub-operations of one retrieve and reports each one."""

    def __init__(self, scu: GetSettings, tally: Tally, control: Control) -> None:
        self.scu = scu
        self.tally = tally
        self.control = control
        self.received: set[str] = set()  # every instance that arrived
        self.ok: set[str] = set()  # those stored (or relayed) with a success or warning status
        self.peer_failed: list[str] = []  # the peers' Failed SOP Instance UID Lists
        self.storage: Storage | None = None
        self.relay: Relay | None = None
        self.service: StoreService | None = None

    async def start(self, pairs: Iterable[tuple[str, str]]) -> None:
        scu = self.scu
        if scu.storage_backend == "forward":
            assert scu.forward_target is not None
            self.relay = Relay(
                scu.forward_target,
                strict=scu.strict_forward,
                dimse_timeout=scu.dimse_timeout,
                never_transcode=scu.never_transcode,
                max_transcode_workers=scu.max_transcode_workers,
            )
            await self.relay.open(pairs)
            return
        storage = make_storage(scu.storage_backend, scu.out_dir, scu.s3_config, fsync=scu.fsync)
        self.storage = converting(storage, scu.transcode_on_receipt, file_meta=scu.store_with_file_meta)
        await self.storage.start()
        self.service = StoreService(
            self.storage,
            ae_title=scu.calling_ae_title,
            store_with_file_meta=scu.store_with_file_meta,
        )

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.close()
        if self.storage is not None:
            await self.storage.stop()

    def attach(self, assoc: Association) -> None:
        if self.relay is not None:
            assoc.sink_factory = self.relay.sink_factory(assoc)
        else:
            assert self.service is not None
            assoc.sink_factory = self.service.sink_factory(assoc)

    async def handle(self, assoc: Association, message: DimseMessage) -> None:
        uid = message.command.affected_sop_instance_uid or ""
        stored: StoredInstance | None = None
        forwarded: ForwardOutcome | None = None
        if self.relay is not None:
            relayed = await self.relay.handle(assoc, message)
            status, forwarded = relayed.status, relayed.forward
            if forwarded is not None and not forwarded.ok:
                self.tally.result.forward_failed.append(forwarded)
        else:
            assert self.service is not None
            outcome = await self.service.handle(assoc, message)
            status, stored = outcome.status, outcome.instance
        self.received.add(uid)
        if not is_failure(status):
            self.ok.add(uid)
        self.tally.stored(status)
        if stored is not None:
            self.tally.result.files.append(stored.file)
        converted_from = syntax = stored_uid = None
        if stored is not None:
            syntax, stored_uid = stored.transfer_syntax_uid, stored.sop_instance_uid
            converted_from = stored.received_transfer_syntax if stored.converted else None
        elif forwarded is not None:
            syntax, converted_from = forwarded.transfer_syntax, forwarded.converted_from
        event = self.tally.event(
            file=stored.file if stored is not None else None,
            sop_instance_uid=uid,
            forwarded_to=forwarded.forwarded_to if forwarded is not None else None,
            forward_status=forwarded.status if forwarded is not None else None,
            forward_error=forwarded.error if forwarded is not None else None,
            transfer_syntax=syntax,
            converted_from=converted_from,
            stored_sop_instance_uid=stored_uid if stored_uid != uid else None,
        )
        await self.control.progress(event, self.tally.done)


class GetSettings(Requestor, Protocol):
    """What a C-GET retrieve needs of its requestor: where, how, and where the instances go."""

    calling_ae_title: str
    priority: int
    max_contexts: int
    transfer_syntaxes: tuple[str, ...]
    sop_classes: list[str] | None
    storage_backend: str
    out_dir: str | os.PathLike[str] | None
    s3_config: object
    fsync: bool
    store_with_file_meta: bool
    forward_target: ForwardTarget | None
    strict_forward: bool
    transcode_on_receipt: TranscodeOnReceipt | None
    never_transcode: bool
    max_transcode_workers: int | None


class GetRun:
    """One C-GET retrieve of a :class:`GetSettings` (a GetScu): its survey, its batches of associations,
    its second chance, its tally."""

    def __init__(
        self,
        scu: GetSettings,
        scope: Scope,
        control: Control,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
    ) -> None:
        self.scu = scu
        self.scope = scope
        self.control = control
        self.on_completed = on_completed

    async def run(self) -> RetrieveResult:
        """Survey, plan, C-GET each batch, ask again for what did not come, and tell ``on_completed``."""
        scope, control, on_completed = self.scope, self.control, self.on_completed
        model = scope.model
        found = await self._survey(scope)
        if not found.matched:
            result, completed = no_match()
            log.info("C-GET: nothing on %s matches %s: no C-GET sent", self.scu.address, scope.sent)
            await notify(on_completed, completed, event="on_completed")
            return result
        if len(found.classes) > self._classes_per_association() and not found.instances:
            found = await self._survey(scope, instances=True)  # to split by series
        tally = Tally(len(found.instances) if found.instances else found.count, receiving=True)
        receiver = _Receiver(self.scu, tally, control)
        batches = self._plan(scope, found)
        pairs = [(c, ts) for b in batches for c in b.classes for ts in b.syntaxes]
        await receiver.start(pairs)
        status = 0
        cancelled = False
        try:
            for batch in batches:
                if control.requested:
                    break
                status = worse_status(status, await self._get_batch(model, batch, receiver, tally, control))
            missing = set(found.instances) - receiver.received
            if missing and tally.result.failed and not control.requested:
                status = await self._retry(model, found, missing, receiver, tally, control, status)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            await receiver.stop()
            if cancelled:  # the task was cancelled: tell on_completed what was done, then re-raise
                await notify(
                    on_completed,
                    tally.finish(control.final_status, cancelled=control.cancelled),
                    event="on_completed",
                )
        result = tally.result
        if found.instances and not control.cancelled:
            result.failed_sop_instance_uids = sorted(set(found.instances) - receiver.ok)
        else:
            result.failed_sop_instance_uids = sorted(set(receiver.peer_failed) - receiver.ok)
        completed = tally.finish(status, cancelled=control.cancelled)
        log.info("C-GET done: %s", completed.message)
        await notify(on_completed, completed, event="on_completed")
        if result.refused:
            raise DimseError(f"C-GET answered {status_name(status)} (0x{status:04X})", status)
        return result

    # ---------------------------------------------------------------------------------- planning

    def _classes_per_association(self) -> int:
        # one context is the C-GET model's, each SOP class takes one per transfer syntax
        return max(1, (self.scu.max_contexts - 1) // len(self.scu.transfer_syntaxes))

    async def _survey(self, scope: Scope, instances: bool = False) -> Survey:
        if self.scu.sop_classes is not None and scope.direct and not instances:
            return Survey(level=scope.level, classes=list(self.scu.sop_classes), resolved=False)
        try:
            found = await survey(self.scu, scope, classes=self.scu.sop_classes is None, instances=instances)
        except (DimseError, NoAcceptableContext, AssociationRejected, AssociationAborted) as exc:
            if not scope.direct:
                raise DimseError(
                    f"the C-FIND that resolves the query into UIDs failed ({exc}): without it only a query "
                    "of unique keys (StudyInstanceUID...) can be retrieved"
                ) from exc
            log.warning("the C-FIND survey failed (%s): proposing the common storage classes", exc)
            return Survey(
                level=scope.level, classes=list(self.scu.sop_classes or default_sop_classes()), resolved=False
            )
        if self.scu.sop_classes is not None:
            found.classes = list(self.scu.sop_classes)
        return found

    def _plan(self, scope: Scope, found: Survey) -> list[_Batch]:
        model = scope.model
        syntaxes = self.scu.transfer_syntaxes
        per_association = self._classes_per_association()
        identifiers = found.identifiers(model) if found.resolved else [scope.identifier()]
        classes = found.classes or default_sop_classes()[:per_association]
        if len(classes) <= per_association:
            return [_Batch(identifiers, classes, syntaxes)]
        if not found.instances or not found.classes:  # nothing to split by: as many classes as fit
            log.warning("%d SOP classes need more contexts than one association holds", len(classes))
            return [_Batch(identifiers, classes[:per_association], syntaxes)]
        groups: dict[tuple[str, ...], _Batch] = {}  # associations by class group, C-GETs by series
        for members in found.by_series().values():
            series_classes = sorted({found.instances[uid][0] for uid in members})
            for start in range(0, len(series_classes), per_association):
                group = tuple(series_classes[start : start + per_association])
                uids = [uid for uid in members if found.instances[uid][0] in group]
                batch = groups.setdefault(group, _Batch([], list(group), syntaxes))
                batch.identifiers += _image_identifiers(model, found, uids)
        log.info("retrieving in %d parts: %d SOP classes", len(groups), len(classes))
        return list(groups.values())

    def _contexts(self, model: QueryModel, batch: _Batch) -> tuple[list[ContextSpec], list[RoleSelection]]:
        contexts: list[ContextSpec] = [(model.get_sop_class, DEFAULT_TRANSFER_SYNTAXES)]
        contexts += [(sop_class, [ts]) for sop_class in batch.classes for ts in batch.syntaxes]
        roles = [RoleSelection(sop_class, False, True) for sop_class in batch.classes]
        return contexts, roles

    async def _get_batch(
        self,
        model: QueryModel,
        batch: _Batch,
        receiver: _Receiver,
        tally: Tally,
        control: Control,
        again: bool = False,
    ) -> int:
        """One association: a C-GET per identifier of ``batch``, one after the other."""
        contexts, roles = self._contexts(model, batch)
        status = 0
        async with self.scu.connect(contexts, roles) as assoc:
            receiver.attach(assoc)
            refused = [
                c
                for c in batch.classes
                if not any(ctx.abstract_syntax == c and ctx.scp_role for ctx in assoc.accepted.values())
            ]
            if refused:
                log.warning("%s accepted no SCP role for %s", self.scu.address, ", ".join(refused))
            ctx = assoc.context_for(model.get_sop_class)
            for identifier in batch.identifiers:
                if control.requested:
                    break
                message_id = assoc.next_message_id()
                log.info("C-GET %s from %s: %s", model.value, self.scu.address, identifier)
                request = Command.c_get_rq(message_id, model.get_sop_class, self.scu.priority)
                await assoc.send(ctx.context_id, request, encode_identifier(identifier, ctx.transfer_syntax))
                tally.begin(again)
                control.start(assoc, ctx.context_id, message_id)
                try:
                    reading = self._responses(assoc, ctx.context_id, message_id, receiver, tally, control)
                    status = worse_status(status, await control.run(reading, assoc))
                finally:
                    control.end()
        return status

    async def _responses(
        self,
        assoc: Association,
        context_id: int,
        message_id: int,
        receiver: _Receiver,
        tally: Tally,
        control: Control,
    ) -> int:
        """Answer sub-operations and read responses to the final one (each wait at most dimse_timeout)."""
        while True:
            message = await assoc.receive(self.scu.dimse_timeout)
            if message is None:
                assoc.abort()
                raise DimseError("the peer asked to release the association during a C-GET")
            command = message.command
            if command.command_field == CommandField.C_STORE_RQ:
                await receiver.handle(assoc, message)
            elif (
                command.command_field == CommandField.C_GET_RSP
                and command.message_id_being_responded_to == message_id
            ):
                tally.response(command)
                status = command.status if command.status is not None else 0xC000
                if not is_pending(status):
                    receiver.peer_failed += _failed_uids(message, assoc.accepted[context_id].transfer_syntax)
                    control.final(status)
                    return status
                await control.progress(None, tally.done)
            else:
                assoc.abort()
                raise DimseError(f"unexpected {command.name} during a C-GET")

    async def _retry(
        self,
        model: QueryModel,
        found: Survey,
        missing: set[str],
        receiver: _Receiver,
        tally: Tally,
        control: Control,
        status: int,
    ) -> int:
        """Ask again for the instances of the survey that never came, with each other transfer syntax first
        in turn: one association per turn, one C-GET per series listing only those instances."""
        syntaxes = self.scu.transfer_syntaxes
        for turn in range(1, len(syntaxes)):
            if not missing or control.requested:
                break
            order = (*syntaxes[turn:], *syntaxes[:turn])
            log.info("asking again for %d instances, %s first", len(missing), order[0])
            before = set(receiver.ok)
            for batch in self._retry_batches(model, found, missing, order):
                await self._get_batch(model, batch, receiver, tally, control, again=True)
            tally.recovered(len((receiver.ok - before) & missing))
            missing -= receiver.received
        if not missing and not set(found.instances) - receiver.ok:
            return 0
        return status

    def _retry_batches(
        self, model: QueryModel, found: Survey, missing: set[str], order: Sequence[str]
    ) -> list[_Batch]:
        per_association = self._classes_per_association()
        batches: list[_Batch] = []
        for members in found.by_series(missing).values():
            classes = sorted({found.instances[uid][0] for uid in members} - {""})
            classes = classes or (found.classes or default_sop_classes())[:per_association]
            batch = batches[-1] if batches else None
            if batch is None or len(set(batch.classes) | set(classes)) > per_association:
                batch = _Batch([], [], order)
                batches.append(batch)
            batch.classes = sorted(set(batch.classes) | set(classes))
            batch.identifiers += _image_identifiers(model, found, members)
        return batches


def checked_scope(model: QueryModel, identifier: dict[str, Any]) -> Scope:
    scope = scope_of(model, identifier)
    if scope.empty:
        raise ValueError(
            "a retrieve needs at least one key to match (StudyInstanceUID, PatientID, PatientName...): "
            "an empty identifier matches everything on some PACS"
        )
    return scope


def _image_identifiers(model: QueryModel, found: Survey, uids: Sequence[str]) -> list[dict[str, Any]]:
    """IMAGE-level identifiers for instances of one series (lists of at most UIDS_PER_IDENTIFIER)."""
    _, series, study = found.instances[uids[0]]
    base: dict[str, Any] = {"QueryRetrieveLevel": "IMAGE"}
    if model is QueryModel.PATIENT_ROOT:
        base["PatientID"] = found.patients.get(study, "")
    base.update(StudyInstanceUID=study, SeriesInstanceUID=series)
    return [
        {**base, "SOPInstanceUID": "\\".join(uids[start : start + UIDS_PER_IDENTIFIER])}
        for start in range(0, len(uids), UIDS_PER_IDENTIFIER)
    ]


def _failed_uids(message: DimseMessage, transfer_syntax: str) -> list[str]:
    """The Failed SOP Instance UID List of a final response (logged), if it has one."""
    if message.dataset is None:
        return []
    try:
        ds = decode_identifier(message.data, transfer_syntax)
    except Exception:  # the identifier of a final response is informative only
        return []
    failed = ds.get(_FAILED_UIDS)
    if failed is None or not failed.value:
        return []
    values = [str(v) for v in failed.value] if failed.VM > 1 else [str(failed.value)]
    log.warning("the peer reports failed sub-operations for %s", values)
    return values
