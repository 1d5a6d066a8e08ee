"""Sans-IO data set helpers for received instances.

- :class:`LeadingElements` scans a data set as it streams in, keeps the elements before Pixel Data and
  checks that the whole data set is well formed;
- :func:`extract` and :func:`tag_string` give their values as DICOM strings;
- :func:`apply_changes` merges a hook's changes, :func:`encode_leading` encodes the leading elements again;
- :func:`build_file_meta` writes the Part 10 header; :func:`validate_uid` checks a UID before it is a path.

The names are re-exported lazily (PEP 562): importing one submodule (the header reader, the tag sets) does
not import the others, nor pydicom before it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "DEFAULT_MAX_INFLATED_SIZE": "prefix",
    "DatasetParseError": "prefix",
    "LeadingElements": "prefix",
    "apply_changes": "rewrite",
    "build_file_meta": "filemeta",
    "encode_leading": "rewrite",
    "extract": "values",
    "has_group_0002": "prefix",
    "raw_text": "values",
    "strip_group_0002": "prefix",
    "syntax_encoding": "prefix",
    "tag_string": "values",
    "validate_uid": "validate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers: the same names, imported eagerly
    from .filemeta import build_file_meta as build_file_meta
    from .prefix import (
        DEFAULT_MAX_INFLATED_SIZE as DEFAULT_MAX_INFLATED_SIZE,
        DatasetParseError as DatasetParseError,
        LeadingElements as LeadingElements,
        has_group_0002 as has_group_0002,
        strip_group_0002 as strip_group_0002,
        syntax_encoding as syntax_encoding,
    )
    from .rewrite import apply_changes as apply_changes, encode_leading as encode_leading
    from .validate import validate_uid as validate_uid
    from .values import extract as extract, raw_text as raw_text, tag_string as tag_string
