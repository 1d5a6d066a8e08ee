"""MoveScu against Orthanc and dcmqrscp: the built-in receiver, an external DCMTK storescp, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pydicom
import pytest

from aiodicom import DimseError, MoveScu, StoreScp, SubOperation
from tests.interop.pacs import Pacs
from tests.interop.studies import QrData
from tests.scu.test_get import assert_same_instance, received_path

pytestmark = pytest.mark.interop


async def test_move_to_the_built_in_receiver(qr_pacs: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    study = qr_data.b
    events: list[SubOperation] = []
    scu = MoveScu(qr_pacs.address)
    result = await scu.move_study(
        {"StudyInstanceUID": study.study_instance_uid},
        "MOVE-SCU",
        receive={"port": qr_pacs.dest_ports["MOVE-SCU"], "host": "127.0.0.1", "out_dir": tmp_path},
        on_sub_operation=events.append,
    )
    assert (result.completed, result.failed, result.warning, result.status) == (3, 0, 0, 0)
    assert sorted(result.files) == sorted(str(received_path(tmp_path, i)) for i in study.instances)
    for inst in study.instances:
        assert_same_instance(pydicom.dcmread(received_path(tmp_path, inst)), inst, syntax_may_change=False)
    assert all(e.total == 3 for e in events if e.total)


async def test_every_syntax_moves_from_orthanc_as_stored(
    orthanc_qr: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    receive = {"port": orthanc_qr.dest_ports["MOVE-SCU"], "host": "127.0.0.1", "out_dir": tmp_path}
    result = await MoveScu(orthanc_qr.address).move_study(
        {"StudyInstanceUID": qr_data.a.study_instance_uid}, "MOVE-SCU", receive=receive
    )
    assert result.completed == len(qr_data.a.instances) and result.failed == 0
    for inst in qr_data.a.instances:
        received = pydicom.dcmread(received_path(tmp_path, inst))
        assert str(received.file_meta.TransferSyntaxUID) == inst.transfer_syntax_uid
        assert_same_instance(received, inst, syntax_may_change=False)


async def test_move_to_an_external_dcmtk_storescp(qr_pacs: Pacs, qr_data: QrData, qr_storescp: Any) -> None:
    dest = qr_storescp(qr_pacs.dest_ports["STORESCP"])
    result = await MoveScu(qr_pacs.address).move_study(
        {"StudyInstanceUID": qr_data.b.study_instance_uid}, "STORESCP"
    )
    assert result.completed == 3 and result.files == []
    received = {pydicom.dcmread(p).SOPInstanceUID for p in dest.out_dir.iterdir()}
    assert received == {i.sop_instance_uid for i in qr_data.b.instances}


async def test_an_unknown_destination_is_a_clear_error(qr_pacs: Pacs, qr_data: QrData) -> None:
    with pytest.raises(DimseError, match="NOBODY") as info:
        await MoveScu(qr_pacs.address).move_study(
            {"StudyInstanceUID": qr_data.b.study_instance_uid}, "NOBODY"
        )
    # dcmqrscp and aiodicom answer Move Destination Unknown; Orthanc 1.10 answers a plain failure
    assert info.value.status == (0xC000 if qr_pacs.name == "orthanc" else 0xA801)


async def test_concurrent_moves_into_one_receiver_get_their_own_instances(
    qr_pacs: Pacs, qr_data: QrData, tmp_path: Path
) -> None:
    """Instances are tied to their move by Move Originator AE title and Message ID (or else by UIDs)."""
    ct = qr_data.a.series[0]
    async with StoreScp(
        qr_pacs.dest_ports["AIODICOM-RCV"], host="127.0.0.1", ae_title="AIODICOM-RCV", out_dir=tmp_path
    ) as scp:
        scu = MoveScu(qr_pacs.address)
        by_study, by_series = await asyncio.gather(
            scu.move_study({"StudyInstanceUID": qr_data.b.study_instance_uid}, "AIODICOM-RCV", receive=scp),
            scu.move_series(
                {"StudyInstanceUID": ct.study_instance_uid, "SeriesInstanceUID": ct.series_instance_uid},
                "AIODICOM-RCV",
                receive=scp,
            ),
        )
    assert sorted(by_study.files) == sorted(str(received_path(tmp_path, i)) for i in qr_data.b.instances)
    assert sorted(by_series.files) == sorted(str(received_path(tmp_path, i)) for i in ct.instances)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="no C-MOVE"):
        MoveScu("127.0.0.1:104", query_model="modality_worklist")
    with pytest.raises(ValueError):
        asyncio.run(MoveScu("127.0.0.1:104").move_study({}, "BAD\\AE"))
