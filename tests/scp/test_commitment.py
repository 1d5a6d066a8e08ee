"""The storage commitment SCP (StoreScp / QueryRetrieveScp with storage_commitment=True): aiodicom against
itself in both report modes, the failure reasons, a restart between the N-ACTION and the report, a
requestor unreachable at first, the archive's index, the refusals; pynetdicom as the SCU."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from aiodicom.errors import NoAcceptableContext
from aiodicom.net.client import connect
from aiodicom.scp.qr import QueryRetrieveScp
from aiodicom.scp.store import StoreScp
from aiodicom.scu.commitment import CommitmentReceiver, StorageCommitmentScu
from aiodicom.scu.store import StoreScu
from aiodicom.services.commitment import (
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_SOP_CLASS,
    CommitReference,
    action_information,
)
from aiodicom.services.nservices import n_action, new_uid
from tests.interop.peers import free_port
from tests.scp.part10 import CT_IMAGE_STORAGE, part10, small_ct

MR = "1.2.840.10008.5.1.4.1.1.4"


def instances(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i}.dcm"
        path.write_bytes(part10(small_ct()))
        paths.append(path)
    return paths


def uid_of(path: Path) -> str:
    from aiodicom.dataset.files import read_header

    return read_header(path).sop_instance_uid


async def store(port: int, paths: list[Path]) -> None:
    scu = StoreScu(f"127.0.0.1:{port}")
    for path in paths:
        scu.add_file(path)
    result = await scu.send()
    assert result.successful == len(paths)


def json_left(out: Path) -> list[str]:
    return sorted(p.name for p in (out / ".commitments").glob("*.json"))


async def test_same_association_with_every_failure_reason(tmp_path: Path) -> None:
    paths = instances(tmp_path / "in", 3)
    out = tmp_path / "out"
    async with StoreScp(port=0, host="127.0.0.1", out_dir=out, storage_commitment=True) as scp:
        await store(scp.port, paths)
        scu = StorageCommitmentScu(f"127.0.0.1:{scp.port}", timeout=20)
        unknown = (CT_IMAGE_STORAGE, new_uid())
        not_stored_here = ("1.2.840.10008.5.1.4.1.1.999", new_uid())  # not a class this server stores
        wrong_class = (MR, uid_of(paths[2]))  # stored, but as CT
        result = await scu.commit([*paths[:2], unknown, not_stored_here, wrong_class])
        assert result.same_association
        assert {r.sop_instance_uid for r in result.committed} == {uid_of(p) for p in paths[:2]}
        reasons = {f.sop_instance_uid: f.reason for f in result.failed}
        assert reasons == {unknown[1]: 0x0112, not_stored_here[1]: 0x0122, wrong_class[1]: 0x0119}
        assert result.event_type_id == 2 and not result.ok
        assert scp.commitment is not None
        await scp.commitment.wait_reported(10)
        assert json_left(out) == []  # answered: the transaction is gone
        # every instance committed: event type 1, no Failed SOP Sequence
        again = await scu.commit(paths)
        assert again.ok and again.event_type_id == 1 and len(again.committed) == 3
        assert again.dataset is not None and "FailedSOPSequence" not in again.dataset


async def test_a_deleted_file_is_not_committed(tmp_path: Path) -> None:
    paths = instances(tmp_path / "in", 2)
    out = tmp_path / "out"
    async with StoreScp(port=0, host="127.0.0.1", out_dir=out, storage_commitment=True) as scp:
        await store(scp.port, paths)
        gone = uid_of(paths[0])
        next(out.rglob(f"{gone}.dcm")).unlink()
        result = await StorageCommitmentScu(f"127.0.0.1:{scp.port}", timeout=20).commit(paths)
        assert [f.sop_instance_uid for f in result.failed] == [gone]
        assert result.failed[0].reason == 0x0112


async def test_new_association_when_the_requestor_released(tmp_path: Path) -> None:
    paths = instances(tmp_path / "in", 2)
    port = free_port()
    async with StoreScp(
        port=0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        storage_commitment=True,
        remote_aes={"MODALITY": f"127.0.0.1:{port}"},
    ) as scp:
        await store(scp.port, paths)
        scu = StorageCommitmentScu(
            f"127.0.0.1:{scp.port}",
            calling_ae_title="MODALITY",
            keep_association=False,
            receive={"port": port, "host": "127.0.0.1"},
            timeout=20,
        )
        result = await scu.commit(paths)
        assert not result.same_association and result.ok and len(result.committed) == 2
        assert result.retrieve_ae_title == "STORE-SCP"


async def _ask(port: int, transaction: str, refs: list[tuple[str, str]], ae: str = "MODALITY") -> int:
    """An N-ACTION on an association released at once (the report must come on a new one)."""
    async with connect(
        f"127.0.0.1:{port}",
        contexts=[(STORAGE_COMMITMENT_SOP_CLASS, ["1.2.840.10008.1.2.1"])],
        calling_ae_title=ae,
    ) as assoc:
        info = action_information(transaction, [_ref(c, i) for c, i in refs])
        rsp = await n_action(
            assoc, STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_INSTANCE, 1, info, timeout=10
        )
    return rsp.status


def _ref(c: str, i: str) -> CommitReference:
    return CommitReference(c, i)


async def test_restart_between_the_action_and_the_report(tmp_path: Path) -> None:
    """The requestor is not listening while the first server runs; the server is stopped with the report
    pending; a new server on the same folder delivers it once the requestor listens."""
    paths = instances(tmp_path / "in", 2)
    out, port = tmp_path / "out", free_port()
    refs = [(CT_IMAGE_STORAGE, uid_of(p)) for p in paths] + [(CT_IMAGE_STORAGE, new_uid())]
    transaction = new_uid()
    options: dict[str, Any] = {
        "port": 0,
        "host": "127.0.0.1",
        "out_dir": out,
        "storage_commitment": True,
        "remote_aes": {"MODALITY": f"127.0.0.1:{port}"},
    }
    async with StoreScp(**options) as first:
        await store(first.port, paths)
        assert await _ask(first.port, transaction, refs) == 0
        assert first.commitment is not None
        assert transaction in first.commitment.pending
    saved = json.loads((out / ".commitments" / f"{transaction}.json").read_text())
    assert saved["calling_ae_title"] == "MODALITY" and len(saved["references"]) == 3

    receiver = CommitmentReceiver(port, host="127.0.0.1", ae_title="MODALITY")
    future = receiver.commitment_waiters.expect(transaction)
    async with receiver, StoreScp(**options) as second:
        result = await asyncio.wait_for(future, 20)
        assert second.commitment is not None
        await second.commitment.wait_reported(10)
    assert not result.same_association
    assert {r.sop_instance_uid for r in result.committed} == {uid_of(p) for p in paths}
    assert [f.reason for f in result.failed] == [0x0112]
    assert json_left(out) == []


async def test_a_requestor_unreachable_at_first_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = instances(tmp_path / "in", 1)
    port = free_port()
    async with StoreScp(
        port=0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        storage_commitment=True,
        remote_aes={"MODALITY": f"127.0.0.1:{port}"},
    ) as scp:
        assert scp.commitment is not None
        scp.commitment.retry_delay = 0.3
        await store(scp.port, paths)
        transaction = new_uid()
        with caplog.at_level(logging.WARNING, logger="aiodicom.scp.store"):
            assert await _ask(scp.port, transaction, [(CT_IMAGE_STORAGE, uid_of(paths[0]))]) == 0
            for _ in range(200):  # the first attempt fails: nothing listens
                if scp.commitment.pending[transaction].attempts:
                    break
                await asyncio.sleep(0.05)
            assert scp.commitment.pending[transaction].attempts >= 1
        assert "trying again" in caplog.text
        receiver = CommitmentReceiver(port, host="127.0.0.1", ae_title="MODALITY")
        future = receiver.commitment_waiters.expect(transaction)
        async with receiver:
            result = await asyncio.wait_for(future, 20)
        assert result.ok and len(result.committed) == 1
        await scp.commitment.wait_reported(10)


async def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        StoreScp(port=0, out_dir=tmp_path / "a", storage_commitment=True, fsync=False)
    assert not (tmp_path / "a").exists()  # refused before anything is made on disk
    with pytest.raises(ValueError, match="one process"):
        StoreScp(port=0, out_dir=tmp_path / "b", storage_commitment=True, workers=2)
    async with StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", storage_commitment=True) as scp:
        assert scp.commitment is not None
        transaction = new_uid()
        refs = [(CT_IMAGE_STORAGE, new_uid())]
        scp.commitment.retry_delay = 60.0  # MODALITY is unknown: the report stays pending
        assert await _ask(scp.port, transaction, refs) == 0
        assert await _ask(scp.port, transaction, refs) == 0x0210  # a transaction in progress: duplicate
        async with connect(
            f"127.0.0.1:{scp.port}", contexts=[(STORAGE_COMMITMENT_SOP_CLASS, ["1.2.840.10008.1.2.1"])]
        ) as assoc:
            info = action_information(new_uid(), [_ref(*refs[0])])
            wrong_action = await n_action(
                assoc, STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_INSTANCE, 2, info, timeout=10
            )
            wrong_instance = await n_action(assoc, STORAGE_COMMITMENT_SOP_CLASS, "1.2.3", 1, info, timeout=10)
            no_info = await n_action(
                assoc, STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_INSTANCE, 1, timeout=10
            )
        assert (wrong_action.status, wrong_instance.status, no_info.status) == (0x0123, 0x0112, 0x0120)
    async with StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "plain") as plain:  # not served
        with pytest.raises(NoAcceptableContext):  # the SOP class is not accepted at all
            await _ask(plain.port, new_uid(), refs)


async def test_the_archive_commits_what_its_index_holds(tmp_path: Path) -> None:
    """Instances stored before storage commitment was on are found in the archive's index; the state
    folder is never counted as a study."""
    paths = instances(tmp_path / "in", 2)
    out = tmp_path / "out"
    async with QueryRetrieveScp(port=0, host="127.0.0.1", out_dir=out) as before:
        await store(before.port, paths[:1])
    async with QueryRetrieveScp(port=0, host="127.0.0.1", out_dir=out, storage_commitment=True) as scp:
        await store(scp.port, paths[1:])
        result = await StorageCommitmentScu(f"127.0.0.1:{scp.port}", timeout=20).commit(paths)
        assert result.ok and len(result.committed) == 2
        assert scp.archive is not None
        await scp.archive.rebuild()  # a scan of the whole folder
        assert (await scp.archive.stats())["studies"] == 2


@pytest.mark.interop
async def test_pynetdicom_scu_same_association(tmp_path: Path) -> None:
    pytest.importorskip("pynetdicom")
    from tests.interop.commitment_peers import pynetdicom_commit

    paths = instances(tmp_path / "in", 2)
    async with StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", storage_commitment=True) as scp:
        await store(scp.port, paths)
        refs = [(CT_IMAGE_STORAGE, uid_of(p)) for p in paths] + [(CT_IMAGE_STORAGE, new_uid())]
        got = await asyncio.to_thread(pynetdicom_commit, scp.port, refs, new_uid())
    assert got.action_status == 0 and got.same_association and got.event_type == 2
    assert got.report is not None
    assert {i.ReferencedSOPInstanceUID for i in got.report.ReferencedSOPSequence} == {r[1] for r in refs[:2]}
    assert [int(i.FailureReason) for i in got.report.FailedSOPSequence] == [0x0112]


@pytest.mark.interop
async def test_pynetdicom_scu_new_association(tmp_path: Path) -> None:
    pytest.importorskip("pynetdicom")
    from tests.interop.commitment_peers import pynetdicom_commit

    paths = instances(tmp_path / "in", 1)
    port = free_port()
    async with StoreScp(
        port=0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        storage_commitment=True,
        remote_aes={"PYNET-SCU": f"127.0.0.1:{port}"},
    ) as scp:
        await store(scp.port, paths)
        refs = [(CT_IMAGE_STORAGE, uid_of(paths[0]))]
        got = await asyncio.to_thread(pynetdicom_commit, scp.port, refs, new_uid(), receive_port=port)
        assert scp.commitment is not None
        await scp.commitment.wait_reported(10)
    assert got.action_status == 0 and not got.same_association and got.event_type == 1
    assert got.report is not None and "FailedSOPSequence" not in got.report


@pytest.mark.s3
async def test_on_s3_the_object_must_exist(
    moto_endpoint: str, bucket: str, s3: Any, s3_env: None, tmp_path: Path
) -> None:
    """With S3 the state is in commitment_dir; a reference is committed when its object answers a HEAD."""
    from aiodicom.storage.s3 import S3Config

    paths = instances(tmp_path / "in", 2)
    with pytest.raises(ValueError, match="commitment_dir"):
        StoreScp(
            0,
            storage_backend="s3",
            s3_config=S3Config(bucket, endpoint=moto_endpoint),
            storage_commitment=True,
        )
    async with StoreScp(
        0,
        host="127.0.0.1",
        storage_backend="s3",
        s3_config=S3Config(bucket, endpoint=moto_endpoint),
        storage_commitment=True,
        commitment_dir=tmp_path / "state",
    ) as scp:
        await store(scp.port, paths)
        gone = uid_of(paths[0])
        key = next(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if gone in o["Key"])
        s3.delete_object(Bucket=bucket, Key=key)
        result = await StorageCommitmentScu(f"127.0.0.1:{scp.port}", timeout=20).commit(paths)
    assert [r.sop_instance_uid for r in result.committed] == [uid_of(paths[1])]
    assert [(f.sop_instance_uid, f.reason) for f in result.failed] == [(gone, 0x0112)]
    assert (tmp_path / "state" / "stored.sqlite").exists()
