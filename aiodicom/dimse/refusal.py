"""Requests that cannot be served on the presentation context they came on."""

from __future__ import annotations

from aiodicom.dimse.commands import Command, CommandField
from aiodicom.dimse.status import Status
from aiodicom.errors import DimseError

__all__ = ["wrong_context"]


def wrong_context(command: Command, abstract_syntax: str) -> DimseError | None:
    """A request whose SOP class is not its presentation context's abstract syntax cannot be served there
    (a C-STORE on the Verification context): it is answered 0x0122, SOP class not supported."""
    if not command.is_request or command.command_field == CommandField.C_CANCEL_RQ:
        return None
    sop_class = command.sop_class_uid  # the affected one; an N-GET/SET/ACTION/DELETE names the requested
    if sop_class == abstract_syntax:
        return None
    return DimseError(
        f"{command.name} for SOP class {sop_class!r} on a context of {abstract_syntax}",
        Status.SOP_CLASS_NOT_SUPPORTED,
    )
