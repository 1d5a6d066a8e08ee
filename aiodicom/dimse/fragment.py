"""DIMSE message -> PDVs: each P-DATA-TF carries one PDV whose value is at most the peer's maximum minus 6."""

from __future__ import annotations

from aiodicom.ul.pdu import pdata_header

#: The largest P-DATA-TF we send to a peer that advertises 0 ("unlimited"), so memory stays bounded.
DEFAULT_MAX_SEND_PDU = 262144

# A P-DATA-TF's length counts one PDV item: 4 bytes of item length, 2 of header, then the value.
_PDV_OVERHEAD = 6


def max_pdv_value(peer_max_pdu: int, max_send_pdu: int | None = None) -> int:
    """The largest PDV value to send: the peer's maximum PDU length (capped by ``max_send_pdu``) minus 6.

    A peer maximum of 0 means unlimited: ``max_send_pdu`` or :data:`DEFAULT_MAX_SEND_PDU` applies.
    """
    limit = peer_max_pdu or max_send_pdu or DEFAULT_MAX_SEND_PDU
    if max_send_pdu:
        limit = min(limit, max_send_pdu)
    if limit <= _PDV_OVERHEAD:
        raise ValueError(f"a maximum PDU length of {limit} cannot carry any data")
    return limit - _PDV_OVERHEAD


def fragment(
    context_id: int, is_command: bool, data: bytes | bytearray | memoryview, max_value: int
) -> list[bytes | memoryview]:
    """Buffers for ``writelines``: a 12-byte P-DATA-TF header then a slice of ``data`` (not copied), per PDV.

    The last PDV has the "last fragment" bit set; empty data gives one empty last PDV.
    """
    view = memoryview(data)
    total = len(view)
    if total <= max_value:
        return [pdata_header(context_id, is_command, True, total), view]
    buffers: list[bytes | memoryview] = []
    for offset in range(0, total, max_value):
        chunk = view[offset : offset + max_value]
        buffers.append(pdata_header(context_id, is_command, offset + max_value >= total, len(chunk)))
        buffers.append(chunk)
    return buffers
