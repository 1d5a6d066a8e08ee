"""The worklist folder: the same answers as DCMTK wlmscpfs for the same items and queries, DICOM JSON items,
changes picked up between queries, and a malformed item skipped without failing the query."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from aiodicom import FindScu, QueryBuilder
from aiodicom.archive import Archive, QueryError, WorklistFolder
from aiodicom.services.query import decode_identifier, encode_identifier, identifier_to_dict
from tests.interop.pacs import WorklistScp

EXPLICIT = "1.2.840.10008.1.2.1"
STEP = "ScheduledProcedureStepSequence"


async def answer(folder: WorklistFolder, query: dict[str, Any]) -> list[dict[str, Any]]:
    identifier = decode_identifier(encode_identifier(query, EXPLICIT), EXPLICIT)
    return [identifier_to_dict(r) async for r in folder.find(identifier)]


def wl(**step: str) -> QueryBuilder:
    builder = QueryBuilder.modality_worklist()
    for keyword, value in step.items():
        builder.set(keyword, value)
    return builder


#: The queries of tests/scu/test_find.py's worklist test, then more of each key type.
QUERIES: list[dict[str, Any]] = [
    QueryBuilder.modality_worklist().modality("CT").include_all_return_attributes().build(),
    QueryBuilder.modality_worklist()
    .scheduled_station_ae_title("MR-SCANNER")
    .scheduled_date_range("20240116", "20240116")
    .returning("PatientID")
    .build(),
    wl(PatientName="QR^*", PatientID="").include_all_return_attributes().build(),
    wl(PatientName="QR^?eta", PatientID="").build(),
    wl(PatientName="qr^*", PatientID="").build(),
    wl(PatientName="*a", AccessionNumber="").build(),
    wl(PatientID="QR-PAT-3", RequestedProcedureID="", StudyInstanceUID="").build(),
    wl(AccessionNumber="ACC-WL-?", PatientID="").build(),
    wl(ScheduledProcedureStepStartDate="20240116-", PatientID="").build(),
    wl(ScheduledProcedureStepStartDate="-20240115", PatientID="").build(),
    wl(ScheduledProcedureStepStartTime="0900-1200", PatientID="").build(),
    wl(ScheduledProcedureStepStartTime="1400-", ScheduledProcedureStepID="").build(),
    # (wlmscpfs does not apply wildcards to ScheduledStationAETitle: "CT*" matches nothing there, both
    # CT items here, as PS3.4 C.2.2.2.4 allows wildcards for AE; not compared)
    wl(ScheduledStationAETitle="CT-SCANNER", Modality="", PatientID="").build(),
    # (wlmscpfs matches only on the keys PS3.4 K.6 makes matching keys: ScheduledProcedureStepID is a
    # return key there; this archive matches on it too. Asked for, not matched here.)
    wl(Modality="MR", ScheduledProcedureStepID="", ScheduledProcedureStepDescription="").build(),
    wl(Modality="US", PatientID="").build(),
    {"PatientID": "", STEP: []},
]


def _comparable(match: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``query`` in ``match`` that hold a value (the step's too)."""
    out: dict[str, Any] = {}
    for key, value in query.items():
        got = match.get(key)
        if isinstance(value, list):
            items = got or []
            out[key] = [_comparable(item, value[0] if value else {}) for item in items] if value else None
        elif got not in (None, ""):
            out[key] = got
    return out


@pytest.mark.interop
async def test_the_same_answers_as_wlmscpfs(worklist_scp: WorklistScp) -> None:
    folder = WorklistFolder(worklist_scp.directory / worklist_scp.ae_title)
    scu = FindScu(worklist_scp.address)
    for template in QUERIES:
        query = {"PatientID": "", **template}  # every item has its own PatientID: compare by it
        theirs = sorted((await scu.find(query, "modality_worklist")).matches, key=lambda m: m["PatientID"])
        ours = sorted(await answer(folder, query), key=lambda m: m["PatientID"])
        assert [m["PatientID"] for m in ours] == [m["PatientID"] for m in theirs], template
        for mine, match in zip(ours, theirs, strict=True):
            assert _comparable(mine, query) == _comparable(match, query), template


def _copy_items(source: WorklistScp, target: Path) -> Path:
    target.mkdir()
    for item in source.items:
        shutil.copyfile(item.path, target / item.path.name)
    return target


async def test_json_items_and_changes_between_queries(worklist_scp: WorklistScp, tmp_path: Path) -> None:
    folder_path = _copy_items(worklist_scp, tmp_path / "wl")
    folder = WorklistFolder(folder_path)
    everyone = {"PatientID": "", STEP: [{"Modality": ""}]}
    assert sorted(m["PatientID"] for m in await answer(folder, everyone)) == [
        "QR-PAT-1",
        "QR-PAT-2",
        "QR-PAT-3",
    ]
    # an item as DICOM JSON (PS3.18 F), and a list of two in one file
    first = dcmread(folder_path / "item1.wl")
    first.PatientID, first.PatientName = "QR-PAT-J", "JSON^Ünïcode"
    (folder_path / "one.json").write_text(json.dumps(first.to_json_dict()), encoding="utf-8")
    second = dcmread(folder_path / "item2.wl")
    second.PatientID = "QR-PAT-K"
    third = dcmread(folder_path / "item3.wl")
    third.PatientID = "QR-PAT-L"
    (folder_path / "two.json").write_text(json.dumps([second.to_json_dict(), third.to_json_dict()]))
    (folder_path / "item3.wl").unlink()
    got = {m["PatientID"]: m for m in await answer(folder, {**everyone, "PatientName": ""})}
    assert set(got) == {"QR-PAT-1", "QR-PAT-2", "QR-PAT-J", "QR-PAT-K", "QR-PAT-L"}
    assert got["QR-PAT-J"]["PatientName"] == "JSON^Ünïcode"
    assert got["QR-PAT-J"][STEP][0]["Modality"] == "CT"
    assert [m["PatientID"] for m in await answer(folder, {"PatientName": "JSON^Ü*", "PatientID": ""})] == [
        "QR-PAT-J"
    ]
    # an item edited in place is read again (its size or time changed)
    edited = dcmread(folder_path / "item2.wl")
    edited.PatientID = "QR-PAT-EDITED"
    edited.save_as(folder_path / "item2.wl")
    stat = (folder_path / "item2.wl").stat()
    os.utime(folder_path / "item2.wl", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert "QR-PAT-EDITED" in {m["PatientID"] for m in await answer(folder, everyone)}


@pytest.mark.parametrize("content", [b"", b"\x00" * 200, b"DICM garbage", b"{not json"])
@pytest.mark.filterwarnings("ignore:VR lookup failed:UserWarning")  # pydicom, on the garbage
async def test_a_malformed_item_is_skipped_with_a_warning(
    worklist_scp: WorklistScp, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    folder_path = _copy_items(worklist_scp, tmp_path / "wl")
    name = "bad.json" if content.startswith(b"{") else "bad.wl"
    (folder_path / name).write_bytes(content)
    (folder_path / "notes.txt").write_text("not an item")  # other names are not items at all
    folder = WorklistFolder(folder_path)
    with caplog.at_level(logging.WARNING, logger="aiodicom.archive"):
        got = await answer(folder, {"PatientID": "", STEP: []})
    assert sorted(m["PatientID"] for m in got) == ["QR-PAT-1", "QR-PAT-2", "QR-PAT-3"]
    assert any(name in r.getMessage() for r in caplog.records)
    assert not any("notes.txt" in r.getMessage() for r in caplog.records)


async def test_archive_answers_the_worklist_model(worklist_scp: WorklistScp, tmp_path: Path) -> None:
    folder_path = _copy_items(worklist_scp, tmp_path / "wl")
    query = decode_identifier(
        encode_identifier({"PatientID": "QR-PAT-2", "PatientName": ""}, EXPLICIT), EXPLICIT
    )
    async with Archive(tmp_path / "out", worklist=folder_path) as archive:
        got = [r async for r in archive.find(query, "modality_worklist")]
        assert [str(r.PatientName) for r in got] == ["QR^Beta"]
    async with Archive(tmp_path / "out") as archive:
        with pytest.raises(QueryError) as caught:
            archive.find(query, "modality_worklist")
        assert caught.value.status == 0xA900
