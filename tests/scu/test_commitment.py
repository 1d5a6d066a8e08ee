"""StorageCommitmentScu: against pynetdicom as the SCP (the report before the N-ACTION response, after it
on the same association, on a new association), a report for a transaction nobody awaits, the timeout,
a refused N-ACTION, StoreScu(commit=True)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import Dataset

from aiodicom.net.client import connect
from aiodicom.scp.store import StoreScp
from aiodicom.scu.commitment import CommitmentReceiver, CommitmentRefused, StorageCommitmentScu
from aiodicom.scu.store import StoreScu
from aiodicom.services.commitment import (
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_SOP_CLASS,
    CommitReference,
    event_information,
)
from aiodicom.services.nservices import n_event_report, new_uid
from aiodicom.ul.items import RoleSelection
from tests.interop.peers import free_port
from tests.scp.part10 import CT_IMAGE_STORAGE, part10, small_ct


@pytest.fixture
def pynetdicom_scp() -> Iterator[object]:
    pytest.importorskip("pynetdicom")
    from tests.interop.commitment_peers import PynetdicomCommitmentScp

    scp = PynetdicomCommitmentScp()
    scp.start()
    try:
        yield scp
    finally:
        scp.stop()


@pytest.mark.interop
@pytest.mark.parametrize("mode", ["before", "after", "new"])
async def test_against_pynetdicom(pynetdicom_scp: object, mode: str) -> None:
    from tests.interop.commitment_peers import PynetdicomCommitmentScp

    assert isinstance(pynetdicom_scp, PynetdicomCommitmentScp)
    held = [new_uid(), new_uid()]
    missing = new_uid()
    pynetdicom_scp.held.update(held)
    pynetdicom_scp.mode = mode
    receive = None
    if mode == "new":
        port = free_port()
        pynetdicom_scp.report_to = ("127.0.0.1", port)
        receive = {"port": port, "host": "127.0.0.1"}
    scu = StorageCommitmentScu(f"PYNET-SC@127.0.0.1:{pynetdicom_scp.port}", receive=receive, timeout=20)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, held[1]
    result = await scu.commit([(CT_IMAGE_STORAGE, held[0]), ds, (CT_IMAGE_STORAGE, missing)])
    assert result.same_association is (mode != "new")
    assert [r.sop_instance_uid for r in result.committed] == held
    assert [(f.sop_instance_uid, f.reason) for f in result.failed] == [(missing, 0x0112)]
    assert result.event_type_id == 2
    for _ in range(100):  # pynetdicom records the response status once it has it
        if pynetdicom_scp.statuses:
            break
        await asyncio.sleep(0.05)
    assert pynetdicom_scp.statuses == [0]  # we answered the report with success


async def test_a_report_nobody_awaits_is_answered_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with CommitmentReceiver(0, host="127.0.0.1", ae_title="MODALITY") as receiver:
        role = RoleSelection(STORAGE_COMMITMENT_SOP_CLASS, scu_role=False, scp_role=True)
        stranger = new_uid()
        event_type, info = event_information(stranger, [CommitReference(CT_IMAGE_STORAGE, new_uid())], [])
        with caplog.at_level(logging.WARNING, logger="aiodicom.scu.commitment"):
            async with connect(
                f"MODALITY@127.0.0.1:{receiver.port}",
                contexts=[(STORAGE_COMMITMENT_SOP_CLASS, ["1.2.840.10008.1.2.1"])],
                role_selections=[role],
            ) as assoc:
                assert assoc.context_for(STORAGE_COMMITMENT_SOP_CLASS).scp_role  # the role was granted
                rsp = await n_event_report(
                    assoc,
                    STORAGE_COMMITMENT_SOP_CLASS,
                    STORAGE_COMMITMENT_INSTANCE,
                    event_type,
                    info,
                    timeout=10,
                )
        assert rsp.status == 0
        assert stranger in caplog.text and "not ours" in caplog.text


async def test_no_report_in_time(tmp_path: Path) -> None:
    """An SCP that never reports (its requestor is unknown to it, and we released): TimeoutError."""
    port = free_port()
    async with StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", storage_commitment=True) as scp:
        assert scp.commitment is not None
        scp.commitment.retry_delay = 60.0
        scu = StorageCommitmentScu(
            f"127.0.0.1:{scp.port}",
            keep_association=False,
            receive={"port": port, "host": "127.0.0.1"},
            timeout=0.5,
        )
        with pytest.raises(TimeoutError, match="no storage commitment report"):
            await scu.commit([(CT_IMAGE_STORAGE, new_uid())])


async def test_a_refused_action_raises(tmp_path: Path) -> None:
    async with StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", storage_commitment=True) as scp:

        def refuse(request: object) -> int:
            return 0x0124

        scp.on_n_action(STORAGE_COMMITMENT_SOP_CLASS, refuse)
        with pytest.raises(CommitmentRefused) as caught:
            await StorageCommitmentScu(f"127.0.0.1:{scp.port}", timeout=5).commit(
                [(CT_IMAGE_STORAGE, new_uid())]
            )
        assert caught.value.status == 0x0124


def test_arguments() -> None:
    with pytest.raises(ValueError, match="receive"):
        StorageCommitmentScu("127.0.0.1:104", keep_association=False)
    with pytest.raises(ValueError, match="positive"):
        StorageCommitmentScu("127.0.0.1:104", timeout=0)


async def test_store_scu_commits_what_it_sent(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.dcm").write_bytes(part10(small_ct()))
    (folder / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")  # fails: not committed either
    async with StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", storage_commitment=True) as scp:
        scu = StoreScu(f"127.0.0.1:{scp.port}", commit=True, commit_timeout=20)
        scu.add_folder(folder)
        result = await scu.send()
    assert result.successful == 3 and result.failed == 1
    assert result.commit is not None and result.commit_error is None
    assert result.commit.ok and len(result.commit.committed) == 3
    sent = {f.sop_instance_uid for f in result.files if f.status == 0}
    assert {r.sop_instance_uid for r in result.commit.committed} == sent
