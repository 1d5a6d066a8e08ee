"""The tree is the architecture: the import rules between layers, checked on every module's imports.

Every ``import`` and ``from ... import`` of every module is read from its syntax tree, at the top level and
inside functions alike (only ``if TYPE_CHECKING:`` blocks are left out: they do not run). A forbidden
edge, an import cycle between modules or a module over 700 lines fails with the module and line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aiodicom"
LAYERS = ("ul", "dimse", "dataset", "storage", "net", "services", "scu", "scp", "cli")
TOP = ("errors", "uids")

#: layer -> the layers (and top-level modules) it may never import
FORBIDDEN: dict[str, set[str]] = {
    "ul": set(LAYERS) - {"ul"},
    "dimse": {"dataset", "net", "storage", "services", "scu", "scp", "cli"},
    "dataset": {"net", "services", "storage", "scu", "scp", "cli"},
    "storage": {"net", "services", "scu", "scp", "cli", "ul", "dimse"},
    "net": {"services", "storage", "scu", "scp", "cli"},
    "services": {"scu", "scp", "cli"},
    "scu": {"cli"},
    "scp": {"cli"},
    "errors": set(LAYERS),
    "uids": set(LAYERS) | {"errors"},
}
#: standard-library modules only the network layer may import (sockets, TLS)
NETWORK_ONLY = {"socket", "ssl"}
#: asyncio's transport and protocol API: only the network layer uses it
ASYNCIO_TRANSPORTS = {
    "BaseProtocol",
    "BufferedProtocol",
    "Protocol",
    "Transport",
    "BaseTransport",
    "create_server",
    "create_connection",
    "open_connection",
    "start_server",
}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def name_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import that runs, resolved to absolute names; ``from X import y`` gives
    ``X.y`` when that is a module of the package, else ``X``."""
    tree = ast.parse(path.read_text(), str(path))
    here = name_of(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (n for stmt in child.orelse for n in [stmt, *walk(stmt)])
                continue
            yield child
            yield from walk(child)

    for node in walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                if candidate.startswith("aiodicom") and _exists(candidate):
                    yield node.lineno, candidate
                else:
                    yield node.lineno, source


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def own_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in modules():
        graph[name_of(path)] = {m for _, m in imports(path) if m.startswith("aiodicom.") or m == "aiodicom"}
    return graph


def test_no_forbidden_edge() -> None:
    wrong = []
    for path in modules():
        here = name_of(path)
        layer = layer_of(here)
        for line, target in imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
            top = target.split(".")[0]
            if top in NETWORK_ONLY and layer != "net":
                wrong.append(f"{where} (only aiodicom.net touches sockets and TLS)")
            if not target.startswith("aiodicom.") or layer is None:
                continue
            other = layer_of(target)
            if other == "cli" and here != "aiodicom.__main__" and layer != "cli":
                wrong.append(f"{where} (only __main__ imports cli)")
            if other in FORBIDDEN.get(layer, set()):
                wrong.append(f"{where} ({layer} never imports {other})")
            if layer == "ul" and other not in ("ul", *TOP):
                wrong.append(f"{where} (ul imports nothing of aiodicom but errors and uids)")
    assert not wrong, "\n".join(wrong)


def test_uids_and_errors_stand_alone() -> None:
    for name in ("uids", "errors"):
        path = PACKAGE / f"{name}.py"
        found = [t for _, t in imports(path) if t.startswith("aiodicom") or t.startswith("pydicom")]
        allowed = {"aiodicom.uids"} if name == "errors" else set()
        assert set(found) <= allowed, (name, found)


def test_asyncio_transports_are_the_network_layer_s() -> None:
    wrong = []
    for path in modules():
        if layer_of(name_of(path)) == "net":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ASYNCIO_TRANSPORTS
                and isinstance(node.value, ast.Name)
                and node.value.id == "asyncio"
            ):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} uses asyncio.{node.attr}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = own_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_over_700_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 700


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("aiodicom.ul", ("asyncio", "anyio", "pydicom", "numpy")),
        ("aiodicom.dimse", ("asyncio", "anyio", "pydicom", "numpy")),
        ("aiodicom", ("pydicom", "numpy")),
    ],
)
def test_importing_loads_only_what_it_needs(module: str, absent: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"


def test_every_public_name_resolves_to_its_module() -> None:
    code = (
        "import aiodicom, importlib; "
        "bad = [n for n, m in aiodicom._EXPORTS.items() "
        "if getattr(importlib.import_module(m), n) is not getattr(aiodicom, n)]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
