"""DIMSE status codes and their categories (PS3.7 Annex C, PS3.4 B.2.3, C.4).

Warnings are 0x0001, 0xBxxx, 0x0107 and 0x0116: they count as warnings, not failures.
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
    """Named status codes used by the composite services."""

    SUCCESS = 0x0000
    WARNING_REQUESTED_OPTIONAL_ATTRIBUTES_NOT_SUPPORTED = 0x0001
    ATTRIBUTE_LIST_ERROR = 0x0107
    ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116
    COERCION_OF_DATA_ELEMENTS = 0xB000  # C-STORE; for C-GET/C-MOVE: sub-operations complete with failures
    ELEMENTS_DISCARDED = 0xB006
    DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007
    OUT_OF_RESOURCES = 0xA700
    OUT_OF_RESOURCES_MATCHES = 0xA701
    OUT_OF_RESOURCES_SUB_OPERATIONS = 0xA702
    MOVE_DESTINATION_UNKNOWN = 0xA801
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    INVALID_ATTRIBUTE_VALUE = 0x0106
    PROCESSING_FAILURE = 0x0110
    NO_SUCH_SOP_INSTANCE = 0x0112
    INVALID_OBJECT_INSTANCE = 0x0117
    NO_SUCH_SOP_CLASS = 0x0118
    CLASS_INSTANCE_CONFLICT = 0x0119
    MISSING_ATTRIBUTE = 0x0120
    MISSING_ATTRIBUTE_VALUE = 0x0121
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    NOT_AUTHORIZED = 0x0124
    DUPLICATE_INVOCATION = 0x0210
    UNRECOGNIZED_OPERATION = 0x0211
    MISTYPED_ARGUMENT = 0x0212
    RESOURCE_LIMITATION = 0x0213
    CANCEL = 0xFE00
    PENDING = 0xFF00
    PENDING_WARNING = 0xFF01


#: C-GET/C-MOVE final status: the sub-operations completed, some with failures (a warning).
SUB_OPERATIONS_COMPLETE_WITH_FAILURES = 0xB000

_NAMES: dict[int, str] = {
    0x0000: "Success",
    0x0001: "Warning: Requested optional attributes not supported",
    0x0106: "Failure: Invalid attribute value",
    0x0107: "Warning: Attribute list error",
    0x0110: "Failure: Processing failure",
    0x0112: "Failure: No such SOP instance",
    0x0116: "Warning: Attribute value out of range",
    0x0117: "Failure: Invalid object instance",
    0x0118: "Failure: No such SOP class",
    0x0119: "Failure: Class-instance conflict",
    0x0120: "Failure: Missing attribute",
    0x0121: "Failure: Missing attribute value",
    0x0122: "Refused: SOP class not supported",
    0x0124: "Refused: Not authorized",
    0x0210: "Failure: Duplicate invocation",
    0x0211: "Failure: Unrecognized operation",
    0x0212: "Failure: Mistyped argument",
    0x0213: "Failure: Resource limitation",
    0xA700: "Refused: Out of resources",
    0xA701: "Refused: Out of resources (unable to calculate number of matches)",
    0xA702: "Refused: Out of resources (unable to perform sub-operations)",
    0xA801: "Refused: Move destination unknown",
    0xA900: "Error: Data set does not match SOP class",
    0xB000: "Warning: Coercion of data elements",
    0xB006: "Warning: Elements discarded",
    0xB007: "Warning: Data set does not match SOP class",
    0xC000: "Error: Cannot understand",
    0xFE00: "Cancel",
    0xFF00: "Pending",
    0xFF01: "Pending (optional keys not supported)",
}
_RETRIEVE_NAMES = {0xB000: "Warning: Sub-operations complete, one or more failures"}


def category(status: int) -> StatusCategory:
    """The category of a status code."""
    if status == 0x0000:
        return StatusCategory.SUCCESS
    if status in (0xFF00, 0xFF01):
        return StatusCategory.PENDING
    if status == 0xFE00:
        return StatusCategory.CANCEL
    if status in (0x0001, 0x0107, 0x0116) or 0xB000 <= status <= 0xBFFF:
        return StatusCategory.WARNING
    return StatusCategory.FAILURE


def status_name(status: int, service: str | None = None) -> str:
    """A readable name, e.g. ``Refused: Out of resources``; ``service`` ("C-GET"...) picks the wording."""
    if service in ("C-GET", "C-MOVE") and status in _RETRIEVE_NAMES:
        return _RETRIEVE_NAMES[status]
    name = _NAMES.get(status)
    if name is not None:
        return name
    kind = category(status)
    if kind is StatusCategory.FAILURE:
        if 0xA700 <= status <= 0xA7FF:
            return f"Refused: Out of resources (0x{status:04X})"
        if 0xA900 <= status <= 0xA9FF:
            return f"Error: Data set does not match SOP class (0x{status:04X})"
        if 0xC000 <= status <= 0xCFFF:
            return f"Error: Cannot understand (0x{status:04X})"
    return f"{kind.value}: status 0x{status:04X}"


def is_success(status: int) -> bool:
    return status == 0x0000


def is_warning(status: int) -> bool:
    return category(status) is StatusCategory.WARNING


def is_failure(status: int) -> bool:
    return category(status) is StatusCategory.FAILURE


def is_pending(status: int) -> bool:
    return category(status) is StatusCategory.PENDING
