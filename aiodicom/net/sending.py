"""Sending a data set as PDVs: from bytes, a file or a stream, cut to the peer's maximum, with backpressure.

Every block of PDVs goes out with one ``writelines`` (a 12-byte P-DATA-TF header before each value) and the
sender then waits while the transport's buffer is full. Nothing is copied on the way: values are slices of
the caller's bytes or of the chunks a stream yields (a PDV's value may span two chunks: its parts follow its
header as consecutive buffers), and a file is read a block of whole PDVs at a time.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import AsyncIterable
from typing import BinaryIO, Protocol

from aiodicom.dimse import fragment
from aiodicom.ul.pdu import pdata_header

#: Bytes written between two waits for the transport to drain.
DRAIN_EVERY = 1 << 20
#: Bytes of a file read (and written) at once.
FILE_BLOCK = 256 * 1024

Buffers = list[bytes | memoryview]
#: What a data set to send can be: bytes (sent as slices), a binary file, or an async iterable of chunks.
DataSource = bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes]


class PdvWriter(Protocol):
    """Where the PDVs go: an association, which passes them through its state machine to the transport."""

    def write_pdvs(self, buffers: Buffers) -> None: ...

    async def drain(self) -> None: ...


async def send_data_set(writer: PdvWriter, context_id: int, data: DataSource, max_value: int) -> None:
    """Send a data set as PDVs of at most ``max_value`` bytes, the last one flagged last."""
    if isinstance(data, bytes | bytearray | memoryview):
        await _send_bytes(writer, context_id, memoryview(data), max_value)
    elif isinstance(data, AsyncIterable):
        await _send_stream(writer, context_id, data, max_value)
    else:
        await _send_file(writer, context_id, data, max_value)


async def _send_bytes(writer: PdvWriter, context_id: int, data: memoryview, size: int) -> None:
    step = max(size, DRAIN_EVERY // size * size)
    for offset in range(0, max(len(data), 1), step):
        last = offset + step >= len(data)  # only the last block's last PDV is flagged last
        writer.write_pdvs(fragment(context_id, False, data[offset : offset + step], size, last=last))
        await writer.drain()


async def _send_file(writer: PdvWriter, context_id: int, source: BinaryIO, size: int) -> None:
    # Blocks of whole PDVs, each with one writelines: far fewer system calls than one write per PDV. A new
    # block per read: a transport may keep the buffers until they are sent.
    block_size = max(size, FILE_BLOCK // size * size)
    region = _file_region(source)
    if region is None:
        block = source.read(block_size)
        while True:
            following = source.read(block_size) if len(block) == block_size else b""
            writer.write_pdvs(fragment(context_id, False, block, size, last=not following))
            await writer.drain()
            if not following:
                return
            block = following
    # A regular file is read with pread, each block exactly as long as what is left of it: a read larger
    # than the rest (and the empty read that found the end) cost more than sending a small file.
    fd, position, end = region
    while True:
        want = min(block_size, end - position)
        block = os.pread(fd, want, position) if want > 0 else b""
        position += len(block)
        last = position >= end or len(block) < want  # a file cut short while sent ends where it ends
        writer.write_pdvs(fragment(context_id, False, block, size, last=last))
        await writer.drain()
        if last:
            return


def _file_region(source: BinaryIO) -> tuple[int, int, int] | None:
    """The descriptor, position and size of a regular file, or None for anything else."""
    try:
        fd = source.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        return fd, source.tell(), info.st_size
    except (OSError, AttributeError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return None


async def _send_stream(writer: PdvWriter, context_id: int, chunks: AsyncIterable[bytes], size: int) -> None:
    # A whole PDV goes out as soon as more than one PDV is held (so it is not the last); the rest waits for
    # the end of the stream, to be flagged last. The chunks must not change once yielded (bytes do not).
    held: deque[memoryview] = deque()
    held_bytes = 0
    out: Buffers = []
    out_bytes = 0
    full = pdata_header(context_id, False, False, size)
    async for chunk in chunks:
        view = memoryview(chunk)
        if not len(view):
            continue
        held.append(view if view.ndim == 1 and view.itemsize == 1 else view.cast("B"))
        held_bytes += len(view)
        while held_bytes > size:
            out.append(full)
            need = size
            while need:
                first = held[0]
                if len(first) <= need:
                    out.append(held.popleft())
                    need -= len(first)
                else:
                    out.append(first[:need])
                    held[0] = first[need:]
                    need = 0
            held_bytes -= size
            out_bytes += size
            if out_bytes >= DRAIN_EVERY:
                writer.write_pdvs(out)
                out, out_bytes = [], 0
                await writer.drain()
    out.append(pdata_header(context_id, False, True, held_bytes))
    out.extend(held)
    writer.write_pdvs(out)
    await writer.drain()
