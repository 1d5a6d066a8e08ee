"""Load: 500 concurrent associations sending 2,000 distinct small instances to one StoreScp, with zero loss.

Once from aiodicom's StoreScu (concurrency 500), once from an independent sender written here: a raw asyncio
client that encodes every PDU by hand with ``struct`` and uses no aiodicom code. Either way every instance
must be answered Success and be on disk whole (the stored file ends with the data set sent), and nothing may
be left in ``.incoming``.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiodicom.scp.store import StoreScp
from aiodicom.scu.store import StoreScu
from tests.scp.part10 import CT_IMAGE_STORAGE, EXPLICIT_LE, SmallCt, part10, small_ct

ASSOCIATIONS = 500
INSTANCES = 2000


def raise_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        pytest.skip(f"needs {needed} open files; the hard limit is {hard}")


@pytest.fixture
async def scp(tmp_path: Path) -> AsyncIterator[StoreScp]:
    raise_open_file_limit(4 * ASSOCIATIONS + 200)  # both ends of each connection, files, spares
    server = StoreScp(
        port=0,
        host="127.0.0.1",
        out_dir=tmp_path / "out",
        fsync=False,
        max_associations=ASSOCIATIONS + 20,
        max_associations_per_peer=None,  # every sender here is 127.0.0.1
        max_pending_connections=4 * ASSOCIATIONS,
        max_pending_per_peer=4 * ASSOCIATIONS,  # the 500 senders connect at once, all from 127.0.0.1
    )
    async with server:
        yield server


def instances() -> list[SmallCt]:
    """2,000 distinct instances in 20 studies of 2 series."""
    studies = [(f"2.25.{1000 + i}", [f"2.25.{2000 + 2 * i}", f"2.25.{2001 + 2 * i}"]) for i in range(20)]
    return [small_ct(studies[n % 20][0], studies[n % 20][1][n % 2]) for n in range(INSTANCES)]


def assert_all_stored(scp: StoreScp, sent: list[SmallCt]) -> None:
    assert scp.out_dir is not None
    missing = [i for i in sent if not (scp.out_dir / i.relative_path).is_file()]
    assert not missing, f"{len(missing)} of {len(sent)} instances not on disk"
    damaged = [i for i in sent if not (scp.out_dir / i.relative_path).read_bytes().endswith(i.data)]
    assert not damaged, f"{len(damaged)} instances on disk but not whole"
    stored = list(scp.out_dir.glob("2.25.*/2.25.*/*.dcm"))
    assert len(stored) == len(sent)


async def assert_nothing_left_after_stop(scp: StoreScp) -> None:
    """Once stopped, ``.incoming`` holds no file (lock files of its own directories aside)."""
    await scp.stop()
    assert scp.out_dir is not None
    left = [p for p in (scp.out_dir / ".incoming").rglob("*") if p.is_file() and "lock" not in p.name]
    assert not left, f"left in .incoming: {[p.name for p in left[:5]]} ({len(left)})"


async def test_500_associations_from_store_scu(scp: StoreScp) -> None:
    sent = instances()
    scu = StoreScu(
        f"STORE-SCP@127.0.0.1:{scp.port}",
        concurrency=ASSOCIATIONS,
        connect_timeout=30,
        acse_timeout=30,
        dimse_timeout=30,
    )
    for image in sent:
        scu.add_file_from_memory(part10(image), name=image.sop_instance)
    peak = 0

    def count(_: object) -> None:
        nonlocal peak
        peak = max(peak, len(scp.associations))

    scp.on_connection(count)
    crowd = asyncio.Event()

    async def hold(tags: dict[str, str]) -> dict[str, str]:
        # Each association's instances wait (10 s at most) until half of the associations are open at
        # once: the point is that many at once, and senders this quick finish early on some runs (a CI run
        # peaked at 202, its first associations done before the last ones connected).
        count(None)
        if peak >= ASSOCIATIONS // 2:
            crowd.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(crowd.wait(), 10)
        return tags

    scp.on_before_store(hold)
    started = time.monotonic()
    result = await asyncio.wait_for(scu.send(), 60)
    took = time.monotonic() - started
    assert (result.successful, result.failed) == (INSTANCES, 0), result.files[:3]
    assert peak >= ASSOCIATIONS // 2, f"at most {peak} associations at once"
    assert_all_stored(scp, sent)
    await assert_nothing_left_after_stop(scp)
    print(f"StoreScu: {INSTANCES} instances over {ASSOCIATIONS} associations in {took:.1f} s, peak {peak}")


# --------------------------------------------------------------- an independent sender: struct and asyncio

APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
CALLING, CALLED = b"RAW-LOAD".ljust(16), b"STORE-SCP".ljust(16)


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(value)) + value


def _even(uid: bytes) -> bytes:
    return uid + b"\x00" if len(uid) % 2 else uid


def associate_rq() -> bytes:
    """PS3.8 9.3.2: one presentation context (CT Image Storage, explicit VR little endian)."""
    context = (
        struct.pack(">Bxxx", 1) + _item(0x30, CT_IMAGE_STORAGE.encode()) + _item(0x40, EXPLICIT_LE.encode())
    )
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.826.0.1.3680043.9.7777.3")
    body = (
        struct.pack(">H2x", 1)
        + CALLED
        + CALLING
        + bytes(32)
        + _item(0x10, APPLICATION_CONTEXT)
        + _item(0x20, context)
        + _item(0x50, user)
    )
    return struct.pack(">BxI", 0x01, len(body)) + body


def command_element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


def c_store_rq(message_id: int, image: SmallCt) -> bytes:
    """PS3.7 9.3.1.1, implicit VR little endian, group length first."""
    body = b"".join(
        [
            command_element(0x0002, _even(image.sop_class.encode())),
            command_element(0x0100, struct.pack("<H", 0x0001)),
            command_element(0x0110, struct.pack("<H", message_id)),
            command_element(0x0700, struct.pack("<H", 0)),
            command_element(0x0800, struct.pack("<H", 0x0001)),
            command_element(0x1000, _even(image.sop_instance.encode())),
        ]
    )
    return command_element(0x0000, struct.pack("<I", len(body))) + body


def p_data(context_id: int, control: int, value: bytes) -> bytes:
    pdv = struct.pack(">IBB", len(value) + 2, context_id, control) + value
    return struct.pack(">BxI", 0x04, len(pdv)) + pdv


async def read_pdu(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    pdu_type, length = struct.unpack(">BxI", await reader.readexactly(6))
    return pdu_type, await reader.readexactly(length)


def accepted_max_length(ac: bytes) -> int:
    """The peer's maximum PDU length from an A-ASSOCIATE-AC, after checking that context 1 is accepted."""
    pos, accepted, max_length = 68, False, 16384
    while pos + 4 <= len(ac):
        item_type, length = struct.unpack_from(">BxH", ac, pos)
        value = ac[pos + 4 : pos + 4 + length]
        if item_type == 0x21:
            accepted = accepted or (value[0] == 1 and value[2] == 0)
        elif item_type == 0x50:
            sub = 0
            while sub + 4 <= len(value):
                sub_type, sub_length = struct.unpack_from(">BxH", value, sub)
                if sub_type == 0x51:
                    (max_length,) = struct.unpack_from(">I", value, sub + 4)
                sub += 4 + sub_length
        pos += 4 + length
    assert accepted, "context 1 (CT Image Storage) was not accepted"
    return max_length or 1 << 20


def response_status(command: bytes) -> int:
    pos = 0
    while pos + 8 <= len(command):
        _, element, length = struct.unpack_from("<HHI", command, pos)
        if element == 0x0900:
            return int(struct.unpack_from("<H", command, pos + 8)[0])
        pos += 8 + length
    raise AssertionError("no status in the response")


async def raw_send(port: int, images: list[SmallCt]) -> list[int]:
    """One association: every image with C-STORE, one at a time; returns the statuses."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses = []
    try:
        writer.write(associate_rq())
        pdu_type, ac = await read_pdu(reader)
        assert pdu_type == 0x02, f"answered PDU type {pdu_type}: {ac.hex()}"
        max_value = accepted_max_length(ac) - 6
        for message_id, image in enumerate(images, 1):
            writer.write(p_data(1, 0x03, c_store_rq(message_id, image)))
            chunks = [image.data[i : i + max_value] for i in range(0, len(image.data), max_value)]
            for n, chunk in enumerate(chunks):
                writer.write(p_data(1, 0x02 if n == len(chunks) - 1 else 0x00, chunk))
            await writer.drain()
            command = b""
            while True:
                pdu_type, body = await read_pdu(reader)
                assert pdu_type == 0x04, f"answered PDU type {pdu_type} to a C-STORE"
                length, _, control = struct.unpack_from(">IBB", body)
                command += body[6 : 4 + length]
                if control & 0x02:
                    break
            statuses.append(response_status(command))
        writer.write(struct.pack(">BxI4x", 0x05, 4))
        pdu_type, _ = await read_pdu(reader)
        assert pdu_type == 0x06, f"answered PDU type {pdu_type} to an A-RELEASE-RQ"
    finally:
        writer.close()
    return statuses


async def test_500_associations_from_a_raw_asyncio_sender(scp: StoreScp) -> None:
    sent = instances()
    per_association = [sent[i::ASSOCIATIONS] for i in range(ASSOCIATIONS)]
    started = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(raw_send(scp.port, images) for images in per_association), return_exceptions=True),
        60,
    )
    took = time.monotonic() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} associations failed: {errors[:3]!r}"
    statuses = [s for r in results if isinstance(r, list) for s in r]
    assert statuses == [0] * INSTANCES, {hex(s) for s in statuses}
    assert_all_stored(scp, sent)
    await assert_nothing_left_after_stop(scp)
    print(f"raw sender: {INSTANCES} instances over {ASSOCIATIONS} associations in {took:.1f} s")
