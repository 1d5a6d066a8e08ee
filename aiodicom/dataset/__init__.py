"""Sans-IO data set helpers for received instances.

- :class:`LeadingElements` scans a data set as it streams in, keeps the elements before Pixel Data and
  checks that the whole data set is well formed;
- :func:`extract` and :func:`tag_string` give their values as DICOM strings;
- :func:`apply_changes` merges a hook's changes, :func:`encode_leading` encodes the leading elements again;
- :func:`build_file_meta` writes the Part 10 header; :func:`validate_uid` checks a UID before it is a path.
"""

from __future__ import annotations

from .filemeta import build_file_meta
from .prefix import (
    DEFAULT_MAX_INFLATED_SIZE,
    DatasetParseError,
    LeadingElements,
    has_group_0002,
    strip_group_0002,
    syntax_encoding,
)
from .rewrite import apply_changes, encode_leading
from .validate import validate_uid
from .values import extract, raw_text, tag_string

__all__ = [
    "DEFAULT_MAX_INFLATED_SIZE",
    "DatasetParseError",
    "LeadingElements",
    "apply_changes",
    "build_file_meta",
    "encode_leading",
    "extract",
    "has_group_0002",
    "raw_text",
    "strip_group_0002",
    "syntax_encoding",
    "tag_string",
    "validate_uid",
]
