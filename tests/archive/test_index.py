"""The archive index: queries against the stored studies, computed keys, retrieve lists, reconcile and
rebuild, a corrupt index, the receiver sharing out_dir, and the same queries answered by DCMTK dcmqrscp."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import generate_uid

import aiodicom
from aiodicom import FindScu
from aiodicom.archive import INDEX_NAME, Archive, QueryError, index as index_module, select as select_module
from aiodicom.scp.store import StoreScp
from aiodicom.services.query import decode_identifier, encode_identifier
from aiodicom.services.store import StoredInstance
from tests.archive.conftest import store_like_storescp, stored_path
from tests.interop.pacs import Pacs
from tests.interop.studies import QrData
from tests.scp.test_store import contexts_for

UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
EXPLICIT = "1.2.840.10008.1.2.1"


def identifier(query: dict[str, Any]) -> Dataset:
    """``query`` as a network peer sends it: encoded, then decoded as a C-FIND SCP receives it."""
    return decode_identifier(encode_identifier(query, EXPLICIT), EXPLICIT)


async def found(archive: Archive, query: dict[str, Any], model: str = "study_root") -> list[Dataset]:
    return [r async for r in archive.find(identifier(query), model)]


async def uids(archive: Archive, query: dict[str, Any], model: str = "study_root") -> set[str]:
    key = UNIQUE[query["QueryRetrieveLevel"]]
    return {str(r[key].value) for r in await found(archive, {key: "", **query}, model)}


async def test_queries_of_the_find_tests(out_dir: Path, qr_data: QrData) -> None:
    """The queries tests/scu/test_find.py runs against dcmqrscp and Orthanc give the same sets here."""
    a, b = qr_data.a, qr_data.b
    async with Archive(out_dir) as archive:
        study = {"QueryRetrieveLevel": "STUDY"}
        assert await uids(archive, {**study, "PatientID": a.patient_id}) == {a.study_instance_uid}
        assert await uids(archive, {**study, "PatientName": "QR^*"}) == {
            a.study_instance_uid,
            b.study_instance_uid,
        }
        assert await uids(archive, {**study, "PatientName": "QR^Be*"}) == {b.study_instance_uid}
        assert await uids(archive, {**study, "PatientID": "QR-PAT-?"}) == {
            a.study_instance_uid,
            b.study_instance_uid,
        }
        assert await uids(archive, {**study, "StudyDate": "20240101-20240131"}) == {a.study_instance_uid}
        assert await uids(archive, {**study, "StudyDate": "20240301-"}) == {b.study_instance_uid}
        assert await uids(archive, {**study, "StudyDate": "-20231231"}) == set()
        series = {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": a.study_instance_uid}
        assert await uids(archive, series) == {s.series_instance_uid for s in a.series}
        first = a.series[0]
        image = {**series, "QueryRetrieveLevel": "IMAGE", "SeriesInstanceUID": first.series_instance_uid}
        assert await uids(archive, image) == {i.sop_instance_uid for i in first.instances}
        patients = await found(
            archive,
            {"QueryRetrieveLevel": "PATIENT", "PatientID": b.patient_id, "PatientName": ""},
            "patient_root",
        )
        assert [str(p.PatientName) for p in patients] == [b.patient_name]
        in_patient = {"QueryRetrieveLevel": "STUDY", "PatientID": b.patient_id}
        assert await uids(archive, in_patient, "patient_root") == {b.study_instance_uid}


async def test_response_values_and_computed_keys(out_dir: Path, qr_data: QrData) -> None:
    a = qr_data.a
    query = {
        "QueryRetrieveLevel": "STUDY",
        "StudyInstanceUID": a.study_instance_uid,
        "PatientName": "",
        "PatientBirthDate": "",
        "StudyDate": "",
        "AccessionNumber": "",
        "StudyDescription": "",
        "ModalitiesInStudy": "",
        "SOPClassesInStudy": "",
        "NumberOfStudyRelatedSeries": "",
        "NumberOfStudyRelatedInstances": "",
        "ScanOptions": "",  # not kept by the index: left out of the response
    }
    async with Archive(out_dir) as archive:
        (r,) = await found(archive, query)
        assert r.QueryRetrieveLevel == "STUDY" and str(r.PatientName) == a.patient_name
        assert r.PatientBirthDate == a.patient_birth_date and r.StudyDate == a.study_date
        assert r.AccessionNumber == a.accession_number and r.StudyDescription == a.description
        assert set(r.ModalitiesInStudy) == set(a.modalities) == {"CT", "MR", "OT"}
        assert set(r.SOPClassesInStudy) == set(a.sop_classes)
        assert int(r.NumberOfStudyRelatedSeries) == len(a.series) == 8
        assert int(r.NumberOfStudyRelatedInstances) == len(a.instances) == 11
        assert "ScanOptions" not in r
        # study level: matching on a computed key
        assert await uids(archive, {"QueryRetrieveLevel": "STUDY", "ModalitiesInStudy": "MR"}) == {
            a.study_instance_uid
        }
        (s,) = await found(
            archive,
            {
                "QueryRetrieveLevel": "SERIES",
                "StudyInstanceUID": a.study_instance_uid,
                "SeriesNumber": "2",
                "SeriesInstanceUID": "",
                "NumberOfSeriesRelatedInstances": "",
                "SeriesDescription": "",
            },
        )
        assert s.StudyInstanceUID == a.study_instance_uid  # the unique key of the level above
        assert int(s.NumberOfSeriesRelatedInstances) == 2 and s.SeriesDescription == a.series[1].description
        patients = await found(
            archive,
            {
                "QueryRetrieveLevel": "PATIENT",
                "PatientID": "",
                "NumberOfPatientRelatedStudies": "",
                "NumberOfPatientRelatedSeries": "",
                "NumberOfPatientRelatedInstances": "",
            },
            "patient_root",
        )
        counts = {
            p.PatientID: (
                int(p.NumberOfPatientRelatedStudies),
                int(p.NumberOfPatientRelatedSeries),
                int(p.NumberOfPatientRelatedInstances),
            )
            for p in patients
        }
        assert counts == {"QR-PAT-1": (1, 8, 11), "QR-PAT-2": (1, 1, 3)}
        (image,) = await found(
            archive,
            {
                "QueryRetrieveLevel": "IMAGE",
                "StudyInstanceUID": a.study_instance_uid,
                "SeriesInstanceUID": a.series[0].series_instance_uid,
                "SOPInstanceUID": "",
                "InstanceNumber": "2",
                "SOPClassUID": "",
            },
            "study_root",
        )
        expected = a.series[0].instances[1]
        assert (
            image.SOPInstanceUID == expected.sop_instance_uid and image.SOPClassUID == expected.sop_class_uid
        )
        assert (
            image.SeriesInstanceUID == expected.series_instance_uid
            and image.StudyInstanceUID == a.study_instance_uid
        )


async def test_instances_at_every_level(out_dir: Path, qr_data: QrData) -> None:
    a, b = qr_data.a, qr_data.b

    async def retrieved(query: dict[str, Any], model: str = "study_root") -> dict[str, Any]:
        return {r.sop_instance_uid: r async for r in archive.instances(identifier(query), model)}

    async with Archive(out_dir) as archive:
        study = await retrieved({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": a.study_instance_uid})
        assert set(study) == {i.sop_instance_uid for i in a.instances}
        for inst in a.instances:
            record = study[inst.sop_instance_uid]
            assert (
                record.transfer_syntax_uid == inst.transfer_syntax_uid
                and record.sop_class_uid == inst.sop_class_uid
            )
            assert Path(record.path) == stored_path(out_dir, inst).resolve()
            assert (
                record.size == inst.path.stat().st_size
                and record.series_instance_uid == inst.series_instance_uid
            )
        both = {
            "QueryRetrieveLevel": "STUDY",
            "StudyInstanceUID": f"{a.study_instance_uid}\\{b.study_instance_uid}",
        }
        assert len(await retrieved(both)) == 14
        one_series = a.series[1]
        series = await retrieved(
            {
                "QueryRetrieveLevel": "SERIES",
                "StudyInstanceUID": a.study_instance_uid,
                "SeriesInstanceUID": one_series.series_instance_uid,
            }
        )
        assert set(series) == {i.sop_instance_uid for i in one_series.instances}
        picked = [a.instances[0].sop_instance_uid, b.instances[2].sop_instance_uid]
        images = await retrieved({"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": "\\".join(picked)})
        assert set(images) == set(picked)
        patient = await retrieved(
            {"QueryRetrieveLevel": "PATIENT", "PatientID": b.patient_id}, "patient_root"
        )
        assert set(patient) == {i.sop_instance_uid for i in b.instances}
        assert await retrieved({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.3.4"}) == {}
        with pytest.raises(QueryError) as caught:  # a key below the level would retrieve more than asked
            await retrieved(
                {
                    "QueryRetrieveLevel": "STUDY",
                    "StudyInstanceUID": a.study_instance_uid,
                    "SOPInstanceUID": picked[0],
                }
            )
        assert caught.value.status == 0xA900


@pytest.mark.parametrize(
    "query",
    [
        {"PatientID": "1"},
        {"QueryRetrieveLevel": "PATIENT", "PatientID": ""},  # no patient level in study root
        {"QueryRetrieveLevel": "WARD", "PatientID": ""},
        {"QueryRetrieveLevel": "SERIES", "PatientName": "QR*", "SeriesInstanceUID": ""},
    ],
)
async def test_a_query_the_model_cannot_answer(out_dir: Path, query: dict[str, Any]) -> None:
    async with Archive(out_dir) as archive:
        with pytest.raises(QueryError) as caught:
            await found(archive, query)
        assert caught.value.status == 0xA900
        assert (await archive.stats())["instances"] == 14  # nothing else changes


async def test_empty_keys_of_the_levels_above_are_returned(out_dir: Path, qr_data: QrData) -> None:
    """Orthanc 1.10 sends an empty PatientID and AccessionNumber (study keys) in every SERIES and IMAGE
    query: universal keys above the level are answered with the entity's values (and were refused with
    0xA900); one with a value to match is still refused."""
    b = qr_data.b
    series = b.series[0]
    async with Archive(out_dir) as archive:
        query = {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": b.study_instance_uid, "Modality": "CT"}
        got = await found(archive, {**query, "PatientID": "", "AccessionNumber": "", "SeriesInstanceUID": ""})
        assert [(r.SeriesInstanceUID, r.PatientID, r.AccessionNumber) for r in got] == [
            (series.series_instance_uid, b.patient_id, b.accession_number)
        ]
        image = {"QueryRetrieveLevel": "IMAGE", "SeriesInstanceUID": series.series_instance_uid}
        got = await found(archive, {**image, "AccessionNumber": "", "Modality": "", "SOPInstanceUID": ""})
        assert sorted(str(r.SOPInstanceUID) for r in got) == sorted(
            i.sop_instance_uid for i in series.instances
        )
        assert {(r.AccessionNumber, r.Modality) for r in got} == {(b.accession_number, "CT")}
        with pytest.raises(QueryError) as caught:
            await found(archive, {**query, "AccessionNumber": b.accession_number, "SeriesInstanceUID": ""})
        assert caught.value.status == 0xA900


async def test_pages_of_rows(out_dir: Path, qr_data: QrData, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are read a page at a time: a page smaller than the result still yields every match once."""
    monkeypatch.setattr(index_module, "_PAGE", 2)
    async with Archive(out_dir) as archive:
        got = [
            r.SOPInstanceUID
            for r in await found(archive, {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": ""})
        ]
        assert sorted(got) == sorted(i.sop_instance_uid for i in qr_data.all_instances())
        assert len(await uids(archive, {"QueryRetrieveLevel": "SERIES", "Modality": "MR"})) == 5


async def test_only_the_levels_a_query_needs_are_read(
    out_dir: Path, qr_data: QrData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query reads the attributes of the levels holding its keys (UIDs and PatientID from their own
    columns otherwise): the answers are the same as when every level is read, raw or as Datasets."""
    a = qr_data.a
    queries: list[tuple[dict[str, Any], str]] = [
        (
            {
                "QueryRetrieveLevel": "IMAGE",
                "StudyInstanceUID": a.study_instance_uid,
                "SeriesInstanceUID": "",
                "SOPInstanceUID": "",
                "InstanceNumber": "",
            },
            "study_root",
        ),
        ({"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": "", "PatientID": ""}, "study_root"),
        ({"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": "", "Modality": "MR"}, "study_root"),
        ({"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": "", "PatientName": ""}, "study_root"),
        (
            {
                "QueryRetrieveLevel": "STUDY",
                "StudyInstanceUID": "",
                "PatientID": "",
                "NumberOfStudyRelatedInstances": "",
            },
            "study_root",
        ),
        ({"QueryRetrieveLevel": "STUDY", "PatientID": a.patient_id, "StudyInstanceUID": ""}, "patient_root"),
        ({"QueryRetrieveLevel": "PATIENT", "PatientID": ""}, "patient_root"),
    ]
    every = select_module._columns
    async with Archive(out_dir) as archive:
        answers = []
        for read_all in (False, True):
            if read_all:
                monkeypatch.setattr(
                    select_module, "_columns", lambda level, attrs, needed: every(level, attrs, None)
                )
            got = []
            for query, model in queries:
                for raw in (False, True):
                    found_ = archive.index.find(identifier(query), model, raw=raw)
                    got.append([dict(r.elements) if raw else r for r in [x async for x in found_]])
            answers.append(got)
        assert answers[0] == answers[1]
        assert all(answers[0][::2]), "every query matches something"
    chosen, columns, _ = every(
        "IMAGE",
        ("p.attrs", "s.attrs", "se.attrs", "i.attrs"),
        {"StudyInstanceUID", "SOPInstanceUID", "InstanceNumber"},
    )
    assert chosen == ["NULL", "NULL", "NULL", "i.attrs"] and columns == ("StudyInstanceUID",)


async def test_a_quick_first_page_is_read_on_the_loop(
    out_dir: Path, qr_data: QrData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query's first page is read on the event loop's thread when it takes few SQLite steps (no thread
    hop before the first answer); one that takes more is interrupted and read in the index's thread; the
    answers are the same. The later pages are read in the index's thread."""
    real = index_module._page
    where: list[str] = []

    def page(*args: Any, **kwargs: Any) -> Any:
        where.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(index_module, "_page", page)
    query = {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": "", "InstanceNumber": ""}
    async with Archive(out_dir) as archive:
        quick = [r.SOPInstanceUID for r in await found(archive, query)]
        assert where[0] == threading.current_thread().name
        assert where[1:] and all(name.startswith("aiodicom-index") for name in where[1:])
        where.clear()
        monkeypatch.setattr(index_module, "_LOOP_BUDGET", 0)
        slow = [r.SOPInstanceUID for r in await found(archive, query)]
        assert where[0] == threading.current_thread().name  # tried, interrupted
        assert all(name.startswith("aiodicom-index") for name in where[1:]) and len(where) >= 2
    assert quick == slow and len(quick) == len(list(qr_data.all_instances()))


def _stats_from_files(out_dir: Path) -> int:
    return sum(
        1
        for p in out_dir.rglob("*.dcm")
        if not any(part.startswith(".") for part in p.relative_to(out_dir).parts)
    )


async def test_reconcile_with_changes_behind_the_index(
    out_dir: Path, qr_data: QrData, tmp_path: Path
) -> None:
    a, b = qr_data.a, qr_data.b
    async with Archive(out_dir) as archive:
        assert await archive.stats() == {"patients": 2, "studies": 2, "series": 9, "instances": 14}
    # behind the index's back: rows deleted (a crash after the rename, before the insert), a file gone,
    # a new file (another study), and a file rewritten in place
    db = sqlite3.connect(out_dir / INDEX_NAME)
    db.execute(
        "DELETE FROM instance WHERE uid IN (?, ?)",
        (a.instances[0].sop_instance_uid, b.instances[0].sop_instance_uid),
    )
    db.commit()
    db.close()
    stored_path(out_dir, b.instances[1]).unlink()
    extra = dcmread(a.instances[0].path)
    extra.StudyInstanceUID, extra.SeriesInstanceUID, extra.SOPInstanceUID = (
        generate_uid(),
        generate_uid(),
        generate_uid(),
    )
    extra.file_meta.MediaStorageSOPInstanceUID = extra.SOPInstanceUID
    extra.PatientID, extra.PatientName, extra.StudyDate = "QR-PAT-9", "QR^Gamma", "20250101"
    target = out_dir / extra.StudyInstanceUID / extra.SeriesInstanceUID / f"{extra.SOPInstanceUID}.dcm"
    target.parent.mkdir(parents=True)
    extra.save_as(target)
    rewritten = dcmread(stored_path(out_dir, b.instances[2]))
    rewritten.InstanceNumber = 99
    rewritten.save_as(stored_path(out_dir, b.instances[2]))
    async with Archive(out_dir) as archive:
        assert await archive.stats() == {"patients": 3, "studies": 3, "series": 10, "instances": 14}
        assert _stats_from_files(out_dir) == 14
        retrieved = {
            r.sop_instance_uid
            async for r in archive.instances(
                identifier({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": b.study_instance_uid})
            )
        }
        assert retrieved == {b.instances[0].sop_instance_uid, b.instances[2].sop_instance_uid}
        assert await uids(archive, {"QueryRetrieveLevel": "STUDY", "PatientName": "QR^Gamma"}) == {
            extra.StudyInstanceUID
        }
        renumbered = {
            "QueryRetrieveLevel": "IMAGE",
            "StudyInstanceUID": b.study_instance_uid,
            "InstanceNumber": "99",
        }
        assert await uids(archive, renumbered) == {b.instances[2].sop_instance_uid}  # the file was read again
        # the whole study of a file removed goes with its last instance
        for inst in a.instances:
            stored_path(out_dir, inst).unlink()
        assert await archive.reconcile() == (0, 11)
        assert await uids(archive, {"QueryRetrieveLevel": "STUDY"}) == {
            b.study_instance_uid,
            extra.StudyInstanceUID,
        }
        assert (await archive.stats())["patients"] == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other schema", "empty"])
async def test_a_damaged_index_is_rebuilt(out_dir: Path, damage: str) -> None:
    async with Archive(out_dir) as archive:
        assert (await archive.stats())["instances"] == 14
    path = out_dir / INDEX_NAME
    if damage == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        db = sqlite3.connect(path)
        db.execute("UPDATE meta SET value='0' WHERE key='schema'")
        db.commit()
        db.close()
    async with Archive(out_dir) as archive:
        assert await archive.stats() == {"patients": 2, "studies": 2, "series": 9, "instances": 14}


async def test_add_remove_and_duplicates(tmp_path: Path, qr_data: QrData) -> None:
    out = tmp_path / "out"
    a = qr_data.a
    async with Archive(out) as archive:
        assert await archive.stats() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
        first = a.instances[0]
        target = stored_path(out, first)
        target.parent.mkdir(parents=True)
        shutil.copyfile(first.path, target)
        record = await archive.add(target)
        assert (
            record.sop_instance_uid == first.sop_instance_uid
            and record.transfer_syntax_uid == first.transfer_syntax_uid
        )
        # the same SOP instance again, changed: its row is replaced, not doubled
        ds = dcmread(target)
        ds.PatientName = "QR^Alpha^Again"
        ds.save_as(target)
        await archive.add(target)
        assert (await archive.stats())["instances"] == 1
        (p,) = await found(archive, {"QueryRetrieveLevel": "STUDY", "PatientName": ""})
        assert str(p.PatientName) == "QR^Alpha^Again"
        not_dicom = out / "x.dcm"
        not_dicom.write_bytes(b"hello")
        with pytest.raises(ValueError, match="not readable as DICOM"):
            await archive.add(not_dicom)
        not_dicom.unlink()
        assert await archive.remove(first.sop_instance_uid)
        assert not await archive.remove(first.sop_instance_uid)
        assert await archive.stats() == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
        assert target.exists()  # the file is left alone


async def test_the_receiver_and_the_index_share_out_dir(tmp_path: Path, qr_data: QrData) -> None:
    """StoreScp stores into out_dir and each committed instance is added; the receiver's start-up sweep
    and its temporary files leave the hidden index alone, and the index never counts them."""
    out = tmp_path / "out"
    files = [str(i.path) for i in qr_data.b.instances]
    async with Archive(out) as archive:
        for round_ in range(2):  # the second start sweeps .incoming again
            scp = StoreScp(0, host="127.0.0.1", out_dir=out, fsync=False)
            stored: list[StoredInstance] = []
            scp.on_file_stored(stored.append)
            async with (
                scp,
                aiodicom.connect(f"127.0.0.1:{scp.port}", contexts=contexts_for(files[:1])) as assoc,
            ):
                for file in files:
                    assert await assoc.c_store(file) == 0
            for event in stored:
                await archive.add(event)
            assert (await archive.stats())["instances"] == 3, round_
            assert (out / INDEX_NAME).exists()
        (out / ".incoming" / "left.dcm").write_bytes(dcmread(files[0]).SOPInstanceUID.encode())
        assert await archive.rebuild() == 3
        assert await archive.reconcile() == (0, 0)
    assert {p.name for p in out.iterdir() if p.name.startswith(".index")} >= {INDEX_NAME}
    assert not any(p.name.startswith(".index") for p in out.rglob("*") if p.parent != out)


# ------------------------------------------------------------------------------- against dcmqrscp

A_UID = "@a"  # placeholders replaced with the session's UIDs
B_UID = "@b"
DCMQRSCP_QUERIES: list[tuple[str, dict[str, Any]]] = [
    (
        "study_root",
        {"QueryRetrieveLevel": "STUDY", "PatientID": "QR-PAT-1", "PatientName": "", "StudyDate": ""},
    ),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientName": "QR^*", "PatientSex": ""}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientName": "QR^Be*"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientName": "qr^*"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientName": "*lpha"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientName": "QR^Alph?", "AccessionNumber": ""}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientName": "QR"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientID": "QR-PAT-?"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientID": "qr-pat-1"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyDate": "20240101-20240131", "StudyTime": ""}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyDate": "20240301-"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyDate": "-20231231"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyDate": "20240320"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyTime": "10-11"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyTime": "1430-"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyTime": "-1015"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "AccessionNumber": "ACC-B", "StudyID": ""}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyID": "A*", "StudyDescription": ""}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyDescription": "QR plain CT"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyDescription": "*multi*"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": f"{A_UID}\\{B_UID}"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": B_UID, "PatientBirthDate": ""}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientSex": "M"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientBirthDate": "19700101-19751231"}),
    ("study_root", {"QueryRetrieveLevel": "STUDY", "PatientName": "QR^*", "StudyDate": "2024-"}),
    (
        "study_root",
        {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": A_UID, "Modality": "MR", "SeriesNumber": ""},
    ),
    ("study_root", {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": A_UID, "Modality": "C?"}),
    (
        "study_root",
        {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": A_UID, "SeriesNumber": "3", "Modality": ""},
    ),
    ("study_root", {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": B_UID}),
    (
        "study_root",
        {
            "QueryRetrieveLevel": "IMAGE",
            "StudyInstanceUID": A_UID,
            "SeriesInstanceUID": "@series",
            "InstanceNumber": "",
        },
    ),
    (
        "study_root",
        {
            "QueryRetrieveLevel": "IMAGE",
            "StudyInstanceUID": A_UID,
            "SeriesInstanceUID": "@series",
            "InstanceNumber": "2",
        },
    ),
    ("patient_root", {"QueryRetrieveLevel": "PATIENT", "PatientName": "", "PatientBirthDate": ""}),
    ("patient_root", {"QueryRetrieveLevel": "PATIENT", "PatientName": "QR^Beta", "PatientSex": ""}),
    ("patient_root", {"QueryRetrieveLevel": "PATIENT", "PatientID": "*-1"}),
    ("patient_root", {"QueryRetrieveLevel": "STUDY", "PatientID": "QR-PAT-2", "StudyDate": ""}),
    (
        "patient_root",
        {
            "QueryRetrieveLevel": "SERIES",
            "PatientID": "QR-PAT-1",
            "StudyInstanceUID": A_UID,
            "Modality": "OT",
        },
    ),
]


def _fill(query: dict[str, Any], data: QrData) -> dict[str, Any]:
    names = {
        A_UID: data.a.study_instance_uid,
        B_UID: data.b.study_instance_uid,
        "@series": data.a.series[0].series_instance_uid,
    }
    out = {}
    for key, value in query.items():
        for name, uid in names.items():
            value = value.replace(name, uid)
        out[key] = value
    return out


@pytest.mark.interop
@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")  # pydicom on "2024-", "C?"
async def test_the_same_matches_as_dcmqrscp(dcmqrscp_qr: Pacs, qr_data: QrData, tmp_path: Path) -> None:
    """Each query answered by dcmqrscp (holding the same files) and by the index: the same entities, and
    the same values for every key dcmqrscp returns with a value."""
    out = tmp_path / "out"
    store_like_storescp(out, qr_data)
    scu = FindScu(dcmqrscp_qr.address)
    async with Archive(out) as archive:
        for model, template in DCMQRSCP_QUERIES:
            query = _fill(template, qr_data)
            key = UNIQUE[query["QueryRetrieveLevel"]]
            query.setdefault(key, "")
            theirs = {m[key]: m for m in (await scu.find(query, model)).matches}
            ours = {str(r[key].value): r for r in await found(archive, query, model)}
            assert set(ours) == set(theirs), (model, template)
            for uid, match in theirs.items():
                for keyword, value in match.items():
                    if keyword in query and value not in ("", None) and keyword != "QueryRetrieveLevel":
                        mine = ours[uid][keyword].value
                        mine = (
                            "\\".join(str(v) for v in mine) if isinstance(mine, list | tuple) else str(mine)
                        )
                        assert mine == value, (template, keyword)
