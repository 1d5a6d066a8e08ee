"""The sans-IO core (aiodicom.ul, aiodicom.dimse) does no I/O: it imports no asyncio, socket, thread or clock.

Two checks. Every module of the core (globbed, so that new modules are covered), and every aiodicom module it
imports in turn, is read with ``ast``; and the core is imported in a fresh interpreter to see what it really
loads. ``aiodicom/__init__.py`` is left out of both: it re-exports the asyncio layers on purpose.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "aiodicom"
CORE_PACKAGES = ("ul", "dimse")
FORBIDDEN = {
    "asyncio",
    "socket",
    "anyio",
    "selectors",
    "ssl",
    "time",  # the clock is passed in
    "threading",
    "_thread",
    "concurrent",
    "multiprocessing",
    "subprocess",
    "trio",
    "uvloop",
}
CORE = sorted(path for name in CORE_PACKAGES for path in PACKAGE.joinpath(name).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_path(name: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports: relative imports resolved, ``from a import b`` as both
    ``a`` and ``a.b`` (b may be a module), ``importlib.import_module("x")`` and ``__import__("x")`` too."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            names.add(node.args[0].value)
    return names


def _reachable(path: Path) -> dict[Path, set[str]]:
    """``path`` and every aiodicom module it imports, directly or not, with what each imports.

    Importing ``aiodicom.a.b`` runs ``aiodicom/a/__init__.py`` too; ``aiodicom/__init__.py`` is left out."""
    seen: dict[Path, set[str]] = {}
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen[current] = _imports(current)
        for name in seen[current]:
            parts = name.split(".")
            if parts[0] != "aiodicom":
                continue
            for depth in range(2, len(parts) + 1):  # the module and the packages above it
                target = _module_path(".".join(parts[:depth]))
                if target is not None:
                    todo.append(target)
    return seen


def test_the_core_is_found() -> None:
    names = {_module_name(path) for path in CORE}
    assert {"aiodicom.ul", "aiodicom.ul.pdu", "aiodicom.ul.items", "aiodicom.dimse"} <= names


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_imports_no_io(path: Path) -> None:
    offences = {
        str(module.relative_to(PACKAGE)): sorted(name for name in names if name.split(".")[0] in FORBIDDEN)
        for module, names in _reachable(path).items()
    }
    assert {module: names for module, names in offences.items() if names} == {}


def test_the_ast_check_sees_what_it_should() -> None:
    sample = PACKAGE / "ul" / "pdu.py"
    assert {"struct", "aiodicom.errors", "aiodicom.ul.items"} <= _imports(sample)
    assert PACKAGE / "errors.py" in _reachable(sample)
    assert PACKAGE / "__init__.py" not in _reachable(sample)
    net = PACKAGE / "net" / "client.py"  # and it would catch the asyncio layer
    assert any(name.split(".")[0] in FORBIDDEN for names in _reachable(net).values() for name in names)


# A fresh interpreter without site (which loads threading for .pth files) and with a stand-in for the
# aiodicom package, whose __init__ imports the asyncio layers: prints the modules that importing loads.
_LOADER = """
import importlib, json, site, sys, types
sys.path.extend(site.getsitepackages())
before = set(sys.modules)
package = types.ModuleType("aiodicom")
package.__path__ = [sys.argv[1]]
sys.modules["aiodicom"] = package
for name in sys.argv[2:]:
    importlib.import_module(name)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _loaded_by(*modules: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-S", "-c", _LOADER, str(PACKAGE), *modules],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout))


def _forbidden(modules: set[str]) -> set[str]:
    return {name for name in modules if name.split(".")[0] in FORBIDDEN}


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_importing_the_core_loads_no_io_module(package: str) -> None:
    modules = sorted(
        _module_name(path) for path in CORE if _module_name(path).startswith(f"aiodicom.{package}")
    )
    loaded = _loaded_by(*modules)
    assert set(modules) <= loaded
    offending = _forbidden(loaded)
    if "pydicom" in loaded:
        # pydicom itself imports socket, ssl and selectors (through urllib): those are not the core's doing
        offending -= _forbidden(_loaded_by("pydicom"))
    assert offending == set()


def test_the_import_check_sees_what_it_should() -> None:
    assert "asyncio" in _loaded_by("aiodicom.net.transport")
