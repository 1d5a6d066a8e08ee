"""aiodicom: an asyncio-native DICOM networking framework.

The public surface is re-exported here; the layers underneath are :mod:`aiodicom.ul` (sans-IO upper layer),
:mod:`aiodicom.dimse` (sans-IO DIMSE) and :mod:`aiodicom.net` (asyncio transport, associations, server).
"""

from __future__ import annotations

__version__ = "0.1.0"

from aiodicom.errors import (
    AbortReason,
    AbortSource,
    AssociationAborted,
    AssociationRejected,
    DicomError,
    DimseError,
    ListenError,
    NoAcceptableContext,
    PeerUnreachable,
    ProtocolError,
    StorageError,
    UsageError,
)
from aiodicom.net.address import Address, parse_address
from aiodicom.net.association import Association, DimseMessage
from aiodicom.net.client import connect
from aiodicom.net.server import DicomServer
from aiodicom.scp import EchoScp
from aiodicom.scu import EchoResult, EchoScu

__all__ = [
    "AbortReason",
    "AbortSource",
    "Address",
    "Association",
    "AssociationAborted",
    "AssociationRejected",
    "DicomError",
    "DicomServer",
    "DimseError",
    "DimseMessage",
    "EchoResult",
    "EchoScp",
    "EchoScu",
    "ListenError",
    "NoAcceptableContext",
    "PeerUnreachable",
    "ProtocolError",
    "StorageError",
    "UsageError",
    "__version__",
    "connect",
    "parse_address",
]
