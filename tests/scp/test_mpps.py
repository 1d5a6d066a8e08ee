"""The MPPS SCP (StoreScp with mpps_dir): pynetdicom as the SCU, the state rules of PS3.4 F.7 (UID
assigned, 0x0106, 0x0111, 0x0110 with Error ID 0xA710, 0x0112), the JSON files, the hooks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset

from aiodicom.errors import NServiceError
from aiodicom.scp.qr import QueryRetrieveScp
from aiodicom.scp.store import StoreScp
from aiodicom.services.mpps import MPPS_SOP_CLASS, JsonMppsStore, MppsEvent, create_attributes

pytestmark = pytest.mark.interop
pynetdicom = pytest.importorskip("pynetdicom")


def creation(**values: Any) -> Dataset:
    ds = create_attributes({"Modality": "CT", "PatientID": "P1", **values}, station_ae_title="CT1")
    return ds


class PynetdicomScu:
    """One pynetdicom association (in a thread: pynetdicom blocks) and the N-CREATE-RSPs it received."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.create_responses: list[Any] = []

    def _run(self, work: Any) -> Any:
        from pynetdicom import AE, evt

        ae = AE(ae_title="PYNET-SCU")
        ae.add_requested_context(MPPS_SOP_CLASS)

        def received(event: Any) -> None:
            if type(event.message).__name__ == "N_CREATE_RSP":
                self.create_responses.append(event.message.command_set)

        assoc = ae.associate(
            "127.0.0.1", self.port, ae_title="STORE-SCP", evt_handlers=[(evt.EVT_DIMSE_RECV, received)]
        )
        assert assoc.is_established
        try:
            return work(assoc)
        finally:
            assoc.release()

    async def create(self, ds: Dataset, uid: str | None = None) -> Any:
        return await asyncio.to_thread(self._run, lambda a: a.send_n_create(ds, MPPS_SOP_CLASS, uid))

    async def set(self, ds: Dataset, uid: str) -> Any:
        return await asyncio.to_thread(self._run, lambda a: a.send_n_set(ds, MPPS_SOP_CLASS, uid))


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", mpps_dir=tmp_path / "mpps")
    async with scp:
        yield scp, PynetdicomScu(scp.port), tmp_path / "mpps"


async def test_create_then_complete(served: Any) -> None:
    _, scu, folder = served
    status, _ = await scu.create(creation())
    assert status.Status == 0
    uid = scu.create_responses[-1].AffectedSOPInstanceUID  # assigned by us, returned in the response
    assert uid.startswith("2.25.")
    stored = json.loads((folder / f"{uid}.json").read_text())
    assert stored["00400252"]["Value"] == ["IN PROGRESS"] and stored["00080018"]["Value"] == [uid]
    assert stored["00080016"]["Value"] == [MPPS_SOP_CLASS]

    update = Dataset()
    update.PerformedProcedureStepDescription = "halfway"
    status, _ = await scu.set(update, uid)
    assert status.Status == 0
    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    done.PerformedProcedureStepEndDate = "20240101"
    status, _ = await scu.set(done, uid)
    assert status.Status == 0
    held = await JsonMppsStore(folder).load(uid)
    assert held is not None and held.PerformedProcedureStepStatus == "COMPLETED"
    assert held.PerformedProcedureStepDescription == "halfway" and held.PatientID == "P1"

    # after COMPLETED: 0x0110 with the Error ID of PS3.4 Table F.7.2-2, and nothing changes
    late = Dataset()
    late.PerformedProcedureStepDescription = "too late"
    status, _ = await scu.set(late, uid)
    assert status.Status == 0x0110 and status.ErrorID == 0xA710
    assert status.ErrorComment == "Performed Procedure Step Object may no longer be updated"
    held = await JsonMppsStore(folder).load(uid)
    assert held is not None and held.PerformedProcedureStepDescription == "halfway"


async def test_refusals(served: Any) -> None:
    _, scu, folder = served
    # an N-CREATE not IN PROGRESS: 0x0106, nothing kept
    wrong = creation()
    wrong.PerformedProcedureStepStatus = "COMPLETED"
    status, _ = await scu.create(wrong, "1.2.826.0.1.3680043.8.498.100")
    assert status.Status == 0x0106  # with the Attribute Identifier List of PS3.7 C.4.2 (pynetdicom drops it)
    assert scu.create_responses[-1].AttributeIdentifierList == 0x00400252
    assert not list(folder.glob("*.json"))
    # ours named: kept as named; a second N-CREATE of it: 0x0111
    mine = "1.2.826.0.1.3680043.8.498.101"
    assert (await scu.create(creation(), mine))[0].Status == 0
    assert scu.create_responses[-1].AffectedSOPInstanceUID == mine
    assert (await scu.create(creation(PatientID="P2"), mine))[0].Status == 0x0111
    held = await JsonMppsStore(folder).load(mine)
    assert held is not None and held.PatientID == "P1"
    # an N-SET of an unknown instance: 0x0112; of an attribute N-SET may not change: 0x0106
    update = Dataset()
    update.PerformedProcedureStepDescription = "x"
    assert (await scu.set(update, "1.2.826.0.1.3680043.8.498.999"))[0].Status == 0x0112
    forbidden = Dataset()
    forbidden.PatientID = "OTHER"
    status, _ = await scu.set(forbidden, mine)
    assert status.Status == 0x0106 and status.AttributeIdentifierList == 0x00100020
    # DISCONTINUED ends it too
    stop = Dataset()
    stop.PerformedProcedureStepStatus = "DISCONTINUED"
    assert (await scu.set(stop, mine))[0].Status == 0
    status, _ = await scu.set(update, mine)
    assert status.Status == 0x0110 and status.ErrorID == 0xA710


async def test_hooks_and_memory_store(tmp_path: Path) -> None:
    """Hooks without mpps_dir: the instances are kept in memory; a hook's NServiceError refuses."""
    scp = QueryRetrieveScp(port=0, host="127.0.0.1", out_dir=tmp_path, archive=False)
    events: list[MppsEvent] = []

    @scp.on_mpps_create
    def created(event: MppsEvent) -> None:
        if event.dataset.PatientID == "BLOCKED":
            raise NServiceError(0x0124, "not this patient")
        events.append(event)

    @scp.on_mpps_set
    async def updated(event: MppsEvent) -> None:
        events.append(event)

    async with scp:
        scu = PynetdicomScu(scp.port)
        uid = "1.2.826.0.1.3680043.8.498.102"
        assert (await scu.create(creation(), uid))[0].Status == 0
        status, _ = await scu.create(creation(PatientID="BLOCKED"), "1.2.826.0.1.3680043.8.498.103")
        assert status.Status == 0x0124 and status.ErrorComment == "not this patient"
        done = Dataset()
        done.PerformedProcedureStepStatus = "COMPLETED"
        assert (await scu.set(done, uid))[0].Status == 0
    assert scp.mpps is not None
    assert set(scp.mpps.store.instances) == {uid}  # type: ignore[attr-defined]
    assert [e.status for e in events] == ["IN PROGRESS", "COMPLETED"]
    assert events[1].previous_status == "IN PROGRESS" and events[1].modifications is not None
    assert events[0].request.calling_ae_title == "PYNET-SCU"


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers=1"):
        StoreScp(port=0, out_dir=tmp_path, mpps_dir=tmp_path / "m", workers=2)
    with pytest.raises(ValueError, match="not both"):
        StoreScp(port=0, out_dir=tmp_path, mpps_dir=tmp_path / "m", mpps_store=JsonMppsStore(tmp_path))
    with pytest.raises(ValueError, match="not a UID"):
        JsonMppsStore(tmp_path).path("../../etc/passwd")
