"""Every ```python block of docs/*.md and README.md runs, each in its own interpreter, over loopback.

A block that needs something the tests cannot provide (a remote PACS, an S3 bucket) is preceded by an HTML
comment ``<!-- not-run: the reason -->``: it is not run, but it must still compile, and such blocks stay few.
A block preceded by ``<!-- runs against orthanc -->`` runs in tests/qr/test_docs_examples.py, against the
Orthanc of the query/retrieve fixtures.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 90
MAX_NOT_RUN = 8

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```python\b[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>[^>]*?)\s*-->\s*$")
_ORTHANC = re.compile(r"<!--\s*runs against orthanc\s*-->\s*$")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    code: str
    not_run: str | None
    orthanc: bool = False

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def collect(pages: list[Path] = PAGES) -> list[Example]:
    examples = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            before = text[: match.start()].rstrip().splitlines()
            marker = _NOT_RUN.search(before[-1]) if before else None
            orthanc = bool(before and _ORTHANC.search(before[-1]))
            indent = len(match["indent"])
            code = "\n".join(line[indent:] for line in match["code"].splitlines())
            line = text.count("\n", 0, match.start()) + 1
            examples.append(Example(page, line, code, marker["reason"] if marker else None, orthanc))
    return examples


EXAMPLES = collect()
RUNNABLE = [e for e in EXAMPLES if e.not_run is None and not e.orthanc]
AGAINST_ORTHANC = [e for e in EXAMPLES if e.orthanc]
NOT_RUN = [e for e in EXAMPLES if e.not_run is not None]


def test_the_pages_have_examples() -> None:
    assert len(RUNNABLE) >= 10, [e.id for e in RUNNABLE]


def test_examples_that_are_not_run_are_few_and_say_why() -> None:
    assert len(NOT_RUN) <= MAX_NOT_RUN, [e.id for e in NOT_RUN]
    for example in NOT_RUN:
        assert example.not_run, f"{example.id}: say why the example is not run"
        compile(example.code, example.id, "exec")


def test_the_collector_reads_markers_and_indented_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nprint(1)\n```\n\n<!-- not-run: needs a PACS -->\n```python\nprint(2)\n```\n\n"
        '- item\n\n    ```python title="x.py"\n    if True:\n        print(3)\n    ```\n\n```bash\nls\n```\n'
    )
    found = collect([page])
    assert [(e.line, e.code, e.not_run) for e in found] == [
        (3, "print(1)", None),
        (8, "print(2)", "needs a PACS"),
        (14, "if True:\n    print(3)", None),
    ]


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.id for e in RUNNABLE])
def test_example_runs(example: Example, tmp_path: Path) -> None:
    run_example(example, example.code, tmp_path)


def run_example(example: Example, code: str, tmp_path: Path) -> None:
    """Run ``code`` (the example, perhaps with its addresses replaced) in its own interpreter."""
    script = tmp_path / "example.py"
    script.write_text(code + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.id} did not finish in {TIMEOUT} s\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, f"{example.id} failed:\n{done.stdout}\n{done.stderr}"
