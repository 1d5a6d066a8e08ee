"""A received instance is whole, or it is refused: StoreScp against a scripted raw peer over loopback.

Every malformed data set is answered with a 0xC000-class status whose Error Comment says what was wrong,
leaves no file in ``out_dir`` (temporary files included) and no object in S3, and the server then serves
the next association. Whole data sets of every structure are stored byte for byte.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pydicom
import pytest

from aiodicom.dimse import Command
from aiodicom.scp.store import StoreScp
from tests.interop.rawpeer import (
    BE,
    CT_IMAGE_STORAGE,
    DEFLATED_LE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT,
    IMPLICIT_LE,
    ITEM,
    LE,
    RLE_LOSSLESS,
    SEQUENCE_END,
    UNDEFINED,
    VERIFICATION,
    Encoding,
    Instance,
    RawPeer,
    ct_image,
    delimiter,
    element,
    encapsulated_pixels,
    image_pixel,
    instance,
    item,
    native_pixels,
    sequence,
    text,
)

PRIVATE_SYNTAX = "1.2.826.0.1.3680043.2.1143.999"
#: What an Error Comment about a data set that stops short may say (any of these words).
TRUNCATED = r"trunc|end|short|incomplete|missing|past|beyond|cut|inside|bytes|length|expected"

# ------------------------------------------------------------------------------------------ helpers


def files_in(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


async def no_file_left(out: Path, within: float = 2.0) -> list[Path]:
    """The files under ``out`` once the server has stopped (temporary files created ahead of need are
    removed by a worker thread: give it a moment)."""
    deadline = time.monotonic() + within
    while (left := files_in(out)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


def contexts(abstract: str, syntax: str) -> list[tuple[int, str, list[str]]]:
    return [(1, VERIFICATION, [IMPLICIT_LE]), (3, abstract, [syntax])]


async def store_once(scp: StoreScp, syntax: str, inst: Instance, data: bytes | None = None) -> Command:
    """One association: the C-STORE of ``inst`` (or of ``data`` under its command) on a context for
    ``syntax``; returns the C-STORE-RSP. The association is released afterwards when it is still up."""
    async with await RawPeer.connect(scp.port) as peer:
        ac = await peer.associate(contexts(inst.sop_class, syntax))
        answer = next(pc for pc in ac.presentation_contexts if pc.context_id == 3)
        assert answer.accepted and answer.transfer_syntax == syntax, answer
        rsp = await peer.c_store(3, inst, data=data, timeout=20)
        await peer.release()
    return rsp


async def serves_a_new_association(scp: StoreScp) -> None:
    async with await RawPeer.connect(scp.port) as peer:
        await peer.associate(contexts(CT_IMAGE_STORAGE, EXPLICIT_LE))
        assert (await peer.c_echo(1)).status == 0
        await peer.release()


def assert_refused(rsp: Command, out_dir: Path, says: str) -> None:
    status = rsp.status if rsp.status is not None else -1
    assert 0xC000 <= status <= 0xCFFF, f"status 0x{status:04X} ({rsp.error_comment!r}), expected 0xCxxx"
    comment = rsp.error_comment or ""
    assert comment.strip(), "a refusal without an Error Comment"
    assert re.search(says, comment, re.IGNORECASE), f"Error Comment {comment!r} does not say /{says}/"
    # comments are cut to 64 characters: even the start of the path must not show
    assert str(out_dir)[:20] not in comment, f"the Error Comment shows the server's path: {comment!r}"


def no_error_logged(records: list[logging.LogRecord]) -> None:
    bad = [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.levelname} {r.name}: {r.getMessage()}" for r in bad]


def server(tmp_path: Path, **options: Any) -> StoreScp:
    return StoreScp(port=0, host="127.0.0.1", out_dir=tmp_path / "out", fsync=False, **options)


async def refused_and_nothing_kept(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    syntax: str,
    inst: Instance,
    data: bytes,
    says: str,
    **options: Any,
) -> Command:
    caplog.set_level(logging.DEBUG, logger="aiodicom")
    scp = server(tmp_path, **options)
    async with scp:
        rsp = await store_once(scp, syntax, inst, data)
        await serves_a_new_association(scp)
    assert_refused(rsp, tmp_path / "out", says)
    assert await no_file_left(tmp_path / "out") == []
    no_error_logged(caplog.records)
    return rsp


def assert_stored_as_sent(out: Path, inst: Instance, syntax: str) -> None:
    target = out / inst.relative_path
    assert target.is_file(), f"{inst.relative_path} not stored: {files_in(out)}"
    written = target.read_bytes()
    assert written.endswith(inst.data), "the stored data set is not the bytes sent"
    meta = pydicom.dcmread(target, stop_before_pixels=True).file_meta
    assert meta.TransferSyntaxUID == syntax and meta.MediaStorageSOPInstanceUID == inst.sop_instance


# ------------------------------------------------------------------------------------- data sets


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw deflate, as PS3.5 A.5 requires
    return compressor.compress(data) + compressor.flush()


def request_attributes(enc: Encoding = LE) -> bytes:
    """(0040,0275) Request Attributes Sequence, undefined length, whose item (undefined length) nests an
    undefined-length (0040,A170) sequence, an empty undefined-length sequence and a defined-length item."""
    code = text(0x00080100, "SH", "121311", enc) + text(0x00080102, "SH", "DCM", enc)
    inner = sequence(0x0040A170, [item(code, enc, undefined=True), item(code, enc)], enc, undefined=True)
    empty = sequence(0x0040A375, [], enc, undefined=True)
    content = text(0x00401001, "SH", "RP1", enc) + inner + empty
    return sequence(0x00400275, [item(content, enc, undefined=True)], enc, undefined=True)


def with_sequences(enc: Encoding = LE, pixel_bytes: int = 512) -> Instance:
    return instance(image_pixel(enc) + request_attributes(enc) + native_pixels(pixel_bytes, enc), enc)


def encapsulated(fragment_bytes: bytes) -> Instance:
    return instance(image_pixel() + fragment_bytes)


FRAGMENTS = [bytes([n]) * 200 for n in range(1, 4)]


def wrong_item_tag() -> bytes:
    bad = struct.pack("<HHI", 0x7FE0, 0x0010, 200) + FRAGMENTS[1]  # a fragment that is not an item
    return (
        element(0x7FE00010, "OB", b"", LE, length=UNDEFINED)
        + delimiter(ITEM, LE, 0)
        + delimiter(ITEM, LE, 200)
        + FRAGMENTS[0]
        + bad
        + delimiter(SEQUENCE_END, LE)
    )


def no_sequence_delimiter() -> bytes:
    whole = encapsulated_pixels(FRAGMENTS)
    return whole[: -len(delimiter(SEQUENCE_END, LE))]


def fragment_past_the_end() -> bytes:
    return (
        element(0x7FE00010, "OB", b"", LE, length=UNDEFINED)
        + delimiter(ITEM, LE, 0)
        + delimiter(ITEM, LE, 4096)
        + FRAGMENTS[0]
    )


@dataclass(frozen=True)
class Bad:
    """A malformed data set: the instance (for its command), the bytes sent, what the comment says."""

    syntax: str
    inst: Instance
    data: bytes
    says: str


def cut_in_half() -> Bad:
    inst = ct_image(4096)
    return Bad(EXPLICIT_LE, inst, inst.data[: len(inst.data) // 2 & ~1], TRUNCATED)


def pixel_data_1_mib_declared() -> Bad:
    inst = instance(image_pixel() + element(0x7FE00010, "OW", bytes(100), LE, length=1 << 20))
    return Bad(EXPLICIT_LE, inst, inst.data, TRUNCATED + r"|pixel|7FE0")


def sequence_never_closed() -> Bad:
    open_sequence = element(0x00400275, "SQ", b"", LE, length=UNDEFINED)
    inst = instance(open_sequence + item(text(0x00401001, "SH", "RP1")))
    return Bad(EXPLICIT_LE, inst, inst.data, r"sequence|delimit|clos|end|trunc|0040,0275")


def item_never_closed() -> Bad:
    open_item = delimiter(ITEM, LE, UNDEFINED) + text(0x00401001, "SH", "RP1")
    inst = instance(element(0x00400275, "SQ", b"", LE, length=UNDEFINED) + open_item)
    return Bad(EXPLICIT_LE, inst, inst.data, r"item|sequence|delimit|clos|end|trunc")


def item_never_closed_in_a_defined_length_sequence() -> Bad:
    open_item = delimiter(ITEM, LE, UNDEFINED) + text(0x00401001, "SH", "RP1")
    body = element(0x00400275, "SQ", open_item) + text(0x00401001, "SH", "TOP")
    inst = instance(body + native_pixels(64))
    return Bad(EXPLICIT_LE, inst, inst.data, r"item|sequence|delimit|clos|end|length")


def element_past_the_end() -> Bad:
    inst = instance(element(0x00204000, "LT", b"a comment ", LE, length=200))
    return Bad(EXPLICIT_LE, inst, inst.data, TRUNCATED + r"|0020,4000")


def encapsulated_wrong_item_tag() -> Bad:
    inst = encapsulated(wrong_item_tag())
    return Bad(RLE_LOSSLESS, inst, inst.data, r"item|fragment|pixel|encapsulat|tag|7FE0")


def encapsulated_without_sequence_delimiter() -> Bad:
    inst = encapsulated(no_sequence_delimiter())
    return Bad(RLE_LOSSLESS, inst, inst.data, r"delimit|sequence|fragment|pixel|encapsulat|end|clos")


def encapsulated_fragment_past_the_end() -> Bad:
    inst = encapsulated(fragment_past_the_end())
    return Bad(RLE_LOSSLESS, inst, inst.data, r"fragment|item|pixel|encapsulat|end|trunc|length|past")


def trailing_partial_element() -> Bad:
    inst = ct_image(512)
    junk = b"\x10\x00\x10\x00PN"  # a tag and a VR, then nothing: not a whole element
    return Bad(EXPLICIT_LE, inst, inst.data + junk, r"trail|after|end|trunc|element|bytes|incomplete")


def truncated_leading_elements() -> Bad:
    inst = ct_image(512)
    return Bad(EXPLICIT_LE, inst, inst.data[:61], TRUNCATED)


def deflate_stream_truncated() -> Bad:
    inst = with_sequences()
    stream = deflate(inst.data)
    return Bad(DEFLATED_LE, inst, stream[: len(stream) // 2], r"deflat|inflat|compress|trunc|end|incomplete")


def deflated_data_set_truncated() -> Bad:
    inst = with_sequences(pixel_bytes=2048)
    return Bad(DEFLATED_LE, inst, deflate(inst.data[: len(inst.data) // 2]), TRUNCATED)


MALFORMED: dict[str, Callable[[], Bad]] = {
    f.__name__: f
    for f in (
        cut_in_half,
        pixel_data_1_mib_declared,
        sequence_never_closed,
        item_never_closed,
        item_never_closed_in_a_defined_length_sequence,
        element_past_the_end,
        encapsulated_wrong_item_tag,
        encapsulated_without_sequence_delimiter,
        encapsulated_fragment_past_the_end,
        trailing_partial_element,
        truncated_leading_elements,
        deflate_stream_truncated,
        deflated_data_set_truncated,
    )
}


@dataclass(frozen=True)
class Good:
    syntax: str
    inst: Instance


def whole_ct() -> Good:
    return Good(EXPLICIT_LE, ct_image(4096))


def trailing_padding() -> Good:
    base = ct_image(512)
    padded = base.data + element(0xFFFCFFFC, "OB", bytes(32))
    return Good(EXPLICIT_LE, Instance(base.sop_class, base.sop_instance, base.study, base.series, padded))


def encapsulated_with_offset_table() -> Good:
    offsets = struct.pack("<3I", 0, 208, 416)  # three frames, one fragment each, 8-byte item headers
    return Good(RLE_LOSSLESS, encapsulated(encapsulated_pixels(FRAGMENTS, offsets)))


def encapsulated_frame_in_several_fragments() -> Good:
    return Good(RLE_LOSSLESS, encapsulated(encapsulated_pixels(FRAGMENTS, struct.pack("<I", 0))))


def nested_undefined_length_sequences() -> Good:
    return Good(EXPLICIT_LE, with_sequences())


def implicit_vr_little_endian() -> Good:
    return Good(IMPLICIT_LE, with_sequences(IMPLICIT))


def explicit_vr_big_endian() -> Good:
    return Good(EXPLICIT_BE, with_sequences(BE))


WHOLE: dict[str, Callable[[], Good]] = {
    f.__name__: f
    for f in (
        whole_ct,
        trailing_padding,
        encapsulated_with_offset_table,
        encapsulated_frame_in_several_fragments,
        nested_undefined_length_sequences,
        implicit_vr_little_endian,
        explicit_vr_big_endian,
    )
}


# --------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_data_set_is_refused_and_nothing_is_kept(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = MALFORMED[case]()
    await refused_and_nothing_kept(tmp_path, caplog, bad.syntax, bad.inst, bad.data, bad.says)


@pytest.mark.parametrize("case", WHOLE)
async def test_whole_data_set_is_stored_byte_for_byte(case: str, tmp_path: Path) -> None:
    good = WHOLE[case]()
    async with server(tmp_path) as scp:
        rsp = await store_once(scp, good.syntax, good.inst)
        assert rsp.status == 0, f"0x{rsp.status or 0:04X} {rsp.error_comment!r}"
        assert_stored_as_sent(tmp_path / "out", good.inst, good.syntax)


async def test_deflated_data_set_is_stored_as_received(tmp_path: Path) -> None:
    inst = with_sequences()
    stream = deflate(inst.data)
    sent = Instance(inst.sop_class, inst.sop_instance, inst.study, inst.series, stream)
    async with server(tmp_path) as scp:
        rsp = await store_once(scp, DEFLATED_LE, sent)
        assert rsp.status == 0, f"0x{rsp.status or 0:04X} {rsp.error_comment!r}"
    assert_stored_as_sent(tmp_path / "out", sent, DEFLATED_LE)


@pytest.mark.parametrize(
    "case", ["truncated_leading_elements", "element_past_the_end", "sequence_never_closed"]
)
async def test_malformed_is_cannot_understand_not_out_of_resources(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """0xA700 tells the sender to try again later: a malformed data set never gets it, nor a traceback."""
    bad = MALFORMED[case]()
    rsp = await refused_and_nothing_kept(tmp_path, caplog, bad.syntax, bad.inst, bad.data, r".")
    assert rsp.status != 0xA700


# ------------------------------------------------------------------------------------- deflate bomb

BOMB_INFLATED = 256 << 20


@functools.cache
def deflate_bomb() -> tuple[Instance, int]:
    """A deflated data set whose Pixel Data is 256 MiB of zeros: about 1 MiB on the wire."""
    head = instance(image_pixel())
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    parts = [compressor.compress(head.data + element(0x7FE00010, "OB", b"", LE, length=BOMB_INFLATED))]
    zeros = bytes(1 << 20)
    parts += [compressor.compress(zeros) for _ in range(BOMB_INFLATED >> 20)]
    parts.append(compressor.flush())
    stream = b"".join(parts)
    return Instance(head.sop_class, head.sop_instance, head.study, head.series, stream), len(stream)


def _vm_hwm() -> int:
    with open("/proc/self/status") as status:
        match = re.search(r"VmHWM:\s+(\d+)", status.read())
    assert match
    return int(match.group(1)) * 1024


@contextmanager
def peak_rss() -> Iterator[Callable[[], int]]:
    """The growth of this process's peak RSS over the block (the peak is reset first; without
    /proc/self/clear_refs a sampling thread watches the RSS instead)."""
    process = psutil.Process()
    before = process.memory_info().rss
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
        sampled = False
    except OSError:
        sampled = True
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True) if sampled else None
    if sampler:
        sampler.start()
    grown = [0]
    yield lambda: grown[0]
    done.set()
    if sampler:
        sampler.join()
    grown[0] = (peak[0] if sampled else _vm_hwm()) - before


async def test_deflate_bomb_is_refused_quickly_in_bounded_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bomb, wire = deflate_bomb()
    assert wire < 2 << 20
    caplog.set_level(logging.DEBUG, logger="aiodicom")
    scp = server(tmp_path, max_inflated_size=16 << 20)
    async with scp:
        with peak_rss() as grown:
            started = time.monotonic()
            rsp = await store_once(scp, DEFLATED_LE, bomb)
            took = time.monotonic() - started
        await serves_a_new_association(scp)
    print(f"deflate bomb: {wire} bytes sent, answered in {took:.2f} s, peak RSS +{grown() >> 20} MiB")
    assert_refused(rsp, tmp_path / "out", r"inflat|deflat|size|large|limit|exceed|cap|MiB|bytes")
    assert took < 5.0
    assert grown() < 64 << 20, f"the server's memory grew by {grown() >> 20} MiB"
    assert await no_file_left(tmp_path / "out") == []
    no_error_logged(caplog.records)


# ------------------------------------------------------------------------------------ private syntax


async def test_listed_private_transfer_syntax_is_stored_as_received(tmp_path: Path) -> None:
    """It cannot be checked (its encoding is unknown): stored as received. Its Pixel Data here is
    opaque bytes that no DICOM-defined syntax would allow."""
    opaque = element(0x7FE00010, "OB", b"", LE, length=UNDEFINED) + b"PRIVATE-CODEC\x00" * 10
    inst = instance(image_pixel() + opaque)
    async with server(tmp_path, transfer_syntaxes=[PRIVATE_SYNTAX]) as scp:
        rsp = await store_once(scp, PRIVATE_SYNTAX, inst)
        assert rsp.status == 0, f"0x{rsp.status or 0:04X} {rsp.error_comment!r}"
        await serves_a_new_association(scp)
    stored = [p for p in files_in(tmp_path / "out") if p.suffix == ".dcm"]
    assert len(stored) == 1 and stored[0].read_bytes().endswith(inst.data)
    meta = pydicom.dcmread(stored[0], stop_before_pixels=True).file_meta
    assert meta.TransferSyntaxUID == PRIVATE_SYNTAX


# ------------------------------------------------------------------------------------ one large PDU


async def test_unlimited_pdu_length_takes_a_70_mib_p_data_tf(tmp_path: Path) -> None:
    """``max_pdu_length=0`` advertises no limit: one PDV of 70 MiB in one P-DATA-TF is streamed in."""
    inst = ct_image(70 << 20)
    async with server(tmp_path, max_pdu_length=0) as scp, await RawPeer.connect(scp.port) as peer:
        ac = await peer.associate(contexts(CT_IMAGE_STORAGE, EXPLICIT_LE))
        assert ac.user_information.max_length == 0
        peer.max_value = len(inst.data)  # the whole data set in one PDV
        rsp = await peer.c_store(3, inst, timeout=60)
        assert rsp.status == 0, f"0x{rsp.status or 0:04X} {rsp.error_comment!r}"
        await peer.release()
    assert_stored_as_sent(tmp_path / "out", inst, EXPLICIT_LE)


# ---------------------------------------------------------------------------------------------- S3


@pytest.mark.s3
@pytest.mark.interop
@pytest.mark.parametrize("case", ["cut_in_half", "pixel_data_1_mib_declared", "sequence_never_closed"])
async def test_truncated_instance_leaves_nothing_in_s3(
    case: str, moto_endpoint: str, bucket: str, s3: Any, s3_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    from aiodicom.storage.s3 import S3Config

    caplog.set_level(logging.DEBUG, logger="aiodicom")
    bad = MALFORMED[case]()
    config = S3Config(bucket, endpoint=moto_endpoint, prefix="archive/")
    async with StoreScp(port=0, host="127.0.0.1", storage_backend="s3", s3_config=config) as scp:
        rsp = await store_once(scp, bad.syntax, bad.inst, bad.data)
        await serves_a_new_association(scp)
    assert_refused(rsp, Path("/nonexistent"), bad.says)
    for _ in range(40):  # an upload being aborted settles shortly after the response
        if not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            break
        await asyncio.sleep(0.05)
    assert s3.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    no_error_logged(caplog.records)
