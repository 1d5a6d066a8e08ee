"""DIMSE message -> PDVs: a P-DATA-TF we send carries one PDV, whose value fills the peer's maximum, or the
two PDVs of a small message (:func:`message_pdvs`).

A peer's maximum length (PS3.8 D.1) bounds the variable field of a P-DATA-TF, i.e. the PDU length without its
6-byte header. One PDV item in it costs 4 bytes of item length and 2 of message control header, so a PDV
value may be the maximum minus 6.

Streaming a data set from a file needs no helper: read ``max_value`` bytes at a time and write
``pdata_header(context_id, False, is_last, len(chunk))`` followed by the chunk, or hand blocks of several
PDVs to :func:`fragment` with ``last=False`` for all but the final block.
"""

from __future__ import annotations

import struct

from aiodicom.ul.pdu import P_DATA_TF, pdata_header

#: The largest P-DATA-TF we send to a peer that advertises 0, "unlimited", so memory stays bounded.
DEFAULT_MAX_SEND_PDU = 262144

_PDV_OVERHEAD = 6


def max_pdv_value(peer_max_pdu: int, max_send_pdu: int | None = None) -> int:
    """The largest PDV value to send: the peer's maximum PDU length, capped by ``max_send_pdu``, minus 6.

    A peer maximum of 0 means unlimited: ``max_send_pdu`` or :data:`DEFAULT_MAX_SEND_PDU` applies. Raises
    ValueError for a negative length, or a maximum under 7 (a PDV that carries no byte).
    """
    if peer_max_pdu < 0 or (max_send_pdu is not None and max_send_pdu < 0):
        raise ValueError(f"negative maximum PDU length ({peer_max_pdu}, {max_send_pdu})")
    limit = peer_max_pdu or max_send_pdu or DEFAULT_MAX_SEND_PDU
    if max_send_pdu:
        limit = min(limit, max_send_pdu)
    if limit <= _PDV_OVERHEAD:
        raise ValueError(f"a maximum PDU length of {limit} cannot carry any data")
    return limit - _PDV_OVERHEAD


def fragment(
    context_id: int,
    is_command: bool,
    data: bytes | bytearray | memoryview,
    max_value: int,
    *,
    last: bool = True,
) -> list[bytes | memoryview]:
    """Buffers for ``writelines``: per PDV, a 12-byte P-DATA-TF header then a slice of ``data`` (no copy).

    Each value is at most ``max_value`` bytes. The final PDV has the "last fragment" bit set unless
    ``last`` is False (``data`` is one block of a longer data set). Empty data gives one empty PDV.
    The slices share ``data``'s buffer: it must stay unchanged until they are written.
    """
    if max_value < 1:
        raise ValueError(f"a PDV value of at most {max_value} bytes carries nothing")
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")  # slice by bytes, whatever the exporter's format
    total = len(view)
    if total <= max_value:
        return [pdata_header(context_id, is_command, last, total), view]
    buffers: list[bytes | memoryview] = []
    append = buffers.append
    full = pdata_header(context_id, is_command, False, max_value)  # every PDV but the final one
    final = total - (total - 1) % max_value - 1  # the final PDV's offset
    for offset in range(0, final, max_value):
        append(full)
        append(view[offset : offset + max_value])
    append(pdata_header(context_id, is_command, last, total - final))
    append(view[final:])
    return buffers


_PDATA_PAIR = struct.Struct(">BxIIBB")
_PDV_ITEM = struct.Struct(">IBB")


def message_pdvs(
    context_id: int, command: bytes, dataset: bytes | bytearray | memoryview | None, max_value: int
) -> list[bytes | memoryview]:
    """Buffers of a whole message: when its command and data set fit one P-DATA-TF of the peer's maximum,
    that one PDU with their two PDVs (a P-DATA-TF carries one or more PDVs, PS3.8 9.3.5); else the
    command's PDVs then the data set's (:func:`fragment`).

    A C-FIND answer or a small C-STORE is then one PDU, not two: DCMTK's findscu spent about 20 % more
    CPU reading an answer sent as two PDUs. PDVs of two messages never share a PDU: DCMTK 3.6.7's findscu
    crashed on the third answer of a PDU that packed several."""
    if dataset is None:
        return fragment(context_id, True, command, max_value)
    size = len(dataset)
    if len(command) + size + _PDV_OVERHEAD > max_value:
        return fragment(context_id, True, command, max_value) + fragment(
            context_id, False, dataset, max_value
        )
    head = _PDATA_PAIR.pack(
        P_DATA_TF, len(command) + size + 2 * _PDV_OVERHEAD, len(command) + 2, context_id, 3
    )
    data = dataset if isinstance(dataset, bytes) else memoryview(dataset).cast("B")
    return [head, command, _PDV_ITEM.pack(size + 2, context_id, 2), data]
