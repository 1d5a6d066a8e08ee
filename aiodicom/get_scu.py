"""GetScu: C-GET with the instances received on the same association, to a file system, S3, or relayed.

What the peer will send decides what we propose: a C-FIND survey first (SOPClassesInStudy where the peer
answers it, else the series and instances), then one presentation context per (SOP class, transfer syntax)
with the SCP role, so each instance can come in the syntax the peer holds it in. A study that needs more
contexts than an association holds is retrieved in parts. Peers that send on the first context accepted for
a SOP class (DCMTK's dcmqrscp) may fail instances held in another syntax: those are asked for again, with
each other syntax first in turn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiodicom.dimse import Command, CommandField, Priority, is_pending, status_name
from aiodicom.errors import AssociationAborted, AssociationRejected, DimseError, NoAcceptableContext
from aiodicom.events import call
from aiodicom.net.address import Address
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES, ContextSpec
from aiodicom.query import (
    QueryBuilder,
    QueryModel,
    decode_identifier,
    encode_identifier,
    resolve_query,
)
from aiodicom.retrieve import RetrieveCompleted, RetrieveResult, SubOperation, Tally
from aiodicom.scu import Scu
from aiodicom.services.store import StoredInstance, StoreService
from aiodicom.storage import Storage, check_backend, make_storage
from aiodicom.storage.forward import ForwardOutcome, ForwardTarget, Relay
from aiodicom.survey import Survey, survey
from aiodicom.tags import get_common_sop_classes, normalize_option
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
    """One C-GET of a retrieve: its identifier and the SOP classes it may bring."""

    identifier: dict[str, Any]
    classes: list[str]
    syntaxes: Sequence[str] = RETRIEVE_TRANSFER_SYNTAXES


class _Receiver:
    """Stores (or relays) the sub-operations of one retrieve and reports each one."""

    def __init__(self, scu: GetScu, tally: Tally, on_sub_operation: Callable[[Any], Any] | None) -> None:
        self.scu = scu
        self.tally = tally
        self.on_sub_operation = on_sub_operation
        self.received: set[str] = set()
        self.storage: Storage | None = None
        self.relay: Relay | None = None
        self.service: StoreService | None = None
        self._stored: StoredInstance | None = None
        self._forwarded: ForwardOutcome | None = None

    async def start(self, pairs: Iterable[tuple[str, str]]) -> None:
        scu = self.scu
        if scu.storage_backend == "forward":
            assert scu.forward_target is not None
            self.relay = Relay(
                scu.forward_target,
                strict=scu.strict_forward,
                dimse_timeout=scu.dimse_timeout,
                on_outcome=self._on_forward,
            )
            await self.relay.open(pairs)
            return
        self.storage = make_storage(scu.storage_backend, scu.out_dir, scu.s3_config, fsync=scu.fsync)
        await self.storage.start()
        self.service = StoreService(
            self.storage,
            ae_title=scu.calling_ae_title,
            store_with_file_meta=scu.store_with_file_meta,
            on_stored=self._on_stored,
        )

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.close()
        if self.storage is not None:
            await self.storage.stop()

    def _on_stored(self, instance: StoredInstance, assoc: Association) -> None:
        self._stored = instance

    def _on_forward(self, outcome: ForwardOutcome) -> None:
        self._forwarded = outcome
        if not outcome.ok:
            self.tally.result.forward_failed.append(outcome)

    def attach(self, assoc: Association) -> None:
        if self.relay is not None:
            assoc.sink_factory = self.relay.sink_factory(assoc)
        else:
            assert self.service is not None
            assoc.sink_factory = self.service.sink_factory(assoc)

    async def handle(self, assoc: Association, message: DimseMessage) -> None:
        self._stored, self._forwarded = None, None
        uid = message.command.affected_sop_instance_uid or ""
        if self.relay is not None:
            status = await self.relay.handle(assoc, message)
        else:
            assert self.service is not None
            status = await self.service.handle(assoc, message)
        self.received.add(uid)
        self.tally.stored(status)
        stored, forwarded = self._stored, self._forwarded
        if stored is not None:
            self.tally.result.files.append(stored.file)
        event = self.tally.event(
            file=stored.file if stored is not None else None,
            sop_instance_uid=uid,
            forwarded_to=forwarded.forwarded_to if forwarded is not None else None,
            forward_status=forwarded.status if forwarded is not None else None,
            forward_error=forwarded.error if forwarded is not None else None,
        )
        await call(self.on_sub_operation, event)


class GetScu(Scu):
    """C-GET SCU: the peer sends the matching instances back on the same association.

    ``storage_backend`` is ``filesystem`` (``out_dir/{Study}/{Series}/{SOP}.dcm``, atomic writes),
    ``s3`` (``s3_config``), or ``forward`` (``forward_target``: each instance relayed PDV by PDV)::

        scu = GetScu("ORTHANC@127.0.0.1:4242", out_dir="./retrieved")
        result = await scu.get_study({"StudyInstanceUID": "1.2.3"})
        print(result.completed, result.failed, result.files[:3])
    """

    default_calling_ae_title = "GET-SCU"

    def __init__(
        self,
        addr: str | Address,
        *,
        calling_ae_title: str = "GET-SCU",
        called_ae_title: str | None = None,
        max_pdu_length: int = 16384,
        out_dir: str | os.PathLike[str] | None = None,
        storage_backend: str = "filesystem",
        s3_config: object = None,
        forward_target: ForwardTarget | Mapping[str, Any] | None = None,
        strict_forward: bool = False,
        store_with_file_meta: bool = True,
        query_model: str | QueryModel = QueryModel.STUDY_ROOT,
        sop_classes: Sequence[str] | None = None,
        transfer_syntaxes: Sequence[str] = RETRIEVE_TRANSFER_SYNTAXES,
        max_contexts: int = 128,
        fsync: bool = True,
        priority: int = Priority.MEDIUM,
        connect_timeout: float = 30.0,
        acse_timeout: float = 30.0,
        dimse_timeout: float | None = 60.0,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            addr,
            calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title,
            max_pdu_length=max_pdu_length,
            connect_timeout=connect_timeout,
            acse_timeout=acse_timeout,
            dimse_timeout=dimse_timeout,
            verbose=verbose,
        )
        self.storage_backend = normalize_option(
            storage_backend, ("filesystem", "s3", "forward"), "storage_backend"
        )
        check_backend(self.storage_backend, out_dir, s3_config)
        if self.storage_backend == "forward" and forward_target is None:
            raise ValueError("storage_backend='forward' needs forward_target (a ForwardTarget or a dict)")
        self.out_dir = out_dir
        self.s3_config = s3_config
        self.forward_target = ForwardTarget.from_value(forward_target) if forward_target is not None else None
        self.strict_forward = strict_forward
        self.store_with_file_meta = store_with_file_meta
        self.query_model = QueryModel.parse(query_model)
        self.query_model.get_sop_class  # noqa: B018 (a worklist model has no C-GET: fail here)
        self.sop_classes = list(sop_classes) if sop_classes is not None else None
        if not transfer_syntaxes:
            raise ValueError("transfer_syntaxes may not be empty")
        self.transfer_syntaxes = tuple(transfer_syntaxes)
        if not 2 <= max_contexts <= 128:
            raise ValueError("max_contexts must be from 2 to 128 (presentation contexts per association)")
        self.max_contexts = max_contexts
        self.fsync = fsync
        self.priority = priority

    # ------------------------------------------------------------------------------------ public API

    async def get_study(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
    ) -> RetrieveResult:
        """Retrieve the studies matching ``query`` (level STUDY unless the query sets another)."""
        return await self.get(query, query_model, "STUDY", on_sub_operation, on_completed)

    async def get_series(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
    ) -> RetrieveResult:
        """Retrieve series (``StudyInstanceUID`` and ``SeriesInstanceUID``, level SERIES)."""
        return await self.get(query, query_model, "SERIES", on_sub_operation, on_completed)

    async def get_instances(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
    ) -> RetrieveResult:
        """Retrieve instances (study, series and SOP Instance UIDs, level IMAGE)."""
        return await self.get(query, query_model, "IMAGE", on_sub_operation, on_completed)

    async def get(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        level: str = "STUDY",
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
    ) -> RetrieveResult:
        """Retrieve what ``query`` matches at ``level`` (a QueryRetrieveLevel in the query wins).

        Raises :class:`DimseError` when the peer refuses the C-GET outright (a failure status with
        nothing retrieved); sub-operation failures are counted in the result, not raised.
        """
        model, identifier = resolve_query(query, query_model, default_model=self.query_model, level=level)
        found = await self._survey(model, identifier)
        if len(found.classes) > self._classes_per_association() and not found.instances:
            found = await self._survey(model, identifier, instances=True)  # to split by series
        tally = Tally(len(found.instances) if found.instances else found.count)
        receiver = _Receiver(self, tally, on_sub_operation)
        batches = self._plan(model, identifier, found)
        pairs = [(c, ts) for b in batches for c in b.classes for ts in b.syntaxes]
        await receiver.start(pairs)
        status = 0
        try:
            for batch in batches:
                status = await self._get_batch(model, batch, receiver, tally)
            missing = set(found.instances) - receiver.received if found.instances else set()
            if missing and tally.result.failed:
                status = await self._retry(model, found, missing, receiver, tally, status)
        finally:
            await receiver.stop()
        result = tally.result
        if found.instances:
            result.failed_sop_instance_uids = sorted(set(found.instances) - receiver.received)
        completed = tally.finish(status)
        log.info("C-GET done: %s", completed.message)
        await call(on_completed, completed)
        if result.refused:
            raise DimseError(f"C-GET answered {status_name(status)} (0x{status:04X})", status)
        return result

    # ---------------------------------------------------------------------------------- planning

    def _classes_per_association(self) -> int:
        # one context is the C-GET model's, each SOP class takes one per transfer syntax
        return max(1, (self.max_contexts - 1) // len(self.transfer_syntaxes))

    async def _survey(self, model: QueryModel, identifier: dict[str, Any], instances: bool = False) -> Survey:
        if self.sop_classes is not None and not instances:
            return Survey(classes=list(self.sop_classes))
        try:
            return await survey(self, model, identifier, instances=instances)
        except (DimseError, NoAcceptableContext, AssociationRejected, AssociationAborted) as exc:
            log.warning("the C-FIND survey failed (%s): proposing the common storage classes", exc)
            return Survey(classes=default_sop_classes())

    def _plan(self, model: QueryModel, identifier: dict[str, Any], found: Survey) -> list[_Batch]:
        syntaxes = self.transfer_syntaxes
        per_association = self._classes_per_association()
        classes = found.classes or default_sop_classes()[:per_association]
        if len(classes) <= per_association:
            return [_Batch(identifier, classes, syntaxes)]
        if not found.instances or not found.classes:  # nothing to split by: as many classes as fit
            log.warning("%d SOP classes need more contexts than one association holds", len(classes))
            return [_Batch(identifier, classes[:per_association], syntaxes)]
        batches: list[_Batch] = []
        for members in found.by_series().values():
            series_classes = sorted({found.instances[uid][0] for uid in members})
            for start in range(0, len(series_classes), per_association):
                group = set(series_classes[start : start + per_association])
                uids = [uid for uid in members if found.instances[uid][0] in group]
                batches.append(_Batch(self._image_identifier(model, found, uids), sorted(group), syntaxes))
        log.info("retrieving in %d parts: %d SOP classes", len(batches), len(classes))
        return batches

    def _image_identifier(self, model: QueryModel, found: Survey, uids: Sequence[str]) -> dict[str, Any]:
        _, series, study = found.instances[uids[0]]
        identifier: dict[str, Any] = {
            "QueryRetrieveLevel": "IMAGE",
            "StudyInstanceUID": study,
            "SeriesInstanceUID": series,
            "SOPInstanceUID": "\\".join(uids),
        }
        if model is QueryModel.PATIENT_ROOT:
            identifier = {"PatientID": found.patients.get(study, ""), **identifier}
        return identifier

    # ---------------------------------------------------------------------------------- retrieving

    def _contexts(self, model: QueryModel, batch: _Batch) -> tuple[list[ContextSpec], list[RoleSelection]]:
        contexts: list[ContextSpec] = [(model.get_sop_class, DEFAULT_TRANSFER_SYNTAXES)]
        contexts += [(sop_class, [ts]) for sop_class in batch.classes for ts in batch.syntaxes]
        roles = [RoleSelection(sop_class, False, True) for sop_class in batch.classes]
        return contexts, roles

    async def _get_batch(self, model: QueryModel, batch: _Batch, receiver: _Receiver, tally: Tally) -> int:
        contexts, roles = self._contexts(model, batch)
        async with self.connect(contexts, roles) as assoc:
            receiver.attach(assoc)
            refused = [
                c
                for c in batch.classes
                if not any(ctx.abstract_syntax == c and ctx.scp_role for ctx in assoc.accepted.values())
            ]
            if refused:
                log.warning("%s accepted no SCP role for %s", self.address, ", ".join(refused))
            ctx = assoc.context_for(model.get_sop_class)
            message_id = assoc.next_message_id()
            sop_class = model.get_sop_class
            log.info("C-GET %s from %s: %s", model.value, self.address, batch.identifier)
            request = Command.c_get_rq(message_id, sop_class, self.priority)
            await assoc.send(
                ctx.context_id, request, encode_identifier(batch.identifier, ctx.transfer_syntax)
            )
            tally.begin()
            while True:
                message = await assoc.receive(self.dimse_timeout)
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
                        _log_failed(message, ctx.transfer_syntax)
                        return status
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
        status: int,
    ) -> int:
        """Ask again for instances that never came, with each other transfer syntax first in turn."""
        syntaxes = self.transfer_syntaxes
        per_association = self._classes_per_association()
        for turn in range(1, len(syntaxes)):
            if not missing:
                break
            order = (*syntaxes[turn:], *syntaxes[:turn])
            log.info("asking again for %d instances, %s first", len(missing), order[0])
            before = set(receiver.received)
            for members in found.by_series(missing).values():
                classes = sorted({found.instances[uid][0] for uid in members} - {""})
                classes = classes or (found.classes or default_sop_classes())[:per_association]
                batch = _Batch(self._image_identifier(model, found, members), classes, order)
                await self._get_batch_again(model, batch, receiver, tally)
            arrived = (receiver.received - before) & missing
            tally.recovered(len(arrived))
            missing -= arrived
        return status if missing else 0

    async def _get_batch_again(
        self, model: QueryModel, batch: _Batch, receiver: _Receiver, tally: Tally
    ) -> None:
        # a retry's own failures are not counted again: those instances were counted failed already
        failed = tally.result.failed
        await self._get_batch(model, batch, receiver, tally)
        tally.result.failed = failed


def _log_failed(message: DimseMessage, transfer_syntax: str) -> None:
    if message.dataset is None:
        return
    try:
        ds = decode_identifier(message.data, transfer_syntax)
    except Exception:  # the identifier of a final response is informative only
        return
    failed = ds.get(_FAILED_UIDS)
    if failed is not None and failed.value:
        log.warning("the peer reports failed sub-operations for %s", failed.value)
