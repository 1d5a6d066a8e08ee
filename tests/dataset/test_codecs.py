"""What the sender proposes before converting anything: the codecs it can encode with, found without
importing them."""

from __future__ import annotations

import json
import subprocess
import sys

from aiodicom.dataset.codecs import FALLBACK_ORDER, encodable, encoder_installed


def test_installed_encoders_are_the_ones_pydicom_can_use() -> None:
    """From the installed distributions, the same answer as pydicom's plugins give for every lossless
    fallback target, and in a fresh interpreter without importing pydicom, numpy or a codec."""
    expected = {uid: encodable(uid) for uid in FALLBACK_ORDER}
    assert {uid: encoder_installed(uid) for uid in FALLBACK_ORDER} == expected
    code = (
        "import json, sys; from aiodicom.dataset.codecs import FALLBACK_ORDER, encoder_installed as e;"
        "found = {u: e(u) for u in FALLBACK_ORDER};"
        "heavy = [m for m in ('pydicom', 'numpy', 'jpeg_ls', 'openjpeg', 'imagecodecs') if m in sys.modules];"
        "print(json.dumps([found, heavy]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    found, heavy = json.loads(out.stdout)
    assert found == expected and heavy == []
    assert sum(expected.values()) > 4  # the codecs extra is installed here: compressed targets are found
