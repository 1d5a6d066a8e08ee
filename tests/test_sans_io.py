"""The sans-IO core (aiodicom.ul, aiodicom.dimse) imports no asyncio, socket, threads or clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "aiodicom"
FORBIDDEN = {"asyncio", "socket", "anyio", "selectors", "ssl", "time", "threading", "trio"}
CORE = sorted([*PACKAGE.joinpath("ul").glob("*.py"), *PACKAGE.joinpath("dimse").glob("*.py")])


@pytest.mark.parametrize("path", CORE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_core_module_imports_no_io(path: Path) -> None:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
            if node.module.startswith("aiodicom.") and node.module.split(".")[1] not in (
                "ul",
                "dimse",
                "errors",
            ):
                pytest.fail(f"{path.name} imports {node.module}, outside the sans-IO core")
    assert not imported & FORBIDDEN


def test_importing_the_core_loads_no_asyncio() -> None:
    code = (
        "import sys, importlib.util, types\n"
        "pkg = types.ModuleType('aiodicom'); pkg.__path__ = [sys.argv[1]]; sys.modules['aiodicom'] = pkg\n"
        "import aiodicom.ul.connection, aiodicom.ul.negotiation, aiodicom.dimse\n"
        "print(','.join(m for m in ('asyncio', 'socket', 'selectors') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(PACKAGE)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
