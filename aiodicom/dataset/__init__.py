"""Sans-IO data set helpers for received instances.

- :class:`LeadingElements` scans a data set as it streams in and keeps the elements before Pixel Data;
- :func:`extract` and :func:`tag_string` give their values as DICOM strings;
- :func:`apply_changes` merges a hook's changes, :func:`encode_leading` encodes the leading elements again;
- :func:`build_file_meta` writes the Part 10 header; :func:`validate_uid` checks a UID before it is a path.
"""

from __future__ import annotations

from .filemeta import build_file_meta
from .prefix import (
    DatasetParseError,
    LeadingElements,
    copy_rest,
    has_group_0002,
    read_leading,
    read_leading_from,
    strip_group_0002,
    syntax_encoding,
)
from .rewrite import apply_changes, encode_leading
from .uids import validate_uid
from .values import extract, raw_text, tag_string

__all__ = [
    "DatasetParseError",
    "LeadingElements",
    "apply_changes",
    "build_file_meta",
    "copy_rest",
    "encode_leading",
    "extract",
    "has_group_0002",
    "raw_text",
    "read_leading",
    "read_leading_from",
    "strip_group_0002",
    "syntax_encoding",
    "tag_string",
    "validate_uid",
]
