"""The forward relay converts what its destination cannot take: an instance in a syntax the destination did
not accept is spooled to a temporary file (that one instance), converted losslessly to the best syntax it
did accept, and sent from there; ``never_transcode=True`` makes it a failed forward instead.

A real aiodicom StoreScp that takes uncompressed syntaxes only is the destination here, a real aiodicom
requestor the source; tests/scu/test_get_transcode.py has the same with Orthanc and DCMTK's storescp.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import aiodicom
from aiodicom import StoreScp
from aiodicom.dataset import codecs
from aiodicom.dimse import Command
from aiodicom.net.association import Association
from aiodicom.net.server import DicomServer
from aiodicom.services.dispatch import serve_messages
from aiodicom.services.relay import ForwardOutcome, ForwardTarget, Relay
from aiodicom.ul.negotiation import ContextPolicy
from tests.interop.rawpeer import Instance as RawInstance, RawPeer
from tests.interop.syntaxes import SyntaxFile
from tests.services.test_receipt import (
    Source,
    assert_consistent,
    assert_pixels,
    copies,
    corrupt_copy,
    dataset_bytes,
    read,
)
from tests.services.test_relay import recording, stored_uids

EXPLICIT = codecs.EXPLICIT
UNCOMPRESSED = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
C_STORE_RQ = 0x0001


def relay_files(tmp: Path) -> list[Path]:
    """The relay's spooled copies: in its own folder of ``tmp/aiodicom-spool``."""
    return sorted(tmp.glob("aiodicom-spool/*/relay-*"))


@asynccontextmanager
async def relaying(
    dest_port: int, sources: Iterable[Source], **options: bool
) -> AsyncIterator[tuple[Association, list[ForwardOutcome]]]:
    """A relay server forwarding to ``dest_port``, and a source associated with it that proposes each
    source's SOP class in the source's syntax (one context each), as a PACS sending C-GET sub-operations."""
    pairs = sorted({(s.sop_class, s.transfer_syntax) for s in sources})
    outcomes: list[ForwardOutcome] = []
    relay = Relay(ForwardTarget(f"DEST@127.0.0.1:{dest_port}"), **options)
    await relay.open(pairs)

    async def serve(assoc: Association) -> None:
        assoc.sink_factory = relay.sink_factory(assoc)
        await serve_messages(assoc, {C_STORE_RQ: recording(relay, outcomes)})

    policy = ContextPolicy(abstract_syntaxes=frozenset(c for c, _ in pairs))
    try:
        async with (
            DicomServer(serve, port=0, host="127.0.0.1", policy=policy) as server,
            aiodicom.connect(f"127.0.0.1:{server.port}", contexts=[(c, [ts]) for c, ts in pairs]) as source,
        ):
            yield source, outcomes
    finally:
        await relay.close()


def spool_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The relay's temporary files go to a folder of the test's own, to be looked at."""
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return spool


@asynccontextmanager
async def raw_relay(
    dest_port: int, sources: Iterable[Source], outcomes: list[ForwardOutcome]
) -> AsyncIterator[DicomServer]:
    """A relay server forwarding to ``dest_port`` for raw peers to talk to (any context accepted)."""
    relay = Relay(ForwardTarget(f"DEST@127.0.0.1:{dest_port}"))
    await relay.open([(s.sop_class, s.transfer_syntax) for s in sources])

    async def serve(assoc: Association) -> None:
        assoc.sink_factory = relay.sink_factory(assoc)
        await serve_messages(assoc, {C_STORE_RQ: recording(relay, outcomes)})

    try:
        async with DicomServer(serve, port=0, host="127.0.0.1", policy=ContextPolicy()) as server:
            yield server
    finally:
        await relay.close()


def destination(out_dir: Path) -> StoreScp:
    return StoreScp(
        0,
        host="127.0.0.1",
        ae_title="DEST",
        out_dir=out_dir,
        fsync=False,
        transfer_syntax_mode="uncompressed_only",
        extract_tags=["SOPInstanceUID"],
    )


COMPRESSED = ["mono8-jpegls", "rgb8-rle", "mono12-j2k", "rgb8-jpeg-baseline", "mono16-jpeg-sv1"]


async def test_the_relay_converts_for_an_uncompressed_only_destination(
    syntax_files: list[SyntaxFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compressed and Deflated instances arrive at the destination in Explicit VR LE, pixel for pixel; the
    uncompressed ones as they are; a corrupt stream is a failed forward (answered Success to the source:
    it was received whole) and the next instance still goes through. The spooled copies are in the
    temporary folder while the destination receives them, and gone afterwards."""
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    sources = copies(syntax_files, [*COMPRESSED, "mono12-deflated", "mono8-explicit"], tmp_path / "src")
    bad = corrupt_copy(syntax_files, "mono12-jpegls", tmp_path / "src")
    last = copies(syntax_files, ["rgb8-jpegls"], tmp_path / "src")[0]
    batch = [*sources[:2], bad, last, *sources[2:]]
    spooled: dict[str, list[Path]] = {}

    def look(tags: dict[str, str]) -> dict[str, str]:
        # while the destination receives an instance, the relay's temporary files are what it sends from
        spooled[tags["SOPInstanceUID"]] = relay_files(spool)
        return {}

    async with destination(tmp_path / "dest") as dest:
        dest.on_before_store(look)
        async with relaying(dest.port, batch) as (source, outcomes):
            statuses = [await source.c_store(s.path) for s in batch]
        await stored_uids(tmp_path / "dest", len(batch) - 1)
    assert statuses == [0] * len(batch)
    by_uid = {o.sop_instance_uid: o for o in outcomes}
    assert len(by_uid) == len(batch)
    failed = by_uid[bad.sop_instance_uid]
    assert not failed.ok and failed.status is None
    assert failed.error and re.search("truncated|corrupt|cannot decode", failed.error), failed.error
    assert failed.converted_from == bad.transfer_syntax
    for s in [*sources, last]:
        outcome = by_uid[s.sop_instance_uid]
        assert outcome.ok and outcome.status == 0, outcome
        assert outcome.forwarded_to == f"DEST@127.0.0.1:{dest.port}"
        stored = read(s.stored_at(tmp_path / "dest"))
        if s.transfer_syntax in UNCOMPRESSED:
            assert outcome.converted_from is None and outcome.transfer_syntax == s.transfer_syntax
            assert s.sop_instance_uid not in spooled or not spooled[s.sop_instance_uid]
        else:
            assert outcome.converted_from == s.transfer_syntax and outcome.transfer_syntax == EXPLICIT
            assert len(spooled[s.sop_instance_uid]) == 2, s.name  # the received copy and the converted one
        assert_consistent(stored, outcome.transfer_syntax or "", s.sop_instance_uid)
        assert_pixels(stored, s)
    assert not bad.stored_at(tmp_path / "dest").exists()
    assert relay_files(spool) == []


async def test_never_transcode_fails_exactly_what_would_convert(
    syntax_files: list[SyntaxFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """never_transcode=True (strict): the compressed instances are failed forwards saying why, answered with
    a failure status; the uncompressed ones go through; nothing was spooled."""
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(tempfile, "tempdir", None)
    sources = copies(
        syntax_files, ["mono8-jpegls", "mono16-implicit", "rgb8-rle", "mono12-explicit"], tmp_path
    )
    async with (
        destination(tmp_path / "dest") as dest,
        relaying(dest.port, sources, never_transcode=True, strict=True) as (source, outcomes),
    ):
        statuses = {s.name: await source.c_store(s.path) for s in sources}
    assert statuses == {
        "mono8-jpegls": 0xA700,
        "mono16-implicit": 0,
        "rgb8-rle": 0xA700,
        "mono12-explicit": 0,
    }
    assert await stored_uids(tmp_path / "dest", 2) == {
        s.sop_instance_uid for s in sources if s.transfer_syntax in UNCOMPRESSED
    }
    for s, outcome in zip(sources, outcomes, strict=True):
        assert outcome.sop_instance_uid == s.sop_instance_uid
        if s.transfer_syntax in UNCOMPRESSED:
            assert outcome.ok and outcome.converted_from is None
        else:
            assert not outcome.ok and outcome.status is None
            assert outcome.error and "never_transcode" in outcome.error, outcome.error
            assert "Explicit VR Little Endian" in outcome.error
    assert relay_files(spool) == []


async def test_an_instance_cut_short_on_the_wire_is_refused_and_not_spooled_for_long(
    syntax_files: list[SyntaxFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed instance whose data set ends early (a truncated encapsulated pixel data element) on its
    way to conversion: refused 0xC000 to the source, its spooled copy removed, the next one relayed."""
    spool = spool_here(tmp_path, monkeypatch)
    cut, whole = copies(syntax_files, ["mono12-jpegls", "mono8-jpegls"], tmp_path / "src")
    outcomes: list[ForwardOutcome] = []
    async with destination(tmp_path / "dest") as dest:
        async with (
            raw_relay(dest.port, (cut, whole), outcomes) as server,
            await RawPeer.connect(server.port) as peer,
        ):
            await peer.associate([(1, cut.sop_class, [cut.transfer_syntax])])
            body = dataset_bytes(cut.path)
            instance = RawInstance(cut.sop_class, cut.sop_instance_uid, cut.study, cut.series, body)
            rsp = await peer.c_store(1, instance, data=body[: len(body) - 200])
            assert rsp.status == 0xC000, hex(rsp.status or 0)
            assert relay_files(spool) == []
            w = whole
            good = RawInstance(w.sop_class, w.sop_instance_uid, w.study, w.series, dataset_bytes(w.path))
            assert (await peer.c_store(1, good)).status == 0
            await peer.release()
        assert await stored_uids(tmp_path / "dest", 1) == {whole.sop_instance_uid}
    assert_pixels(read(whole.stored_at(tmp_path / "dest")), whole)
    assert [o.sop_instance_uid for o in outcomes if o.ok] == [whole.sop_instance_uid]
    assert relay_files(spool) == []


async def test_a_source_that_goes_away_mid_instance_leaves_nothing_and_the_next_one_is_relayed(
    syntax_files: list[SyntaxFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops halfway through an instance the relay is spooling for conversion: the spooled
    copy is removed, nothing reaches the destination, and an instance on a new association is relayed."""
    spool = spool_here(tmp_path, monkeypatch)
    cut, whole = copies(syntax_files, ["mono12-jpegls", "mono8-jpegls"], tmp_path / "src")
    outcomes: list[ForwardOutcome] = []
    async with destination(tmp_path / "dest") as dest, raw_relay(dest.port, (cut, whole), outcomes) as server:
        async with await RawPeer.connect(server.port) as peer:
            await peer.associate([(1, cut.sop_class, [cut.transfer_syntax])])
            body = dataset_bytes(cut.path)
            await peer.send_command(1, Command.c_store_rq(1, cut.sop_class, cut.sop_instance_uid))
            await peer.send_dataset(1, body[: len(body) // 2], last=False)
            for _ in range(100):  # until the relay spools it
                if relay_files(spool):
                    break
                await asyncio.sleep(0.02)
            assert relay_files(spool), "the relay did not spool the instance it must convert"
        for _ in range(100):
            if not relay_files(spool):
                break
            await asyncio.sleep(0.02)
        assert relay_files(spool) == []
        async with await RawPeer.connect(server.port) as peer:
            await peer.associate([(1, whole.sop_class, [whole.transfer_syntax])])
            w = whole
            good = RawInstance(w.sop_class, w.sop_instance_uid, w.study, w.series, dataset_bytes(w.path))
            assert (await peer.c_store(1, good)).status == 0
            await peer.release()
        assert await stored_uids(tmp_path / "dest", 1) == {whole.sop_instance_uid}
    assert [o.sop_instance_uid for o in outcomes if o.ok] == [whole.sop_instance_uid]
    assert relay_files(spool) == []
