"""PS3.4 C.2.2.2 matching and response building, on hand-built identifiers and candidates."""

from __future__ import annotations

import datetime
import io
from typing import Any

import pytest
from hypothesis import given, strategies as st
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from aiodicom.archive.keys import check_query, unsupported_keys
from aiodicom.archive.matching import QueryError, build_response, match, match_value

# Query values are set on pydicom Datasets, which warn about ranges and wildcards in DA, TM and UI values.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")


def query(**keys: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def matches(q: Dataset, candidates: dict[str, dict[str, Any]], **options: Any) -> set[str]:
    return {name for name, candidate in candidates.items() if match(q, candidate, **options)}


PEOPLE = {
    "doe": {"PatientName": "DOE^JOHN", "PatientID": "P1", "StudyDate": "20240115", "StudyTime": "101500"},
    "doe2": {
        "PatientName": "DOE^JANE^^^",
        "PatientID": "P2",
        "StudyDate": "20240320",
        "StudyTime": "143000.25",
    },
    "roe": {"PatientName": "ROE^RICHARD", "PatientID": "p1", "StudyDate": "20231231", "StudyTime": "0900"},
    "anon": {"PatientID": "", "StudyDate": ""},
}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"PatientID": "P1"}, {"doe"}),  # single value, case-sensitive for LO
        ({"PatientID": " P1 "}, {"doe"}),  # leading and trailing spaces are not significant
        ({"PatientID": ""}, {"doe", "doe2", "roe", "anon"}),  # universal matching
        ({"PatientID": "*"}, {"doe", "doe2", "roe", "anon"}),  # a lone * matches an empty value too
        ({"PatientID": "P?"}, {"doe", "doe2"}),
        ({"PatientID": "?1"}, {"doe", "roe"}),
        ({"PatientName": "DOE*"}, {"doe", "doe2"}),  # a wildcard spans components
        ({"PatientName": "doe*"}, set()),  # PN is case-sensitive by default, as in dcmqrscp
        ({"PatientName": "DOE^JANE"}, {"doe2"}),  # trailing empty components are insignificant
        ({"PatientName": "DOE^JANE^"}, {"doe2"}),
        ({"PatientName": "DOE"}, set()),  # a whole-group value, not a prefix
        ({"PatientName": "*^J*"}, {"doe", "doe2"}),
        ({"PatientName": "D?E^JOHN"}, {"doe"}),
        ({"StudyDate": "20240115"}, {"doe"}),
        ({"StudyDate": "20240101-20240131"}, {"doe"}),
        ({"StudyDate": "20240301-"}, {"doe2"}),
        ({"StudyDate": "-20231231"}, {"roe"}),
        ({"StudyDate": "-20240115"}, {"doe", "roe"}),  # inclusive; an empty value never matches a range
        ({"StudyTime": "10-11"}, {"doe"}),
        ({"StudyTime": "1400-"}, {"doe2"}),
        ({"StudyTime": "-1015"}, {"doe", "roe"}),  # the partial upper bound 1015 covers 10:15:59.999999
        ({"StudyTime": "101500.000"}, {"doe"}),  # a single time compares as a point in time
        ({"StudyTime": "10"}, set()),  # ... so a partial one is not a period (as dcmqrscp)
        ({"PatientID": "P1", "StudyDate": "20230101-"}, {"doe"}),  # every key must match
        ({"StudyDate": "2024-"}, set()),  # DA has no partial values (dcmqrscp matches nothing either)
    ],
)
def test_single_wildcard_universal_range(keys: dict[str, str], expected: set[str]) -> None:
    assert matches(query(**keys), PEOPLE) == expected


def test_pn_ignore_case_option() -> None:
    assert matches(query(PatientName="doe*"), PEOPLE, pn_ignore_case=True) == {"doe", "doe2"}
    assert matches(query(PatientName="roe^richard"), PEOPLE, pn_ignore_case=True) == {"roe"}
    # other VRs stay case-sensitive
    assert matches(query(PatientID="p1"), PEOPLE, pn_ignore_case=True) == {"roe"}


def test_pn_component_groups() -> None:
    japanese = {"PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう"}
    assert match(query(PatientName="Yamada^Tarou"), japanese)
    assert match(query(PatientName="山田^太郎"), japanese)  # one group: any group of the candidate
    assert match(query(PatientName="=山田*"), japanese)  # the ideographic group only
    assert not match(query(PatientName="=やまだ*"), japanese)
    assert match(query(PatientName="Yamada*=山田*=やまだ^たろう"), japanese)
    assert not match(query(PatientName="Yamada*=Tanaka*"), japanese)


def test_list_of_uid_and_multiple_values() -> None:
    candidates = {"a": {"StudyInstanceUID": "1.2.3"}, "b": {"StudyInstanceUID": "1.2.4"}, "c": {}}
    assert matches(query(StudyInstanceUID=["1.2.3", "1.2.4", "1.2.9"]), candidates) == {"a", "b"}
    assert matches(query(StudyInstanceUID="1.2.3"), candidates) == {"a"}
    assert matches(query(StudyInstanceUID="1.2"), candidates) == set()  # no prefix, no wildcard for UI
    assert not match(query(StudyInstanceUID="1.2.*"), candidates["a"])
    studies = {"ct_mr": {"ModalitiesInStudy": ["CT", "MR"]}, "ot": {"ModalitiesInStudy": "OT"}}
    assert matches(query(ModalitiesInStudy="MR"), studies) == {"ct_mr"}  # any value of a multi-valued one
    assert matches(query(ModalitiesInStudy=["OT", "MR"]), studies) == {"ct_mr", "ot"}


def test_numbers_compare_as_numbers() -> None:
    assert match(query(SeriesNumber="1"), {"SeriesNumber": "01"})
    assert not match(query(SeriesNumber="1"), {"SeriesNumber": "10"})
    assert match_value("2", "US", 2)


def step(**keys: Any) -> Dataset:
    return query(**keys)


def worklist_item(modality: str, station: str, date: str) -> Dataset:
    return query(
        PatientName="WL^ITEM",
        ScheduledProcedureStepSequence=Sequence(
            [step(Modality=modality, ScheduledStationAETitle=station, ScheduledProcedureStepStartDate=date)]
        ),
    )


def test_sequence_matching() -> None:
    items = {"ct": worklist_item("CT", "CT1", "20240115"), "mr": worklist_item("MR", "MR1", "20240116")}
    ask = query(ScheduledProcedureStepSequence=Sequence([step(Modality="CT", ScheduledStationAETitle="")]))
    assert matches(ask, items) == {"ct"}
    ranged = Sequence([step(ScheduledProcedureStepStartDate="20240116-", ScheduledStationAETitle="MR*")])
    assert matches(query(ScheduledProcedureStepSequence=ranged), items) == {"mr"}
    both = Sequence([step(Modality="CT", ScheduledStationAETitle="MR1")])  # both keys in one item
    assert matches(query(ScheduledProcedureStepSequence=both), items) == set()
    # an empty sequence, or items of universal keys only, match anything (a missing sequence too)
    assert matches(query(ScheduledProcedureStepSequence=Sequence([])), items) == {"ct", "mr"}
    universal = query(ScheduledProcedureStepSequence=Sequence([step(Modality="")]))
    assert match(universal, query(PatientName="NO^STEPS"))
    assert not match(ask, query(PatientName="NO^STEPS"))


def test_response_has_requested_keys_and_sequence_items() -> None:
    item = worklist_item("CT", "CT1", "20240115")
    item.PatientID = "WL1"
    ask = query(
        PatientName="",
        PatientID="WL*",
        PatientSex="",  # not in the item: returned empty
        ScheduledProcedureStepSequence=Sequence([step(Modality="CT", ScheduledProcedureStepStartDate="")]),
    )
    response = build_response(ask, item)
    assert str(response.PatientName) == "WL^ITEM" and response.PatientID == "WL1"
    assert "PatientSex" in response and response.PatientSex in ("", None)
    (got,) = response.ScheduledProcedureStepSequence
    assert got.Modality == "CT" and got.ScheduledProcedureStepStartDate == "20240115"
    assert "ScheduledStationAETitle" not in got  # only what the query's item asked for
    assert "SpecificCharacterSet" not in response


def test_response_query_retrieve_level_extra_keys_and_charset() -> None:
    ask = query(QueryRetrieveLevel="SERIES", SeriesInstanceUID="", Modality="")
    candidate = {"SeriesInstanceUID": "1.2.3.4", "Modality": "MR", "StudyInstanceUID": "1.2.3"}
    response = build_response(ask, candidate, extra={"StudyInstanceUID": "1.2.3"})
    assert response.QueryRetrieveLevel == "SERIES" and response.StudyInstanceUID == "1.2.3"
    assert response.Modality == "MR" and response.SeriesInstanceUID == "1.2.3.4"
    named = build_response(query(PatientName=""), {"PatientName": "MÜLLER^JÖRG"})
    assert named.SpecificCharacterSet == "ISO_IR 192" and str(named.PatientName) == "MÜLLER^JÖRG"


def _reread(ds: Dataset) -> Dataset:
    """``ds`` written to bytes in its character set and read back (pydicom decodes the text again)."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)
    return dcmread(io.BytesIO(buffer.getvalue()), force=True)


@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
def test_values_are_compared_decoded(charset: str) -> None:
    candidate = _reread(query(SpecificCharacterSet=charset, PatientName="MÜLLER^JÖRG", PatientID="X"))
    assert candidate.get_item("PatientName").value != "MÜLLER^JÖRG".encode()  # stored as raw bytes
    ask = _reread(query(SpecificCharacterSet="ISO_IR 192", PatientName="MÜLL*^J?RG"))
    assert match(ask, candidate)
    assert match(query(PatientName="MÜLLER^JÖRG"), candidate)
    assert not match(query(PatientName="MULLER^JORG"), candidate)
    assert str(build_response(query(PatientName=""), candidate).PatientName) == "MÜLLER^JÖRG"


text = st.text(alphabet="ABCDEFGH^ 12.-_", min_size=1, max_size=12).filter(lambda s: s.strip() == s and s)


@given(text)
def test_a_value_matches_itself_and_star(value: str) -> None:
    assert match(query(PatientID=value), {"PatientID": value})
    assert match(query(PatientID="*"), {"PatientID": value})
    assert match(query(PatientID=value + "*"), {"PatientID": value})


@given(text, st.data())
def test_question_marks_match_exactly_one_character(value: str, data: st.DataObject) -> None:
    positions = data.draw(st.sets(st.integers(0, len(value) - 1)))
    pattern = "".join("?" if i in positions else ch for i, ch in enumerate(value))
    assert match(query(StudyDescription=pattern), {"StudyDescription": value})
    assert not match(query(StudyDescription=pattern + "?"), {"StudyDescription": value})


dates = st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))


@given(dates, dates, dates)
def test_date_ranges_agree_with_ordering(low: str, high: str, value: str) -> None:
    candidate = {"StudyDate": value}
    assert match(query(StudyDate=f"{low}-{high}"), candidate) == (low <= value <= high)
    assert match(query(StudyDate=f"{low}-"), candidate) == (low <= value)
    assert match(query(StudyDate=f"-{high}"), candidate) == (value <= high)


def test_datetime_ranges_and_offsets() -> None:
    candidate = {"AcquisitionDateTime": "20240115101500.5+0100"}
    assert match(query(AcquisitionDateTime="20240115-20240116"), candidate)
    assert match(query(AcquisitionDateTime="2024-"), candidate)
    assert match(query(AcquisitionDateTime="-2024"), candidate)  # the whole year 2024
    assert not match(query(AcquisitionDateTime="-2023"), candidate)
    assert match(query(AcquisitionDateTime="20240115100000-0500-20240115110000"), candidate)


def test_check_query_statuses() -> None:
    ok = query(QueryRetrieveLevel="SERIES", StudyInstanceUID="1.2.3", SeriesInstanceUID="")
    assert check_query(ok, "study_root") == ("study_root", "SERIES")
    assert check_query(query(QueryRetrieveLevel="INSTANCE"), "patient_root")[1] == "IMAGE"
    bad = [
        (query(PatientID="1"), "study_root"),  # no level
        (query(QueryRetrieveLevel="FOO"), "study_root"),
        (query(QueryRetrieveLevel="PATIENT"), "study_root"),  # study root has no patient level
        (query(QueryRetrieveLevel="STUDY", PatientName="A*"), "patient_root"),  # not a unique key above
        (query(QueryRetrieveLevel="IMAGE", Modality="CT"), "study_root"),
        (query(QueryRetrieveLevel="STUDY"), "modality_worklist"),
    ]
    for identifier, model in bad:
        with pytest.raises(QueryError) as caught:
            check_query(identifier, model)
        assert caught.value.status == 0xA900
    below = query(QueryRetrieveLevel="STUDY", StudyInstanceUID="", SOPInstanceUID="1.2")
    assert check_query(below, "study_root")[1] == "STUDY"  # left out of a C-FIND, as dcmqrscp does
    assert unsupported_keys(below, "study_root") == ["SOPInstanceUID"]
    with pytest.raises(QueryError):
        check_query(below, "study_root", retrieve=True)  # a retrieve would get more than asked
    assert unsupported_keys(query(QueryRetrieveLevel="STUDY", ScanOptions=""), "study_root") == [
        "ScanOptions"
    ]


def test_unmatchable_value_is_a_query_error() -> None:
    q = Dataset()
    q.add_new(0x00420011, "OB", b"\x01\x02")  # EncapsulatedDocument: bytes cannot be matched
    with pytest.raises(QueryError) as caught:
        match(q, {})
    assert 0xC000 <= caught.value.status <= 0xCFFF
