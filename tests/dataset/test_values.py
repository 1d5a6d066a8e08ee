"""Values as DICOM strings, as hooks and events see them."""

from __future__ import annotations

import struct

import pytest
from pydicom import Dataset, config
from pydicom.dataelem import DataElement

from aiodicom.dataset import LeadingElements, extract, raw_text, tag_string

from .samples import load

CT_KEYWORDS = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "ImageType",
    "SliceThickness",
    "KVP",
    "ExposureTime",
    "Rows",
    "PixelSpacing",
    "ImagePositionPatient",
    "StudyDate",
    "StudyTime",
    "SOPClassUID",
    "SOPInstanceUID",
    "OtherPatientIDsSequence",
    "SeriesDescription",  # not in the file
    "NotAKeyword",
]


def ct_small() -> Dataset:
    sample = load("CT_small.dcm")
    scanner = LeadingElements(sample.transfer_syntax)
    assert scanner.feed(sample.body)
    return scanner.dataset()


def test_extract_ct_small() -> None:
    custom = [
        (0x00091001, "Vendor"),
        (0x00091027, "GeSigned"),
        (0x00191011, "GeShort"),
        (0x00990099, "Absent"),
    ]
    assert extract(ct_small(), CT_KEYWORDS, custom) == {
        "PatientName": "CompressedSamples^CT1",
        "PatientID": "1CT1",
        "PatientBirthDate": "",
        "AccessionNumber": "",
        "ImageType": "ORIGINAL\\PRIMARY\\AXIAL",
        "SliceThickness": "5.000000",
        "KVP": "120",
        "ExposureTime": "1601",
        "Rows": "128",
        "PixelSpacing": "0.661468\\0.661468",
        "ImagePositionPatient": "-158.135803\\-179.035797\\-75.699997",
        "StudyDate": "20040119",
        "StudyTime": "072730",
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
        "SOPInstanceUID": "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
        "Vendor": "GE_GENESIS_FF",
        "GeSigned": "862399669",
        "GeShort": "2",
    }


@pytest.mark.parametrize(
    ("vr", "value", "text"),
    [
        ("PN", "DOE^JOHN", "DOE^JOHN"),
        ("LO", ["A", "B"], "A\\B"),
        ("IS", "0012", "0012"),
        ("DS", "1.50", "1.50"),
        ("DS", ["1.50", "-2e3"], "1.50\\-2e3"),
        ("US", 512, "512"),
        ("US", [1, 2, 3], "1\\2\\3"),
        ("SS", -3, "-3"),
        ("UL", 4000000000, "4000000000"),
        ("FL", 1.5, "1.5"),
        ("FD", [0.25, -1.0], "0.25\\-1.0"),
        ("AT", 0x00100010, "00100010"),
        ("AT", [0x00100010, 0x7FE00010], "00100010\\7FE00010"),
        ("UI", "1.2.840.10008.1.2", "1.2.840.10008.1.2"),
        ("DA", "20240131", "20240131"),
        ("CS", "", ""),
        ("US", None, ""),
        ("OB", b"\x00\x01", None),
        ("OW", b"\x00\x01", None),
        ("UN", b"\x00\x01", None),
        ("SQ", [], None),
    ],
)
def test_tag_string(vr: str, value: object, text: str | None) -> None:
    assert tag_string(DataElement(0x00091010, vr, value)) == text


def test_person_name_in_the_character_set() -> None:
    name = "Müller^Hans".encode()
    data = struct.pack("<HH2sH", 0x0008, 0x0005, b"CS", 10) + b"ISO_IR 192"
    data += struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", len(name) + 1) + name + b" "
    scanner = LeadingElements("1.2.840.10008.1.2.1")
    assert not scanner.feed(data)
    assert scanner.finish()
    assert extract(scanner.dataset(), ["PatientName"]) == {"PatientName": "Müller^Hans"}


def test_dates_with_datetime_conversion() -> None:
    config.datetime_conversion = True
    try:
        ds = Dataset()
        ds.StudyDate = "20040119"
        ds.StudyTime = "072730.5"
        assert not isinstance(ds.StudyDate, str)
        assert extract(ds, ["StudyDate", "StudyTime"]) == {"StudyDate": "20040119", "StudyTime": "072730.5"}
    finally:
        config.datetime_conversion = False


def test_raw_text() -> None:
    ds = ct_small()
    assert raw_text(ds, 0x00080018) == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert raw_text(ds, 0x0020000D).startswith("1.3.6.1.4.1.5962")
    assert raw_text(ds, 0x00990099) == ""
