"""DIMSE status codes: categories and readable names (PS3.7 Annex C, PS3.4 B.2.3, C.4.1-C.4.3), and the
statuses each N-service may answer (PS3.7 10.1).

Warnings are 0x0001, 0x0107, 0x0116 and 0xB000-0xBFFF; 0xFF00/0xFF01 are pending, 0xFE00 cancel, 0x0000
success, and every other value a failure (PS3.7 C.1).
"""

from __future__ import annotations

from enum import Enum, IntEnum


class StatusCategory(Enum):
    SUCCESS = "Success"
    WARNING = "Warning"
    FAILURE = "Failure"
    CANCEL = "Cancel"
    PENDING = "Pending"


class Status(IntEnum):
    """Named status codes of the composite and normalized services; aliases share a value with another
    service's name."""

    SUCCESS = 0x0000
    # warnings
    REQUESTED_OPTIONAL_ATTRIBUTES_NOT_SUPPORTED = 0x0001
    ATTRIBUTE_LIST_ERROR = 0x0107
    ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116
    COERCION_OF_DATA_ELEMENTS = 0xB000  # C-STORE
    SUB_OPERATIONS_COMPLETE_WITH_FAILURES = 0xB000  # C-GET, C-MOVE: an alias of the above
    ELEMENTS_DISCARDED = 0xB006
    DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007
    # failures
    NO_SUCH_ATTRIBUTE = 0x0105
    INVALID_ATTRIBUTE_VALUE = 0x0106
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    NO_SUCH_SOP_INSTANCE = 0x0112
    NO_SUCH_EVENT_TYPE = 0x0113
    NO_SUCH_ARGUMENT = 0x0114
    INVALID_ARGUMENT_VALUE = 0x0115
    INVALID_OBJECT_INSTANCE = 0x0117
    NO_SUCH_SOP_CLASS = 0x0118
    CLASS_INSTANCE_CONFLICT = 0x0119
    MISSING_ATTRIBUTE = 0x0120
    MISSING_ATTRIBUTE_VALUE = 0x0121
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    NO_SUCH_ACTION = 0x0123
    NOT_AUTHORIZED = 0x0124
    DUPLICATE_INVOCATION = 0x0210
    UNRECOGNIZED_OPERATION = 0x0211
    MISTYPED_ARGUMENT = 0x0212
    RESOURCE_LIMITATION = 0x0213
    OUT_OF_RESOURCES = 0xA700
    OUT_OF_RESOURCES_MATCHES = 0xA701  # C-GET, C-MOVE: unable to calculate number of matches
    OUT_OF_RESOURCES_SUB_OPERATIONS = 0xA702  # C-GET, C-MOVE: unable to perform sub-operations
    MOVE_DESTINATION_UNKNOWN = 0xA801
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    DATASET_MISMATCH = 0xA900  # an alias of the above
    CANNOT_UNDERSTAND = 0xC000
    # cancel, pending
    CANCEL = 0xFE00
    PENDING = 0xFF00
    PENDING_WARNING = 0xFF01  # C-FIND: matches continue, some optional keys not supported


#: C-GET/C-MOVE final status: the sub-operations completed, one or more with failures or warnings.
SUB_OPERATIONS_COMPLETE_WITH_FAILURES = Status.SUB_OPERATIONS_COMPLETE_WITH_FAILURES

_NAMES: dict[int, str] = {
    0x0000: "Success",
    0x0001: "Warning: Requested optional Attributes are not supported",
    0x0105: "Failure: No such Attribute",
    0x0106: "Failure: Invalid Attribute value",
    0x0107: "Warning: Attribute list error",
    0x0110: "Failure: Processing failure",
    0x0111: "Failure: Duplicate SOP Instance",
    0x0112: "Failure: No such SOP Instance",
    0x0113: "Failure: No such event type",
    0x0114: "Failure: No such argument",
    0x0115: "Failure: Invalid argument value",
    0x0116: "Warning: Attribute value out of range",
    0x0117: "Failure: Invalid object instance",
    0x0118: "Failure: No such SOP Class",
    0x0119: "Failure: Class-Instance conflict",
    0x0120: "Failure: Missing Attribute",
    0x0121: "Failure: Missing Attribute value",
    0x0122: "Refused: SOP Class not supported",
    0x0123: "Failure: No such action",
    0x0124: "Refused: Not Authorized",
    0x0210: "Failure: Duplicate invocation",
    0x0211: "Failure: Unrecognized operation",
    0x0212: "Failure: Mistyped argument",
    0x0213: "Failure: Resource limitation",
    0xA701: "Refused: Out of Resources - Unable to calculate number of matches",
    0xA702: "Refused: Out of Resources - Unable to perform sub-operations",
    0xA801: "Refused: Move Destination unknown",
    0xB000: "Warning: Coercion of Data Elements",
    0xB006: "Warning: Elements Discarded",
    0xB007: "Warning: Data Set Does Not Match SOP Class",
    0xFE00: "Cancel",
    0xFF00: "Pending",
    0xFF01: "Pending: Optional Keys not supported",
}

# The statuses of PS3.7 Annex C that each N-service's response may carry (PS3.7 10.1.1.1.8, 10.1.2.1.9,
# 10.1.3.1.9, 10.1.4.1.10, 10.1.5.1.6, 10.1.6.1.7); a service class adds its own (PS3.4).
_N_COMMON = frozenset((0x0000, 0x0110, 0x0124, 0x0210, 0x0211, 0x0212, 0x0213))
N_SERVICE_STATUSES: dict[str, frozenset[int]] = {
    "N-EVENT-REPORT": (_N_COMMON - {0x0124}) | {0x0112, 0x0113, 0x0114, 0x0115, 0x0117, 0x0118, 0x0119},
    "N-GET": _N_COMMON | {0x0107, 0x0112, 0x0117, 0x0118, 0x0119, 0x0122},
    "N-SET": _N_COMMON | {0x0105, 0x0106, 0x0107, 0x0112, 0x0116, 0x0117, 0x0118, 0x0119, 0x0121, 0x0122},
    "N-ACTION": _N_COMMON | {0x0112, 0x0114, 0x0115, 0x0117, 0x0118, 0x0119, 0x0122, 0x0123},
    "N-CREATE": _N_COMMON | {0x0105, 0x0106, 0x0107, 0x0111, 0x0116, 0x0117, 0x0118, 0x0120, 0x0121, 0x0122},
    "N-DELETE": _N_COMMON | {0x0112, 0x0117, 0x0118, 0x0119, 0x0122},
}

# Wording that depends on the service (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4)
_QUERY_RETRIEVE_NAMES: dict[int, str] = {
    0xA900: "Error: Identifier Does Not Match SOP Class",
    0xFE00: "Cancel: Terminated due to a Cancel request",
}
_SERVICE_NAMES: dict[str, dict[int, str]] = {
    "C-FIND": {
        **_QUERY_RETRIEVE_NAMES,
        0xFF00: "Pending: Matches are continuing",
        0xFF01: "Pending: Matches are continuing - Optional Keys not supported",
    },
    "C-GET": {
        **_QUERY_RETRIEVE_NAMES,
        0xB000: "Warning: Sub-operations Complete - One or more Failures or Warnings",
        0xFF00: "Pending: Sub-operations are continuing",
    },
}
_SERVICE_NAMES["C-MOVE"] = _SERVICE_NAMES["C-GET"]

# Ranges named by their first value: 0xA7xx, 0xA9xx and 0xCxxx (PS3.4 Table B.2-1)
_RANGES: tuple[tuple[int, int, str], ...] = (
    (0xA700, 0xA7FF, "Refused: Out of Resources"),
    (0xA900, 0xA9FF, "Error: Data Set Does Not Match SOP Class"),
    (0xC000, 0xCFFF, "Failure: Cannot understand"),
)
_QUERY_RETRIEVE_CXXX = "Failure: Unable to process"


def category(status: int) -> StatusCategory:
    """The category of a status code (PS3.7 C.1)."""
    if status == 0x0000:
        return StatusCategory.SUCCESS
    if status == 0xFF00 or status == 0xFF01:
        return StatusCategory.PENDING
    if status == 0xFE00:
        return StatusCategory.CANCEL
    if 0xB000 <= status <= 0xBFFF or status in (0x0001, 0x0107, 0x0116):
        return StatusCategory.WARNING
    return StatusCategory.FAILURE


def status_name(status: int, service: str | None = None) -> str:
    """A readable name, e.g. ``Refused: Out of Resources``.

    ``service`` ("C-STORE", "C-FIND", "C-GET", "C-MOVE"; a command name such as "C-MOVE-RSP" works too)
    picks the service's wording where it differs, e.g. 0xB000 for C-GET/C-MOVE.
    """
    if service is not None:
        service = service.upper().removesuffix("-RSP").removesuffix("-RQ")
        specific = _SERVICE_NAMES.get(service)
        if specific is not None:
            name = specific.get(status)
            if name is not None:
                return name
            if 0xC000 <= status <= 0xCFFF:
                return _QUERY_RETRIEVE_CXXX
    name = _NAMES.get(status)
    if name is not None:
        return name
    for low, high, range_name in _RANGES:
        if low <= status <= high:
            return range_name
    return f"Unknown status 0x{status:04X} ({category(status).value.lower()})"


def is_success(status: int) -> bool:
    return status == 0x0000


def is_warning(status: int) -> bool:
    return category(status) is StatusCategory.WARNING


def is_failure(status: int) -> bool:
    return category(status) is StatusCategory.FAILURE


def is_pending(status: int) -> bool:
    return status == 0xFF00 or status == 0xFF01
