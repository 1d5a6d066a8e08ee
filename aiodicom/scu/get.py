"""GetScu: C-GET with the instances received on the same association, to a file system, S3, or relayed.

A C-FIND survey comes first (see :mod:`aiodicom.services.survey`): it resolves the query into UIDs, so
the C-GET identifiers carry only unique keys and bring only what the query matches, and it tells which
SOP classes to propose (SOPClassesInStudy where the peer answers it, else the instances). Nothing
matched: no C-GET. Then one presentation context per (SOP class, transfer syntax) with the SCP role, so
each instance can come in the syntax the peer holds it in. A study that needs more contexts than an
association holds is retrieved in parts. Peers that send on the first context accepted for a SOP class
(DCMTK's dcmqrscp) may fail instances held in another syntax: those the survey found and that did not
arrive are asked for again, series by series on one association per turn, with each other syntax first.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiodicom.dataset.tags import get_common_sop_classes, normalize_option
from aiodicom.dimse import Command, CommandField, Priority, is_failure, is_pending, status_name
from aiodicom.errors import AssociationAborted, AssociationRejected, DimseError, NoAcceptableContext
from aiodicom.net.address import Address
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.client import DEFAULT_TRANSFER_SYNTAXES, ContextSpec
from aiodicom.net.identity import UserIdentity
from aiodicom.net.options import KEEP, AssociationOptions, Keep
from aiodicom.scu.base import Scu
from aiodicom.services.events import notify
from aiodicom.services.query import (
    QueryBuilder,
    QueryModel,
    decode_identifier,
    encode_identifier,
    resolve_query,
)
from aiodicom.services.relay import ForwardOutcome, ForwardTarget, Relay
from aiodicom.services.retrieve import (
    CANCEL_TIMEOUT,
    Control,
    RetrieveCompleted,
    RetrieveOperation,
    RetrieveResult,
    SubOperation,
    Tally,
    no_match,
    worse_status,
)
from aiodicom.services.store import StoredInstance, StoreService
from aiodicom.services.survey import UIDS_PER_IDENTIFIER, Scope, Survey, scope_of, survey
from aiodicom.storage import Storage, check_backend, make_storage
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

    def __init__(self, scu: GetScu, tally: Tally, control: Control) -> None:
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
            )
            await self.relay.open(pairs)
            return
        self.storage = make_storage(scu.storage_backend, scu.out_dir, scu.s3_config, fsync=scu.fsync)
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
        event = self.tally.event(
            file=stored.file if stored is not None else None,
            sop_instance_uid=uid,
            forwarded_to=forwarded.forwarded_to if forwarded is not None else None,
            forward_status=forwarded.status if forwarded is not None else None,
            forward_error=forwarded.error if forwarded is not None else None,
        )
        await self.control.progress(event, self.tally.done)


class GetScu(Scu):
    """C-GET SCU: the peer sends the matching instances back on the same association.

    ``storage_backend`` is ``filesystem`` (``out_dir/{Study}/{Series}/{SOP}.dcm``, atomic writes),
    ``s3`` (``s3_config``), or ``forward`` (``forward_target``: each instance relayed PDV by PDV)::

        scu = GetScu("ORTHANC@127.0.0.1:4242", out_dir="./retrieved")
        result = await scu.get_study({"PatientName": "DOE^JOHN", "StudyDate": "20240101-20240131"})
        print(result.completed, result.failed, result.files[:3])

    ``dimse_timeout`` is the longest silence while waiting for the next sub-operation or response, not a
    bound on the whole retrieve; ``cancel_timeout`` how long a cancelled task waits for the final response
    after its C-CANCEL before it aborts.
    """

    default_calling_ae_title = "GET-SCU"
    default_dimse_timeout = 60.0
    kind = "get"

    def __init__(
        self,
        addr: str | Address,
        *,
        options: AssociationOptions | None = None,
        calling_ae_title: str | Keep | None = KEEP,
        called_ae_title: str | Keep | None = KEEP,
        max_pdu_length: int | Keep = KEEP,
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
        connect_timeout: float | Keep = KEEP,
        acse_timeout: float | Keep = KEEP,
        dimse_timeout: float | Keep | None = KEEP,
        cancel_timeout: float = CANCEL_TIMEOUT,
        verbose: bool = False,
        user_identity: UserIdentity | Keep | None = KEEP,
        implementation_class_uid: str | Keep = KEEP,
        implementation_version_name: str | Keep = KEEP,
    ) -> None:
        super().__init__(
            addr,
            options=options,
            calling_ae_title=calling_ae_title,
            called_ae_title=called_ae_title,
            max_pdu_length=max_pdu_length,
            connect_timeout=connect_timeout,
            acse_timeout=acse_timeout,
            dimse_timeout=dimse_timeout,
            verbose=verbose,
            user_identity=user_identity,
            implementation_class_uid=implementation_class_uid,
            implementation_version_name=implementation_version_name,
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
        if cancel_timeout < 0:
            raise ValueError("cancel_timeout may not be negative")
        self.max_contexts = max_contexts
        self.fsync = fsync
        self.priority = priority
        self.cancel_timeout = cancel_timeout

    # ------------------------------------------------------------------------------------ public API

    async def get_study(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Retrieve the studies matching ``query`` (level STUDY unless the query sets another)."""
        return await self.get(query, query_model, "STUDY", on_sub_operation, on_completed, limit=limit)

    async def get_series(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Retrieve series (``StudyInstanceUID`` and ``SeriesInstanceUID``, level SERIES)."""
        return await self.get(query, query_model, "SERIES", on_sub_operation, on_completed, limit=limit)

    async def get_instances(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Retrieve instances (study, series and SOP Instance UIDs, level IMAGE)."""
        return await self.get(query, query_model, "IMAGE", on_sub_operation, on_completed, limit=limit)

    async def get(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        level: str = "STUDY",
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        *,
        limit: int | None = None,
    ) -> RetrieveResult:
        """Retrieve what ``query`` matches at ``level`` (a QueryRetrieveLevel in the query wins).

        Any matching key may be given (``PatientName``, ``AccessionNumber``, a ``StudyDate`` range,
        ``Modality``...): a C-FIND survey resolves them into UIDs first, and nothing matched means no C-GET
        (``result.matched`` is False). ``limit`` cancels the retrieve after that many sub-operations.
        Raises :class:`DimseError` when the peer refuses the C-GET outright (a failure status with
        nothing retrieved); sub-operation failures are counted in the result, not raised. A cancelled
        task sends C-CANCEL, waits ``cancel_timeout`` for the final response, aborts, and re-raises.
        """
        return await self.iter_get(
            query,
            query_model,
            level,
            on_sub_operation=on_sub_operation,
            on_completed=on_completed,
            limit=limit,
        )

    def iter_get(
        self,
        query: Mapping[str, Any] | QueryBuilder,
        query_model: str | QueryModel | None = None,
        level: str = "STUDY",
        *,
        on_sub_operation: Callable[[SubOperation], Any] | None = None,
        on_completed: Callable[[RetrieveCompleted], Any] | None = None,
        limit: int | None = None,
    ) -> RetrieveOperation:
        """The retrieve as a :class:`RetrieveOperation`: ``async for event in`` it for each instance as it
        arrives (leaving the loop cancels the rest; use ``contextlib.aclosing``), or ``await`` it::

            async with contextlib.aclosing(scu.iter_get({"PatientID": "123"})) as retrieve:
                async for event in retrieve:
                    if event.completed >= 10:
                        break
            print(retrieve.result)
        """
        model, identifier = resolve_query(query, query_model, default_model=self.query_model, level=level)
        scope = _checked_scope(model, identifier)
        control = Control(limit, self.cancel_timeout, on_sub_operation)
        return RetrieveOperation(lambda c: self._get(scope, c, on_completed), control)

    # ---------------------------------------------------------------------------------- retrieving

    async def _get(
        self, scope: Scope, control: Control, on_completed: Callable[[RetrieveCompleted], Any] | None
    ) -> RetrieveResult:
        model = scope.model
        found = await self._survey(scope)
        if not found.matched:
            result, completed = no_match()
            log.info("C-GET: nothing on %s matches %s: no C-GET sent", self.address, scope.sent)
            await notify(on_completed, completed, event="on_completed")
            return result
        if len(found.classes) > self._classes_per_association() and not found.instances:
            found = await self._survey(scope, instances=True)  # to split by series
        tally = Tally(len(found.instances) if found.instances else found.count, receiving=True)
        receiver = _Receiver(self, tally, control)
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
        return max(1, (self.max_contexts - 1) // len(self.transfer_syntaxes))

    async def _survey(self, scope: Scope, instances: bool = False) -> Survey:
        if self.sop_classes is not None and scope.direct and not instances:
            return Survey(level=scope.level, classes=list(self.sop_classes), resolved=False)
        try:
            found = await survey(self, scope, classes=self.sop_classes is None, instances=instances)
        except (DimseError, NoAcceptableContext, AssociationRejected, AssociationAborted) as exc:
            if not scope.direct:
                raise DimseError(
                    f"the C-FIND that resolves the query into UIDs failed ({exc}): without it only a query "
                    "of unique keys (StudyInstanceUID...) can be retrieved"
                ) from exc
            log.warning("the C-FIND survey failed (%s): proposing the common storage classes", exc)
            return Survey(
                level=scope.level, classes=self.sop_classes or default_sop_classes(), resolved=False
            )
        if self.sop_classes is not None:
            found.classes = list(self.sop_classes)
        return found

    def _plan(self, scope: Scope, found: Survey) -> list[_Batch]:
        model = scope.model
        syntaxes = self.transfer_syntaxes
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
            for identifier in batch.identifiers:
                if control.requested:
                    break
                message_id = assoc.next_message_id()
                log.info("C-GET %s from %s: %s", model.value, self.address, identifier)
                request = Command.c_get_rq(message_id, model.get_sop_class, self.priority)
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
        syntaxes = self.transfer_syntaxes
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


def _checked_scope(model: QueryModel, identifier: dict[str, Any]) -> Scope:
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
