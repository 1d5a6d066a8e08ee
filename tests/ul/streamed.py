"""P-DATA-TF values as the sans-IO connection streams them out: pieces, joined back for comparison."""

from __future__ import annotations

from aiodicom.ul.connection import ConnectionEvent, PDVData
from aiodicom.ul.pdu import PDataTF


def kept(events: list[ConnectionEvent]) -> list[ConnectionEvent]:
    """The events with the PDV pieces copied: their views are valid only until the next receive."""
    return [
        PDVData(e.context_id, e.is_command, e.is_last, memoryview(bytes(e.data)))
        if isinstance(e, PDVData)
        else e
        for e in events
    ]


def pdvs(events: list[ConnectionEvent]) -> list[object]:
    """Events with the streamed PDV pieces joined: ``(context, command?, last?, bytes)`` per run of
    pieces of one kind (the pieces of a PDV come in order; ``is_last`` ends a message)."""
    out: list[object] = []
    for event in events:
        if not isinstance(event, PDVData):
            out.append(event)
            continue
        key = (event.context_id, event.is_command)
        prev = out[-1] if out else None
        if isinstance(prev, list) and tuple(prev[:2]) == key and not prev[2]:
            prev[2] = event.is_last
            prev[3] += bytes(event.data)
        else:
            out.append([*key, event.is_last, bytes(event.data)])
    return [tuple(e) if isinstance(e, list) else e for e in out]


def expected_pieces(pdu: PDataTF) -> list[object]:
    """What :func:`pdvs` gives for the events of receiving ``pdu``."""
    return pdvs([PDVData(p.context_id, p.is_command, p.is_last, memoryview(bytes(p.data))) for p in pdu.pdvs])
