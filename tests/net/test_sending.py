"""Data sets sent as PDVs from bytes, a regular file (pread, block by block) or another binary stream."""

from __future__ import annotations

import asyncio
import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import pytest

from aiodicom.dataset.files import read_small_file
from aiodicom.net.sending import FILE_BLOCK, send_data_set


class Recorder:
    """A PdvWriter that keeps each PDV's value and flags, and may run something after the first write."""

    def __init__(self, after_first: object = None) -> None:
        self.pdvs: list[tuple[int, int, bytes]] = []  # context id, control byte, value
        self.writes = 0
        self.after_first = after_first

    def write_pdvs(self, buffers: list[bytes | memoryview]) -> None:
        self.writes += 1
        for header, value in zip(buffers[::2], buffers[1::2], strict=True):
            pdu_type, _, pdu_length, item_length, context_id, control = struct.unpack(">BBIIBB", header)
            assert pdu_type == 4 and pdu_length == item_length + 4 and item_length == len(value) + 2
            self.pdvs.append((context_id, control, bytes(value)))
        if self.writes == 1 and callable(self.after_first):
            self.after_first()

    async def drain(self) -> None:
        await asyncio.sleep(0)

    @property
    def data(self) -> bytes:
        return b"".join(value for _, _, value in self.pdvs)

    @property
    def last_flags(self) -> list[bool]:
        return [bool(control & 2) for _, control, _ in self.pdvs]


def send(source: bytes | BinaryIO, max_value: int, recorder: Recorder | None = None) -> Recorder:
    recorder = recorder or Recorder()
    asyncio.run(send_data_set(recorder, 3, source, max_value))
    return recorder


@pytest.mark.parametrize(
    "size", [0, 1, 999, 1000, 1001, FILE_BLOCK - 1, FILE_BLOCK, FILE_BLOCK + 7, 3 * FILE_BLOCK]
)
def test_a_regular_file_goes_out_whole_from_its_position_with_only_the_last_pdv_flagged(
    tmp_path: Path, size: int
) -> None:
    payload = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(b"HEADER" + payload)
    with open(path, "rb", buffering=0) as fp:
        fp.seek(6)
        sent = send(fp, 1000)
    assert sent.data == payload
    assert sent.last_flags == [False] * (len(sent.pdvs) - 1) + [True]
    assert all(len(value) <= 1000 for _, _, value in sent.pdvs)
    assert all(context_id == 3 and not control & 1 for context_id, control, _ in sent.pdvs)
    # blocks of whole PDVs: one write per block, not one per PDV
    assert sent.writes == max(1, -(-size // (FILE_BLOCK // 1000 * 1000)))


def test_a_buffered_file_is_sent_from_where_it_was_read_to(tmp_path: Path) -> None:
    payload = os.urandom(5000)
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10 + payload)
    with open(path, "rb") as fp:  # a buffered reader holds more than it gave: tell() says where it is
        assert fp.read(10) == b"x" * 10
        assert send(fp, 700).data == payload


def test_a_file_cut_short_while_it_is_sent_ends_with_a_last_pdv(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3 * FILE_BLOCK))
    with open(path, "rb", buffering=0) as fp:
        sent = send(fp, 1000, Recorder(after_first=lambda: os.truncate(path, FILE_BLOCK + 10)))
    assert sent.last_flags[-1] and not any(sent.last_flags[:-1])
    assert sent.data == path.read_bytes()


def test_a_stream_that_is_not_a_regular_file_is_read_as_it_comes() -> None:
    payload = os.urandom(2 * FILE_BLOCK + 3)
    sent = send(io.BytesIO(payload), 4096)
    assert sent.data == payload
    assert sent.last_flags == [False] * (len(sent.pdvs) - 1) + [True]


def test_a_pipe_is_read_as_a_stream() -> None:
    read_end, write_end = os.pipe()
    payload = os.urandom(50_000)
    os.write(write_end, payload)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fp:
        assert send(fp, 4096).data == payload


def test_bytes_are_sent_as_slices() -> None:
    payload = os.urandom(10_000)
    sent = send(payload, 3000)
    assert sent.data == payload
    assert [len(v) for _, _, v in sent.pdvs] == [3000, 3000, 3000, 1000]


def test_read_small_file_reads_whole_files_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.dcm"
    path.write_bytes(b"a" * 100)
    assert read_small_file(path, 100) == b"a" * 100
    assert read_small_file(path, 99) is None
    assert read_small_file(tmp_path, 1 << 20) is None  # a folder is not a file to send
    with pytest.raises(FileNotFoundError):
        read_small_file(tmp_path / "gone.dcm", 100)
