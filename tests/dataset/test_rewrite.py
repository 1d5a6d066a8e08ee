"""A hook's changes merged into the leading elements; those re-encoded, the rest of the data set as sent."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest
from pydicom import Dataset, dcmread
from pydicom.filereader import read_dataset

from aiodicom.dataset import (
    LeadingElements,
    apply_changes,
    build_file_meta,
    encode_leading,
    extract,
    syntax_encoding,
)

from .samples import Sample, load

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REWRITTEN = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "ExplVR_BigEnd.dcm",
    "rtplan.dcm",
    "JPEG2000.dcm",
    "reportsi.dcm",
    "nested_priv_SQ.dcm",
    "image_dfl.dcm",
    "UN_sequence.dcm",
    "waveform_ecg.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
]
TAGS = ["PatientName", "PatientID", "StudyInstanceUID", "Rows", "PatientComments"]


def leading(sample: Sample) -> LeadingElements:
    scanner = LeadingElements(sample.transfer_syntax)
    if not scanner.feed(sample.body):
        scanner.finish()
    return scanner


def rewritten(sample: Sample, scanner: LeadingElements, ds: Dataset) -> Dataset:
    """The whole data set as the receiver stores it: new leading elements, then the rest as received."""
    stream = encode_leading(ds, sample.transfer_syntax) + sample.plain[len(scanner.prefix) :]
    if sample.deflated:  # deflated again, read back through a Part 10 file
        deflater = zlib.compressobj(wbits=-15)
        meta = build_file_meta(
            sop_class_uid=str(ds.SOPClassUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            transfer_syntax_uid=sample.transfer_syntax,
            implementation_class_uid="2.25.1",
            implementation_version_name="TEST",
            source_ae_title="A",
            sending_ae_title="A",
            receiving_ae_title="B",
        )
        return dcmread(io.BytesIO(meta + deflater.compress(stream) + deflater.flush()))
    implicit, little, _ = syntax_encoding(sample.transfer_syntax)
    return read_dataset(io.BytesIO(stream), implicit, little)


def differences(before: Dataset, after: Dataset) -> set[str]:
    keys = {int(tag) for tag in before.keys()} | {int(tag) for tag in after.keys()}  # noqa: SIM118
    keys = {tag for tag in keys if tag & 0xFFFF and tag >> 16 != 2}  # group lengths are dropped
    return {
        f"{tag:08X}" for tag in keys if tag not in before or tag not in after or before[tag] != after[tag]
    }


@pytest.mark.parametrize("name", REWRITTEN)
def test_changed_name_only_that_element_differs(name: str) -> None:
    sample = load(name)
    scanner = leading(sample)
    ds = scanner.dataset()
    tags = extract(ds, TAGS)
    changes = dict(tags, PatientName="ANON^X")
    ds, changed = apply_changes(ds, tags, changes)
    assert changed
    after = rewritten(sample, scanner, ds)
    assert after.PatientName == "ANON^X"
    before = sample.reference(whole=True)
    assert differences(before, after) == {"00100010"}


@pytest.mark.parametrize("name", REWRITTEN)
def test_nothing_changed(name: str) -> None:
    sample = load(name)
    scanner = leading(sample)
    ds = scanner.dataset()
    tags = extract(ds, TAGS)
    same, changed = apply_changes(ds, tags, dict(tags))
    assert not changed
    assert same is ds
    assert differences(sample.reference(whole=True), rewritten(sample, scanner, ds)) == set()


def test_values_equal_to_the_stored_ones_change_nothing() -> None:
    ds = leading(load("CT_small.dcm")).dataset()
    assert apply_changes(ds, {}, {"PatientID": "1CT1", "Rows": "128", "SliceThickness": "5.000000"}) == (
        ds,
        False,
    )
    assert apply_changes(ds, {}, {"SeriesDescription": None}) == (ds, False)  # removing what is not there


def test_remove_empty_add() -> None:
    sample = load("CT_small.dcm")
    scanner = leading(sample)
    ds = scanner.dataset()
    tags = extract(ds, TAGS)
    changes = {"PatientID": None, "PatientName": "", "PatientComments": "added", "Vendor": "ACME\\X"}
    ds, changed = apply_changes(ds, tags, changes, custom={"Vendor": 0x00091001})
    assert changed
    after = rewritten(sample, scanner, ds)
    assert "PatientID" not in after
    assert after.PatientName == ""
    assert after["PatientComments"].VR == "LT"
    assert after.PatientComments == "added"
    assert after[0x00091001].value == ["ACME", "X"]
    assert differences(sample.reference(whole=True), after) == {
        "00100020",
        "00100010",
        "00104000",
        "00091001",
    }


def test_new_private_tag_is_lo() -> None:
    ds, changed = apply_changes(Dataset(), {}, {"Mine": "v"}, custom={"Mine": 0x00431001})
    assert changed
    assert ds[0x00431001].VR == "LO"


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [
        ("Rows", "256", 256),
        ("SmallestImagePixelValue", "-5", -5),  # US or SS
        ("RescaleSlope", "1.5", 1.5),
        ("WindowCenter", "40\\400", [40, 400]),
        ("FrameTime", "33.3", 33.3),
        ("PixelAspectRatio", "1\\1", [1, 1]),
        ("ExaminedBodyThickness", "12.5", 12.5),  # FL
        ("FrameIncrementPointer", "00181063", 0x00181063),  # AT
        ("StudyInstanceUID", "1.2.3.4\x00", "1.2.3.4"),
        ("Rows", "", None),
    ],
)
def test_values_are_converted_for_their_vr(key: str, value: str, stored: object) -> None:
    ds, changed = apply_changes(Dataset(), {}, {key: value})
    assert changed
    assert ds[key].value == stored
    fp_ds = read_dataset(io.BytesIO(encode_leading(ds, "1.2.840.10008.1.2.1")), False, True)
    assert fp_ds[key].value == stored


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Rows", "abc"),
        ("Rows", "70000"),
        ("Rows", "-1"),
        ("SliceThickness", "thick"),
        ("InstanceNumber", "one"),
        ("StudyInstanceUID", "../etc"),
        ("StudyInstanceUID", "1.2.abc"),
        ("SeriesInstanceUID", "1." * 40),
        ("OtherPatientIDsSequence", "x"),  # a sequence
        ("PixelData", "x"),  # bytes
        ("NoSuchKeyword", "x"),
        ("PatientID", 12),  # not a string
    ],
)
def test_bad_changes_raise_value_error(key: str, value: object) -> None:
    ds = leading(load("CT_small.dcm")).dataset()
    with pytest.raises(ValueError):
        apply_changes(ds, {}, {key: value})  # type: ignore[dict-item]


def test_character_set() -> None:
    sample = load("CT_small.dcm")  # ISO_IR 100: latin-1
    scanner = leading(sample)
    ds, _ = apply_changes(scanner.dataset(), {}, {"PatientName": "Müller^Hans"})
    encoded = encode_leading(ds, sample.transfer_syntax)
    assert "Müller^Hans".encode("latin-1") in encoded
    ds, _ = apply_changes(ds, {}, {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "Müller^Jürgen"})
    encoded = encode_leading(ds, sample.transfer_syntax)
    assert "Müller^Jürgen".encode() in encoded
    assert rewritten(sample, scanner, ds).PatientName == "Müller^Jürgen"


def test_group_lengths_and_group_0002_are_not_written() -> None:
    sample = load("ExplVR_BigEnd.dcm")  # has group lengths
    ds = leading(sample).dataset()
    assert any(tag & 0xFFFF == 0 for tag in ds.keys())  # noqa: SIM118
    ds.add_new(0x00020013, "SH", "STRAY")
    encoded = encode_leading(ds, sample.transfer_syntax)
    assert 0x00020013 in ds  # not modified
    again = read_dataset(io.BytesIO(encoded), False, False)
    assert not [tag for tag in again.keys() if tag & 0xFFFF == 0 or tag >> 16 == 2]  # noqa: SIM118
    assert len(again) == len([tag for tag in ds.keys() if tag & 0xFFFF and tag >> 16 != 2])  # noqa: SIM118


def test_unchanged_leading_elements_are_written_back_as_received() -> None:
    for name in ("CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm"):
        sample = load(name)
        scanner = leading(sample)
        assert encode_leading(scanner.dataset(), sample.transfer_syntax) == scanner.prefix, name


def test_mismatched_encoding_is_kept() -> None:
    sample = load("SC_rgb_jpeg.dcm")  # says explicit VR, is implicit
    scanner = leading(sample)
    ds, changed = apply_changes(scanner.dataset(), {}, {"PatientName": "X^Y"})
    assert changed
    stream = encode_leading(ds, sample.transfer_syntax) + sample.body[len(scanner.prefix) :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        after = read_dataset(io.BytesIO(stream), True, True)
    assert after.PatientName == "X^Y"
    assert after.PixelData == sample.reference(whole=True).PixelData


def test_deflated_leading_elements_are_inflated() -> None:
    sample = load("image_dfl.dcm")
    scanner = leading(sample)
    ds, _ = apply_changes(scanner.dataset(), {}, {"PatientID": "NEW"})
    encoded = encode_leading(ds, sample.transfer_syntax)
    assert read_dataset(io.BytesIO(encoded), False, True).PatientID == "NEW"
    assert struct.unpack_from("<HH", encoded)[0] == 0x0008
