"""UID checks: a UID becomes part of a path or an object key, so it is validated first."""

from __future__ import annotations

import logging
import re

__all__ = ["validate_uid"]

log = logging.getLogger("aiodicom.dataset")

_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_LEADING_ZERO = re.compile(r"(?:^|\.)0[0-9]")  # one regex: this runs several times per received instance
#: UIDs found valid lately (a study's and series' UIDs and the SOP classes come back with every instance),
#: by the value as given; emptied when full.
_KNOWN: dict[str, str] = {}
_KNOWN_MAX = 4096


def validate_uid(value: str, what: str = "UID") -> str:
    """``value`` with trailing NUL and space padding stripped, if it is a UID (PS3.5 9.1).

    Digits and dots only (``^[0-9]+(\\.[0-9]+)*$``), at most 64 characters; anything else (empty, ``..``,
    letters, ``/``) raises ValueError naming ``what``. A component with a leading zero breaks PS3.5 but
    real peers send them: it is accepted with a warning on the ``aiodicom.dataset`` logger.
    """
    known = _KNOWN.get(value) if type(value) is str else None
    if known is not None:
        return known
    uid = str(value).rstrip("\x00 ")
    if not uid or len(uid) > 64 or not _UID.fullmatch(uid):
        shown = uid if len(uid) <= 80 else uid[:77] + "..."
        raise ValueError(f"invalid {what} {shown!r}: digits and dots, at most 64 characters")
    if _LEADING_ZERO.search(uid):
        log.warning("%s %s has a component with a leading zero", what, uid)  # each time: not kept
    elif type(value) is str:
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        _KNOWN[value] = uid
    return uid
