"""The low-level window: ``connect(..., max_ops_invoked=N)``, ``Association.max_ops_invoked`` on both sides,
and :class:`OperationsWindow` sending requests without waiting, each response to its own request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import aiodicom
from aiodicom.net.association import Association
from aiodicom.net.window import OperationsWindow
from aiodicom.scp.store import StoreScp
from tests.interop.faultproxy import FaultProxy
from tests.scp.part10 import CT_IMAGE_STORAGE, EXPLICIT_LE, part10, small_ct

TIMEOUT = 20.0


async def test_window_negotiated_and_used(tmp_path: Path) -> None:
    instances = [small_ct() for _ in range(10)]
    acceptor_windows: list[int] = []
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path, fsync=False, max_ops_performed=4) as scp,
        FaultProxy(scp.port, latency=0.01) as proxy,
    ):
        scp.on_connection(lambda event: acceptor_windows.extend(a.max_ops_invoked for a in scp.associations))
        async with aiodicom.connect(
            f"127.0.0.1:{proxy.port}", contexts=[(CT_IMAGE_STORAGE, [EXPLICIT_LE])], max_ops_invoked=6
        ) as assoc:
            assert assoc.max_ops_invoked == 4  # granted 4 of the 6 proposed
            window = OperationsWindow(assoc, timeout=TIMEOUT)
            futures = [await window.c_store(part10(ct)) for ct in instances]
            responses = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
            await window.join()
            assert window.outstanding == 0
    assert acceptor_windows == [4]
    assert window.most_outstanding == 4
    assert [r.command.affected_sop_instance_uid for r in responses] == [ct.sop_instance for ct in instances]
    assert {r.command.status for r in responses} == {0}
    assert sorted(p.stem for p in tmp_path.rglob("*.dcm")) == sorted(ct.sop_instance for ct in instances)


async def test_window_fails_every_outstanding_request_when_the_association_ends(tmp_path: Path) -> None:
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path, fsync=False, max_ops_performed=8) as scp,
        aiodicom.connect(
            f"127.0.0.1:{scp.port}", contexts=[(CT_IMAGE_STORAGE, [EXPLICIT_LE])], max_ops_invoked=8
        ) as assoc,
    ):
        window = OperationsWindow(assoc, timeout=TIMEOUT)
        future = await window.c_store(part10(small_ct(rows=512)))  # 0.5 MB: still arriving when aborted
        assoc.abort()
        with pytest.raises(aiodicom.AssociationAborted):
            await asyncio.wait_for(future, TIMEOUT)
        with pytest.raises(aiodicom.AssociationAborted):
            await window.c_store(part10(small_ct()))
    assert isinstance(assoc, Association) and window.outstanding == 0
