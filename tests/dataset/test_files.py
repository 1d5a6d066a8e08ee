"""Reading an instance's header: the fast path agrees with pydicom on every test file it handles."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from aiodicom.dataset import files
from aiodicom.dataset.files import read_header

PATHS = [p for p in get_testdata_files() if Path(p).is_file()]


def full_parse(path: str) -> files.InstanceHeader | Exception:
    original = files._fast_header
    files._fast_header = lambda head: None
    try:
        return read_header(path)
    except Exception as exc:
        return exc
    finally:
        files._fast_header = original


def test_fast_path_matches_the_full_parser() -> None:
    compared = 0
    for path in PATHS:
        with open(path, "rb") as fp:
            fast = files._fast_header(fp.read(16384))
        if fast is not None:
            assert fast == full_parse(path), path
            compared += 1
    assert compared > 100


@pytest.mark.parametrize("content", [b"", b"hello world, not DICOM at all", bytes(128) + b"DICM"])
def test_not_dicom_is_a_value_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "file"
    path.write_bytes(content)
    with pytest.raises((ValueError, EOFError)):
        read_header(path)
