"""The hand-written Part 10 header, read back by pydicom."""

from __future__ import annotations

import io
import struct
import time

import pytest
from pydicom import dcmread

from aiodicom.dataset import build_file_meta

from .samples import load

ARGS = {
    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
    "sop_instance_uid": "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",  # odd length
    "transfer_syntax_uid": "1.2.840.10008.1.2.1",
    "implementation_class_uid": "2.25.123456789",
    "implementation_version_name": "AIODICOM_010",  # even
    "source_ae_title": "STORE-SCU",  # odd
    "sending_ae_title": "STORE-SCU",
    "receiving_ae_title": "STORE-SCP",
}


def test_read_back_by_pydicom() -> None:
    sample = load("CT_small.dcm")
    meta = build_file_meta(**ARGS)
    assert meta[:128] == bytes(128)
    assert meta[128:132] == b"DICM"
    ds = dcmread(io.BytesIO(meta + sample.body))
    fm = ds.file_meta
    assert fm.FileMetaInformationGroupLength == len(meta) - 132 - 12
    assert fm.FileMetaInformationVersion == b"\x00\x01"
    assert fm.MediaStorageSOPClassUID == ARGS["sop_class_uid"]
    assert fm.MediaStorageSOPInstanceUID == ARGS["sop_instance_uid"]
    assert fm.TransferSyntaxUID == ARGS["transfer_syntax_uid"]
    assert fm.ImplementationClassUID == ARGS["implementation_class_uid"]
    assert fm.ImplementationVersionName == ARGS["implementation_version_name"]
    assert fm.SourceApplicationEntityTitle == "STORE-SCU"
    assert fm.SendingApplicationEntityTitle == "STORE-SCU"
    assert fm.ReceivingApplicationEntityTitle == "STORE-SCP"
    assert ds.PatientName == "CompressedSamples^CT1"
    assert ds.PixelData == sample.reference(whole=True).PixelData


def test_padding_and_order() -> None:
    meta = build_file_meta(**ARGS)
    pos, seen = 132, []
    while pos < len(meta):
        group, element, vr = struct.unpack_from("<HH2s", meta, pos)
        if vr in (b"OB",):
            length, header = struct.unpack_from("<I", meta, pos + 8)[0], 12
        else:
            length, header = struct.unpack_from("<H", meta, pos + 6)[0], 8
        value = meta[pos + header : pos + header + length]
        assert group == 0x0002 and length % 2 == 0
        if vr == b"UI":
            assert value.rstrip(b"\x00").decode() in ARGS.values()
        if vr in (b"AE", b"SH"):
            assert b"\x00" not in value
        seen.append(element)
        pos += header + length
    assert pos == len(meta)
    assert seen == [0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x0012, 0x0013, 0x0016, 0x0017, 0x0018]
    assert b"12322\x00" in meta and b"STORE-SCU " in meta


def test_optional_elements_left_out() -> None:
    args = dict(ARGS, implementation_version_name=None, source_ae_title="", sending_ae_title=None)
    ds = dcmread(io.BytesIO(build_file_meta(**args) + load("CT_small.dcm").body))  # type: ignore[arg-type]
    assert "ImplementationVersionName" not in ds.file_meta
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.file_meta.ReceivingApplicationEntityTitle == "STORE-SCP"


def test_non_ascii_refused() -> None:
    with pytest.raises(ValueError):
        build_file_meta(**dict(ARGS, receiving_ae_title="SCPé"))


def test_speed(capsys: pytest.CaptureFixture[str]) -> None:
    rounds = 20000
    start = time.perf_counter()
    for _ in range(rounds):
        build_file_meta(**ARGS)
    took = (time.perf_counter() - start) / rounds * 1e6
    with capsys.disabled():
        print(f"\nbuild_file_meta: {took:.2f} us")
    assert took < 200
