"""aiodicom.dataset.tags: tag sets, SOP class and transfer syntax groups, custom tags, option names."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st
from pydicom import uid as pydicom_uid
from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_is_retired, dictionary_VR, keyword_dict, tag_for_keyword
from pydicom.uid import UID

from aiodicom.dataset.tags import (
    DEFAULT_TAGS,
    SERIES_LEVEL_KEYWORDS,
    STUDY_LEVEL_KEYWORDS,
    CustomTag,
    combine_tags,
    create_custom_tag,
    get_available_tag_names,
    get_common_sop_classes,
    get_common_tag_sets,
    get_common_transfer_syntaxes,
    normalize_custom_tags,
    normalize_option,
    parse_tag,
    resolve_transfer_syntax,
    split_levels,
    storage_sop_classes,
    validate_keywords,
)

SIX = ["patient_basic", "study_basic", "series_basic", "instance_basic", "image_pixel_info", "equipment"]
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"

# -- tag sets -----------------------------------------------------------------------------------------------


def test_tag_set_counts() -> None:
    counts = {name: len(tags) for name, tags in get_common_tag_sets().items()}
    assert counts == {
        "patient_basic": 7,
        "study_basic": 7,
        "series_basic": 8,
        "instance_basic": 5,
        "image_pixel_info": 9,
        "equipment": 6,
        "ct": 6,
        "mr": 6,
        "ultrasound": 6,
        "pet_nm": 11,
        "xa": 8,
        "rt": 11,
        "default": 42,
    }
    assert all(len(set(tags)) == len(tags) for tags in get_common_tag_sets().values())


def test_tag_set_keywords_are_extractable_dictionary_keywords() -> None:
    for name, tags in get_common_tag_sets().items():
        for keyword in tags:
            tag = tag_for_keyword(keyword)
            assert tag is not None, (name, keyword)
            assert not dictionary_is_retired(tag), (name, keyword)
            assert dictionary_VR(tag) not in {"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"}, (name, keyword)


def test_default_is_the_union_of_the_first_six() -> None:
    sets = get_common_tag_sets()
    union = [keyword for name in SIX for keyword in sets[name]]
    assert sets["default"] == union == combine_tags(*(sets[name] for name in SIX))
    assert len(sets["default"]) == 42 and list(DEFAULT_TAGS) == sets["default"]
    assert isinstance(DEFAULT_TAGS, tuple)


def test_tag_sets_are_fresh_lists() -> None:
    sets = get_common_tag_sets()
    sets["ct"].append("Mutated")
    sets["default"].clear()
    again = get_common_tag_sets()
    assert "Mutated" not in again["ct"] and len(again["default"]) == 42


# -- combine_tags -------------------------------------------------------------------------------------------


def test_combine_tags_both_call_styles() -> None:
    assert combine_tags(["A", "B"], ["B", "C"]) == ["A", "B", "C"]
    assert combine_tags([["A", "B"], ["B", "C"]]) == ["A", "B", "C"]
    assert combine_tags(["A", "B", "A"]) == ["A", "B"]  # one plain list
    assert combine_tags(t for t in ["X", "Y", "X"]) == ["X", "Y"]  # a generator
    assert combine_tags(iter([["A"], ("B", "A")])) == ["A", "B"]  # an iterator of lists
    assert combine_tags("PatientName", ["PatientID", "PatientName"]) == ["PatientName", "PatientID"]
    assert combine_tags() == [] and combine_tags([]) == [] and combine_tags([[], []]) == []


def test_combine_tags_documents_example() -> None:
    sets = get_common_tag_sets()
    combined = combine_tags([sets["default"], sets["ct"], ["WindowCenter", "WindowWidth"], ["KVP"]])
    assert combined == sets["default"] + sets["ct"] + ["WindowCenter", "WindowWidth"]


@given(st.lists(st.lists(st.sampled_from("ABCDEFG"), max_size=6), max_size=5))
def test_combine_tags_property(groups: list[list[str]]) -> None:
    expected = list(dict.fromkeys(item for group in groups for item in group))
    assert combine_tags(*groups) == expected
    assert combine_tags(groups) == expected or not any(groups)


# -- parse_tag and custom tags ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["00100010", "(0010,0010)", "0010,0010", " (0010, 0010) ", "( 0010 , 0010 )", "0010 ,0010", 0x00100010],
)
def test_parse_tag_forms(text: str | int) -> None:
    assert parse_tag(text) == 0x00100010


def test_parse_tag_hex_any_case() -> None:
    assert parse_tag("7fe00010") == parse_tag("(7FE0,0010)") == parse_tag("7Fe0,0010") == 0x7FE00010
    assert parse_tag("ffffffff") == 0xFFFFFFFF and parse_tag(0) == 0


@pytest.mark.parametrize(
    "text",
    [
        "0010001",
        "001000100",
        "(0010;0010)",
        "(0010,0010",
        "0010,0010)",
        "(00100010)",
        "PatientName",
        "GGGGEEEE",
    ],
)
def test_parse_tag_errors(text: str) -> None:
    with pytest.raises(ValueError, match="malformed tag"):
        parse_tag(text)


@pytest.mark.parametrize("value", [-1, 0x100000000, True, None, 1.5, b"00100010"])
def test_parse_tag_rejects_other_values(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_tag(value)


@given(st.integers(0, 0xFFFFFFFF), st.sampled_from(["{g}{e}", "({g},{e})", "{g},{e}", " ( {g} , {e} ) "]))
def test_parse_tag_round_trip(tag: int, form: str) -> None:
    group, element = f"{tag >> 16:04x}", f"{tag & 0xFFFF:04X}"
    assert parse_tag(form.format(g=group, e=element)) == tag
    assert parse_tag(str(CustomTag(tag, "X"))) == tag


def test_custom_tag() -> None:
    custom = create_custom_tag("00431028", "Vendor")
    assert custom == CustomTag(0x00431028, "Vendor") and str(custom) == "00431028"
    assert str(CustomTag(0x00091001, "A")) == "00091001"
    assert CustomTag("(0009,1001)", "A").tag == 0x00091001  # type: ignore[arg-type]  # the DESIGN's form
    assert create_custom_tag(0x00191010, " Siemens_Protocol ").name == "Siemens_Protocol"
    with pytest.raises(dataclasses.FrozenInstanceError):
        custom.name = "Other"  # type: ignore[misc]
    assert hash(custom) == hash(CustomTag(0x00431028, "Vendor"))


@pytest.mark.parametrize("name", ["", "   ", "1abc", "has space", "dash-ed", None, 7])
def test_custom_tag_bad_names(name: Any) -> None:
    with pytest.raises(ValueError, match="name"):
        create_custom_tag("00091001", name)


def test_create_custom_tag_bad_tag() -> None:
    with pytest.raises(ValueError, match="malformed tag"):
        create_custom_tag("0009100", "Vendor")


def test_normalize_custom_tags_three_forms() -> None:
    tags = normalize_custom_tags(
        [
            CustomTag(0x00091001, "A"),
            {"tag": "00091002", "name": "B"},
            ("(0009,1003)", "C"),
            ["0009,1004", "D"],
        ]
    )
    assert [(str(t), t.name) for t in tags] == [
        ("00091001", "A"),
        ("00091002", "B"),
        ("00091003", "C"),
        ("00091004", "D"),
    ]
    assert all(isinstance(t, CustomTag) for t in tags)
    assert normalize_custom_tags(None) == () and normalize_custom_tags([]) == ()


def test_normalize_custom_tags_duplicate_names() -> None:
    with pytest.raises(ValueError, match="'X' is used twice"):
        normalize_custom_tags([("00091001", "X"), {"tag": "(0009,1002)", "name": "X"}])
    with pytest.raises(ValueError, match="'PatientName' is used twice"):
        normalize_custom_tags([("00091001", "PatientName")], keywords=["PatientName"])
    # a custom name equal to a keyword that is not extracted is fine; the same tag under two names too
    assert len(normalize_custom_tags([("00100010", "PatientName"), ("00100010", "Name")], ["PatientID"])) == 2


@pytest.mark.parametrize(
    "item",
    ["00091001", ("00091001",), ("00091001", "A", "B"), {"tag": "00091001"}, {"name": "A"}, 0x00091001],
)
def test_normalize_custom_tags_bad_items(item: Any) -> None:
    with pytest.raises(ValueError, match="custom tag #0"):
        normalize_custom_tags([item])


# -- keywords -----------------------------------------------------------------------------------------------


def test_unknown_keyword_suggests() -> None:
    with pytest.raises(ValueError, match=r"unknown DICOM keyword 'PatientNam'.*did you mean PatientName"):
        validate_keywords(["PatientID", "PatientNam"])
    with pytest.raises(ValueError, match="did you mean StudyDate"):
        validate_keywords(["studydate"])
    with pytest.raises(ValueError) as info:
        validate_keywords(["Qqqqqqqqqqqqqqqqqqqq"])
    assert "Qqqqqqqqqqqqqqqqqqqq" in str(info.value) and "did you mean" not in str(info.value)


def test_validate_keywords_dedupes_in_order() -> None:
    assert validate_keywords(["Modality", "PatientID", "Modality"]) == ("Modality", "PatientID")
    assert validate_keywords(iter(["Rows"])) == ("Rows",) and validate_keywords([]) == ()
    assert validate_keywords("PatientName") == ("PatientName",)  # a bare string is one keyword
    assert validate_keywords(DEFAULT_TAGS) == DEFAULT_TAGS


def test_available_tag_names() -> None:
    names = get_available_tag_names()
    assert "PatientName" in names and "Modality" in names and "PixelData" in names
    assert names == sorted(names) and len(names) == len(set(names)) > 4000
    assert "RecognitionCode" not in names and "OtherPatientIDs" not in names  # retired
    assert all(not dictionary_is_retired(keyword_dict[k]) for k in names)
    assert set(DEFAULT_TAGS) <= set(names)
    names.clear()
    assert get_available_tag_names()


# -- SOP classes --------------------------------------------------------------------------------------------


def test_storage_sop_classes() -> None:
    storage = storage_sop_classes()
    assert CT_IMAGE in storage and len(storage) == len(set(storage)) > 150
    assert "1.2.840.10008.1.20.1" not in storage  # Storage Commitment Push Model
    assert "1.2.840.10008.1.20.2" not in storage  # Storage Commitment Pull Model
    assert "1.2.840.10008.1.3.10" not in storage  # Media Storage Directory (DICOMDIR)
    assert "1.2.840.10008.1.1" not in storage  # Verification
    assert "1.2.840.10008.5.1.4.1.1.6" in storage  # retired Ultrasound Image Storage: still sent
    assert "1.2.840.10008.5.1.4.1.1.1.1" in storage  # "... Storage - For Presentation"
    for uid in storage:
        name, kind = UID_dictionary[uid][:2]
        assert kind == "SOP Class" and "Storage" in name and "Commitment" not in name
    storage.clear()
    assert storage_sop_classes()


def test_storage_sop_classes_cover_pynetdicom() -> None:
    sop_class = pytest.importorskip("pynetdicom.sop_class")
    theirs = {uid for uid in sop_class._STORAGE_CLASSES.values() if uid in UID_dictionary}
    assert theirs <= set(storage_sop_classes())


def test_common_sop_classes() -> None:
    classes = get_common_sop_classes()
    assert list(classes) == [
        "ct",
        "mr",
        "ultrasound",
        "pet",
        "xray",
        "mammography",
        "secondary_capture",
        "radiation_therapy",
        "documents",
        "structured_reports",
        "all_imaging",
        "all",
    ]
    storage = set(storage_sop_classes())
    for name, uids in classes.items():
        assert uids and len(uids) == len(set(uids)), name
        assert all(UID(u).is_valid and UID_dictionary[u][1] == "SOP Class" for u in uids), name
        assert set(uids) <= storage, name
    imaging = ["ct", "mr", "ultrasound", "pet", "xray", "mammography", "secondary_capture"]
    assert classes["all_imaging"] == combine_tags(*(classes[n] for n in imaging))
    assert classes["all"] == storage_sop_classes()
    expected = {
        "ct": pydicom_uid.CTImageStorage,
        "mr": pydicom_uid.MRImageStorage,
        "ultrasound": pydicom_uid.UltrasoundImageStorage,
        "pet": pydicom_uid.PositronEmissionTomographyImageStorage,
        "xray": pydicom_uid.EnhancedXAImageStorage,
        "mammography": pydicom_uid.DigitalMammographyXRayImageStorageForPresentation,
        "secondary_capture": pydicom_uid.SecondaryCaptureImageStorage,
        "radiation_therapy": pydicom_uid.RTPlanStorage,
        "documents": pydicom_uid.EncapsulatedPDFStorage,
        "structured_reports": pydicom_uid.KeyObjectSelectionDocumentStorage,
    }
    assert all(uid in classes[name] for name, uid in expected.items())
    assert pydicom_uid.NuclearMedicineImageStorage in classes["pet"]
    classes["ct"].clear()
    assert get_common_sop_classes()["ct"]


# -- transfer syntaxes --------------------------------------------------------------------------------------


def test_common_transfer_syntaxes() -> None:
    syntaxes = get_common_transfer_syntaxes()
    assert list(syntaxes) == [
        "uncompressed",
        "jpeg",
        "jpeg_ls",
        "jpeg2000",
        "rle",
        "mpeg",
        "all_compressed",
        "all",
    ]
    for name, uids in syntaxes.items():
        assert uids and len(uids) == len(set(uids)), name
        assert all(UID_dictionary[u][1] == "Transfer Syntax" and UID(u).is_transfer_syntax for u in uids), (
            name
        )
    assert syntaxes["uncompressed"] == ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]
    assert set(syntaxes["uncompressed"]) == set(pydicom_uid.UncompressedTransferSyntaxes) - {DEFLATED}
    assert DEFLATED in syntaxes["all"] and DEFLATED not in syntaxes["uncompressed"]
    assert all(UID(u).is_compressed for u in syntaxes["all_compressed"])
    assert set(syntaxes["jpeg"]) == set(pydicom_uid.JPEGTransferSyntaxes)
    assert set(syntaxes["jpeg_ls"]) == set(pydicom_uid.JPEGLSTransferSyntaxes)
    assert set(syntaxes["jpeg2000"]) == set(pydicom_uid.JPEG2000TransferSyntaxes)
    assert pydicom_uid.HTJ2KLossless in syntaxes["jpeg2000"]
    assert syntaxes["rle"] == [pydicom_uid.RLELossless]
    assert set(syntaxes["mpeg"]) == set(pydicom_uid.MPEGTransferSyntaxes)
    assert {pydicom_uid.MPEG2MPML, pydicom_uid.MPEG4HP41, pydicom_uid.HEVCMP51} <= set(syntaxes["mpeg"])
    compressed = ["jpeg", "jpeg_ls", "jpeg2000", "rle", "mpeg"]
    assert syntaxes["all_compressed"] == combine_tags(*(syntaxes[n] for n in compressed))
    assert syntaxes["all"] == syntaxes["uncompressed"] + [DEFLATED] + syntaxes["all_compressed"]
    syntaxes["all"].clear()
    assert get_common_transfer_syntaxes()["all"]


@pytest.mark.parametrize(
    ("name", "uid"),
    [
        ("JPEGBaseline", "1.2.840.10008.1.2.4.50"),
        ("JPEG2000Lossless", "1.2.840.10008.1.2.4.90"),
        ("JPEG2000", "1.2.840.10008.1.2.4.91"),
        ("JPEGLossless", "1.2.840.10008.1.2.4.70"),  # the documents' meaning, not pydicom's keyword (...4.57)
        ("JPEGLSLossless", "1.2.840.10008.1.2.4.80"),
        ("RLELossless", "1.2.840.10008.1.2.5"),
        ("ImplicitVRLittleEndian", "1.2.840.10008.1.2"),
        ("ExplicitVRLittleEndian", "1.2.840.10008.1.2.1"),
        ("ExplicitVRBigEndian", "1.2.840.10008.1.2.2"),
        ("DeflatedExplicitVRLittleEndian", DEFLATED),
        ("JPEGBaseline8Bit", "1.2.840.10008.1.2.4.50"),
        ("JPEGLosslessSV1", "1.2.840.10008.1.2.4.70"),
        ("HTJ2KLossless", "1.2.840.10008.1.2.4.201"),
        ("jpeg2000lossless", "1.2.840.10008.1.2.4.90"),
        ("  jpegbaseline ", "1.2.840.10008.1.2.4.50"),
        ("JPEG Baseline (Process 1)", "1.2.840.10008.1.2.4.50"),
        ("Explicit VR Little Endian", "1.2.840.10008.1.2.1"),
        ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.5"),
        ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.57"),
        (pydicom_uid.ExplicitVRLittleEndian, "1.2.840.10008.1.2.1"),
    ],
)
def test_resolve_transfer_syntax(name: str, uid: str) -> None:
    assert resolve_transfer_syntax(name) == uid


def test_resolve_every_pydicom_keyword() -> None:
    for uid, (_name, kind, _info, _retired, keyword) in UID_dictionary.items():
        if kind == "Transfer Syntax" and keyword != "JPEGLossless":
            assert resolve_transfer_syntax(keyword) == uid, keyword
            assert resolve_transfer_syntax(uid) == uid


@pytest.mark.parametrize("name", ["1.2.3.4", CT_IMAGE, "", "JPEG", "NotASyntax", "1.2.840.10008.1.2."])
def test_resolve_transfer_syntax_errors(name: str) -> None:
    with pytest.raises(ValueError):
        resolve_transfer_syntax(name)


def test_resolve_transfer_syntax_suggests() -> None:
    with pytest.raises(ValueError, match="did you mean JPEGBaseline"):
        resolve_transfer_syntax("JPEGBaselin")


# -- levels -------------------------------------------------------------------------------------------------


def test_level_keywords() -> None:
    sets = get_common_tag_sets()
    assert not STUDY_LEVEL_KEYWORDS & SERIES_LEVEL_KEYWORDS
    assert all(tag_for_keyword(k) is not None for k in STUDY_LEVEL_KEYWORDS | SERIES_LEVEL_KEYWORDS)
    assert set(sets["patient_basic"] + sets["study_basic"]) <= STUDY_LEVEL_KEYWORDS
    assert set(sets["series_basic"]) <= SERIES_LEVEL_KEYWORDS
    assert {"IssuerOfPatientID", "ReferringPhysicianName"} <= STUDY_LEVEL_KEYWORDS
    assert {"Laterality", "OperatorsName", "FrameOfReferenceUID"} <= SERIES_LEVEL_KEYWORDS
    others = [*SIX[3:], "ct", "mr", "ultrasound", "pet_nm", "xa", "rt"]
    instance_level = {k for name in others for k in sets[name]}
    assert not instance_level & (STUDY_LEVEL_KEYWORDS | SERIES_LEVEL_KEYWORDS)


def test_split_levels() -> None:
    tags = {
        "PatientName": "DOE^JOHN",
        "StudyInstanceUID": "1.2.3",
        "AccessionNumber": "",
        "Modality": "CT",
        "SeriesInstanceUID": "1.2.3.4",
        "Rows": "512",
        "Manufacturer": "ACME",
        "KVP": "120",
        "Vendor": "v",
    }
    study, series, instance = split_levels(tags)
    assert study == {"PatientName": "DOE^JOHN", "StudyInstanceUID": "1.2.3", "AccessionNumber": ""}
    assert series == {"Modality": "CT", "SeriesInstanceUID": "1.2.3.4"}
    assert instance == {"Rows": "512", "Manufacturer": "ACME", "KVP": "120", "Vendor": "v"}
    assert {**study, **series, **instance} == tags
    assert split_levels({}) == ({}, {}, {})


# -- option strings -----------------------------------------------------------------------------------------


class _Mode(enum.Enum):
    ALL_STORAGE = "all_storage"


class _Backend(enum.StrEnum):
    S3 = "s3"


@pytest.mark.parametrize(
    ("value", "choices", "expected"),
    [
        ("AllStorage", ["all_storage", "all", "custom"], "all_storage"),
        ("all_storage", ["all_storage", "all", "custom"], "all_storage"),
        ("ALL-STORAGE", ["all_storage", "all", "custom"], "all_storage"),
        ("All", ["all_storage", "all", "custom"], "all"),
        ("UncompressedOnly", ["all", "uncompressed_only", "custom"], "uncompressed_only"),
        ("StudyRoot", ["patient_root", "study_root"], "study_root"),
        ("Filesystem", ["filesystem", "s3"], "filesystem"),
        ("S3", ["filesystem", "s3"], "s3"),
        ("s3", ["filesystem", "s3"], "s3"),
        (" Custom ", ["all", "custom"], "custom"),
        (_Mode.ALL_STORAGE, ["all_storage", "all"], "all_storage"),
        (_Backend.S3, ["filesystem", "s3"], "s3"),
    ],
)
def test_normalize_option(value: Any, choices: list[str], expected: str) -> None:
    assert normalize_option(value, choices, "option") == expected


def test_normalize_option_errors_list_choices() -> None:
    with pytest.raises(ValueError, match="storage_backend must be one of filesystem, s3, not 'ftp'"):
        normalize_option("ftp", ("filesystem", "s3"), "storage_backend")
    with pytest.raises(ValueError, match="must be one of"):
        normalize_option("", ["all"], "mode")
    with pytest.raises(ValueError, match="must be one of"):
        normalize_option(None, ["all"], "mode")  # type: ignore[arg-type]

    def choices() -> Iterator[str]:
        yield from ("all", "custom")

    assert normalize_option("CUSTOM", choices(), "mode") == "custom"


def test_resolve_sop_class() -> None:
    from aiodicom.dataset.tags import resolve_sop_class

    assert resolve_sop_class("CTImageStorage") == CT_IMAGE
    assert resolve_sop_class(CT_IMAGE) == CT_IMAGE
    assert resolve_sop_class("1.2.826.0.1.3680043.9.9999.1") == "1.2.826.0.1.3680043.9.9999.1"  # private
    with pytest.raises(ValueError, match="did you mean CTImageStorage"):
        resolve_sop_class("CTImageStorag")


def test_store_scp_refuses_an_abstract_syntax_that_matches_nothing(tmp_path: Path) -> None:
    from aiodicom import StoreScp

    scp = StoreScp(0, out_dir=tmp_path, abstract_syntax_mode="custom", abstract_syntaxes=["CTImageStorage"])
    assert scp.policy.abstract_syntaxes == frozenset({CT_IMAGE})
    with pytest.raises(ValueError, match="unknown SOP class"):
        StoreScp(0, out_dir=tmp_path, abstract_syntax_mode="custom", abstract_syntaxes=["CT Image"])


def test_storage_classes_are_read_without_importing_pydicom() -> None:
    """A receiver negotiates from pydicom's UID table read as a file: neither pydicom nor numpy is imported
    for it, and it is pydicom's registry as pydicom has it (compared in a fresh interpreter: pynetdicom,
    imported by other tests here, adds entries to pydicom's)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys; from aiodicom.dataset import tags;"
        "before = tags.get_common_sop_classes();"
        "heavy = [m for m in ('pydicom', 'numpy') if m in sys.modules];"
        "from pydicom._uid_dict import UID_dictionary;"
        "same = tags._standalone_uid_dict().UID_dictionary == UID_dictionary;"
        "tags._storage_classes.cache_clear(); tags._uid_by_keyword.cache_clear();"
        "print(json.dumps([heavy, same, before == tags.get_common_sop_classes(), len(before['all'])]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    heavy, same_table, same_classes, count = json.loads(out.stdout)
    assert heavy == [] and same_table and same_classes and count > 150
