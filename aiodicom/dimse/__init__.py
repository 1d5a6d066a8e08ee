"""Sans-IO DIMSE: command sets, status codes, fragmentation into PDVs and reassembly."""

from aiodicom.dimse.assemble import CommandReceived, DatasetChunk, MessageAssembler
from aiodicom.dimse.commands import (
    DATASET_PRESENT,
    N_REQUESTS,
    NO_DATASET,
    Command,
    CommandField,
    InvalidCommand,
    Priority,
    decode_command,
    encode_command,
)
from aiodicom.dimse.fragment import DEFAULT_MAX_SEND_PDU, fragment, max_pdv_value, message_pdvs
from aiodicom.dimse.status import (
    N_SERVICE_STATUSES,
    SUB_OPERATIONS_COMPLETE_WITH_FAILURES,
    Status,
    StatusCategory,
    category,
    is_failure,
    is_pending,
    is_success,
    is_warning,
    status_name,
)

__all__ = [
    "DATASET_PRESENT",
    "DEFAULT_MAX_SEND_PDU",
    "NO_DATASET",
    "N_REQUESTS",
    "N_SERVICE_STATUSES",
    "SUB_OPERATIONS_COMPLETE_WITH_FAILURES",
    "Command",
    "CommandField",
    "CommandReceived",
    "DatasetChunk",
    "InvalidCommand",
    "MessageAssembler",
    "Priority",
    "Status",
    "StatusCategory",
    "category",
    "decode_command",
    "encode_command",
    "fragment",
    "is_failure",
    "is_pending",
    "is_success",
    "is_warning",
    "max_pdv_value",
    "message_pdvs",
    "status_name",
]
