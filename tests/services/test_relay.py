"""The forward relay never hands the destination a whole-looking instance that did not arrive whole.

A raw sender on loopback sends C-STOREs to a relay server (the Relay behind GetScu's forward backend),
which forwards them PDV by PDV to a real StoreScp: a truncated instance is refused 0xC000 to the sender,
the destination's association is aborted before the last PDV, so the destination stores nothing; the
next whole instance goes through on a new association.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiodicom import StoreScp
from aiodicom.net.association import Association
from aiodicom.net.server import DicomServer
from aiodicom.services.dispatch import serve_messages
from aiodicom.services.relay import ForwardOutcome, ForwardTarget, Relay
from aiodicom.ul.negotiation import ContextPolicy
from tests.interop.rawpeer import CT_IMAGE_STORAGE, EXPLICIT_LE, RawPeer, ct_image

C_STORE_RQ = 0x0001


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".incoming" not in p.parts]


async def test_a_truncated_instance_never_reaches_the_destination_whole(tmp_path: Path) -> None:
    outcomes: list[ForwardOutcome] = []
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "dest", fsync=False) as dest:
        relay = Relay(ForwardTarget(f"127.0.0.1:{dest.port}"), on_outcome=outcomes.append)
        await relay.open([(CT_IMAGE_STORAGE, EXPLICIT_LE)])

        async def serve(assoc: Association) -> None:
            assoc.sink_factory = relay.sink_factory(assoc)
            await serve_messages(assoc, {C_STORE_RQ: relay.handle})

        policy = ContextPolicy(
            abstract_syntaxes=frozenset({CT_IMAGE_STORAGE}), transfer_syntaxes=(EXPLICIT_LE,)
        )
        try:
            server = DicomServer(serve, port=0, host="127.0.0.1", policy=policy)
            async with server, await RawPeer.connect(server.port) as peer:
                await peer.associate([(1, CT_IMAGE_STORAGE, [EXPLICIT_LE])])
                first = relay.dest
                bad = ct_image(8192)
                rsp = await peer.c_store(1, bad, data=bad.data[: len(bad.data) - 100])
                assert 0xC000 <= (rsp.status or 0) <= 0xCFFF, hex(rsp.status or 0)
                assert rsp.error_comment and "truncated" in rsp.error_comment
                good = ct_image(8192)
                rsp = await peer.c_store(1, good)
                assert rsp.status == 0x0000
                assert relay.dest is not first  # the destination's association was aborted, then reopened
                await peer.release()
        finally:
            await relay.close()
        for _ in range(50):
            if files(tmp_path / "dest"):
                break
            await asyncio.sleep(0.05)
    stored = files(tmp_path / "dest")
    assert [p.name for p in stored] == [f"{good.sop_instance}.dcm"]
    assert stored[0].read_bytes().endswith(good.data)
    assert [o.sop_instance_uid for o in outcomes if o.ok] == [good.sop_instance]
