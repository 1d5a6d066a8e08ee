"""MkDocs hooks for the aiodicom site (registered in mkdocs.yml under ``hooks:``).

- The association state diagram in ``docs/state-diagram.md`` is generated from ``aiodicom/ul/fsm.py`` by
  ``docs/gen_fsm.py``: the build fails when the committed page is stale (run ``python docs/gen_fsm.py``).
- ``docs/api.md`` lists the public names by topic; the marker ``<!-- api:rest -->`` is replaced with an entry
  for every name of ``aiodicom.__all__`` that the page does not list yet: the reference stays complete.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.exceptions import PluginError

DOCS = Path(__file__).resolve().parent
API_REST = "<!-- api:rest -->"


def _gen_fsm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aiodicom_docs_gen_fsm", DOCS / "gen_fsm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_pre_build(config: Any) -> None:
    gen = _gen_fsm()
    text = gen.PAGE.read_text(encoding="utf-8")
    if gen.updated(text) != text:
        raise PluginError(f"{gen.PAGE.name} is stale: run python docs/gen_fsm.py")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Docstrings introduce their examples the reStructuredText way, ``text::``: show one colon."""
    if page.file.src_uri != "api.md":
        return html
    return re.sub(r"::(</p>)", r":\1", html)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != "api.md" or API_REST not in markdown:
        return markdown
    import aiodicom

    listed = set(re.findall(r"^::: aiodicom\.(\w+)", markdown, flags=re.MULTILINE))
    rest = [name for name in aiodicom.__all__ if not name.startswith("_") and name not in listed]
    block = "\n\n".join(f"::: aiodicom.{name}" for name in rest)
    return markdown.replace(API_REST, f"## Other public names\n\n{block}" if rest else "")
