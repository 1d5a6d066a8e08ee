"""StoreScp with aiodicom's own sender over loopback: bytes stored as sent, hooks, events, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

import aiodicom
from aiodicom.dataset.files import read_header
from aiodicom.dimse import Command, CommandField
from aiodicom.scp.store import StoreScp
from aiodicom.services.store import StoredInstance, StoreRejected
from aiodicom.services.studies import StudyCompleted

FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtdose_expb_1frame.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_rle_2frame.dcm",
    "JPEG2000.dcm",
]


def contexts_for(paths: list[str]) -> list[tuple[str, list[str]]]:
    headers = [read_header(p) for p in paths]
    return [(h.sop_class_uid, [h.transfer_syntax_uid]) for h in headers]


@pytest.fixture
async def scp(tmp_path: Path) -> AsyncIterator[StoreScp]:
    server = StoreScp(
        0,
        host="127.0.0.1",
        ae_title="STORE-SCP",
        out_dir=tmp_path / "out",
        extract_tags=["PatientName", "Modality", "StudyDescription", "SeriesNumber"],
        study_timeout=0.5,
        fsync=False,
    )
    async with server:
        yield server


def partial_files(out: Path) -> list[Path]:
    """Instances being received (empty files created ahead of need do not count)."""
    return [
        p for p in (out / ".incoming").rglob("*") if p.is_file() and p.stat().st_size > 0 and p.name != "lock"
    ]


def stored_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and ".incoming" not in p.parts]


def stored_path(out: Path, path: str) -> Path:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return out / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"


async def test_instances_are_stored_byte_for_byte_with_file_meta(scp: StoreScp) -> None:
    paths = [get_testdata_file(name) for name in FILES]
    stored: list[StoredInstance] = []
    scp.on_file_stored(stored.append)
    async with aiodicom.connect(
        f"STORE-SCP@127.0.0.1:{scp.port}",
        calling_ae_title="SENDER",
        contexts=contexts_for(paths),
        max_pdu_length=4096,
    ) as assoc:
        for path in paths:
            assert await assoc.c_store(path) == 0
    assert len(stored) == len(paths)
    for path in paths:
        target = stored_path(scp.out_dir, path)
        header = read_header(path)
        original = Path(path).read_bytes()[header.data_offset :]
        written = target.read_bytes()
        assert written.endswith(original)  # the data set exactly as sent
        meta = pydicom.dcmread(target, stop_before_pixels=True).file_meta
        assert meta.MediaStorageSOPInstanceUID == header.sop_instance_uid
        assert meta.TransferSyntaxUID == header.transfer_syntax_uid
        assert (
            meta.SourceApplicationEntityTitle == "SENDER"
            and meta.ReceivingApplicationEntityTitle == "STORE-SCP"
        )
        assert meta.ImplementationClassUID.startswith("2.25.")
    assert not partial_files(scp.out_dir)
    ct = next(s for s in stored if s.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2")
    assert ct.tags["PatientName"] == "CompressedSamples^CT1" and ct.tags["Modality"] == "CT"


async def test_hook_modifies_rejects_and_times_out(scp: StoreScp) -> None:
    ct, mr = get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")
    calls: list[dict[str, str]] = []

    @scp.on_before_store
    async def hook(tags: dict[str, str]) -> dict[str, str | None]:
        calls.append(tags)
        if tags["Modality"] == "MR":
            raise StoreRejected("no MR here")
        return {**tags, "PatientName": "ANONYMOUS^PATIENT", "StudyDescription": None}

    contexts = [*contexts_for([ct, mr]), "1.2.840.10008.1.1"]
    async with aiodicom.connect(f"127.0.0.1:{scp.port}", contexts=contexts) as assoc:
        assert await assoc.c_store(ct) == 0xB000  # coercion of data elements
        ds = pydicom.dcmread(stored_path(scp.out_dir, ct))
        assert ds.PatientName == "ANONYMOUS^PATIENT" and "StudyDescription" not in ds
        assert ds.pixel_array.shape == (128, 128)  # the rest streamed through untouched
        assert await assoc.c_store(mr) == 0x0124  # not authorized, nothing stored
        scp.on_before_store(lambda tags: tags)  # unchanged: plain success
        assert await assoc.c_store(ct) == 0x0000

        async def slow(tags: dict[str, str]) -> dict[str, str]:
            await asyncio.sleep(5)
            return tags

        scp.service.hook_timeout = 0.2
        scp.on_before_store(slow)
        assert await assoc.c_store(ct) == 0xC000
        scp.on_before_store(lambda tags: 1 / 0)
        assert await assoc.c_store(ct) == 0xC000
        scp.on_before_store(lambda tags: {**tags, "SOPInstanceUID": "1.2.3"})
        assert await assoc.c_store(ct) == 0xC000
        assert await assoc.c_echo() == 0  # the association went on through every failure
    assert not stored_path(scp.out_dir, mr).exists()
    assert calls[0]["PatientName"] == "CompressedSamples^CT1"


async def test_study_completion_restarts_its_timer_and_flushes_on_stop(tmp_path: Path) -> None:
    scp = StoreScp(
        0,
        host="127.0.0.1",
        out_dir=tmp_path,
        study_timeout=0.6,
        fsync=False,
        extract_tags=["PatientName", "Modality", "SeriesNumber"],
    )
    completed: list[StudyCompleted] = []
    scp.on_study_completed(completed.append)
    ct, mr = get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")
    await scp.start()
    async with aiodicom.connect(f"127.0.0.1:{scp.port}", contexts=contexts_for([ct, mr])) as assoc:
        for _ in range(3):  # 3 x 0.3 s > the timeout: only a timer restarted by each instance keeps it open
            assert await assoc.c_store(ct) == 0
            await asyncio.sleep(0.3)
        assert completed == []
        await asyncio.sleep(0.8)
        assert [c.study_instance_uid for c in completed] == [pydicom.dcmread(ct).StudyInstanceUID]
        assert await assoc.c_store(mr) == 0
    assert completed[0].tags["PatientName"] == "CompressedSamples^CT1"
    assert completed[0].series[0].tags["Modality"] == "CT" and len(completed[0].series[0].instances) == 3
    await scp.stop()  # the MR study is flushed at once
    assert len(completed) == 2 and completed[1].series[0].tags["Modality"] == "MR"


async def test_two_servers_do_not_mix_events(tmp_path: Path) -> None:
    ct = get_testdata_file("CT_small.dcm")
    first, second = [], []
    async with (
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "a", fsync=False) as a,
        StoreScp(0, host="127.0.0.1", out_dir=tmp_path / "b", fsync=False) as b,
    ):
        a.on_file_stored(first.append)
        b.on_file_stored(second.append)
        async with aiodicom.connect(f"127.0.0.1:{a.port}", contexts=contexts_for([ct])) as assoc:
            await assoc.c_store(ct)
    assert len(first) == 1 and second == []


async def test_bad_uid_and_mismatched_instance_are_refused(scp: StoreScp, tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID = "../../etc"
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    ct = get_testdata_file("CT_small.dcm")
    async with aiodicom.connect(f"127.0.0.1:{scp.port}", contexts=contexts_for([ct])) as assoc:
        assert await assoc.c_store(str(bad)) == 0xC000
        header = read_header(ct)
        data = Path(ct).read_bytes()[header.data_offset :]
        command = Command.c_store_rq(99, header.sop_class_uid, "1.2.3.4.5.6")  # not the data set's instance
        await assoc.send(1, command, data)
        response = await assoc.receive_response(99, CommandField.C_STORE_RSP, timeout=5)
        assert response.command.status == 0xA900
        assert response.command.affected_sop_instance_uid == "1.2.3.4.5.6"
    assert not (tmp_path / "etc").exists()
    assert stored_files(scp.out_dir) == [] and partial_files(scp.out_dir) == []


def received(scp: StoreScp) -> int:
    """The bytes the server's associations have received so far."""
    return sum(a.protocol.bytes_received for a in scp.associations if a.protocol is not None)


async def test_aborted_sender_leaves_nothing(scp: StoreScp) -> None:
    ct = get_testdata_file("CT_small.dcm")
    header = read_header(ct)
    data = Path(ct).read_bytes()[header.data_offset :]
    assoc = await aiodicom.net.client.open_association(
        f"127.0.0.1:{scp.port}", contexts=contexts_for([ct]), max_pdu_length=4096
    )
    command = Command.c_store_rq(1, header.sop_class_uid, header.sop_instance_uid)
    from aiodicom.dimse import encode_command, fragment

    assert assoc.protocol is not None
    before = received(scp)
    pdus = [*fragment(1, True, encode_command(command), 4090), *fragment(1, False, data[:5000], 4090)[:2]]
    assoc.protocol.write(pdus)  # the command and half of the data set, not the last PDV
    for _ in range(100):  # until the server has it all: an instance is being received
        if received(scp) >= before + sum(len(pdu) for pdu in pdus):
            break
        await asyncio.sleep(0.02)
    assert received(scp) >= before + sum(len(pdu) for pdu in pdus)
    assoc.abort()
    await assoc.wait_closed(5)
    for _ in range(50):
        if not partial_files(scp.out_dir):
            break
        await asyncio.sleep(0.05)
    assert partial_files(scp.out_dir) == [] and stored_files(scp.out_dir) == []


async def test_unsupported_service_on_an_accepted_context_is_sop_class_not_supported(scp: StoreScp) -> None:
    ct = get_testdata_file("CT_small.dcm")
    async with aiodicom.connect(f"127.0.0.1:{scp.port}", contexts=contexts_for([ct])) as assoc:
        await assoc.send(
            1, Command.c_find_rq(5, read_header(ct).sop_class_uid), b"\x08\x00\x52\x00\x00\x00\x00\x00"
        )
        response = await assoc.receive_response(5, CommandField.C_FIND_RSP, timeout=5)
        assert response.command.status == 0x0122


def test_construction_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PatientNam"):
        StoreScp(0, out_dir=tmp_path, extract_tags=["PatientNam"])
    with pytest.raises(ValueError, match="out_dir"):
        StoreScp(0)
    with pytest.raises(ValueError, match="custom"):
        StoreScp(0, out_dir=tmp_path, abstract_syntax_mode="Custom")
    with pytest.raises(ValueError, match="twice"):
        StoreScp(
            0, out_dir=tmp_path, extract_custom_tags=[("00091001", "X"), {"tag": "(0009,1002)", "name": "X"}]
        )
    scp = StoreScp(
        0, out_dir=tmp_path, abstract_syntax_mode="AllStorage", transfer_syntax_mode="UncompressedOnly"
    )
    assert scp.policy.transfer_syntaxes is not None and len(scp.policy.transfer_syntaxes) == 3
