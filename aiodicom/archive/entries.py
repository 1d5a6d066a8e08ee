"""What one file contributes to the archive's index: its header read up to Pixel Data, and the files under
an archive folder that are instances (hidden files and folders left out)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.errors import InvalidDicomError

from aiodicom.dataset.values import raw_text, tag_string
from aiodicom.services.query import UNIQUE_KEYS

from .keys import LEVEL_KEYS

log = logging.getLogger("aiodicom.archive")

#: Every tag the index reads from a file.
_TAGS = sorted(
    {int(t) for kws in LEVEL_KEYS.values() for kw in kws if (t := tag_for_keyword(kw)) is not None}
    | {0x00080005}
)


#: VRs whose values are ASCII whatever the character set: read from the stored bytes, without pydicom's
#: conversion (a third of the time of indexing a file).
_ASCII_VRS = frozenset(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"))
#: (keyword, tag, VR) of what each level's row keeps.
_FIELDS = {
    level: [(kw, int(tag), str(dictionary_VR(tag))) for kw in kws if (tag := tag_for_keyword(kw)) is not None]
    for level, kws in LEVEL_KEYS.items()
}


@dataclass(frozen=True, slots=True)
class Entry:
    """What one file contributes to the index."""

    path: str
    size: int
    mtime_ns: int
    transfer_syntax: str
    levels: dict[str, dict[str, str]]


def read_entry(path: str) -> Entry:
    """The index entry of the file at ``path`` (its header up to Pixel Data); ValueError when it is not a
    usable DICOM instance."""
    stat = os.stat(path)
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not readable as DICOM ({exc})") from exc
    levels: dict[str, dict[str, str]] = {}
    for level, fields in _FIELDS.items():
        values: dict[str, str] = {}
        for keyword, tag, vr in fields:
            if ds.get_item(tag) is None:
                continue
            if vr in _ASCII_VRS:  # no character set to apply: the stored bytes are the value
                text: str | None = raw_text(ds, tag).strip(" ")
            else:
                try:
                    text = tag_string(ds[tag])
                except (ValueError, LookupError, TypeError):
                    text = None
            if text is not None:
                values[keyword] = text
        levels[level] = values
    image = levels["IMAGE"]
    for keyword in ("SOPInstanceUID", "SOPClassUID"):
        if not image.get(keyword):
            raise ValueError(f"{path}: no {keyword}")
    for level in ("STUDY", "SERIES"):
        if not levels[level].get(UNIQUE_KEYS[level]):
            raise ValueError(f"{path}: no {UNIQUE_KEYS[level]}")
    levels["PATIENT"]["PatientID"] = levels["PATIENT"].get("PatientID", "").strip(" \x00")
    meta = getattr(ds, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    return Entry(path, stat.st_size, stat.st_mtime_ns, syntax, levels)


def walk_files(root: Path) -> Iterator[os.DirEntry[str]]:
    """Every ``*.dcm`` file under ``root``, hidden files and folders (``.incoming``, the index) left out."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("cannot read %s: %s", folder, exc)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif entry.name.endswith(".dcm") and entry.is_file(follow_symlinks=False):
                yield entry
