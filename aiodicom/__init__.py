"""aiodicom: an asyncio-native DICOM networking framework.

The public surface is re-exported here, lazily (PEP 562): a name's module is imported on first use, so
``import aiodicom`` (and ``aiodicom --version``) loads neither pydicom nor numpy, and ``import aiodicom.ul``
or ``aiodicom.dimse`` (the sans-IO core) loads no asyncio either. The layers, bottom up: :mod:`aiodicom.ul`
(upper layer), :mod:`aiodicom.dimse`, :mod:`aiodicom.dataset`, :mod:`aiodicom.storage`, :mod:`aiodicom.net`
(transport, associations, server), :mod:`aiodicom.services`, and the user-facing :mod:`aiodicom.scu`,
:mod:`aiodicom.scp` and :mod:`aiodicom.cli`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AbortReason": "aiodicom.errors",
    "Archive": "aiodicom.archive",
    "AbortSource": "aiodicom.errors",
    "Address": "aiodicom.net.address",
    "Association": "aiodicom.net.association",
    "AssociationAborted": "aiodicom.errors",
    "AssociationOptions": "aiodicom.net.options",
    "AssociationRejected": "aiodicom.errors",
    "AssociationReleased": "aiodicom.errors",
    "ConnectionOpened": "aiodicom.scp.store",
    "CommitFailure": "aiodicom.services.commitment",
    "CommitReference": "aiodicom.services.commitment",
    "CommitResult": "aiodicom.services.commitment",
    "CommitmentReceiver": "aiodicom.scu.commitment",
    "CommitmentRefused": "aiodicom.scu.commitment",
    "CustomTag": "aiodicom.dataset.tags",
    "DatasetParseError": "aiodicom.errors",
    "DicomError": "aiodicom.errors",
    "DicomServer": "aiodicom.net.server",
    "DimseError": "aiodicom.errors",
    "DimseMessage": "aiodicom.net.association",
    "EchoResult": "aiodicom.scu.echo",
    "EchoScp": "aiodicom.scp.echo",
    "EchoScu": "aiodicom.scu.echo",
    "FileError": "aiodicom.scu.store",
    "FileSending": "aiodicom.scu.store",
    "FileSent": "aiodicom.scu.store",
    "FindCompleted": "aiodicom.services.find",
    "FindResult": "aiodicom.services.find",
    "FindScu": "aiodicom.scu.find",
    "ForwardTarget": "aiodicom.services.relay",
    "GetScu": "aiodicom.scu.get",
    "IdentityKind": "aiodicom.net.identity",
    "IdentityNotConfirmed": "aiodicom.net.identity",
    "InstanceSummary": "aiodicom.services.studies",
    "InvalidCommand": "aiodicom.errors",
    "ListenError": "aiodicom.errors",
    "MoveScu": "aiodicom.scu.move",
    "MppsEvent": "aiodicom.services.mpps",
    "MppsRefused": "aiodicom.scu.mpps",
    "MppsResult": "aiodicom.scu.mpps",
    "MppsScu": "aiodicom.scu.mpps",
    "NRequest": "aiodicom.services.nservices",
    "NResponse": "aiodicom.services.nservices",
    "NResult": "aiodicom.services.nservices",
    "NServiceError": "aiodicom.errors",
    "NoAcceptableContext": "aiodicom.errors",
    "PeerUnreachable": "aiodicom.errors",
    "ProtocolError": "aiodicom.errors",
    "QueryBuilder": "aiodicom.services.query",
    "QueryContext": "aiodicom.services.serve_common",
    "QueryLevel": "aiodicom.services.query",
    "QueryModel": "aiodicom.services.query",
    "QueryRejected": "aiodicom.errors",
    "QueryRetrieveScp": "aiodicom.scp.qr",
    "RemoteAe": "aiodicom.services.remote",
    "RetrieveCompleted": "aiodicom.services.retrieve",
    "RetrieveOperation": "aiodicom.services.retrieve",
    "RetrieveResult": "aiodicom.services.retrieve",
    "SendResult": "aiodicom.scu.store",
    "SeriesSummary": "aiodicom.services.studies",
    "ServerStarted": "aiodicom.scp.store",
    "StorageCommitmentScu": "aiodicom.scu.commitment",
    "StorageError": "aiodicom.errors",
    "StoreErrorEvent": "aiodicom.scp.store",
    "StoreRejected": "aiodicom.services.store",
    "StoreScp": "aiodicom.scp.store",
    "StoreScu": "aiodicom.scu.store",
    "StoredInstance": "aiodicom.services.store",
    "StoredKey": "aiodicom.services.serve_common",
    "StudyCompleted": "aiodicom.services.studies",
    "SubOperation": "aiodicom.services.retrieve",
    "TlsError": "aiodicom.errors",
    "Transcoder": "aiodicom.services.transcode",
    "TransferCompleted": "aiodicom.scu.store",
    "TransferStarted": "aiodicom.scu.store",
    "UnmatchableKey": "aiodicom.services.survey",
    "UsageError": "aiodicom.errors",
    "UserIdentity": "aiodicom.net.identity",
    "combine_tags": "aiodicom.dataset.tags",
    "connect": "aiodicom.net.client",
    "create_custom_tag": "aiodicom.dataset.tags",
    "get_available_tag_names": "aiodicom.dataset.tags",
    "get_common_sop_classes": "aiodicom.dataset.tags",
    "get_common_tag_sets": "aiodicom.dataset.tags",
    "get_common_transfer_syntaxes": "aiodicom.dataset.tags",
    "parse_address": "aiodicom.net.address",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aiodicom' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from aiodicom.archive import (
        Archive as Archive,
    )
    from aiodicom.dataset.tags import (
        CustomTag as CustomTag,
        combine_tags as combine_tags,
        create_custom_tag as create_custom_tag,
        get_available_tag_names as get_available_tag_names,
        get_common_sop_classes as get_common_sop_classes,
        get_common_tag_sets as get_common_tag_sets,
        get_common_transfer_syntaxes as get_common_transfer_syntaxes,
    )
    from aiodicom.errors import (
        AbortReason as AbortReason,
        AbortSource as AbortSource,
        AssociationAborted as AssociationAborted,
        AssociationRejected as AssociationRejected,
        AssociationReleased as AssociationReleased,
        DatasetParseError as DatasetParseError,
        DicomError as DicomError,
        DimseError as DimseError,
        InvalidCommand as InvalidCommand,
        ListenError as ListenError,
        NoAcceptableContext as NoAcceptableContext,
        NServiceError as NServiceError,
        PeerUnreachable as PeerUnreachable,
        ProtocolError as ProtocolError,
        QueryRejected as QueryRejected,
        StorageError as StorageError,
        TlsError as TlsError,
        UsageError as UsageError,
    )
    from aiodicom.net.address import (
        Address as Address,
        parse_address as parse_address,
    )
    from aiodicom.net.association import (
        Association as Association,
        DimseMessage as DimseMessage,
    )
    from aiodicom.net.client import (
        connect as connect,
    )
    from aiodicom.net.identity import (
        IdentityKind as IdentityKind,
        IdentityNotConfirmed as IdentityNotConfirmed,
        UserIdentity as UserIdentity,
    )
    from aiodicom.net.options import (
        AssociationOptions as AssociationOptions,
    )
    from aiodicom.net.server import (
        DicomServer as DicomServer,
    )
    from aiodicom.scp.echo import (
        EchoScp as EchoScp,
    )
    from aiodicom.scp.qr import (
        QueryRetrieveScp as QueryRetrieveScp,
    )
    from aiodicom.scp.store import (
        ConnectionOpened as ConnectionOpened,
        ServerStarted as ServerStarted,
        StoreErrorEvent as StoreErrorEvent,
        StoreScp as StoreScp,
    )
    from aiodicom.scu.commitment import (
        CommitmentReceiver as CommitmentReceiver,
        CommitmentRefused as CommitmentRefused,
        StorageCommitmentScu as StorageCommitmentScu,
    )
    from aiodicom.scu.echo import (
        EchoResult as EchoResult,
        EchoScu as EchoScu,
    )
    from aiodicom.scu.find import (
        FindScu as FindScu,
    )
    from aiodicom.scu.get import (
        GetScu as GetScu,
    )
    from aiodicom.scu.move import (
        MoveScu as MoveScu,
    )
    from aiodicom.scu.mpps import (
        MppsRefused as MppsRefused,
        MppsResult as MppsResult,
        MppsScu as MppsScu,
    )
    from aiodicom.scu.store import (
        FileError as FileError,
        FileSending as FileSending,
        FileSent as FileSent,
        SendResult as SendResult,
        StoreScu as StoreScu,
        TransferCompleted as TransferCompleted,
        TransferStarted as TransferStarted,
    )
    from aiodicom.services.commitment import (
        CommitFailure as CommitFailure,
        CommitReference as CommitReference,
        CommitResult as CommitResult,
    )
    from aiodicom.services.find import (
        FindCompleted as FindCompleted,
        FindResult as FindResult,
    )
    from aiodicom.services.mpps import (
        MppsEvent as MppsEvent,
    )
    from aiodicom.services.nservices import (
        NRequest as NRequest,
        NResponse as NResponse,
        NResult as NResult,
    )
    from aiodicom.services.query import (
        QueryBuilder as QueryBuilder,
        QueryLevel as QueryLevel,
        QueryModel as QueryModel,
    )
    from aiodicom.services.relay import (
        ForwardTarget as ForwardTarget,
    )
    from aiodicom.services.remote import (
        RemoteAe as RemoteAe,
    )
    from aiodicom.services.retrieve import (
        RetrieveCompleted as RetrieveCompleted,
        RetrieveOperation as RetrieveOperation,
        RetrieveResult as RetrieveResult,
        SubOperation as SubOperation,
    )
    from aiodicom.services.serve_common import (
        QueryContext as QueryContext,
        StoredKey as StoredKey,
    )
    from aiodicom.services.store import (
        StoredInstance as StoredInstance,
        StoreRejected as StoreRejected,
    )
    from aiodicom.services.studies import (
        InstanceSummary as InstanceSummary,
        SeriesSummary as SeriesSummary,
        StudyCompleted as StudyCompleted,
    )
    from aiodicom.services.survey import (
        UnmatchableKey as UnmatchableKey,
    )
    from aiodicom.services.transcode import (
        Transcoder as Transcoder,
    )
