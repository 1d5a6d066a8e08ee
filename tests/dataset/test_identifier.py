"""Identifiers written without pydicom read back by pydicom as the same values, in every encoding."""

from __future__ import annotations

import io

import pytest
from pydicom.filereader import read_dataset

from aiodicom.dataset.identifier import Identifier, encode_identifier_elements

ENCODINGS = [(True, True), (False, True), (False, False)]  # implicit LE, explicit LE, explicit BE


def identifier() -> Identifier:
    ident = Identifier()
    ident.set(0x00100010, "PN", "DOE^JOHN")  # odd length: padded with a space
    ident.set(0x0020000D, "UI", "1.2.3.45")  # odd length: padded with NUL
    ident.set(0x00080052, "CS", "STUDY")
    ident.set(0x00080061, "CS", "CT\\MR")
    ident.set(0x00201208, "IS", "12")
    ident.set(0x00080020, "DA", None)  # asked for, not known: zero length
    ident.set(0x00280010, "US", "512")
    ident.set(0x00180090, "DS", "1.5")
    ident.set(0x00080054, "AE", "QR-SCP")
    return ident


@pytest.mark.parametrize(("implicit", "little"), ENCODINGS)
def test_pydicom_reads_what_is_written(implicit: bool, little: bool) -> None:
    data = encode_identifier_elements(identifier(), implicit=implicit, little=little)
    assert len(data) % 2 == 0
    ds = read_dataset(io.BytesIO(data), implicit, little)
    assert str(ds.PatientName) == "DOE^JOHN"
    assert ds.StudyInstanceUID == "1.2.3.45"
    assert ds.QueryRetrieveLevel == "STUDY"
    assert list(ds.ModalitiesInStudy) == ["CT", "MR"]
    assert ds.NumberOfStudyRelatedInstances == 12
    assert ds.StudyDate == "" and ds["StudyDate"].VM == 0
    assert ds.Rows == 512
    assert float(ds.DataCollectionDiameter) == 1.5
    assert ds.RetrieveAETitle == "QR-SCP"
    assert [int(e.tag) for e in ds] == sorted(identifier().elements)  # written in tag order


def test_text_goes_in_its_character_set() -> None:
    ident = Identifier()
    ident.set(0x00080005, "CS", "ISO_IR 192")
    ident.set(0x00100010, "PN", "Müller^Jürgen")
    ds = read_dataset(io.BytesIO(encode_identifier_elements(ident, implicit=False, little=True)), False, True)
    ds.decode()
    assert str(ds.PatientName) == "Müller^Jürgen"
    ident.set(0x00080005, "CS", "ISO_IR 100")
    raw = encode_identifier_elements(ident, implicit=False, little=True)
    assert "Müller".encode("latin-1") in raw


def test_what_it_cannot_write_is_refused() -> None:
    ident = identifier()
    ident.set(0x00400100, "SQ", None)
    assert not ident.encodable()
    with pytest.raises(ValueError, match="SQ"):
        encode_identifier_elements(ident, implicit=True, little=True)
    other = Identifier()
    other.set(0x00080005, "CS", "ISO 2022 IR 87")
    with pytest.raises(ValueError, match="Character Set"):
        encode_identifier_elements(other, implicit=True, little=True)
    ascii_only = Identifier()
    ascii_only.set(0x00100010, "PN", "Müller")  # no character set: the default repertoire is ASCII
    with pytest.raises(UnicodeEncodeError):
        encode_identifier_elements(ascii_only, implicit=True, little=True)


@pytest.mark.parametrize(("implicit", "little"), [(False, True), (True, True), (False, False)])
def test_answers_of_one_shape_and_the_same_tags_with_other_vrs(implicit: bool, little: bool) -> None:
    """Answers with the same elements in the same order share a layout; the same tags with another VR
    (a handler's choice) are written with their own VRs, not the first answer's."""
    first = Identifier({0x00100010: ("PN", "Doe^Jane"), 0x00200013: ("IS", "7"), 0x00280010: ("US", "512")})
    other = Identifier({0x00100010: ("LO", "Doe^Jane"), 0x00200013: ("IS", "8"), 0x00280010: ("SS", "-2")})
    for identifier in (first, first, other, first):
        data = encode_identifier_elements(identifier, implicit=implicit, little=little)
        ds = read_dataset(io.BytesIO(data), implicit, little)
        if not implicit:
            assert [ds[tag].VR for tag in (0x00100010, 0x00200013, 0x00280010)] == [
                identifier.elements[tag][0] for tag in (0x00100010, 0x00200013, 0x00280010)
            ]
        assert str(ds[0x00100010].value) == "Doe^Jane"
        assert int(ds[0x00200013].value) == int(identifier.get(0x00200013) or 0)
    assert (
        read_dataset(
            io.BytesIO(encode_identifier_elements(other, implicit=False, little=True)), False, True
        ).Rows
        == -2
    )
