"""An out_dir laid out as StoreScp stores (``{Study}/{Series}/{SOP}.dcm``), holding studies A and B."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.interop.studies import Instance, QrData


def stored_path(out_dir: Path, inst: Instance) -> Path:
    return out_dir / inst.study_instance_uid / inst.series_instance_uid / f"{inst.sop_instance_uid}.dcm"


def store_like_storescp(out_dir: Path, data: QrData) -> None:
    for inst in data.all_instances():
        target = stored_path(out_dir, inst)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inst.path, target)


@pytest.fixture
def out_dir(tmp_path: Path, qr_data: QrData) -> Path:
    """A fresh copy of studies A and B in StoreScp's layout, without an index."""
    out = tmp_path / "archive"
    store_like_storescp(out, qr_data)
    return out
