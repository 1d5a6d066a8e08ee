"""The documentation site builds with ``mkdocs build --strict``, and its reference pages stay complete."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

import aiodicom
from aiodicom.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
KEY_PAGES = [
    "index.html",
    "getting-started/index.html",
    "receiving/index.html",
    "sending/index.html",
    "hooks/index.html",
    "study-events/index.html",
    "s3/index.html",
    "query-retrieve/index.html",
    "association/index.html",
    "deployment/index.html",
    "option-mapping/index.html",
    "state-diagram/index.html",
    "cli/index.html",
    "api/index.html",
    "performance/index.html",
    "architecture/index.html",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


@pytest.mark.parametrize("page", KEY_PAGES)
def test_the_site_has_the_page(site: Path, page: str) -> None:
    html = (site / page).read_text(encoding="utf-8")
    assert "<h1" in html


def test_every_page_in_docs_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in config, f"{page.name} is not in the nav of mkdocs.yml"


def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    html = (site / "api/index.html").read_text(encoding="utf-8")
    for name in aiodicom.__all__:
        if not name.startswith("_"):
            assert f'id="aiodicom.{name}"' in html, f"aiodicom.{name} is missing from the API reference"
    assert "StoreScp.on_before_store" in html and "StoreScu.add_folder" in html


def test_the_state_diagram_page_is_generated_from_the_table(site: Path) -> None:
    html = (site / "state-diagram/index.html").read_text(encoding="utf-8")
    assert "stateDiagram-v2" in html and "STA13 --&gt; STA1" in html


def test_the_cli_reference_lists_every_option() -> None:
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert {"echo", "echoscp", "storescp", "store", "demo"} <= set(commands)
    for name, command in commands.items():
        assert f"## aiodicom {name}" in page or re.search(rf"aiodicom [a-z, ]*\b{name}\b", page), name
        if name in ("find", "get", "move"):
            continue
        for param in command.params:
            if param.param_type_name == "option" and "--help" not in param.opts:
                long = max(param.opts, key=len)
                assert f"`{long}`" in page, f"aiodicom {name} {long} is not in docs/cli.md"
