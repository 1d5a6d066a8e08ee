"""LeadingElements against pydicom's reading of its own test files, fed in every chunking."""

from __future__ import annotations

import struct
import time
import tracemalloc
import warnings
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from aiodicom.dataset import DatasetParseError, LeadingElements, raw_text, strip_group_0002

from .samples import LONG_VRS, NAMES, Sample, chunks, load

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SYNTAXES = {
    "implicit": "1.2.840.10008.1.2",
    "explicit": "1.2.840.10008.1.2.1",
    "big": "1.2.840.10008.1.2.2",
    "deflated": "1.2.840.10008.1.2.1.99",
    "jpeg": "1.2.840.10008.1.2.4.50",
}


def scan(sample: Sample, sizes: list[int], limit: int = 8 << 20) -> LeadingElements:
    scanner = LeadingElements(sample.transfer_syntax, limit=limit)
    for chunk in chunks(sample.body, sizes):
        if scanner.feed(chunk):
            break
    else:
        assert scanner.finish()
    return scanner


def check(sample: Sample, scanner: LeadingElements) -> None:
    assert scanner.complete
    assert scanner.prefix == sample.plain[: sample.pixel_start]
    if sample.deflated:
        assert scanner.prefix_length is None
    else:
        assert scanner.prefix_length == sample.pixel_start
    assert scanner.is_implicit_VR == sample.implicit
    assert not scanner.had_group_0002
    ds, reference = scanner.dataset(), sample.reference()
    assert list(ds.keys()) == list(reference.keys())
    for tag in reference.keys():  # noqa: SIM118
        assert ds[tag] == reference[tag], tag


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 30], ids=["1", "7", "4096", "whole"])
@pytest.mark.parametrize("name", NAMES)
def test_leading_elements_match_pydicom(name: str, size: int) -> None:
    sample = load(name)
    check(sample, scan(sample, [size]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=8))
def test_any_chunking(name: str, sizes: list[int]) -> None:
    sample = load(name)
    check(sample, scan(sample, sizes))


@pytest.mark.parametrize("name", NAMES)
def test_placement_holds_the_four_uids_as_pydicom_reads_them(name: str) -> None:
    sample = load(name)
    scanner = scan(sample, [4096])
    placement = scanner.placement()
    assert placement is not None
    reference = sample.reference()
    for tag in (0x00080016, 0x00080018, 0x0020000D, 0x0020000E):
        assert placement.get(tag, "") == raw_text(reference, tag), (name, hex(tag))


def test_placement_leaves_group_0002_to_the_full_parse() -> None:
    sample = load("CT_small.dcm")
    scanner = LeadingElements(sample.transfer_syntax)
    scanner.feed(stray_meta(sample) + sample.plain)
    assert scanner.had_group_0002 and scanner.placement() is None


def test_complete_at_pixel_data_without_the_rest() -> None:
    sample = load("CT_small.dcm")
    scanner = LeadingElements(sample.transfer_syntax)
    assert not scanner.feed(sample.body[: sample.pixel_start + 3])
    assert scanner.feed(sample.body[sample.pixel_start + 3 : sample.pixel_start + 4])
    assert scanner.feed(b"anything after is ignored")
    assert scanner.finish()
    assert scanner.prefix == sample.body[: sample.pixel_start]


def test_no_pixel_data_needs_the_end() -> None:
    sample = load("rtplan.dcm")
    scanner = LeadingElements(sample.transfer_syntax)
    assert not scanner.feed(sample.body)
    assert not scanner.complete
    assert scanner.finish()
    assert scanner.prefix == sample.body
    with pytest.raises(RuntimeError):
        LeadingElements(sample.transfer_syntax).dataset()


def test_feed_after_finish() -> None:
    scanner = LeadingElements(SYNTAXES["explicit"])
    assert scanner.finish()  # an empty data set
    assert scanner.prefix == b""
    assert len(scanner.dataset()) == 0
    incomplete = LeadingElements(SYNTAXES["explicit"])
    incomplete.feed(b"\x08\x00")
    with pytest.raises(DatasetParseError):
        incomplete.finish()
    with pytest.raises(DatasetParseError):
        incomplete.feed(b"\x05\x00")


def test_copies_little_beyond_the_leading_elements() -> None:
    sample = load("CT_small.dcm")
    body = sample.body[: sample.pixel_start] + explicit_le(0x7FE0, 0x0010, b"OW", bytes(8 << 20))
    tracemalloc.start()
    try:
        scanner = LeadingElements(sample.transfer_syntax)
        assert scanner.feed(memoryview(body))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scanner.prefix == sample.body[: sample.pixel_start]
    assert peak < 4 * sample.pixel_start + (1 << 16) + (64 << 10)


# ---------------------------------------------------------------------------------------------------------
# element encodings built by hand


def explicit_le(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in LONG_VRS:
        return struct.pack("<HH2sHI", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def implicit_le(group: int, element: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack("<HHI", group, element, len(value) if length is None else length) + value


def explicit_be(group: int, element: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    if vr in LONG_VRS:
        return struct.pack(">HH2sHI", group, element, vr, 0, size) + value
    return struct.pack(">HH2sH", group, element, vr, size) + value


UNDEFINED = 0xFFFFFFFF
ITEM_LE = struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)
ITEM_END_LE = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
SEQ_END_LE = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
PIXELS_LE = explicit_le(0x7FE0, 0x0010, b"OW", b"\x01\x02\x03\x04")


def undefined_sq_le(group: int, element: int, content: bytes) -> bytes:
    return struct.pack("<HH2sHI", group, element, b"SQ", 0, UNDEFINED) + content + SEQ_END_LE


def nested_explicit() -> bytes:
    inner = undefined_sq_le(
        0x0008, 0x1199, ITEM_LE + explicit_le(0x0008, 0x1150, b"UI", b"1.2\x00") + ITEM_END_LE
    )
    defined_item = explicit_le(0x0008, 0x1155, b"UI", b"1.23")
    defined = struct.pack("<HHI", 0xFFFE, 0xE000, len(defined_item)) + defined_item
    outer = undefined_sq_le(0x0008, 0x1115, ITEM_LE + inner + ITEM_END_LE + defined)
    return explicit_le(0x0008, 0x0060, b"CS", b"CT") + outer + explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ")


@pytest.mark.parametrize("size", [1, 3, 5, 1000])
def test_nested_undefined_length_sequences(size: int) -> None:
    leading = nested_explicit()
    scanner = LeadingElements(SYNTAXES["explicit"])
    done = any(scanner.feed(chunk) for chunk in chunks(leading + PIXELS_LE, [size]))
    assert done
    assert scanner.prefix == leading
    ds = scanner.dataset()
    assert ds.PatientName == "DOE^J"
    assert ds.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPClassUID == "1.2"
    assert ds.ReferencedSeriesSequence[1].ReferencedSOPInstanceUID == "1.23"


def test_implicit_vr_item_in_an_explicit_data_set() -> None:
    item = implicit_le(0x0008, 0x1150, b"1.2\x00") + implicit_le(0x0008, 0x1155, b"1.23")
    sequence = undefined_sq_le(0x0008, 0x1199, ITEM_LE + item + ITEM_END_LE)
    leading = sequence + explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ")
    scanner = LeadingElements(SYNTAXES["explicit"])
    assert any(scanner.feed(chunk) for chunk in chunks(leading + PIXELS_LE, [5]))
    assert scanner.prefix == leading
    ds = scanner.dataset()
    assert ds.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == "1.23"
    assert ds.PatientName == "DOE^J"


def test_pixel_data_tag_inside_a_sequence_does_not_stop() -> None:
    nested = explicit_le(0x7FE0, 0x0010, b"OB", b"\x00\x00")
    leading = undefined_sq_le(0x0040, 0x0555, ITEM_LE + nested + ITEM_END_LE)
    scanner = LeadingElements(SYNTAXES["explicit"])
    assert scanner.feed(leading + PIXELS_LE)
    assert scanner.prefix == leading


def test_implicit_undefined_length_is_a_sequence() -> None:
    item = implicit_le(0x0029, 0x0010, b"ACME") + implicit_le(0x0029, 0x1001, b"ITEMVALUE ")
    private = implicit_le(0x0029, 0x1010, ITEM_LE + item + ITEM_END_LE + SEQ_END_LE, UNDEFINED)
    leading = implicit_le(0x0010, 0x0010, b"DOE^J ") + implicit_le(0x0029, 0x0010, b"ACME") + private
    scanner = LeadingElements(SYNTAXES["implicit"])
    assert scanner.feed(leading + implicit_le(0x7FE0, 0x0010, b"\x00\x00"))
    assert scanner.prefix == leading
    assert scanner.dataset().PatientName == "DOE^J"


def test_un_of_undefined_length_holds_implicit_little_endian_items() -> None:
    item = implicit_le(0x0008, 0x1150, b"1.2.3\x00")
    un = explicit_be(0x0029, 0x1010, b"UN", ITEM_LE + item + ITEM_END_LE + SEQ_END_LE, UNDEFINED)
    after = explicit_be(0x0029, 0x1011, b"LO", b"AFTER ") + explicit_be(0x0030, 0x0010, b"US", b"\x00\x05")
    leading = explicit_be(0x0029, 0x0010, b"LO", b"ACME") + un + after
    scanner = LeadingElements(SYNTAXES["big"])
    for chunk in chunks(leading + explicit_be(0x7FE0, 0x0010, b"OW", b"\x00\x01"), [1]):
        if scanner.feed(chunk):
            break
    assert scanner.complete
    assert scanner.prefix == leading  # (pydicom 3 reads such items big endian: not its dataset() here)


def test_un_of_undefined_length_in_explicit_little_endian() -> None:
    item = implicit_le(0x0008, 0x1150, b"1.2.3\x00")
    un = (
        struct.pack("<HH2sHI", 0x0029, 0x1010, b"UN", 0, UNDEFINED)
        + ITEM_LE
        + item
        + ITEM_END_LE
        + SEQ_END_LE
    )
    leading = explicit_le(0x0029, 0x0010, b"LO", b"ACME") + un + explicit_le(0x0029, 0x1011, b"LO", b"AFTER ")
    scanner = LeadingElements(SYNTAXES["explicit"])
    assert any(scanner.feed(chunk) for chunk in chunks(leading + PIXELS_LE, [3]))
    assert scanner.prefix == leading
    assert scanner.dataset()[0x00291011].value == "AFTER"


def test_undefined_length_before_pixel_data_in_items() -> None:
    # an encapsulated OB of undefined length (not Pixel Data): items of defined length, then a delimiter
    fragment = struct.pack("<HHI", 0xFFFE, 0xE000, 4) + b"abcd"
    value = struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, UNDEFINED) + fragment + SEQ_END_LE
    leading = explicit_le(0x0009, 0x0010, b"LO", b"ACME") + value
    scanner = LeadingElements(SYNTAXES["explicit"])
    assert scanner.feed(leading + PIXELS_LE)
    assert scanner.prefix == leading


@pytest.mark.parametrize("tag", [0x7FE00008, 0x7FE00009, 0x7FE00010, 0x7FE10010, 0xFFFAFFFA, 0xFFFCFFFC])
def test_stops_at_any_pixel_data_and_after(tag: int) -> None:
    leading = explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ")
    scanner = LeadingElements(SYNTAXES["explicit"])
    assert scanner.feed(leading + explicit_le(tag >> 16, tag & 0xFFFF, b"OB", b"\x00\x00"))
    assert scanner.prefix == leading


def test_leading_elements_before_pixel_data_are_kept() -> None:
    eot = explicit_le(0x7FE0, 0x0001, b"OV", bytes(8))  # Extended Offset Table comes before Pixel Data
    leading = explicit_le(0x0010, 0x0010, b"PN", b"DOE^J ") + eot
    scanner = LeadingElements(SYNTAXES["explicit"])
    assert scanner.feed(leading + PIXELS_LE)
    assert scanner.prefix == leading


# ---------------------------------------------------------------------------------------------------------
# group 0002 in the data set


def stray_meta(sample: Sample) -> bytes:
    value = b"STRAY "
    if sample.implicit:
        return implicit_le(0x0002, 0x0010, b"1.2.840.10008.1.2\x00") + implicit_le(0x0002, 0x0013, value)
    if not sample.little:
        return explicit_be(0x0002, 0x0013, b"SH", value)
    return explicit_le(0x0002, 0x0000, b"UL", b"\x08\x00\x00\x00") + explicit_le(0x0002, 0x0013, b"SH", value)


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"]
)
def test_group_0002_in_the_data_set_is_dropped(name: str, size: int) -> None:
    sample = load(name)
    stray = stray_meta(sample)
    plain = stray + sample.plain
    body = zlib.compress(plain)[2:-4] if sample.deflated else plain  # raw deflate
    scanner = LeadingElements(sample.transfer_syntax)
    if not any(scanner.feed(chunk) for chunk in chunks(body, [size])):
        scanner.finish()
    assert scanner.had_group_0002
    assert scanner.prefix == plain[: len(stray) + sample.pixel_start]
    assert strip_group_0002(scanner.prefix, sample.transfer_syntax) == sample.plain[: sample.pixel_start]
    ds = scanner.dataset()
    assert not any(tag >> 16 == 2 for tag in ds.keys())  # noqa: SIM118
    assert list(ds.keys()) == list(sample.reference().keys())


def test_group_0002_between_elements() -> None:
    first = explicit_le(0x0008, 0x0060, b"CS", b"CT")
    stray = explicit_le(0x0002, 0x0013, b"SH", b"X ")
    last = explicit_le(0x0010, 0x0010, b"PN", b"DOE ")
    scanner = LeadingElements(SYNTAXES["explicit"])
    assert scanner.feed(first + stray + last + PIXELS_LE)
    assert strip_group_0002(scanner.prefix, SYNTAXES["explicit"]) == first + last
    assert strip_group_0002(first + last, SYNTAXES["explicit"]) == first + last


# ---------------------------------------------------------------------------------------------------------
# limits, truncation, garbage


@pytest.mark.parametrize("name", ["CT_small.dcm", "image_dfl.dcm", "rtplan.dcm", "MR_small_bigendian.dcm"])
def test_limit_ends_the_leading_part_at_the_element_that_crosses_it(name: str) -> None:
    sample = load(name)
    check(sample, scan(sample, [4096], limit=sample.pixel_start))
    for size in (1, 4096, 1 << 30):
        scanner = scan(sample, [size], limit=sample.pixel_start - 1)
        assert scanner.complete and len(scanner.prefix) < sample.pixel_start
        assert sample.plain.startswith(scanner.prefix)
        assert strip_group_0002(scanner.prefix, sample.transfer_syntax) == scanner.prefix  # whole elements
        whole = LeadingElements(sample.transfer_syntax, limit=sample.pixel_start - 1, whole=True)
        for chunk in chunks(sample.body, [size]):
            whole.feed(chunk)
        assert whole.finish() and whole.prefix == scanner.prefix


def test_a_large_element_before_pixel_data_is_walked_not_kept() -> None:
    # a 100 MB encapsulated document: the leading part ends before it, and its bytes are never copied
    header = struct.pack("<HH2sHI", 0x0042, 0x0011, b"OB", 0, 100 << 20)
    first = explicit_le(0x0008, 0x0018, b"UI", b"1.2.3\x00")
    scanner = LeadingElements(SYNTAXES["explicit"], whole=True)
    assert scanner.feed(first + header)
    assert scanner.prefix == first and scanner.prefix_length == len(first)
    tracemalloc.start()
    try:
        for _ in range(100):
            scanner.feed(bytes(1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 << 20
    assert scanner.finish()


def test_deflate_bomb_is_refused_and_bounded() -> None:
    bomb = zlib.compressobj(wbits=-15)
    header = struct.pack("<HH2sHI", 0x0009, 0x1010, b"UN", 0, 256 << 20)  # a long value of zeros
    data = bomb.compress(explicit_le(0x0008, 0x0018, b"UI", b"1.2\x00") + header + bytes(256 << 20))
    data += bomb.flush()
    assert len(data) < 1 << 20
    scanner = LeadingElements(SYNTAXES["deflated"], whole=True, max_inflated_size=16 << 20)
    pieces = chunks(data, [64 << 10])
    started = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(DatasetParseError, match="inflates past"):
            for chunk in pieces:
                scanner.feed(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2.0
    assert scanner.inflated <= (16 << 20) + (64 << 10)
    assert peak < 2 << 20  # what was inflated was walked, not kept


def test_truncated_inside_a_sequence() -> None:
    sample = load("rtplan.dcm")
    for cut in (len(sample.body) - 8, len(sample.body) - 1, 100):
        scanner = LeadingElements(sample.transfer_syntax)
        scanner.feed(sample.body[:cut])
        with pytest.raises(DatasetParseError, match="truncated"):
            scanner.finish()


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_truncated_anywhere(name: str, data: st.DataObject) -> None:
    sample = load(name)
    cut = data.draw(st.integers(0, sample.pixel_start + 3))
    plain = sample.plain[:cut]
    body = zlib.compress(plain)[2:-4] if sample.deflated else plain
    scanner = LeadingElements(sample.transfer_syntax)
    try:
        scanner.feed(body)
        scanner.finish()
    except DatasetParseError:
        assert cut != sample.pixel_start
    else:  # an end on an element boundary is a whole (shorter) data set
        assert scanner.prefix == plain[: sample.pixel_start]


def test_truncated_deflate_stream() -> None:
    sample = load("image_dfl.dcm")
    scanner = LeadingElements(sample.transfer_syntax)
    scanner.feed(sample.body[:200])
    with pytest.raises(DatasetParseError):
        scanner.finish()


@pytest.mark.parametrize(
    "data",
    [
        b"\x08\x00\x60\x00\x00\x00",  # no explicit VR
        struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED),  # an item outside a sequence
        struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, UNDEFINED)
        + explicit_le(0x0010, 0x0010, b"PN", b"AB"),
        struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, UNDEFINED) + ITEM_LE + SEQ_END_LE,
    ],
)
def test_malformed(data: bytes) -> None:
    scanner = LeadingElements(SYNTAXES["explicit"])
    with pytest.raises(DatasetParseError):
        scanner.feed(data)
        scanner.finish()


@settings(max_examples=500, deadline=None)
@given(
    syntax=st.sampled_from(sorted(SYNTAXES.values())), data=st.binary(max_size=600), size=st.integers(1, 64)
)
def test_garbage_raises_only_parse_errors(syntax: str, data: bytes, size: int) -> None:
    scanner = LeadingElements(syntax, limit=1 << 16)
    try:
        for chunk in chunks(data, [size]):
            if scanner.feed(chunk):
                break
        else:
            scanner.finish()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scanner.dataset()
            strip_group_0002(scanner.prefix, syntax)
    except DatasetParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_corrupted_sample_raises_only_parse_errors(name: str, data: st.DataObject) -> None:
    sample = load(name)
    plain = bytearray(sample.plain[: sample.pixel_start + 16])
    for _ in range(data.draw(st.integers(1, 4))):
        if plain:
            plain[data.draw(st.integers(0, len(plain) - 1))] = data.draw(st.integers(0, 255))
    body = zlib.compress(bytes(plain))[2:-4] if sample.deflated else bytes(plain)
    scanner = LeadingElements(sample.transfer_syntax)
    try:
        if not scanner.feed(body):
            scanner.finish()
        scanner.dataset()
    except DatasetParseError:
        pass


def test_implicit_data_set_in_an_explicit_syntax() -> None:
    sample = load("SC_rgb_jpeg.dcm")  # JPEG Baseline says explicit VR; its data set is implicit
    scanner = scan(sample, [7])
    assert scanner.is_implicit_VR
    assert scanner.dataset().Rows == 256


def test_speed(capsys: pytest.CaptureFixture[str]) -> None:
    sample = load("CT_small.dcm")
    body, syntax = memoryview(sample.body), sample.transfer_syntax
    chunk = 16 << 10
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        scanner = LeadingElements(syntax)
        for pos in range(0, len(body), chunk):
            if scanner.feed(body[pos : pos + chunk]):
                break
    scan_us = (time.perf_counter() - start) / rounds * 1e6
    start = time.perf_counter()
    for _ in range(rounds // 10):
        scanner.dataset()
    parse_us = (time.perf_counter() - start) / (rounds // 10) * 1e6
    with capsys.disabled():
        print(
            f"\nLeadingElements on CT_small ({sample.pixel_start} B leading): "
            f"scan {scan_us:.1f} us, dataset() {parse_us:.1f} us"
        )
    assert scan_us < 5000


# ---------------------------------------------------------------------------------------------------------
# the whole data set: proven whole, or refused


def check_whole(syntax: str, body: bytes, sizes: list[int]) -> LeadingElements:
    scanner = LeadingElements(syntax, whole=True)
    for chunk in chunks(body, sizes):
        scanner.feed(chunk)
    assert scanner.finish()
    return scanner


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=8))
def test_every_sample_is_whole_in_any_chunking(name: str, sizes: list[int]) -> None:
    sample = load(name)
    scanner = check_whole(sample.transfer_syntax, sample.body, sizes)
    assert scanner.prefix == sample.plain[: sample.pixel_start]


@pytest.mark.parametrize("name", [n for n in NAMES if n != "image_dfl.dcm"])
def test_a_sample_cut_inside_its_last_element_is_refused(name: str) -> None:
    sample = load(name)
    body = sample.body
    for cut in sorted({len(body) - 1, len(body) - 2, (sample.pixel_start + len(body)) // 2}):
        if not 0 < cut < len(body):
            continue
        for size in (7, 4096, 1 << 30):
            scanner = LeadingElements(sample.transfer_syntax, whole=True)
            with pytest.raises(DatasetParseError, match="truncated"):
                for chunk in chunks(body[:cut], [size]):
                    scanner.feed(chunk)
                scanner.finish()


def test_a_deflated_sample_cut_short_is_refused() -> None:
    sample = load("image_dfl.dcm")
    for cut in (len(sample.body) // 2, len(sample.body) - 9):
        scanner = LeadingElements(sample.transfer_syntax, whole=True)
        with pytest.raises(DatasetParseError):
            scanner.feed(sample.body[:cut])
            scanner.finish()


def item(value: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(value)) + value


HEAD_LE = explicit_le(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00") + explicit_le(
    0x0008, 0x0018, b"UI", b"1.2.3.4\x00"
)
ENCAPSULATED = (
    struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, UNDEFINED)
    + item(struct.pack("<II", 0, 10))  # a basic offset table
    + item(b"\xff\xd8" + bytes(8))
    + item(bytes(6) + b"\xff\xd9")
    + SEQ_END_LE
)
PADDING = struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, 4) + bytes(4)


@pytest.mark.parametrize(
    "body",
    [
        HEAD_LE + ENCAPSULATED,
        HEAD_LE + ENCAPSULATED + PADDING,
        HEAD_LE + explicit_le(0x7FE0, 0x0010, b"OW", bytes(1000)) + PADDING,
        nested_explicit() + PIXELS_LE,
        HEAD_LE,
        b"",
    ],
    ids=["encapsulated", "encapsulated+padding", "native+padding", "nested", "no pixel data", "empty"],
)
def test_whole_data_sets_pass(body: bytes) -> None:
    for size in (1, 5, 4096):
        check_whole(SYNTAXES["explicit"], body, [size])


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (HEAD_LE + ENCAPSULATED[:-8], "truncated inside encapsulated data of \\(7FE0,0010\\)"),
        (HEAD_LE + ENCAPSULATED[:-12], "truncated"),
        (
            HEAD_LE + ENCAPSULATED[:12] + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + ENCAPSULATED[12:],
            "\\(FFFE,E00D\\) in encapsulated data",
        ),
        (
            HEAD_LE + ENCAPSULATED[:12] + explicit_le(0x0008, 0x0060, b"CS", b"CT") + ENCAPSULATED[12:],
            "\\(0008,0060\\) in encapsulated data",
        ),
        (
            HEAD_LE + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, UNDEFINED) + ITEM_LE + SEQ_END_LE,
            "fragment of undefined length",
        ),
        (
            HEAD_LE + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, 1 << 20) + bytes(100),
            "1048476 bytes past",
        ),
        (HEAD_LE + PIXELS_LE + b"\x00\x01\x02", "3 bytes after the last element"),
        (undefined_sq_le(0x0008, 0x1115, ITEM_LE)[:-8] + PIXELS_LE, "truncated inside"),
        (struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, UNDEFINED) + ITEM_LE, "inside an item"),
        (HEAD_LE + PIXELS_LE + SEQ_END_LE, "\\(FFFE,E0DD\\) outside a sequence"),
        (
            explicit_le(0x0008, 0x1115, b"SQ", ITEM_LE + explicit_le(0x0008, 0x1150, b"UI", b"1.2\x00"))
            + PIXELS_LE,
            "truncated inside an item of \\(0008,1115\\)",
        ),
        (
            explicit_le(0x0008, 0x1115, b"SQ", item(explicit_le(0x0008, 0x1150, b"UI", b"1.2\x00"))[:-2])
            + PIXELS_LE,
            "overruns",
        ),
    ],
    ids=[
        "no delimiter",
        "cut in a fragment header",
        "item end in fragments",
        "element in fragments",
        "undefined fragment",
        "pixel data past the end",
        "stray bytes",
        "open sequence",
        "open item",
        "delimiter at top level",
        "open item in a defined sequence",
        "item longer than its sequence",
    ],
)
def test_malformed_data_sets_are_refused_with_what_is_wrong(body: bytes, match: str) -> None:
    for size in (1, 5, 4096):
        scanner = LeadingElements(SYNTAXES["explicit"], whole=True)
        with pytest.raises(DatasetParseError, match=match) as info:
            for chunk in chunks(body, [size]):
                scanner.feed(chunk)
            scanner.finish()
        assert len(str(info.value)) <= 64  # it goes into an Error Comment (LO)


def test_implicit_and_big_endian_whole() -> None:
    implicit = implicit_le(0x0008, 0x0018, b"1.2\x00") + implicit_le(0x7FE0, 0x0010, bytes(64))
    check_whole(SYNTAXES["implicit"], implicit, [3])
    with pytest.raises(DatasetParseError, match="truncated"):
        check_whole(SYNTAXES["implicit"], implicit[:-1], [3])
    big = explicit_be(0x0008, 0x0018, b"UI", b"1.2\x00") + explicit_be(0x7FE0, 0x0010, b"OW", bytes(64))
    check_whole(SYNTAXES["big"], big, [3])
    with pytest.raises(DatasetParseError, match="truncated"):
        check_whole(SYNTAXES["big"], big[:-2], [3])


def test_the_walk_after_the_leading_part_copies_nothing_of_the_values() -> None:
    sample = load("CT_small.dcm")
    pixels = 64 << 20
    head = sample.body[: sample.pixel_start] + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixels)
    scanner = LeadingElements(sample.transfer_syntax, whole=True)
    scanner.feed(head)
    block = memoryview(bytes(16 << 10))
    tracemalloc.start()
    try:
        for _ in range(pixels // len(block)):
            scanner.feed(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scanner.finish()
    assert peak < 64 << 10
