"""MppsScu against pynetdicom as the MPPS SCP (its EVT_N_CREATE / EVT_N_SET handlers keep the state and
refuse as PS3.4 F.7 says) and against aiodicom's own SCP; the attribute rules on the SCU's side."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from aiodicom.scp.store import StoreScp
from aiodicom.scu.mpps import MppsRefused, MppsScu
from aiodicom.services.mpps import MPPS_SOP_CLASS


class PynetdicomMpps:
    """A pynetdicom MPPS SCP in its own thread, with the state rules of PS3.4 F.7."""

    def __init__(self) -> None:
        self.instances: dict[str, Dataset] = {}
        self.received: list[tuple[str, Dataset]] = []
        self.lock = threading.Lock()

    def on_create(self, event: Any) -> tuple[Any, Dataset | None]:
        ds = event.attribute_list
        uid = event.request.AffectedSOPInstanceUID
        with self.lock:
            self.received.append(("create", ds))
            if ds.PerformedProcedureStepStatus != "IN PROGRESS":
                return 0x0106, None
            reply = Dataset()
            if uid is None:
                uid = generate_uid()
                reply.AffectedSOPInstanceUID = uid  # pynetdicom's way of returning an assigned UID
            if uid in self.instances:
                return 0x0111, None
            self.instances[uid] = ds
        return 0x0000, reply

    def on_set(self, event: Any) -> tuple[Any, Dataset | None]:
        mods = event.modification_list
        uid = event.request.RequestedSOPInstanceUID
        with self.lock:
            self.received.append(("set", mods))
            held = self.instances.get(uid)
            if held is None:
                return 0x0112, None
            if held.PerformedProcedureStepStatus in ("COMPLETED", "DISCONTINUED"):
                status = Dataset()
                status.Status = 0x0110
                status.ErrorID = 0xA710
                status.ErrorComment = "Performed Procedure Step Object may no longer be updated"
                return status, None
            held.update(mods)
        return 0x0000, None


@pytest.fixture(scope="module")
def pynetdicom_scp() -> Iterator[tuple[PynetdicomMpps, int]]:
    pynetdicom = pytest.importorskip("pynetdicom")
    from pynetdicom import evt

    state = PynetdicomMpps()
    ae = pynetdicom.AE(ae_title="PYNET-MPPS")
    ae.add_supported_context(MPPS_SOP_CLASS)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_N_CREATE, state.on_create), (evt.EVT_N_SET, state.on_set)],
    )
    try:
        yield state, server.server_address[1]
    finally:
        server.shutdown()


@pytest.mark.interop
async def test_against_pynetdicom(pynetdicom_scp: tuple[PynetdicomMpps, int]) -> None:
    state, port = pynetdicom_scp
    scu = MppsScu(f"PYNET-MPPS@127.0.0.1:{port}", calling_ae_title="CT1", dimse_timeout=10)
    step = await scu.create(
        {"PatientName": "DOE^JO", "Modality": "CT"}, patient_id="P1", study_instance_uid="1.2.3.4"
    )
    assert step.status == 0 and step.performed_procedure_step_status == "IN PROGRESS"
    uid = step.sop_instance_uid
    assert uid in state.instances  # the UID pynetdicom assigned came back to us
    sent = state.received[-1][1]
    # type 1 filled, type 2 present (empty when not known): PS3.4 Table F.7.2-1
    assert sent.PerformedStationAETitle == "CT1" and sent.PerformedProcedureStepStatus == "IN PROGRESS"
    assert sent.PerformedProcedureStepStartDate and sent.PerformedProcedureStepStartTime
    assert sent.PerformedProcedureStepID and sent.Modality == "CT" and sent.PatientID == "P1"
    assert sent.ScheduledStepAttributesSequence[0].StudyInstanceUID == "1.2.3.4"
    assert "AccessionNumber" in sent.ScheduledStepAttributesSequence[0]
    for keyword in (
        "PatientBirthDate",
        "PerformedSeriesSequence",
        "PerformedProcedureStepEndDate",
        "StudyID",
    ):
        assert keyword in sent and not sent[keyword].value, keyword

    await scu.set(uid, {"PerformedProcedureStepDescription": "halfway"})
    series = [{"SeriesInstanceUID": "1.2.3.4.5", "ProtocolName": "HEAD", "ReferencedImageSequence": []}]
    done = await scu.set(uid, {"PerformedSeriesSequence": series}, status="completed")
    assert done.performed_procedure_step_status == "COMPLETED"
    mods = state.received[-1][1]
    assert mods.PerformedProcedureStepStatus == "COMPLETED"
    assert mods.PerformedProcedureStepEndDate and mods.PerformedProcedureStepEndTime
    assert mods.PerformedSeriesSequence[0].ProtocolName == "HEAD"
    with pytest.raises(MppsRefused) as refused:
        await scu.set(uid, {"PerformedProcedureStepDescription": "too late"})
    assert refused.value.status == 0x0110 and refused.value.error_id == 0xA710
    assert refused.value.error_comment == "Performed Procedure Step Object may no longer be updated"

    mine = "1.2.826.0.1.3680043.8.498.200"
    assert (await scu.create({"Modality": "MR"}, sop_instance_uid=mine)).sop_instance_uid == mine
    with pytest.raises(MppsRefused) as refused:
        await scu.create({"Modality": "MR"}, sop_instance_uid=mine)
    assert refused.value.status == 0x0111
    with pytest.raises(MppsRefused) as refused:
        await scu.set("1.2.826.0.1.3680043.8.498.201", {"PerformedProcedureStepDescription": "x"})
    assert refused.value.status == 0x0112


async def test_rules_on_the_scu_side() -> None:
    """Checked before anything is sent: the address is never contacted."""
    scu = MppsScu("127.0.0.1:9", dimse_timeout=1)
    with pytest.raises(ValueError, match="Modality is required"):
        await scu.create({"PatientID": "P1"})
    with pytest.raises(ValueError, match="created IN PROGRESS"):
        await scu.create({"Modality": "CT", "PerformedProcedureStepStatus": "COMPLETED"})
    with pytest.raises(ValueError, match="may not change PatientID"):
        await scu.set("1.2.3", {"PatientID": "P2"})
    with pytest.raises(ValueError, match="one of IN PROGRESS"):
        await scu.set("1.2.3", status="DONE")
    with pytest.raises(ValueError, match="not a DICOM keyword"):
        await scu.set("1.2.3", {"NoSuchKeyword": "x"})


async def test_against_our_scp(tmp_path: Path) -> None:
    scp = StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", mpps_dir=tmp_path / "mpps")
    async with scp:
        scu = MppsScu(f"127.0.0.1:{scp.port}", dimse_timeout=10)
        step = await scu.create({"Modality": "US", "PatientID": "P9"})
        assert (tmp_path / "mpps" / f"{step.sop_instance_uid}.json").is_file()
        await scu.set(step.sop_instance_uid, status="DISCONTINUED")
        with pytest.raises(MppsRefused) as refused:
            await scu.set(step.sop_instance_uid, status="COMPLETED")
        assert refused.value.status == 0x0110 and refused.value.error_id == 0xA710
