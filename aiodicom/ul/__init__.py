"""The sans-IO DICOM upper layer (PS3.8): PDUs, the association state machine, negotiation.

Nothing in this package does I/O, reads a clock or imports asyncio.
"""

from aiodicom.ul.pdu import PDU, decode_pdu, encode_pdu

__all__ = ["PDU", "decode_pdu", "encode_pdu"]
