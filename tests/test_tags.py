from __future__ import annotations

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.uid import UID

from aiodicom.tags import (
    CustomTag,
    combine_tags,
    create_custom_tag,
    get_available_tag_names,
    get_common_tag_sets,
    normalize_custom_tags,
    normalize_option,
    parse_tag,
    resolve_transfer_syntax,
    split_levels,
    storage_sop_classes,
    validate_keywords,
)


def test_tag_sets() -> None:
    sets = get_common_tag_sets()
    counts = {name: len(tags) for name, tags in sets.items()}
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
    six = ["patient_basic", "study_basic", "series_basic", "instance_basic", "image_pixel_info", "equipment"]
    assert sets["default"] == combine_tags(*(sets[name] for name in six))
    assert all(tag_for_keyword(k) is not None for tags in sets.values() for k in tags)
    sets["ct"].append("Mutated")
    assert "Mutated" not in get_common_tag_sets()["ct"]


def test_combine_tags_both_call_styles() -> None:
    assert combine_tags(["A", "B"], ["B", "C"]) == ["A", "B", "C"]
    assert combine_tags([["A", "B"], ["B", "C"]]) == ["A", "B", "C"]


@pytest.mark.parametrize("text", ["00100010", "(0010,0010)", "0010,0010", " (0010, 0010) ", 0x00100010])
def test_parse_tag_forms(text: str | int) -> None:
    assert parse_tag(text) == 0x00100010


@pytest.mark.parametrize("text", ["0010001", "(0010;0010)", "PatientName", "GGGGEEEE"])
def test_parse_tag_errors(text: str) -> None:
    with pytest.raises(ValueError, match="malformed tag"):
        parse_tag(text)


def test_custom_tags() -> None:
    tags = normalize_custom_tags(
        [CustomTag(0x00091001, "A"), {"tag": "00091002", "name": "B"}, ("(0009,1003)", "C")]
    )
    assert [(str(t), t.name) for t in tags] == [("00091001", "A"), ("00091002", "B"), ("00091003", "C")]
    assert create_custom_tag("00431028", "Vendor") == CustomTag(0x00431028, "Vendor")
    with pytest.raises(ValueError, match="twice"):
        normalize_custom_tags([("00091001", "PatientName")], keywords=["PatientName"])


def test_unknown_keyword_suggests() -> None:
    with pytest.raises(ValueError, match="did you mean PatientName"):
        validate_keywords(["PatientNam"])
    assert validate_keywords(["Modality", "Modality", "PatientID"]) == ("Modality", "PatientID")


def test_registries() -> None:
    storage = storage_sop_classes()
    assert (
        "1.2.840.10008.5.1.4.1.1.2" in storage and "1.2.840.10008.1.20.1" not in storage
    )  # commitment excluded
    names = get_available_tag_names()
    assert "PatientName" in names and "Modality" in names and names == sorted(names)
    assert "RecognitionCode" not in names  # retired


def test_levels_and_options() -> None:
    study, series, instance = split_levels(
        {"PatientName": "X", "Modality": "CT", "Rows": "512", "Vendor": "v"}
    )
    assert (
        study == {"PatientName": "X"}
        and series == {"Modality": "CT"}
        and instance == {"Rows": "512", "Vendor": "v"}
    )
    assert normalize_option("AllStorage", ["all_storage", "all"], "mode") == "all_storage"
    assert normalize_option("UNCOMPRESSED-ONLY", ["uncompressed_only"], "mode") == "uncompressed_only"
    with pytest.raises(ValueError, match="must be one of"):
        normalize_option("sometimes", ["all"], "mode")
    assert resolve_transfer_syntax("JPEGBaseline") == "1.2.840.10008.1.2.4.50"
    assert resolve_transfer_syntax("jpeg2000lossless") == "1.2.840.10008.1.2.4.90"
    assert resolve_transfer_syntax("ExplicitVRLittleEndian") == "1.2.840.10008.1.2.1"
    assert resolve_transfer_syntax("1.2.840.10008.1.2.5") == UID("1.2.840.10008.1.2.5")
    with pytest.raises(ValueError):
        resolve_transfer_syntax("1.2.3.4")


def test_sop_class_and_transfer_syntax_groups() -> None:
    from aiodicom.tags import get_common_sop_classes, get_common_transfer_syntaxes

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
    assert "1.2.840.10008.5.1.4.1.1.2" in classes["ct"] and set(classes["ct"]) <= set(classes["all_imaging"])
    assert set(classes["all_imaging"]) <= set(classes["all"])
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
    assert syntaxes["uncompressed"] == ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]
    assert all(UID(u).is_transfer_syntax for group in syntaxes.values() for u in group)
    assert not any(UID(u).is_compressed for u in syntaxes["uncompressed"])
    assert all(UID(u).is_compressed for u in syntaxes["all_compressed"])
