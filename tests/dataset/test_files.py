"""Reading an instance's header: the fast path agrees with pydicom on every test file it handles."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_ordinary_files_are_read_without_pydicom() -> None:
    """Little endian files (the usual ones, in any compression) give the same header without pydicom, and
    pydicom and numpy are not imported for them: a sender of such files never loads them."""
    plain = []
    for path in PATHS:
        with open(path, "rb") as fp:
            if files._fast_header(fp.read(16384)) is not None:
                plain.append(path)
    expected = [list(vars_of(read_header(p))) for p in plain]
    code = (
        "import json, sys; from aiodicom.dataset.files import read_header;"
        "h = [read_header(p) for p in sys.argv[1:]];"
        "print(json.dumps([[[x.sop_class_uid, x.sop_instance_uid, x.transfer_syntax_uid, x.data_offset,"
        " x.has_file_meta] for x in h], 'pydicom' in sys.modules, 'numpy' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *plain], capture_output=True, text=True, check=True, timeout=60
    )
    headers, pydicom_loaded, numpy_loaded = json.loads(out.stdout)
    assert headers == expected and len(plain) > 100
    assert not pydicom_loaded and not numpy_loaded


def vars_of(header: files.InstanceHeader) -> tuple[object, ...]:
    h = header
    return (h.sop_class_uid, h.sop_instance_uid, h.transfer_syntax_uid, h.data_offset, h.has_file_meta)
