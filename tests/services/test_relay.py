"""The relay (the forward backend): it never hands the destination a whole-looking instance that did not
arrive whole; strict and lenient answers when the destination refuses; a destination that dies is associated
again.

A raw sender on loopback sends C-STOREs to a relay server (the Relay behind GetScu's forward backend),
which forwards them PDV by PDV to a real StoreScp: a truncated instance is refused 0xC000 to the sender,
the destination's association is aborted before the last PDV, so the destination stores nothing; the
next whole instance goes through on a new association.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aiodicom import StoreScp
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.server import DicomServer
from aiodicom.services.dispatch import serve_messages
from aiodicom.services.relay import ForwardOutcome, ForwardTarget, Relay
from aiodicom.ul.negotiation import ContextPolicy
from tests.interop.rawpeer import (
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    Instance,
    RawPeer,
    ct_image,
    image_pixel,
    instance,
    native_pixels,
)

C_STORE_RQ = 0x0001


def recording(relay: Relay, outcomes: list[ForwardOutcome]) -> Any:
    """The relay as the acceptor's C-STORE handler, keeping each forward's outcome."""

    async def handle(assoc: Association, message: DimseMessage) -> None:
        relayed = await relay.handle(assoc, message)
        if relayed.forward is not None:
            outcomes.append(relayed.forward)

    return handle


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".incoming" not in p.parts]


async def test_a_truncated_instance_never_reaches_the_destination_whole(tmp_path: Path) -> None:
    outcomes: list[ForwardOutcome] = []
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "dest", fsync=False) as dest:
        relay = Relay(ForwardTarget(f"127.0.0.1:{dest.port}"))
        await relay.open([(CT_IMAGE_STORAGE, EXPLICIT_LE)])

        async def serve(assoc: Association) -> None:
            assoc.sink_factory = relay.sink_factory(assoc)
            await serve_messages(assoc, {C_STORE_RQ: recording(relay, outcomes)})

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


# ------------------------------------------------------------- strict and lenient, a destination that dies

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT, MR = 1, 3  # the source's context ids
SOURCE_CONTEXTS = [(CT, CT_IMAGE_STORAGE, [EXPLICIT_LE]), (MR, MR_IMAGE_STORAGE, [EXPLICIT_LE])]


def ct_only_destination(out_dir: Path, port: int = 0, **options: Any) -> StoreScp:
    """A real StoreScp that takes CT images only (it rejects the MR context the relay proposes)."""
    return StoreScp(
        port,
        host="127.0.0.1",
        out_dir=out_dir,
        fsync=False,
        abstract_syntax_mode="custom",
        abstract_syntaxes=[CT_IMAGE_STORAGE],
        **options,
    )


def mr_image() -> Instance:
    return instance(image_pixel() + native_pixels(512), sop_class=MR_IMAGE_STORAGE)


@asynccontextmanager
async def relaying(
    dest_port: int, *, strict: bool
) -> AsyncIterator[tuple[Relay, RawPeer, list[ForwardOutcome]]]:
    """A relay server forwarding to ``dest_port``, and a raw source associated with it (CT and MR)."""
    outcomes: list[ForwardOutcome] = []
    relay = Relay(ForwardTarget(f"127.0.0.1:{dest_port}"), strict=strict)
    await relay.open([(CT_IMAGE_STORAGE, EXPLICIT_LE), (MR_IMAGE_STORAGE, EXPLICIT_LE)])

    async def serve(assoc: Association) -> None:
        assoc.sink_factory = relay.sink_factory(assoc)
        await serve_messages(assoc, {C_STORE_RQ: recording(relay, outcomes)})

    policy = ContextPolicy(
        abstract_syntaxes=frozenset({CT_IMAGE_STORAGE, MR_IMAGE_STORAGE}), transfer_syntaxes=(EXPLICIT_LE,)
    )
    try:
        async with (
            DicomServer(serve, port=0, host="127.0.0.1", policy=policy) as server,
            await RawPeer.connect(server.port) as source,
        ):
            await source.associate(SOURCE_CONTEXTS)
            yield relay, source, outcomes
            await source.release()
    finally:
        await relay.close()


async def stored_uids(root: Path, count: int) -> set[str]:
    for _ in range(100):  # the destination answers before the source does; give its files a moment
        if len(files(root)) >= count:
            break
        await asyncio.sleep(0.02)
    return {p.stem for p in files(root)}


@pytest.mark.parametrize("strict", [False, True])
async def test_a_class_the_destination_refused(tmp_path: Path, strict: bool) -> None:
    async with (
        ct_only_destination(tmp_path / "dest") as dest,
        relaying(dest.port, strict=strict) as (relay, source, outcomes),
    ):
        assert relay.dest is not None
        assert {c.abstract_syntax for c in relay.dest.accepted.values()} == {CT_IMAGE_STORAGE}
        ct, mr = ct_image(), mr_image()
        assert (await source.c_store(MR, mr)).status == (0xA700 if strict else 0x0000)
        assert (await source.c_store(CT, ct)).status == 0x0000
    assert await stored_uids(tmp_path / "dest", 1) == {ct.sop_instance}
    refused, forwarded = outcomes
    assert refused.sop_instance_uid == mr.sop_instance and not refused.ok
    assert refused.status is None and refused.error and MR_IMAGE_STORAGE in refused.error
    assert refused.forwarded_to == f"ANY-SCP@127.0.0.1:{dest.port}"
    assert forwarded.sop_instance_uid == ct.sop_instance and forwarded.ok and forwarded.status == 0


@pytest.mark.parametrize("strict", [False, True])
async def test_a_failure_status_of_the_destination(tmp_path: Path, strict: bool) -> None:
    async with (
        ct_only_destination(tmp_path / "dest", duplicates="reject") as dest,
        relaying(dest.port, strict=strict) as (_, source, outcomes),
    ):
        ct = ct_image()
        assert (await source.c_store(CT, ct)).status == 0x0000
        again = await source.c_store(CT, ct)  # the destination keeps the first copy and refuses this one
        assert again.status == (0xA700 if strict else 0x0000)
    first, second = outcomes
    assert first.ok
    assert not second.ok and second.status == 0xA700 and second.error is None


@pytest.mark.parametrize("strict", [False, True])
async def test_a_destination_that_dies_mid_batch_is_associated_again(tmp_path: Path, strict: bool) -> None:
    first_dest = ct_only_destination(tmp_path / "first")
    await first_dest.start()
    port = first_dest.port
    try:
        async with relaying(port, strict=strict) as (relay, source, outcomes):
            before = ct_image()
            assert (await source.c_store(CT, before)).status == 0x0000
            old = relay.dest
            assert old is not None
            await first_dest.stop()  # the destination goes away: its association is aborted
            for _ in range(100):
                if not old.is_open:
                    break
                await asyncio.sleep(0.02)
            assert not old.is_open
            async with ct_only_destination(tmp_path / "second", port=port):  # and comes back
                lost, after = ct_image(), ct_image()
                rsp = await source.c_store(CT, lost)  # finds the old association closed...
                assert rsp.status == (0xA700 if strict else 0x0000)
                # ...and associates again before it answers: the next instance, sent at once, goes through
                assert relay.dest is not old and relay.dest is not None and relay.dest.is_open
                assert (await source.c_store(CT, after)).status == 0x0000
                assert await stored_uids(tmp_path / "second", 1) == {after.sop_instance}
    finally:
        await first_dest.stop()
    assert await stored_uids(tmp_path / "first", 1) == {before.sop_instance}
    assert [(o.sop_instance_uid, o.ok) for o in outcomes] == [
        (before.sop_instance, True),
        (lost.sop_instance, False),
        (after.sop_instance, True),
    ]
    assert outcomes[1].error and "closed" in outcomes[1].error
