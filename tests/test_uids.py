"""The static table of DICOM transfer syntaxes against pydicom's registry."""

from __future__ import annotations

import subprocess
import sys

from pydicom._uid_dict import UID_dictionary

from aiodicom.uids import DEFLATED_TRANSFER_SYNTAXES, TRANSFER_SYNTAXES, is_dicom_transfer_syntax

#: Defined by DICOM in 2024, after pydicom 3.0's registry was made.
NEWER_THAN_PYDICOM_3_0 = {
    "1.2.840.10008.1.2.4.110",
    "1.2.840.10008.1.2.4.111",
    "1.2.840.10008.1.2.4.112",
    "1.2.840.10008.1.2.8.1",
}


def pydicom_transfer_syntaxes() -> dict[str, str]:
    """pydicom's own registry, read in a fresh interpreter: other libraries (pynetdicom) add entries to it
    at import time."""
    code = (
        "from pydicom._uid_dict import UID_dictionary as d; "
        "print('\\n'.join(f'{k}\\t{v[0]}' for k, v in d.items() if v[1] == 'Transfer Syntax'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return dict(line.split("\t") for line in out.splitlines())


def test_the_table_is_pydicom_registry_and_the_newer_syntaxes() -> None:
    registry = pydicom_transfer_syntaxes()
    assert registry  # the registry was read
    assert {uid: TRANSFER_SYNTAXES[uid] for uid in registry} == registry
    assert set(TRANSFER_SYNTAXES) - set(registry) <= NEWER_THAN_PYDICOM_3_0
    for uid in NEWER_THAN_PYDICOM_3_0 & set(UID_dictionary):  # where some library told pydicom of them
        assert UID_dictionary[uid][1] == "Transfer Syntax"


def test_private_syntaxes_are_not_dicom_ones() -> None:
    assert is_dicom_transfer_syntax("1.2.840.10008.1.2.4.50")
    assert not is_dicom_transfer_syntax("1.2.3.4.5.6")
    assert not is_dicom_transfer_syntax("1.2.840.113619.5.2")  # GE's private implicit big endian
    assert set(TRANSFER_SYNTAXES) >= DEFLATED_TRANSFER_SYNTAXES


def test_uids_imports_no_pydicom() -> None:
    # the module on its own (the sans-IO upper layer reads it): loaded from its file, not through aiodicom
    code = (
        "import importlib.util, sys, aiodicom.uids as _; "
        "spec = importlib.util.spec_from_file_location('uids_alone', _.__file__); "
        "[sys.modules.pop(m) for m in list(sys.modules) if m.startswith(('pydicom', 'aiodicom'))]; "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "print('pydicom' in sys.modules, len(module.TRANSFER_SYNTAXES) > 60)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False True"
