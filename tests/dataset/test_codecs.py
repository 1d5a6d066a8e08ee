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


def test_versions_read_beside_the_module_are_the_installed_ones() -> None:
    """The folder-name reading gives what importlib.metadata gives, and the minimum is compared."""
    import importlib.util
    import os
    from importlib import metadata

    from aiodicom.dataset.codecs import _dist_info_version, _version_at_least

    for distribution, module in (
        ("pyjpegls", "jpeg_ls"),
        ("pylibjpeg", "pylibjpeg"),
        ("pylibjpeg-openjpeg", "openjpeg"),
    ):
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        folder = os.path.dirname(os.path.dirname(spec.origin))
        assert _dist_info_version(distribution, folder) == metadata.version(distribution)
        major = int(metadata.version(distribution).split(".")[0])
        assert _version_at_least(distribution, module, (major,))
        assert not _version_at_least(distribution, module, (major + 1,))
    assert not _version_at_least("no-such-distribution", "no_such_module_here", (1,))
