"""StoreScp granting an asynchronous operations window: what it answers, and several C-STOREs taken before
the first is answered (a raw requestor that sends them all before reading any response)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from aiodicom.dimse import Command, CommandField
from aiodicom.scp.store import StoreScp
from aiodicom.ul.items import AsyncOperationsWindow
from aiodicom.ul.pdu import AAssociateRQ
from tests.interop.rawpeer import CT_IMAGE_STORAGE, EXPLICIT_LE, RawPeer, associate_rq
from tests.scp.part10 import SmallCt, small_ct

TIMEOUT = 20.0


def window_rq(window: AsyncOperationsWindow | None) -> AAssociateRQ:
    rq = associate_rq([(1, CT_IMAGE_STORAGE, [EXPLICIT_LE])], called_ae_title="STORE-SCP")
    if window is None:
        return rq
    items = (*rq.user_information.items, window)
    return dataclasses.replace(rq, user_information=dataclasses.replace(rq.user_information, items=items))


@pytest.mark.parametrize(
    ("ours", "proposed", "granted"),
    [
        (8, AsyncOperationsWindow(16, 1), AsyncOperationsWindow(8, 1)),
        (8, AsyncOperationsWindow(4, 3), AsyncOperationsWindow(4, 1)),
        (8, AsyncOperationsWindow(0, 0), AsyncOperationsWindow(8, 1)),
        (0, AsyncOperationsWindow(5, 1), AsyncOperationsWindow(5, 1)),
        (1, AsyncOperationsWindow(8, 1), AsyncOperationsWindow(1, 1)),  # answered, not omitted (D.3-6)
        (8, None, None),  # not proposed: omitted
    ],
)
async def test_what_storescp_grants(
    tmp_path: Path, ours: int, proposed: AsyncOperationsWindow | None, granted: AsyncOperationsWindow | None
) -> None:
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path, fsync=False, max_ops_performed=ours) as scp,
        await RawPeer.connect(scp.port) as peer,
    ):
        ac = await peer.associate(window_rq(proposed))
        assert ac.user_information.async_ops_window == granted
        await peer.release()


async def send_all_then_read(peer: RawPeer, instances: list[SmallCt]) -> list[tuple[int, str, int]]:
    """Every C-STORE-RQ and its data set first, then every response: (message ID answered, SOP, status)."""
    ids = []
    for ct in instances:
        message_id = peer.next_message_id()
        ids.append(message_id)
        await peer.send_command(1, Command.c_store_rq(message_id, ct.sop_class, ct.sop_instance))
        await peer.send_dataset(1, ct.data)
    answers = []
    for _ in instances:
        rsp = (await peer.receive_message(TIMEOUT)).command
        assert rsp.command_field == CommandField.C_STORE_RSP
        answers.append(
            (rsp.message_id_being_responded_to or 0, rsp.affected_sop_instance_uid or "", rsp.status or 0)
        )
    return answers


async def test_several_requests_before_the_first_response_are_stored_and_answered_in_order(
    tmp_path: Path,
) -> None:
    instances = [small_ct() for _ in range(8)]
    out = tmp_path / "out"
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=out, max_ops_performed=8) as scp,
        await RawPeer.connect(scp.port) as peer,
    ):
        await peer.associate(window_rq(AsyncOperationsWindow(8, 1)))
        answers = await asyncio.wait_for(send_all_then_read(peer, instances), TIMEOUT)
        # each answered only once stored whole: its file is in place when its response is read
        assert all((out / ct.relative_path).read_bytes().endswith(ct.data) for ct in instances)
        await peer.release()
    assert [a[1] for a in answers] == [ct.sop_instance for ct in instances]  # in order of arrival
    assert [a[0] for a in answers] == list(range(1, 9))
    assert {a[2] for a in answers} == {0}


async def test_many_requests_unread_responses_no_deadlock(tmp_path: Path) -> None:
    """Forty 130 KB instances sent before any response is read (more than the receive queue holds, and
    than the socket buffers take): reading pauses and resumes as they are stored; every one is answered."""
    instances = [small_ct(rows=256) for _ in range(40)]
    out = tmp_path / "out"
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False, max_ops_performed=0) as scp,
        await RawPeer.connect(scp.port) as peer,
    ):
        await peer.associate(window_rq(AsyncOperationsWindow(0, 1)))
        answers = await asyncio.wait_for(send_all_then_read(peer, instances), TIMEOUT)
        await peer.release()
    assert [a[1] for a in answers] == [ct.sop_instance for ct in instances]
    assert {a[2] for a in answers} == {0}
    assert sorted(p.stem for p in out.rglob("*.dcm")) == sorted(ct.sop_instance for ct in instances)
