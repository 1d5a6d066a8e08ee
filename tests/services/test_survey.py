"""The survey's planning, without a peer: where each key goes, what a retrieve identifier carries, and how a
returned value is checked against a key."""

from __future__ import annotations

import pytest

from aiodicom.services.query import QueryModel
from aiodicom.services.survey import UIDS_PER_IDENTIFIER, Survey, scope_of, value_matches

STUDY, PATIENT = QueryModel.STUDY_ROOT, QueryModel.PATIENT_ROOT


def test_keys_go_to_the_level_where_they_live() -> None:
    scope = scope_of(
        STUDY,
        {
            "QueryRetrieveLevel": "STUDY",
            "PatientName": "DOE^*",
            "00080050": "ACC-1",  # AccessionNumber by tag
            "StudyDate": "20240101-20240131",
            "Modality": "MR",
            "InstanceNumber": "1",
            "StudyDescription": "",  # a return key: no constraint
            "SeriesDescription": "*",  # universal matching: no constraint
        },
    )
    assert scope.sent["STUDY"] == {
        "PatientName": "DOE^*",
        "AccessionNumber": "ACC-1",
        "StudyDate": "20240101-20240131",
    }
    assert scope.sent["SERIES"] == {"Modality": "MR"}
    assert scope.sent["IMAGE"] == {"InstanceNumber": "1"}
    assert scope.depth == "IMAGE" and not scope.direct
    patient = scope_of(PATIENT, {"QueryRetrieveLevel": "STUDY", "PatientName": "DOE^*", "StudyID": "7"})
    assert patient.sent["PATIENT"] == {"PatientName": "DOE^*"}
    assert patient.sent["STUDY"] == {"StudyID": "7"}


def test_modalities_in_study_is_matched_on_the_series() -> None:
    """dcmqrscp ignores ModalitiesInStudy: the series' Modality is matched instead."""
    scope = scope_of(STUDY, {"QueryRetrieveLevel": "STUDY", "ModalitiesInStudy": "CT"})
    assert scope.sent["STUDY"] == {} and scope.sent["SERIES"] == {"Modality": "CT"}
    assert scope.depth == "SERIES"


def test_a_list_of_values_is_asked_back_and_matched_here() -> None:
    scope = scope_of(STUDY, {"QueryRetrieveLevel": "SERIES", "Modality": "CT\\MR"})
    assert scope.sent["SERIES"] == {"Modality": ""}
    assert scope.checks["SERIES"] == [("Modality", "CT\\MR")]
    uids = scope_of(STUDY, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2\\1.3"})
    assert uids.sent["STUDY"] == {"StudyInstanceUID": "1.2\\1.3"} and uids.direct


@pytest.mark.parametrize(
    ("model", "query", "direct"),
    [
        (STUDY, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.3"}, True),
        (STUDY, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.3", "PatientID": "P"}, False),
        (
            STUDY,
            {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.3"},
            True,
        ),
        (STUDY, {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": "1.3"}, False),  # no study UID
        (STUDY, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.*"}, False),
        (PATIENT, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P1"}, True),
        (PATIENT, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P*"}, False),
        (PATIENT, {"QueryRetrieveLevel": "STUDY", "PatientID": "P1", "StudyInstanceUID": "1.2"}, True),
    ],
)
def test_direct_is_a_query_of_unique_keys_only(
    model: QueryModel, query: dict[str, str], direct: bool
) -> None:
    scope = scope_of(model, query)
    assert scope.direct is direct
    if direct:
        assert scope.identifier() == query


def test_study_root_has_no_patient_level() -> None:
    with pytest.raises(ValueError, match="patient_root"):
        scope_of(STUDY, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P1"})


def test_identifiers_carry_unique_keys_only_and_never_an_empty_one() -> None:
    found = Survey(
        level="SERIES",
        matches=[
            {"StudyInstanceUID": "1.1", "SeriesInstanceUID": "1.1.1"},
            {"StudyInstanceUID": "1.1", "SeriesInstanceUID": "1.1.2"},
            {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.1"},
            {"StudyInstanceUID": "1.3", "SeriesInstanceUID": ""},  # a broken match: left out
        ],
    )
    assert found.identifiers(STUDY) == [
        {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.1", "SeriesInstanceUID": "1.1.1\\1.1.2"},
        {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.1"},
    ]
    patients = Survey(level="PATIENT", matches=[{"PatientID": "P1"}, {"PatientID": "P2"}])
    assert patients.identifiers(PATIENT) == [
        {"QueryRetrieveLevel": "PATIENT", "PatientID": "P1"},
        {"QueryRetrieveLevel": "PATIENT", "PatientID": "P2"},
    ]
    many = Survey(level="STUDY", matches=[{"StudyInstanceUID": f"1.2.{k}"} for k in range(600)])
    lists = [i["StudyInstanceUID"].split("\\") for i in many.identifiers(STUDY)]
    assert [len(uids) for uids in lists] == [UIDS_PER_IDENTIFIER, UIDS_PER_IDENTIFIER, 600 - 512]
    assert not Survey(matches=[]).matched and Survey(resolved=False).matched


@pytest.mark.parametrize(
    ("keyword", "key", "returned", "matches"),
    [
        ("PatientName", "QR^Beta", "QR^Beta", True),
        ("PatientName", "QR^Beta", "QR^Beta^^", True),
        ("PatientName", "qr^b*", "QR^Beta", True),
        ("PatientName", "QR^Beta", "QR^Alpha", False),
        ("PatientName", "QR^?eta", "QR^Beta", True),
        ("Modality", "M?", "MR", True),
        ("Modality", "M?", "CT", False),
        ("Modality", "CT\\MR", "MR", True),
        ("ModalitiesInStudy", "MR", "CT\\MR", True),
        ("StudyDate", "20240101-20240201", "20240115", True),
        ("StudyDate", "20240101-20240201", "20240320", False),
        ("StudyDate", "20240301-", "20240320", True),
        ("StudyDate", "-20240301", "20240320", False),
        ("StudyDate", "20240115", "20240115", True),
        ("StudyInstanceUID", "1.2.3\\1.2.4", "1.2.4", True),
        ("StudyInstanceUID", "1.2.3", "1.2.30", False),
        ("SeriesNumber", "1", "01", True),
        ("StudyTime", "100000-110000", "143000", True),  # TM is left to the PACS
    ],
)
def test_value_matches(keyword: str, key: str, returned: str, matches: bool) -> None:
    assert value_matches(keyword, key, returned) is matches


def test_instances_by_series_and_the_uids_at_the_retrieve_level() -> None:
    found = Survey(
        level="SERIES",
        matches=[
            {"StudyInstanceUID": "1.1", "SeriesInstanceUID": "1.1.1"},
            {"StudyInstanceUID": "1.1", "SeriesInstanceUID": "1.1.2"},
            {"StudyInstanceUID": "1.1", "SeriesInstanceUID": ""},  # names nothing
        ],
        instances={
            "1.1.1.1": ("1.2.840.10008.5.1.4.1.1.2", "1.1.1", "1.1"),
            "1.1.2.1": ("1.2.840.10008.5.1.4.1.1.4", "1.1.2", "1.1"),
            "1.1.1.2": ("1.2.840.10008.5.1.4.1.1.2", "1.1.1", "1.1"),
        },
    )
    assert found.uids() == {"1.1.1", "1.1.2"}
    assert found.by_series() == {"1.1.1": ["1.1.1.1", "1.1.1.2"], "1.1.2": ["1.1.2.1"]}
    assert found.by_series(only={"1.1.1.2", "9.9"}) == {"1.1.1": ["1.1.1.2"]}
    assert found.by_series(only=[]) == {}
    assert Survey(level="STUDY", matches=[{"StudyInstanceUID": "2.1"}]).uids() == {"2.1"}
