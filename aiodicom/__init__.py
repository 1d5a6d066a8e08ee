"""aiodicom: an asyncio-native DICOM networking framework.

The public surface is re-exported here; the layers underneath are :mod:`aiodicom.ul` (sans-IO upper layer),
:mod:`aiodicom.dimse` (sans-IO DIMSE) and :mod:`aiodicom.net` (asyncio transport, associations, server).
"""

from __future__ import annotations

__version__ = "0.1.0"

from aiodicom.dataset.tags import (
    CustomTag,
    combine_tags,
    create_custom_tag,
    get_available_tag_names,
    get_common_sop_classes,
    get_common_tag_sets,
    get_common_transfer_syntaxes,
)
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
from aiodicom.net.identity import IdentityKind, IdentityNotConfirmed, UserIdentity
from aiodicom.net.server import DicomServer
from aiodicom.scp.echo import EchoScp
from aiodicom.scp.store import ConnectionOpened, ServerStarted, StoreErrorEvent, StoreScp
from aiodicom.scu.echo import EchoResult, EchoScu
from aiodicom.scu.find import FindCompleted, FindResult, FindScu
from aiodicom.scu.get import GetScu
from aiodicom.scu.move import MoveScu
from aiodicom.scu.store import (
    FileError,
    FileSending,
    FileSent,
    SendResult,
    StoreScu,
    TransferCompleted,
    TransferStarted,
)
from aiodicom.services.query import QueryBuilder, QueryLevel, QueryModel
from aiodicom.services.relay import ForwardTarget
from aiodicom.services.retrieve import RetrieveCompleted, RetrieveOperation, RetrieveResult, SubOperation
from aiodicom.services.store import StoredInstance, StoreRejected
from aiodicom.services.studies import InstanceSummary, SeriesSummary, StudyCompleted
from aiodicom.services.survey import UnmatchableKey

__all__ = [
    "AbortReason",
    "AbortSource",
    "Address",
    "Association",
    "AssociationAborted",
    "AssociationRejected",
    "ConnectionOpened",
    "CustomTag",
    "DicomError",
    "DicomServer",
    "DimseError",
    "DimseMessage",
    "EchoResult",
    "EchoScp",
    "EchoScu",
    "FileError",
    "FileSending",
    "FileSent",
    "FindCompleted",
    "FindResult",
    "FindScu",
    "ForwardTarget",
    "GetScu",
    "IdentityKind",
    "IdentityNotConfirmed",
    "InstanceSummary",
    "ListenError",
    "MoveScu",
    "NoAcceptableContext",
    "PeerUnreachable",
    "ProtocolError",
    "QueryBuilder",
    "QueryLevel",
    "QueryModel",
    "RetrieveCompleted",
    "RetrieveOperation",
    "RetrieveResult",
    "SendResult",
    "SeriesSummary",
    "ServerStarted",
    "StorageError",
    "StoreErrorEvent",
    "StoreRejected",
    "StoreScp",
    "StoreScu",
    "StoredInstance",
    "StudyCompleted",
    "SubOperation",
    "TransferCompleted",
    "TransferStarted",
    "UnmatchableKey",
    "UsageError",
    "UserIdentity",
    "__version__",
    "combine_tags",
    "connect",
    "create_custom_tag",
    "get_available_tag_names",
    "get_common_sop_classes",
    "get_common_tag_sets",
    "get_common_transfer_syntaxes",
    "parse_address",
]
