"""The N-services between aiodicom peers: the six requests and their handlers, sync and async, statuses
and typed refusals, N-EVENT-REPORTs that reach a requestor while it waits and after, and negotiation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset

import aiodicom
from aiodicom.dimse import CommandField, Status
from aiodicom.errors import NoAcceptableContext, NServiceError
from aiodicom.scp.store import StoreScp
from aiodicom.services.nservices import (
    NRequest,
    NResponse,
    n_action,
    n_create,
    n_delete,
    n_event_report,
    n_get,
    n_set,
    receive_event_report,
)
from aiodicom.ul.items import RoleSelection

MPPS = "1.2.840.10008.3.1.2.3.3"
COMMITMENT = "1.2.840.10008.1.20.1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]


def ds(**values: Any) -> Dataset:
    out = Dataset()
    for key, value in values.items():
        setattr(out, key, value)
    return out


class Instances:
    """A tiny N-service SCP: instances by UID, served by handlers both plain and async."""

    def __init__(self) -> None:
        self.store: dict[str, Dataset] = {}
        self.requests: list[NRequest] = []

    def create(self, request: NRequest) -> NResponse:
        self.requests.append(request)
        assert request.sop_instance_uid is not None and request.dataset is not None
        if request.sop_instance_uid in self.store:
            raise NServiceError(Status.DUPLICATE_SOP_INSTANCE, "exists already")
        self.store[request.sop_instance_uid] = request.dataset
        return NResponse(dataset=request.dataset)

    async def set(self, request: NRequest) -> int:
        await asyncio.sleep(0)
        held = self.store.get(request.sop_instance_uid or "")
        if held is None:
            raise NServiceError(Status.NO_SUCH_SOP_INSTANCE, error_id=0xA710)
        assert request.dataset is not None
        held.update(request.dataset)
        return Status.SUCCESS

    def get(self, request: NRequest) -> Dataset:
        held = self.store[request.sop_instance_uid or ""]
        wanted = request.attribute_identifier_list
        out = Dataset()
        for elem in held:
            if not wanted or elem.tag in wanted:
                out.add(elem)
        return out

    async def delete(self, request: NRequest) -> None:
        if self.store.pop(request.sop_instance_uid or "", None) is None:
            raise NServiceError(Status.NO_SUCH_SOP_INSTANCE)


@pytest.fixture
async def server(tmp_path: Path) -> Any:
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path)
    instances = Instances()
    scp.on_n_create(MPPS, instances.create)
    scp.on_n_set(MPPS)(instances.set)  # the decorator form
    scp.on_n_get(MPPS, instances.get)
    scp.on_n_delete(MPPS, instances.delete)
    async with scp:
        yield scp, instances


def addr(scp: StoreScp) -> str:
    return f"127.0.0.1:{scp.port}"


async def test_create_set_get_delete(server: Any) -> None:
    scp, instances = server
    async with aiodicom.connect(addr(scp), contexts=[(MPPS, UNCOMPRESSED)]) as assoc:
        created = await n_create(assoc, MPPS, ds(PatientID="P1", Modality="CT"), timeout=10)
        assert (
            created.status == 0 and created.ok and created.command.command_field == CommandField.N_CREATE_RSP
        )
        uid = created.affected_sop_instance_uid
        assert uid is not None and uid.startswith("2.25.") and uid in instances.store
        assert instances.requests[0].uid_assigned and instances.requests[0].sop_instance_uid == uid
        assert created.dataset is not None and created.dataset.PatientID == "P1"  # the reply came back
        # ours named: kept; a second N-CREATE for it is refused, typed
        mine = "1.2.826.0.1.3680043.8.498.5"
        again = await n_create(assoc, MPPS, ds(PatientID="P2"), sop_instance_uid=mine, timeout=10)
        assert again.affected_sop_instance_uid == mine and not instances.requests[1].uid_assigned
        dup = await n_create(assoc, MPPS, ds(PatientID="P3"), sop_instance_uid=mine, timeout=10)
        assert dup.status == 0x0111 and dup.error_comment == "exists already" and not dup.ok
        assert "Duplicate SOP Instance" in dup.message

        assert (await n_set(assoc, MPPS, uid, ds(Modality="MR", StudyID="7"), timeout=10)).status == 0
        got = await n_get(assoc, MPPS, uid, ["Modality", 0x00200010], timeout=10)
        assert got.status == 0 and got.dataset is not None
        assert got.dataset.Modality == "MR" and got.dataset.StudyID == "7" and "PatientID" not in got.dataset
        whole = await n_get(assoc, MPPS, uid, timeout=10)
        assert whole.dataset is not None and whole.dataset.PatientID == "P1"

        missing = await n_set(assoc, MPPS, "1.2.3.4", ds(Modality="MR"), timeout=10)
        assert missing.status == 0x0112 and missing.error_id == 0xA710
        assert missing.affected_sop_instance_uid == "1.2.3.4"
        assert (await n_delete(assoc, MPPS, uid, timeout=10)).status == 0
        assert uid not in instances.store
        assert (await n_delete(assoc, MPPS, uid, timeout=10)).status == 0x0112
        # no N-ACTION handler for MPPS: 0x0122, and the association goes on
        assert (await n_action(assoc, MPPS, uid, 1, ds(PatientID="x"), timeout=10)).status == 0x0122


async def test_handler_failures_and_bad_results(server: Any) -> None:
    scp, _ = server

    def broken(request: NRequest) -> None:
        raise RuntimeError("disk on fire")

    scp.on_n_action(MPPS, broken)
    async with aiodicom.connect(addr(scp), contexts=[(MPPS, UNCOMPRESSED)]) as assoc:
        failed = await n_action(assoc, MPPS, "1.2.3", 5, timeout=10)
        assert failed.status == 0x0110 and failed.error_comment == "RuntimeError: disk on fire"
        assert failed.command.action_type_id == 5
        scp.on_n_action(MPPS, lambda request: "not a status")
        odd = await n_action(assoc, MPPS, "1.2.3", 5, timeout=10)
        assert odd.status == 0x0110 and "TypeError" in (odd.error_comment or "")
        scp.on_n_action(MPPS, lambda request: (0x0001, ds(StudyID="9")))  # a warning with a reply
        warned = await n_action(assoc, MPPS, "1.2.3", 5, timeout=10)
        assert (
            warned.status == 1 and warned.ok and warned.dataset is not None and warned.dataset.StudyID == "9"
        )


async def test_a_class_is_accepted_only_once_registered(tmp_path: Path) -> None:
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path)
    async with scp:
        with pytest.raises(NoAcceptableContext):
            async with aiodicom.connect(
                addr(scp), contexts=[(MPPS, UNCOMPRESSED), "1.2.840.10008.1.1"]
            ) as assoc:
                await n_create(assoc, MPPS, ds(PatientID="P1"), timeout=10)
        scp.on_n_create(MPPS, lambda request: None)
        assert scp.n_handler("n_create", MPPS) is not None and scp.n_sop_classes == {MPPS}
        async with aiodicom.connect(addr(scp), contexts=[(MPPS, UNCOMPRESSED)]) as assoc:
            assert (await n_create(assoc, MPPS, ds(PatientID="P1"), timeout=10)).status == 0
        with pytest.raises(TypeError):
            scp.on_n_create(MPPS, "not a function")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="service is one of"):
            scp.n_handler("c_store", MPPS)


async def test_event_report_while_the_requestor_waits_and_after(tmp_path: Path) -> None:
    """A storage commitment SCP may report before its N-ACTION-RSP (the requestor answers it while it
    waits, with ``on_event_report``) or after it (``NResponse.after``, then ``receive_event_report``)."""
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path)
    replies: list[int] = []

    async def action(request: NRequest) -> NResponse:
        info = ds(TransactionUID=request.dataset.TransactionUID if request.dataset else "1.2")
        if request.action_type_id == 1:  # report first, then answer
            reported = await n_event_report(
                request.association, COMMITMENT, COMMITMENT_INSTANCE, 1, info, timeout=10
            )
            replies.append(reported.status)
            return NResponse()

        async def report_after() -> None:
            reported = await n_event_report(
                request.association, COMMITMENT, COMMITMENT_INSTANCE, 2, info, timeout=10
            )
            replies.append(reported.status)

        return NResponse(after=report_after)

    scp.on_n_action(COMMITMENT, action)
    seen: list[NRequest] = []

    async def on_report(request: NRequest) -> Dataset:
        seen.append(request)
        return ds(StudyID="reply")

    async with scp, aiodicom.connect(addr(scp), contexts=[(COMMITMENT, UNCOMPRESSED)]) as assoc:
        before = await n_action(
            assoc,
            COMMITMENT,
            COMMITMENT_INSTANCE,
            1,
            ds(TransactionUID="1.2.3"),
            timeout=10,
            on_event_report=on_report,
        )
        assert before.status == 0 and replies == [0]
        assert seen[0].event_type_id == 1 and seen[0].dataset is not None
        assert seen[0].dataset.TransactionUID == "1.2.3" and seen[0].service == CommandField.N_EVENT_REPORT_RQ

        after = await n_action(
            assoc, COMMITMENT, COMMITMENT_INSTANCE, 2, ds(TransactionUID="1.2.4"), timeout=10
        )
        assert after.status == 0
        report = await receive_event_report(assoc, on_report, timeout=10)
        assert report.event_type_id == 2 and report.dataset is not None
        assert report.dataset.TransactionUID == "1.2.4"
        for _ in range(100):  # the SCP's N-EVENT-REPORT-RSP arrives after ours went out
            if len(replies) == 2:
                break
            await asyncio.sleep(0.05)
        assert replies == [0, 0]

        # without on_event_report, a report arriving while we wait is answered 0x0211
        before2 = await n_action(
            assoc, COMMITMENT, COMMITMENT_INSTANCE, 1, ds(TransactionUID="1.2.5"), timeout=10
        )
        assert before2.status == 0 and replies[-1] == Status.UNRECOGNIZED_OPERATION


async def test_event_report_to_an_acceptor_with_the_scp_role(tmp_path: Path) -> None:
    """A commitment SCP that reports on a new association proposes SCU 0, SCP 1 for the class: the server
    with an on_n_event_report handler grants it, and the handler answers."""
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path)
    got: list[NRequest] = []
    scp.on_n_event_report(COMMITMENT, got.append)
    async with scp:
        role = RoleSelection(COMMITMENT, False, True)
        async with aiodicom.connect(
            addr(scp), contexts=[(COMMITMENT, UNCOMPRESSED)], role_selections=[role]
        ) as assoc:
            ctx = assoc.context_for(COMMITMENT)
            assert ctx.scp_role and not ctx.scu_role
            result = await n_event_report(
                assoc, COMMITMENT, COMMITMENT_INSTANCE, 1, ds(TransactionUID="1.2.9"), timeout=10
            )
            assert result.status == 0 and result.command.event_type_id == 1
            assert result.affected_sop_instance_uid == COMMITMENT_INSTANCE
    assert got[0].dataset is not None and got[0].dataset.TransactionUID == "1.2.9"
    assert got[0].calling_ae_title and got[0].peer_host == "127.0.0.1"
