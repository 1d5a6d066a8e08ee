"""Tests of the integration examples in ``examples/``: real DICOM traffic over loopback, no mocks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from aiodicom.cli.demo_run import build_study

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/{name}.py`` (the folder is not a package: it holds scripts to copy)."""
    module_name = f"aiodicom_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def write_study(folder: Path, count: int) -> tuple[str, set[str]]:
    """A synthetic study of ``count`` instances as files in ``folder``: (its Study Instance UID, the SOP
    Instance UIDs)."""
    folder.mkdir(parents=True, exist_ok=True)
    study = build_study(count)
    for instance in study.instances:
        (folder / instance.name).write_bytes(instance.data)
    return study.study_instance_uid, {i.sop_instance_uid for i in study.instances}


def stored_uids(out_dir: Path) -> set[str]:
    """The SOP Instance UIDs stored under ``out_dir`` (``study/series/sop.dcm``)."""
    return {p.stem for p in out_dir.glob("*/*/*.dcm")}
