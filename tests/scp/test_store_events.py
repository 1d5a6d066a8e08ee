"""StoreScp: events, duplicates, custom tags, file meta off, stray group 0002, a full disk, early hook."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

import aiodicom
from aiodicom.dataset.files import read_header
from aiodicom.dataset.tags import CustomTag
from aiodicom.scp.store import ConnectionOpened, ServerStarted, StoreErrorEvent, StoreScp
from aiodicom.services.store import StoredInstance
from tests.scp.test_store import contexts_for, partial_files, stored_path

CT = get_testdata_file("CT_small.dcm")


async def test_events_handlers_and_stream(tmp_path: Path) -> None:
    scp = StoreScp(0, host="127.0.0.1", ae_title="EVENTS", out_dir=tmp_path, fsync=False, study_timeout=0.2)
    seen: list[object] = []
    scp.on_server_started(seen.append)
    scp.on_connection(seen.append)

    async def async_handler(event: object) -> None:
        await asyncio.sleep(0)
        seen.append(event)

    scp.on_file_stored(async_handler)
    scp.on_error(seen.append)
    scp.on_file_stored(lambda event: 1 / 0)  # a handler that raises breaks nothing
    streamed: list[object] = []

    async def consume() -> None:
        async for event in scp.events():
            streamed.append(event)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    async with scp:
        async with aiodicom.connect(
            f"127.0.0.1:{scp.port}", calling_ae_title="ME", contexts=contexts_for([CT])
        ) as a:
            assert await a.c_store(CT) == 0
            assert await a.c_store(CT) == 0  # a second copy replaces the first
        await asyncio.sleep(0.5)
    consumer.cancel()
    kinds = [type(e) for e in seen]
    assert kinds[:2] == [ServerStarted, ConnectionOpened] and kinds.count(StoredInstance) == 2
    started = seen[0]
    assert isinstance(started, ServerStarted) and started.port == scp.port and started.ae_title == "EVENTS"
    connection = seen[1]
    assert isinstance(connection, ConnectionOpened) and connection.calling_ae_title == "ME"
    assert [type(e).__name__ for e in streamed] == [
        "ServerStarted",
        "ConnectionOpened",
        "StoredInstance",
        "StoredInstance",
        "StudyCompleted",
    ]


@pytest.mark.parametrize(("policy", "second_status"), [("keep", 0), ("reject", 0xA700)])
async def test_duplicates_keep_or_reject(tmp_path: Path, policy: str, second_status: int) -> None:
    ds = pydicom.dcmread(CT)
    changed = tmp_path / "changed.dcm"
    ds.PatientName = "SECOND^COPY"
    ds.save_as(changed)
    errors: list[StoreErrorEvent] = []
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, duplicates=policy) as scp:
        scp.on_error(errors.append)
        async with aiodicom.connect(f"127.0.0.1:{scp.port}", contexts=contexts_for([CT])) as assoc:
            assert await assoc.c_store(CT) == 0
            assert await assoc.c_store(str(changed)) == second_status
    assert pydicom.dcmread(stored_path(scp.out_dir, CT)).PatientName == "CompressedSamples^CT1"
    assert bool(errors) == (policy == "reject")


async def test_custom_tags_file_meta_off_and_ipv6(tmp_path: Path) -> None:
    stored: list[StoredInstance] = []
    custom = [CustomTag(0x00431028, "Vendor"), ("(0008,0070)", "Maker")]
    async with StoreScp(
        0,
        host="::1",
        out_dir=tmp_path,
        fsync=False,
        store_with_file_meta=False,
        extract_tags=["PatientID"],
        extract_custom_tags=custom,
    ) as scp:
        scp.on_file_stored(stored.append)
        async with aiodicom.connect(f"[::1]:{scp.port}", contexts=contexts_for([CT])) as assoc:
            assert await assoc.c_store(CT) == 0
    assert stored[0].tags == {"PatientID": "1CT1", "Maker": "GE MEDICAL SYSTEMS"}
    written = Path(stored[0].file).read_bytes()
    header = read_header(CT)
    assert written == Path(CT).read_bytes()[header.data_offset :]  # the data set alone, as sent


async def test_group_0002_inside_the_data_set_is_dropped(tmp_path: Path) -> None:
    source = Path(CT).read_bytes()
    header = read_header(CT)
    stray = b"\x02\x00\x13\x00SH\x06\x00STRAY "  # (0002,0013) in the data set, where it does not belong
    raw = tmp_path / "raw.dcm"
    raw.write_bytes(source[: header.data_offset] + stray + source[header.data_offset :])
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False) as scp,
        aiodicom.connect(f"127.0.0.1:{scp.port}", contexts=contexts_for([CT])) as assoc,
    ):
        assert await assoc.c_store(str(raw)) == 0
    written = stored_path(scp.out_dir, CT).read_bytes()
    assert b"STRAY" not in written
    assert written.endswith(source[header.data_offset :])  # everything else exactly as sent


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        pytest.fail(f"this test mounts a small tmpfs to fill a disk, as root: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_full_disk_answers_out_of_resources_and_keeps_serving(tmp_path: Path) -> None:
    big = pydicom.dcmread(get_testdata_file("liver_1frame.dcm"))  # ~37 KB
    with tiny_filesystem(tmp_path / "disk", "64k") as disk:
        errors: list[StoreErrorEvent] = []
        async with StoreScp(0, host="127.0.0.1", out_dir=disk, fsync=True) as scp:
            scp.on_error(errors.append)
            paths = []
            for i in range(4):
                big.SOPInstanceUID = f"1.2.3.4.{i + 1}"
                path = tmp_path / f"big{i}.dcm"
                big.save_as(path)
                paths.append(str(path))
            async with aiodicom.connect(
                f"127.0.0.1:{scp.port}", contexts=[*contexts_for(paths[:1]), "1.2.840.10008.1.1"]
            ) as assoc:
                statuses = [await assoc.c_store(p) for p in paths]
                assert await assoc.c_echo() == 0  # still serving
            assert statuses[0] == 0 and 0xA700 in statuses
            assert errors
        assert partial_files(disk) == []


async def test_hook_runs_on_the_leading_elements_and_reading_pauses_meanwhile(tmp_path: Path) -> None:
    liver = get_testdata_file("liver_1frame.dcm")  # 37 KB, Pixel Data starts within the first 2 KB
    total = Path(liver).stat().st_size
    sizes: list[int] = []
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path, fsync=False, max_pdu_length=4096) as scp:

        @scp.on_before_store
        async def hook(tags: dict[str, str]) -> dict[str, str]:
            (assoc,) = scp.associations
            assert assoc.protocol is not None
            sizes.append(assoc.protocol.bytes_received)
            await asyncio.sleep(0.3)
            sizes.append(assoc.protocol.bytes_received)
            return {**tags, "PatientName": "EARLY^HOOK"}

        async with aiodicom.connect(
            f"127.0.0.1:{scp.port}", contexts=contexts_for([liver]), max_pdu_length=4096
        ) as assoc:
            assert await assoc.c_store(liver) == 0xB000
    assert sizes[0] < total / 2 and sizes[1] == sizes[0]  # early, and nothing more was read while it ran
    ds = pydicom.dcmread(stored_path(tmp_path, liver))
    assert ds.PatientName == "EARLY^HOOK"
    assert ds.PixelData == pydicom.dcmread(liver).PixelData


@pytest.mark.parametrize(
    ("options", "accepted_jpeg", "accepted_unknown"),
    [
        ({}, True, False),
        ({"transfer_syntax_mode": "UncompressedOnly"}, False, False),
        ({"abstract_syntax_mode": "all"}, True, True),
        (
            {
                "abstract_syntax_mode": "custom",
                "abstract_syntaxes": ["1.2.840.10008.5.1.4.1.1.7"],
                "transfer_syntax_mode": "custom",
                "transfer_syntaxes": ["JPEGBaseline"],
            },
            True,
            False,
        ),
    ],
)
async def test_negotiation_modes(
    tmp_path: Path, options: dict[str, object], accepted_jpeg: bool, accepted_unknown: bool
) -> None:
    jpeg = ("1.2.840.10008.5.1.4.1.1.7", ["1.2.840.10008.1.2.4.50"])
    unknown = ("1.2.3.4.5.6.7", ["1.2.840.10008.1.2"])
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path, fsync=False, **options) as scp,  # type: ignore[arg-type]
        aiodicom.connect(f"127.0.0.1:{scp.port}", contexts=[jpeg, unknown, "1.2.840.10008.1.1"]) as assoc,
    ):
        abstracts = {c.abstract_syntax for c in assoc.accepted.values()}
        assert (jpeg[0] in abstracts) == accepted_jpeg
        assert (unknown[0] in abstracts) == accepted_unknown
        assert "1.2.840.10008.1.1" in abstracts  # Verification is always accepted


@pytest.mark.parametrize("size", ["small", "large"])
async def test_a_hook_changes_a_deflated_data_set(tmp_path: Path, size: str) -> None:
    """The whole data set is inflated, its leading elements replaced, and deflated again (DESIGN 4)."""
    source = pydicom.dcmread(get_testdata_file("image_dfl.dcm"))
    if size == "large":  # deflated pixel data of a few MB, so that the rewrite goes chunk by chunk
        source.PixelData = bytes(range(256)) * (3 << 14)
        source.Rows, source.Columns = 768, 4096
    path = tmp_path / "deflated.dcm"
    source.save_as(path, enforce_file_format=True)
    async with StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "in", fsync=False) as scp:
        scp.on_before_store(lambda tags: {**tags, "PatientName": "DEFLATED^HOOK"})
        scu = aiodicom.StoreScu(f"127.0.0.1:{scp.port}")
        scu.add_file(path)
        result = await scu.send()
    assert result.successful == 1 and [w[2] for w in result.warnings] == [0xB000]
    (stored,) = [p for p in (tmp_path / "in").rglob("*.dcm")]
    received = pydicom.dcmread(stored)
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
    assert received.PatientName == "DEFLATED^HOOK"
    assert received.PixelData == source.PixelData
    assert received.SOPInstanceUID == source.SOPInstanceUID
    assert stored.stat().st_size % 2 == 0
